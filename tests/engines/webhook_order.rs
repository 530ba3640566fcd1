//! A job's webhook messages are sent in order: one is not claimed while an earlier message of
//! the same job is due or being sent, though the sender sends up to 16 at once. A fast job makes
//! its `start` and `completed` before the sender wakes; claimed side by side, the receiver could
//! get `completed` first (CI saw it: the e2e webhooks test's start arrived as `succeeded`).

use crate::support;

use mvgen::generation::Kind;
use mvgen::jobs::store::deliveries::{Attempted, HookEvent, HookEvents, Next, WebhookTarget};
use mvgen::jobs::store::now_ms;
use mvgen::jobs::{Jobs, Submitted};
use serde_json::json;
use support::job_pipeline::FakePipeline;
use tokio_util::sync::CancellationToken;

use super::jobs_engine::{config, finished, sqlite_url, wait_until};

async fn messages_of_one_job_go_one_at_a_time_in_order(url: &str) {
    let (pipeline, _upstream) = FakePipeline::new();
    let jobs = Jobs::open(url, pipeline, config(1, 60_000)).await.expect("open");
    let hook = WebhookTarget {
        url: "https://receiver.example/hook".into(),
        events: HookEvents::default().with(HookEvent::Start).with(HookEvent::Completed),
    };
    let submitted =
        jobs.submit_with(Kind::parse("scenes").expect("kind"), json!({"prompt": "fast"}), None, None, Some(&hook));
    let Ok(Submitted::New(row)) = submitted.await else { panic!("submit refused") };
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    wait_until(&jobs, &row.id, "finished", finished).await;
    shutdown.cancel();
    workers.wait().await;
    let store = jobs.store();

    // Both messages are due; the first claim takes `start`, and `completed` waits behind it.
    let start = store.claim_delivery("sender-a/1", 60_000).await.expect("claim").expect("start is due");
    assert_eq!(start.event, "start");
    assert!(store.claim_delivery("sender-b/1", 60_000).await.expect("claim").is_none(), "completed overtook start");
    let due = store.next_delivery_due().await.expect("due").expect("a lease");
    assert!(due > now_ms(), "the held-back message is not reported due (the sender would spin): {due}");

    // A message waiting for its retry holds nothing back: `completed` may overtake it then (as
    // Replicate's may), rather than wait hours behind a receiver's failing start.
    let failed = Attempted {
        at: now_ms(),
        duration_ms: 1,
        code: Some(503),
        error: None,
        next: Next::RetryAt(now_ms() + 600_000),
    };
    assert!(store.record_attempt(&start, &failed).await.expect("record"));
    let completed = store.claim_delivery("sender-b/2", 60_000).await.expect("claim").expect("completed is due");
    assert_eq!(completed.event, "completed");
}

#[tokio::test]
async fn a_jobs_messages_are_sent_in_order_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    messages_of_one_job_go_one_at_a_time_in_order(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn a_jobs_messages_are_sent_in_order_on_postgres() {
    let Some(pg) = support::postgres::Postgres::start("a_jobs_messages_are_sent_in_order_on_postgres") else {
        return;
    };
    messages_of_one_job_go_one_at_a_time_in_order(&pg.url).await;
}
