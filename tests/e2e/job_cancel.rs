//! Cancelling a job through the real binary while no live call holds its saved prediction: the
//! fake Replicate must see that prediction cancelled, or it bills on with nobody to collect it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::durable_jobs::{Fakes, http, start, submit, wait_job};

async fn cancel(base: &str, id: &str) -> Value {
    let response = http().post(format!("{base}/api/mv/jobs/{id}/cancel")).send().await.expect("cancel");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    response.json().await.expect("the job")
}

/// SIGTERM releases a rendering video job to the queue with its saved prediction (for the next
/// process to resume); canceled there by a process that runs no workers, its prediction is
/// cancelled at once, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_released_by_sigterm_and_canceled_while_queued_cancels_its_saved_prediction() {
    let (fakes, _) = Fakes::with_held_video("released").await;
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let env = fakes.env(&[("MV_OUTPUT_DIR", outputs_dir)]);

    let first = start(&env);
    let id = submit(&first.base, "video", json!({ "prompt": "A lighthouse beam sweeps the storm." })).await;
    let running = wait_job(&first.base, &id, "saved its prediction", |j| !j["upstream"].is_null()).await;
    let prediction = running["upstream"]["id"].as_str().expect("prediction id").to_owned();
    let (status, log) = tokio::task::block_in_place(|| first.terminate());
    assert!(status.success(), "{log}");
    assert!(fakes.replicate.cancelled().is_empty(), "a shutdown keeps the prediction for the next process");

    let env = fakes.env(&[("MV_OUTPUT_DIR", outputs_dir), ("MVGEN_WORKERS", "0")]);
    let second = start(&env);
    let queued = wait_job(&second.base, &id, "read", |_| true).await;
    assert_eq!((queued["status"].as_str(), &queued["upstream"]["id"]), (Some("queued"), &json!(prediction)));
    let canceled = cancel(&second.base, &id).await;
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert_eq!(fakes.replicate.cancelled(), [prediction], "the cancel reached Replicate, once");
    assert_eq!(fakes.creates(), 1);
}
