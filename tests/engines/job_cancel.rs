//! Cancelling a job whose saved upstream run no live call holds: the run must be cancelled
//! upstream (through `JobPipeline::cancel_run`) or it bills on with nobody to collect it. A run a
//! live call holds is cancelled by that call's drop, never a second time through the hook.

use std::sync::atomic::Ordering;

use mvgen::jobs::Jobs;
use serde_json::json;
use support::job_pipeline::FakePipeline;
use tokio_util::sync::CancellationToken;

use super::jobs_engine::{config, engine_dies_mid_run, finished, sqlite_url, submit, wait_until};
use crate::support;

/// The saved prediction id of job `id`.
async fn saved_run(jobs: &Jobs, id: &str) -> String {
    wait_until(jobs, id, "saved its upstream run", |row| row.upstream.is_some()).await.upstream.expect("saved").id
}

#[tokio::test]
async fn a_released_job_canceled_while_queued_cancels_its_saved_run_and_a_resumed_one_cancels_by_its_drop() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline.clone(), config(2, 60_000)).await.expect("open");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let queued = submit(&jobs, "video", json!({ "prompt": "released", "render_ms": 20_000 })).await;
    let resumed = submit(&jobs, "video", json!({ "prompt": "resumed", "render_ms": 20_000 })).await;
    let (queued_run, resumed_run) = (saved_run(&jobs, &queued).await, saved_run(&jobs, &resumed).await);
    shutdown.cancel();
    workers.wait().await;
    assert_eq!(upstream.cancelled(), Vec::<String>::new(), "a shutdown keeps the runs for the next worker");
    jobs.close().await;

    // No workers: the released job stays queued, holding a prediction that bills until cancelled.
    let jobs = Jobs::open(&url, pipeline.clone(), config(0, 60_000)).await.expect("reopen");
    let row = jobs.cancel(&queued).await.unwrap().unwrap();
    assert_eq!(row.status, "canceled", "{row:?}");
    assert_eq!(upstream.cancelled(), [queued_run], "the cancel itself cancelled the saved prediction");
    jobs.close().await;

    // The other one is resumed by a worker, whose call then owns its run.
    let runs_before = upstream.runs.load(Ordering::SeqCst);
    let jobs = Jobs::open(&url, pipeline, config(1, 60_000)).await.expect("reopen");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    // Its call resumes the saved run as soon as it starts (the fake pipeline counts the starts).
    wait_until(&jobs, &resumed, "resumed", |_| upstream.runs.load(Ordering::SeqCst) > runs_before).await;
    let drops_before = upstream.dropped.load(Ordering::SeqCst);
    jobs.cancel(&resumed).await.unwrap().unwrap();
    let row = wait_until(&jobs, &resumed, "finished", finished).await;
    assert_eq!(row.status, "canceled", "{row:?}");
    assert_eq!(upstream.dropped.load(Ordering::SeqCst), drops_before + 1, "the live call was dropped (its cancel)");
    assert_eq!(upstream.cancelled().len(), 1, "{resumed_run} is not cancelled a second time through the hook");
    assert_eq!((upstream.creates("released"), upstream.creates("resumed")), (1, 1));
    shutdown.cancel();
    workers.wait().await;
}

#[tokio::test]
async fn a_canceled_job_whose_worker_died_has_its_saved_run_cancelled_by_the_takeover() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    let id = engine_dies_mid_run(&url, &pipeline, json!({ "prompt": "orphan", "render_ms": 20_000 }));
    let jobs = Jobs::open(&url, pipeline, config(1, 400)).await.expect("reopen");
    let run = saved_run(&jobs, &id).await;
    let row = jobs.cancel(&id).await.unwrap().unwrap();
    assert!(row.status == "processing" && row.cancel_requested, "the dead worker's claim is still on it: {row:?}");
    assert_eq!(upstream.cancelled(), Vec::<String>::new(), "not yet: a live worker elsewhere may hold the run");

    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let row = wait_until(&jobs, &id, "finished", finished).await;
    assert_eq!(row.status, "canceled", "taken over once the claim was stale: {row:?}");
    shutdown.cancel();
    workers.wait().await;
    // After the workers stopped: the cancel follows the stored outcome.
    assert_eq!(upstream.cancelled(), [run], "the takeover cancelled the saved prediction");
    assert_eq!(upstream.creates("orphan"), 1, "and never created another");
}
