//! The job engine on a real database with a slow fake upstream (tests/support/job_pipeline.rs):
//! restarts, stale takeover without a second create, retries, cancels; and on PostgreSQL two
//! engines sharing one queue.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mvgen::generation::Kind;
use mvgen::jobs::store::StoreError;
use mvgen::jobs::store::finish::Outcome;
use mvgen::jobs::store::queries::Filter;
use mvgen::jobs::store::rows::JobRow;
use mvgen::jobs::{EngineConfig, JobPipeline, Jobs, Submitted};
use serde_json::{Value, json};
use support::job_pipeline::FakePipeline;
use tokio_util::sync::CancellationToken;

pub(super) fn config(workers: usize, stale_ms: u64) -> EngineConfig {
    EngineConfig {
        workers,
        stale_after: Duration::from_millis(stale_ms),
        max_attempts: 3,
        poll: Duration::from_millis(50),
        progress_every: Duration::from_millis(20),
        ..EngineConfig::default()
    }
}

pub(super) fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join("jobs.db").display())
}

pub(super) async fn submit(jobs: &Jobs, kind: &str, input: Value) -> String {
    match jobs.submit(Kind::parse(kind).expect("a kind"), input, None, None).await {
        Ok(Submitted::New(row)) => row.id,
        Ok(Submitted::Replayed(_)) => panic!("no key, no replay"),
        Err(e) => panic!("submit refused: {} {}", e.status(), e.message),
    }
}

/// Polls the row until `done` says so (bounded).
pub(super) async fn wait_until(jobs: &Jobs, id: &str, what: &str, done: impl Fn(&JobRow) -> bool) -> JobRow {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(row) = jobs.store().get(id).await.expect("get") {
            if done(&row) {
                return row;
            }
            assert!(Instant::now() < deadline, "job {id} never {what}: {row:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(super) fn finished(row: &JobRow) -> bool {
    matches!(row.status.as_str(), "succeeded" | "failed" | "canceled")
}

/// Submits `input` as a video job to an engine with a 400 ms stale limit that dies once the job
/// saved its upstream run; returns the job id. The engine lives on a runtime of its own, dropped
/// mid-render: its tasks vanish without a word, as a SIGKILLed process's would, leaving the job
/// `processing` with an old heartbeat.
pub(super) fn engine_dies_mid_run(url: &str, pipeline: &Arc<FakePipeline>, input: Value) -> String {
    let (url, pipeline) = (url.to_owned(), pipeline.clone() as Arc<dyn JobPipeline>);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let id = runtime.block_on(async {
            let jobs = Jobs::open(&url, pipeline, config(1, 400)).await.expect("open");
            let _workers = jobs.start_workers(CancellationToken::new());
            let id = submit(&jobs, "video", input).await;
            wait_until(&jobs, &id, "saved its upstream run", |row| row.upstream.is_some()).await;
            id
        });
        runtime.shutdown_background();
        id
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn a_job_survives_an_engine_restart_and_resumes_its_upstream_run_without_a_second_create() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    let first = engine_dies_mid_run(&url, &pipeline, json!({ "prompt": "crash", "render_ms": 1500 }));
    assert_eq!(upstream.creates("crash"), 1);

    let jobs = Jobs::open(&url, pipeline, config(1, 400)).await.expect("reopen");
    let row = jobs.store().get(&first).await.unwrap().expect("the job is still there");
    assert_eq!(row.status, "processing", "left processing by the dead engine");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let row = wait_until(&jobs, &first, "finished", finished).await;
    assert_eq!(row.status, "succeeded", "{row:?}");
    assert_eq!((row.attempts, row.takeovers), (1, 1), "taken over once, in the same attempt");
    assert_eq!(upstream.creates("crash"), 1, "the takeover resumed the saved prediction");
    let upstream_run = row.upstream.expect("upstream");
    assert_eq!(row.output.as_ref().unwrap()["prediction"], upstream_run.id.as_str());
    let kinds: Vec<String> =
        jobs.store().events_after(&first, 0, 100).await.unwrap().into_iter().map(|e| e.kind.to_string()).collect();
    assert_eq!(kinds.first().map(String::as_str), Some("queued"));
    assert_eq!(kinds.iter().filter(|k| *k == "processing").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "upstream").count(), 1, "{kinds:?}");
    assert_eq!(kinds.last().map(String::as_str), Some("succeeded"));
    shutdown.cancel();
    workers.wait().await;
}

#[tokio::test]
async fn a_graceful_shutdown_releases_running_jobs_to_the_next_engine() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline.clone(), config(1, 60_000)).await.expect("open");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let id = submit(&jobs, "video", json!({ "prompt": "graceful", "render_ms": 800 })).await;
    wait_until(&jobs, &id, "saved its upstream run", |row| row.upstream.is_some()).await;
    shutdown.cancel();
    workers.wait().await;
    let row = jobs.store().get(&id).await.unwrap().unwrap();
    assert_eq!(row.status, "queued", "released, not failed: {row:?}");
    jobs.close().await;

    // A minute-long stale limit: only the release (not a takeover) lets the next engine run it.
    let jobs = Jobs::open(&url, pipeline, config(1, 60_000)).await.expect("reopen");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let row = wait_until(&jobs, &id, "finished", finished).await;
    assert_eq!((row.status.as_str(), upstream.creates("graceful")), ("succeeded", 1));
    shutdown.cancel();
    workers.wait().await;
}

#[tokio::test]
async fn retryable_failures_are_retried_and_caller_errors_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, _upstream) = FakePipeline::new();
    let jobs = Jobs::open(&sqlite_url(&dir), pipeline, config(2, 60_000)).await.expect("open");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let once = submit(&jobs, "scenes", json!({ "prompt": "flaky", "fail": "upstream_once" })).await;
    let caller = submit(&jobs, "scenes", json!({ "prompt": "refused", "fail": "caller" })).await;
    let always = submit(&jobs, "scenes", json!({ "prompt": "down", "fail": "upstream" })).await;
    let waited = jobs.finished(&once).await.unwrap().expect("known");
    assert_eq!(waited.status, "succeeded", "wait returns the finished job");
    assert!(jobs.finished(&uuid::Uuid::new_v4().to_string()).await.unwrap().is_none());
    let once = wait_until(&jobs, &once, "finished", finished).await;
    assert_eq!((once.status.as_str(), once.attempts), ("succeeded", 2), "{once:?}");
    let caller = wait_until(&jobs, &caller, "finished", finished).await;
    assert_eq!((caller.status.as_str(), caller.attempts), ("failed", 1));
    assert_eq!(caller.error_code.map(|code| code.to_string()).as_deref(), Some("ContentRefused"));
    let answer = caller.api_error().expect("failed");
    assert_eq!(
        (answer.status().as_u16(), answer.kind.to_string().as_str(), answer.message.as_str()),
        (422, "ContentRefused", "refused")
    );
    let always = wait_until(&jobs, &always, "finished", finished).await;
    assert_eq!((always.status.as_str(), always.attempts), ("failed", 3), "bounded retries");
    assert_eq!(always.error_code.map(|code| code.to_string()).as_deref(), Some("UpstreamError"));
    let answer = always.api_error().expect("failed");
    assert_eq!(
        (answer.status().as_u16(), &answer.details),
        (502, &json!({ "provider": "fake" })),
        "as the sync answer"
    );
    shutdown.cancel();
    workers.wait().await;
}

#[tokio::test]
async fn cancel_of_queued_and_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, upstream) = FakePipeline::new();
    let jobs = Jobs::open(&sqlite_url(&dir), pipeline, config(1, 60_000)).await.expect("open");
    let queued = submit(&jobs, "video", json!({ "prompt": "never" })).await;
    let row = jobs.cancel(&queued).await.unwrap().unwrap();
    assert_eq!(row.status, "canceled");

    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let running = submit(&jobs, "video", json!({ "prompt": "stop me", "render_ms": 20_000 })).await;
    wait_until(&jobs, &running, "saved its upstream run", |row| row.upstream.is_some()).await;
    let row = jobs.cancel(&running).await.unwrap().unwrap();
    // The worker may already have stopped it (a progress write reads the flag too).
    assert!(row.cancel_requested && ["processing", "canceled"].contains(&row.status.as_str()), "{row:?}");
    let started = Instant::now();
    let row = wait_until(&jobs, &running, "finished", finished).await;
    assert_eq!(row.status, "canceled");
    assert!(started.elapsed() < Duration::from_secs(5), "the worker stopped the run promptly");
    assert_eq!(upstream.dropped.load(std::sync::atomic::Ordering::SeqCst), 1, "the run future was dropped");
    assert_eq!(upstream.creates("never"), 0, "a canceled queued job never runs");
    let after = jobs.cancel(&running).await.unwrap().unwrap();
    assert_eq!(after.status, "canceled", "cancelling a finished job changes nothing");
    shutdown.cancel();
    workers.wait().await;
}

#[tokio::test]
async fn a_database_that_cannot_be_opened_is_a_clear_error() {
    let (pipeline, _) = FakePipeline::new();
    let err = Jobs::open("sqlite:///nonexistent-dir/x/jobs.db?mode=rwc", pipeline.clone(), config(0, 1000))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("cannot open the jobs database"), "{err}");
    let err = Jobs::open("mysql://x", pipeline, config(0, 1000)).await.err().expect("refused");
    assert!(err.contains("MVGEN_DATABASE_URL"), "{err}");
}

/// A jobs file that is not a database (corrupt, or another file at that path) is refused at once
/// with one line naming the file and SQLite's reason, not a pool that timed out.
#[tokio::test]
async fn a_corrupt_sqlite_file_is_refused_naming_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.db");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&file, garbage).unwrap();
    let (pipeline, _) = FakePipeline::new();
    let started = std::time::Instant::now();
    let err = Jobs::open(&sqlite_url(&dir), pipeline, config(0, 1000)).await.err().expect("refused");
    assert_eq!(err, format!("cannot open the jobs database {}: file is not a database", file.display()));
    // The pool's acquire timeout is 3 s: refusing sooner shows the probe, not the pool, said it.
    assert!(started.elapsed() < std::time::Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// Makes every job stored in `url` claimed at once by a worker of another process, `claim`
/// `other-worker`, whose heartbeat reads `beat_ms` after the job's creation. A sync job is stored
/// claimed by the process that runs it, so this takes the claim from under its first attempt, as
/// a takeover after that process stalled would.
async fn another_worker_claims_first(url: &str, beat_ms: i64) {
    use sqlx::Connection;
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let trigger = format!(
        "CREATE TRIGGER other_worker_wins AFTER INSERT ON jobs BEGIN \
         UPDATE jobs SET status = 'processing', claim = 'other-worker', attempts = 1, started_at = NEW.created_at, \
         heartbeat_at = NEW.created_at + {beat_ms} WHERE id = NEW.id; END"
    );
    sqlx::query(&trigger).execute(&mut conn).await.expect("trigger");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn a_sync_job_taken_over_by_another_worker_holds_its_generation_slot_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline.clone(), config(0, 60_000)).await.expect("open");
    another_worker_claims_first(&url, 3_600_000).await;
    let slots = Arc::new(tokio::sync::Semaphore::new(1));
    let slot = slots.clone().try_acquire_owned().expect("the one slot");
    let planned = pipeline.plan(Kind::Video, json!({ "prompt": "raced" })).await.expect("plan");
    let id = jobs.submit_now(Kind::Video, planned, slot, None, None).await.expect("submitted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let row = jobs.store().get(&id).await.unwrap().unwrap();
    assert_eq!(row.status, "processing", "{row:?}");
    assert_eq!(slots.available_permits(), 0, "the slot is held while the other worker runs the job");

    let output = json!({ "done": "elsewhere" });
    assert!(jobs.store().finish(&id, "other-worker", false, Outcome::Succeeded(&output)).await.unwrap().is_some());
    let row = tokio::time::timeout(Duration::from_secs(10), jobs.finished(&id))
        .await
        .expect("waited")
        .unwrap()
        .expect("known");
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.output, Some(output), "the other worker's result: the attempt whose claim was taken stored nothing");
    assert_eq!(slots.available_permits(), 1, "the slot is free by the time the caller is answered");
    assert!(upstream.runs.load(std::sync::atomic::Ordering::SeqCst) <= 1, "our own attempt at most, stopped");
}

/// A sync wait that could not read the database once before its bound says so (the endpoint answers
/// 503 `DatabaseUnavailable` with the job's id), rather than "no such job".
/// A sync job's end is broadcast once (for its event streams); its freed slot wakes its own
/// waiter alone. Every task on the broadcast (each sync waiter, each running job's watch) wakes
/// for every message, so a second one per job was a wake-up of every in-flight request.
#[tokio::test]
async fn a_sync_jobs_end_is_broadcast_once_and_its_waiter_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, _upstream) = FakePipeline::new();
    let jobs = Jobs::open(&sqlite_url(&dir), pipeline.clone(), config(0, 60_000)).await.expect("open");
    let slots = Arc::new(tokio::sync::Semaphore::new(1));
    let mut news = jobs.subscribe();
    let planned = pipeline.plan(Kind::Video, json!({ "prompt": "refused", "fail": "caller" })).await.expect("plan");
    let slot = slots.clone().try_acquire_owned().expect("the one slot");
    let id = jobs.submit_now(Kind::Video, planned, slot, None, None).await.expect("submitted");
    let row = tokio::time::timeout(Duration::from_secs(10), jobs.finished(&id)).await.expect("bounded");
    let row = row.expect("read").expect("known");
    assert_eq!(row.status, "failed", "{row:?}");
    assert_eq!(slots.available_permits(), 1, "answered once the slot is free");
    let mut told = 0;
    while let Ok(woken) = news.try_recv() {
        told += usize::from(woken == id);
    }
    assert_eq!(told, 1, "the job's end, once");
}

#[tokio::test]
async fn a_sync_wait_that_never_reads_the_database_is_an_error_not_an_unknown_job() {
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, _upstream) = FakePipeline::new();
    let config = EngineConfig { sync_wait: Duration::from_millis(300), ..config(0, 60_000) };
    let jobs = Jobs::open(&sqlite_url(&dir), pipeline.clone(), config).await.expect("open");
    let planned = pipeline.plan(Kind::Video, json!({ "prompt": "unread", "render_ms": 60_000 })).await.expect("plan");
    let id = jobs.submit_now(Kind::Video, planned, (), None, None).await.expect("submitted");
    jobs.store().close().await;
    let waited = tokio::time::timeout(Duration::from_secs(10), jobs.finished(&id)).await.expect("bounded");
    assert!(waited.is_err(), "{waited:?}");
}

#[tokio::test]
async fn a_sync_job_whose_worker_died_is_finished_by_the_sync_request_on_a_serve_without_workers() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    // MVGEN_WORKERS=0: nobody else would ever take the job over.
    let jobs = Jobs::open(&url, pipeline.clone(), config(0, 300)).await.expect("open");
    let _workers = jobs.start_workers(CancellationToken::new());
    another_worker_claims_first(&url, 0).await;
    let planned = pipeline.plan(Kind::Video, json!({ "prompt": "orphan" })).await.expect("plan");
    let id = jobs.submit_now(Kind::Video, planned, (), None, None).await.expect("submitted");
    let row = tokio::time::timeout(Duration::from_secs(10), jobs.finished(&id))
        .await
        .expect("the sync wait ends: the dead worker's job is taken over here")
        .expect("readable")
        .expect("known");
    assert_eq!(row.status, "succeeded", "{row:?}");
    assert_eq!(row.takeovers, 1, "taken over by the sync request: {row:?}");
    // One create by the job's first attempt here, whose claim the trigger took before it could
    // save the prediction (no real worker can: the job is stored claimed, with a fresh
    // heartbeat), and one by the takeover.
    assert_eq!(upstream.creates("orphan"), 2);
}

/// Restarts are not failures: a takeover from a dead worker and a graceful release leave the retry
/// budget whole, and a job that keeps losing its worker still ends after `max_takeovers`.
async fn restarts_do_not_use_up_retries(url: &str) {
    let (pipeline, upstream) = FakePipeline::new();
    let config = EngineConfig { max_attempts: 2, max_takeovers: 2, ..config(1, 300) };
    let jobs = Jobs::open(url, pipeline, config).await.expect("open");
    let id = submit(&jobs, "scenes", json!({ "prompt": "down", "fail": "upstream" })).await;
    // A worker claims it and dies; another takes it over and is shut down gracefully.
    let now = mvgen::jobs::store::now_ms();
    let first = jobs.store().claim("dead-1", now).await.unwrap().expect("claimed");
    let second = jobs.store().claim("dead-2", now + 3_600_000).await.unwrap().expect("taken over");
    assert_eq!((first.id.as_str(), second.id.as_str()), (id.as_str(), id.as_str()));
    assert!(jobs.store().finish(&id, "dead-2", false, Outcome::Released).await.unwrap().is_some());
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let row = wait_until(&jobs, &id, "finished", finished).await;
    assert_eq!((row.status.as_str(), row.attempts, row.takeovers), ("failed", 2, 1), "{row:?}");
    assert_eq!(upstream.runs.load(std::sync::atomic::Ordering::SeqCst), 2, "both tries ran after the restarts");
    shutdown.cancel();
    workers.wait().await;

    // Crashing its worker again and again: past two takeovers the next owner fails it unrun.
    let id = submit(&jobs, "scenes", json!({ "prompt": "crashes its worker" })).await;
    let now = mvgen::jobs::store::now_ms();
    jobs.store().claim("crash-0", now).await.unwrap().expect("claimed");
    jobs.store().claim("crash-1", now + 3_600_000).await.unwrap().expect("taken over");
    jobs.store().claim("crash-2", now + 3_600_000).await.unwrap().expect("taken over");
    // Its last worker had started a prediction: given up, the job must not leave it running.
    let prediction = upstream.create("crashes its worker", Duration::from_secs(3600));
    let run = mvgen::providers::UpstreamRun { provider: "fake".into(), id: prediction.clone(), slot: 0 };
    assert!(jobs.store().save_run(&id, "crash-2", &run).await.unwrap());
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let row = wait_until(&jobs, &id, "finished", finished).await;
    assert_eq!((row.status.as_str(), row.attempts, row.takeovers), ("failed", 1, 3), "{row:?}");
    assert_eq!(row.error_code.map(|code| code.to_string()).as_deref(), Some("InternalError"));
    assert!(row.error_message.as_deref().is_some_and(|m| m.contains("MVGEN_JOB_MAX_TAKEOVERS")), "{row:?}");
    assert_eq!(upstream.runs.load(std::sync::atomic::Ordering::SeqCst), 2, "never run again");
    shutdown.cancel();
    workers.wait().await;
    // After the workers stopped: the cancel follows the stored outcome.
    assert_eq!(upstream.cancelled(), vec![prediction], "the given-up job's saved prediction is cancelled");
}

#[tokio::test]
async fn restarts_do_not_use_up_retries_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    restarts_do_not_use_up_retries(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn restarts_do_not_use_up_retries_on_postgres() {
    let Some(pg) = support::postgres::Postgres::start("restarts_do_not_use_up_retries_on_postgres") else {
        return;
    };
    restarts_do_not_use_up_retries(&pg.url).await;
}

/// A stored word this build does not know (a newer build's status, say) is never guessed at: the
/// row is an error naming the job and the word, for one job, a listing and its events alike.
#[tokio::test]
async fn a_row_with_an_unknown_status_error_code_or_event_kind_is_an_error_naming_the_job() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, _upstream) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline, config(0, 60_000)).await.expect("open");
    let paused = submit(&jobs, "scenes", json!({ "prompt": "paused" })).await;
    let gremlin = submit(&jobs, "scenes", json!({ "prompt": "gremlin" })).await;
    let mut db = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query("UPDATE jobs SET status = 'paused' WHERE id = $1")
        .bind(&paused)
        .execute(&mut db)
        .await
        .expect("status");
    sqlx::query("UPDATE jobs SET status = 'failed', error_code = 'GremlinError', error_message = 'boo' WHERE id = $1")
        .bind(&gremlin)
        .execute(&mut db)
        .await
        .expect("error code");
    sqlx::query("INSERT INTO job_events (job_id, at, kind, data) VALUES ($1, 0, 'teleported', '{}')")
        .bind(&paused)
        .execute(&mut db)
        .await
        .expect("event");
    db.close().await.expect("close");

    for (id, word) in [(&paused, "\"paused\""), (&gremlin, "\"GremlinError\"")] {
        let err = jobs.store().get(id).await.expect_err("an unknown word is an error");
        assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(id.as_str()) && message.contains(word), "{message}");
    }
    let err = jobs.store().list(&Filter { limit: 10, ..Filter::default() }).await.expect_err("the listing too");
    assert!(err.to_string().contains(&gremlin), "the newest row is read first: {err}");
    let err = jobs.store().events_after(&paused, 0, 10).await.expect_err("the events too");
    assert!(err.to_string().contains(&paused) && err.to_string().contains("\"teleported\""), "{err}");
    jobs.close().await;
}

/// A job a newer build stored with a kind this build does not know: reading its row is an error
/// naming the job and the word, and a worker that claims it fails it at once with the 400 naming
/// `kind` the pipeline gave when kinds were looked up by name (not retried, not left processing).
#[tokio::test]
async fn a_job_of_an_unknown_kind_is_failed_by_the_worker_that_claims_it() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, upstream) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline.clone(), config(0, 60_000)).await.expect("open");
    let id = submit(&jobs, "scenes", json!({ "prompt": "from the future" })).await;
    let mut db = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::query("UPDATE jobs SET kind = 'song' WHERE id = $1").bind(&id).execute(&mut db).await.expect("kind");
    let err = jobs.store().get(&id).await.expect_err("an unknown kind is an error");
    assert!(err.to_string().contains(&id) && err.to_string().contains("\"song\""), "{err}");
    jobs.close().await;

    let jobs = Jobs::open(&url, pipeline, config(1, 60_000)).await.expect("open");
    let shutdown = CancellationToken::new();
    let workers = jobs.start_workers(shutdown.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, code, message) = loop {
        let row = sqlx::query_as::<_, (String, Option<String>, Option<String>)>(
            "SELECT status, error_code, error_message FROM jobs WHERE id = $1",
        )
        .bind(&id)
        .fetch_one(&mut db)
        .await
        .expect("read the raw row");
        if row.0 != "queued" && row.0 != "processing" {
            break row;
        }
        assert!(Instant::now() < deadline, "the job is still {}", row.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((status.as_str(), code.as_deref()), ("failed", Some("ValidationError")));
    assert_eq!(
        message.as_deref(),
        Some(r#"kind: expected one of scenes, character_reference, video, final_cut, got "song""#)
    );
    assert_eq!(upstream.runs.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing ran upstream");
    shutdown.cancel();
    workers.wait().await;
    db.close().await.expect("close");
    jobs.close().await;
}

/// Two processes started together on one fresh SQLite file (two `mvgen serve` beside each other,
/// as `bench/load.sh` starts them) both open it: the one that loses the race to apply a migration
/// finds it applied and goes on, rather than failing to start with "table jobs already exists".
#[tokio::test]
async fn two_engines_opening_one_fresh_sqlite_file_at_once_both_start() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let url = sqlite_url(&dir);
        let (a, _) = FakePipeline::new();
        let (b, _) = FakePipeline::new();
        let (first, second) =
            tokio::join!(Jobs::open(&url, a, config(0, 60_000)), Jobs::open(&url, b, config(0, 60_000)));
        let (first, second) = (first.expect("the first opens"), second.expect("the second opens"));
        let id = submit(&first, "scenes", json!({ "prompt": "either" })).await;
        assert!(second.store().get(&id).await.expect("readable").is_some(), "one database, both see the job");
        first.close().await;
        second.close().await;
    }
}

/// Migration 15's trigger writes a final event only for this build's one-statement finish: a
/// previous build's finish on the same SQLite file (its UPDATE, then its own event, as during a
/// rolling deploy or after a rollback) still makes exactly one final event, and this build's
/// finish makes one with the data the Rust side wrote before (the error's code and message).
#[tokio::test]
async fn a_final_event_is_written_once_by_this_build_and_by_a_previous_one() {
    use mvgen::error::ErrorKind;
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(&dir);
    let (pipeline, _upstream) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline, config(0, 60_000)).await.expect("open");
    let store = jobs.store();
    let ours = submit(&jobs, "scenes", json!({ "prompt": "ours" })).await;
    let theirs = submit(&jobs, "scenes", json!({ "prompt": "theirs" })).await;
    let stale_before = 0;
    let first = store.claim("w/1", stale_before).await.expect("claim").expect("a queued job");
    let second = store.claim("w/2", stale_before).await.expect("claim").expect("a queued job");
    let (ours_claim, theirs_claim) = if first.id == ours { ("w/1", "w/2") } else { ("w/2", "w/1") };
    assert_eq!(if first.id == ours { &second.id } else { &first.id }, &theirs);

    let details = json!({ "provider": "gemini" });
    let failed = Outcome::Failed {
        code: ErrorKind::UpstreamError,
        message: "gemini answered 400: \"no\" lighthouses\n",
        status: 502,
        details: &details,
    };
    store.finish(&ours, ours_claim, false, failed).await.expect("finish").expect("our claim");

    // A previous build's finish: its own transaction, its own event, no `heartbeat_at`.
    let mut db = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("UPDATE jobs SET status = 'succeeded', output = '{}', completed_at = 1, claim = NULL WHERE id = $1 AND claim = $2")
        .bind(&theirs)
        .bind(theirs_claim)
        .execute(&mut *tx)
        .await
        .expect("their update");
    sqlx::query(
        "INSERT INTO job_events (job_id, at, kind, data) VALUES ($1, 1, 'succeeded', '{\"status\":\"succeeded\"}')",
    )
    .bind(&theirs)
    .execute(&mut *tx)
    .await
    .expect("their event");
    tx.commit().await.expect("commit");
    db.close().await.expect("close");

    let kinds =
        |events: &[mvgen::jobs::store::rows::EventRow]| events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>();
    let events = store.events_after(&ours, 0, 10).await.expect("our events");
    assert_eq!(kinds(&events), ["queued", "processing", "failed"]);
    let error = json!({ "code": "UpstreamError", "message": "gemini answered 400: \"no\" lighthouses\n" });
    assert_eq!(events[2].data, json!({ "status": "failed", "error": error }));
    let events = store.events_after(&theirs, 0, 10).await.expect("their events");
    assert_eq!(kinds(&events), ["queued", "processing", "succeeded"]);
    assert_eq!(events[2].data, json!({ "status": "succeeded" }));
    jobs.close().await;
}
