//! Cancelling a job through the real binary while no live call holds its saved prediction: the
//! fake Replicate must see that prediction cancelled, or it bills on with nobody to collect it.
//! And the create-and-save window: a cancel or a SIGTERM that lands after the create was sent but
//! before its id was saved must not orphan the prediction (the fake holds the create's answer).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::durable_jobs::{Fakes, finished, http, start, submit, wait_for, wait_job};
use crate::support::server_process::ServerProcess;

/// How long the fake Replicate holds a create's answer: long enough for a cancel or a signal to
/// land inside the window, well under the client's request timeout.
const CREATE_HOLD: Duration = Duration::from_millis(1500);

/// Fakes with a held video whose creates answer after [`CREATE_HOLD`], a fresh output dir, and a
/// video job submitted to a process on it whose create the fake has received (its id unsaved).
async fn job_inside_the_create_window(tag: &str) -> (Fakes, tempfile::TempDir, ServerProcess, String) {
    let (fakes, _) = Fakes::with_held_video(tag).await;
    fakes.replicate.hold_creates(CREATE_HOLD);
    let outputs = tempfile::tempdir().expect("temp dir");
    let server = start(&fakes.env(&[("MV_OUTPUT_DIR", outputs.path().to_str().expect("utf-8 temp path"))]));
    let id = submit(&server.base, "video", json!({ "prompt": "A lighthouse beam sweeps the storm." })).await;
    wait_for("the create was sent", || fakes.creates() == 1).await;
    (fakes, outputs, server, id)
}

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

/// A cancel inside the create window: the create's answer is still awaited and its id saved, and
/// then the prediction is cancelled (by the worker's own dropped call, once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_create_is_in_flight_cancels_the_prediction_it_made() {
    let (fakes, _outputs, server, id) = job_inside_the_create_window("cancel-in-create").await;
    cancel(&server.base, &id).await;
    let done = wait_job(&server.base, &id, "finished", finished).await;
    assert_eq!(done["status"], "canceled", "{done}");
    assert_eq!(done["upstream"]["id"], "pred-1", "the id was saved after all: {done}");
    wait_for("the prediction was cancelled", || !fakes.replicate.cancelled().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fakes.replicate.cancelled(), ["pred-1"], "cancelled once");
    assert_eq!(fakes.creates(), 1);
}

/// SIGTERM inside the create window: the process saves the id before it releases the job, so the
/// next process resumes that prediction (not cancelled, no second create).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_while_the_create_is_in_flight_saves_its_id_for_the_next_process() {
    let (fakes, outputs, server, id) = job_inside_the_create_window("sigterm-in-create").await;
    let (status, log) = tokio::task::block_in_place(|| server.terminate());
    assert!(status.success(), "{log}");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let next = start(&fakes.env(&[("MV_OUTPUT_DIR", outputs_dir), ("MVGEN_WORKERS", "0")]));
    let released = wait_job(&next.base, &id, "read", |_| true).await;
    assert_eq!(
        (released["status"].as_str(), &released["upstream"]["id"]),
        (Some("queued"), &json!("pred-1")),
        "{released}"
    );
    assert!(fakes.replicate.cancelled().is_empty(), "kept for the next worker to resume");
    assert_eq!(fakes.creates(), 1);
}

/// A cancel asked of another replica reaches the running job's worker through PostgreSQL's
/// notification at once, not at its next heartbeat: the heartbeat here is 200 s apart and the
/// prediction polled every 300 s (both beyond the test's patience), so only the wake-up can stop
/// the render and cancel its prediction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_through_another_replica_stops_the_running_job_at_once() {
    use crate::support::postgres::Postgres;
    let Some(pg) = Postgres::start("a_cancel_through_another_replica_stops_the_running_job_at_once") else {
        return;
    };
    let (fakes, _) = Fakes::with_held_video("cancel-across-replicas").await;
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let shared =
        [("MVGEN_DATABASE_URL", pg.url.as_str()), ("MV_OUTPUT_DIR", outputs_dir), ("MVGEN_JOB_STALE_AFTER", "600")];
    // No poll for 300 s after the create: no progress either, whose writes also read the cancel.
    let mut env = fakes.env(&shared);
    env.push(("MV_REPLICATE_POLL_SECS", "300"));
    let runs = start(&env);
    let id = submit(&runs.base, "video", json!({ "prompt": "A kite over the harbour wall." })).await;
    let running = wait_job(&runs.base, &id, "saved its prediction", |j| !j["upstream"].is_null()).await;
    let prediction = running["upstream"]["id"].as_str().expect("prediction id").to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut no_workers = shared.to_vec();
    no_workers.push(("MVGEN_WORKERS", "0"));
    let asks = start(&fakes.env(&no_workers));
    cancel(&asks.base, &id).await;
    wait_for("the running replica cancelled the prediction", || !fakes.replicate.cancelled().is_empty()).await;
    assert_eq!(fakes.replicate.cancelled(), [prediction]);
    let done = wait_job(&asks.base, &id, "finished", finished).await;
    assert_eq!(done["status"], "canceled", "{done}");
    drop(pg);
}
