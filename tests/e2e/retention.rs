//! Retention and queue limits through the real binary (issue 21, point 4): finished jobs purged
//! after `MVGEN_JOB_RETENTION` with their events, runs and idempotency keys, while queued jobs and
//! stored outputs stay (scenes kept in a succeeded job's row are written to the store first, and
//! their URLs answer the same); `MVGEN_MAX_QUEUED_JOBS` and `MVGEN_MAX_QUEUED_PER_KEY` refusing submissions
//! (the jobs API and the sync routes) with 503 `QueueFull` and `Retry-After` until jobs leave the
//! queue; idempotency keys scoped per API key; a database a newer build migrated further still
//! opens. Mock providers: no upstream is involved.
//!
//! `MVGEN_WORKERS=0` keeps jobs submitted through `POST /api/mv/jobs` queued, while a sync route's
//! job is still run at once by the request's own process, so one server holds queued and finished
//! jobs side by side. The PostgreSQL variants print a skip line without it, and fail under `CI=true`.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, Row};

use crate::support::fake_upstream::{FakeReplicate, Outcome, PredictionPlan, TEST_REPLICATE_TOKEN};
use crate::support::postgres::Postgres;
use crate::support::server_process::ServerProcess;

/// A hang guard for waits, not a speed target.
const PATIENCE: Duration = Duration::from_secs(30);

/// Longer than a process keeps a queued count before reading it again (100 ms,
/// `jobs::engine::quota::COUNT_FRESH_FOR`): after this, a job that left the queue has made room.
const COUNT_STALE: Duration = Duration::from_millis(250);

fn start(env: &[(&str, &str)]) -> ServerProcess {
    tokio::task::block_in_place(|| ServerProcess::start(env).expect("start mvgen"))
}

fn http() -> reqwest::Client {
    crate::support::http_client_builder().timeout(Duration::from_secs(30)).build().expect("client")
}

fn scenes(idea: &str) -> Value {
    json!({ "idea": idea, "character_description": "a keeper of the lighthouse" })
}

/// `POST /api/mv/jobs` for a scenes job: status, headers, body.
async fn submit(base: &str, idea: &str, api_key: Option<&str>, key: Option<&str>) -> (StatusCode, String, Value) {
    let mut request =
        http().post(format!("{base}/api/mv/jobs")).json(&json!({ "kind": "scenes", "input": scenes(idea) }));
    if let Some(api_key) = api_key {
        request = request.header("x-api-key", api_key);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("submit");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

/// A submission that must be accepted: the job's id.
async fn accepted(base: &str, idea: &str, api_key: Option<&str>, key: Option<&str>) -> String {
    let (status, _, job) = submit(base, idea, api_key, key).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"].as_str().expect("job id").to_owned()
}

/// A submission that must be refused as a full queue, with its `Retry-After`.
fn assert_queue_full(status: StatusCode, retry_after: &str, body: &Value, scope: &str, limit: u64) {
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["detail"]["error"], "QueueFull", "{body}");
    assert_eq!(
        (&body["detail"]["details"]["scope"], &body["detail"]["details"]["limit"]),
        (&json!(scope), &json!(limit))
    );
    assert_eq!(retry_after, "30", "{body}");
}

/// A sync `create_scenes`: status, `Retry-After`, `X-Job-Id`, body.
async fn create_scenes(base: &str, idea: &str, api_key: Option<&str>) -> (StatusCode, String, String, Value) {
    let mut request = http().post(format!("{base}/api/mv/create_scenes")).json(&scenes(idea));
    if let Some(api_key) = api_key {
        request = request.header("x-api-key", api_key);
    }
    let response = request.send().await.expect("create_scenes");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (status, retry_after, job_id) = (response.status(), header("retry-after"), header("x-job-id"));
    (status, retry_after, job_id, response.json().await.unwrap_or(Value::Null))
}

async fn get(base: &str, path: &str, api_key: Option<&str>) -> (StatusCode, Value) {
    let mut request = http().get(format!("{base}{path}"));
    if let Some(api_key) = api_key {
        request = request.header("x-api-key", api_key);
    }
    let response = request.send().await.expect("get");
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

/// A GET's status and body as text.
async fn text(base: &str, path: &str) -> (StatusCode, String) {
    let response = http().get(format!("{base}{path}")).send().await.expect("get");
    (response.status(), response.text().await.expect("a body"))
}

async fn cancel(base: &str, id: &str, api_key: Option<&str>) {
    let mut request = http().post(format!("{base}/api/mv/jobs/{id}/cancel"));
    if let Some(api_key) = api_key {
        request = request.header("x-api-key", api_key);
    }
    let response = request.send().await.expect("cancel");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.expect("the job");
    assert_eq!(job["status"], "canceled", "{job}");
}

/// Rows still referring to `job` in each table the purge must empty, read from the database
/// itself (SQLite file or PostgreSQL).
async fn rows_of(database_url: &str, job: &str) -> Vec<(&'static str, i64)> {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(database_url).await.expect("open the jobs database");
    let mut counts = Vec::new();
    for (table, column) in [("jobs", "id"), ("job_events", "job_id"), ("job_runs", "job_id"), ("idempotency", "job_id")]
    {
        let sql = format!("SELECT count(*) AS n FROM {table} WHERE {column} = $1");
        let n: i64 = sqlx::query(&sql).bind(job).fetch_one(&mut db).await.expect("count").try_get("n").expect("n");
        counts.push((table, n));
    }
    let _ = db.close().await;
    counts
}

/// The purge scenario on the database at `database_url` (the server's `extra` env selects it).
/// Scenes come from the mock; videos from a fake Replicate, so a failed job has a saved run.
async fn finished_jobs_are_purged(extra: &[(&str, &str)], database_url: impl Fn(&ServerProcess) -> String) {
    let replicate = FakeReplicate::start().await;
    let mut env = vec![
        ("MVGEN_WORKERS", "0"),
        ("MVGEN_JOB_RETENTION", "1"),
        ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
        ("REPLICATE_BASE_URL", replicate.base_url.as_str()),
        ("MV_REPLICATE_POLL_SECS", "0.05"),
    ];
    env.extend_from_slice(extra);
    let server = start(&env);
    let base = server.base.as_str();
    let database_url = database_url(&server);

    // Queued (no worker takes it), and older than the retention by the time the others are purged.
    let queued = accepted(base, "queued", None, Some("queued-key")).await;
    // Canceled while queued: finished.
    let canceled = accepted(base, "canceled", None, Some("canceled-key")).await;
    cancel(base, &canceled, None).await;
    // A sync route's job runs at once in this process: succeeded, its scenes stored.
    let (status, _, succeeded, answer) = create_scenes(base, "succeeded", None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let stored = answer["output_files"]["json"].as_str().expect("stored scenes").to_owned();
    // Kept in the job's own row (its answer), under the job's id: no file per request.
    assert_eq!(stored, format!("/api/mv/get_scenes/{succeeded}"), "{answer}");
    assert_eq!(answer["output_files"]["markdown"], json!(format!("{stored}/markdown")), "{answer}");
    let scenes_file = server.output_dir().join("scenes").join(format!("{succeeded}.json"));
    let before = (text(base, &stored).await, text(base, &format!("{stored}/markdown")).await);
    assert_eq!((before.0.0, before.1.0), (StatusCode::OK, StatusCode::OK), "{before:?}");
    let document: Value = serde_json::from_str(&before.0.1).expect("a JSON document");
    assert_eq!((&document["scenes"], &document["metadata"]), (&answer["scenes"], &answer["metadata"]), "{document}");
    assert!(before.1.1.starts_with("# Scenes: succeeded\n"), "{}", before.1.1);
    assert!(!scenes_file.exists(), "create_scenes wrote {} though its job keeps the scenes", scenes_file.display());
    // A sync video whose prediction fails: a failed job, with its upstream run saved.
    replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Fail("GPU lost".into()) });
    let response = http().post(format!("{base}/api/mv/generate_video")).json(&json!({ "prompt": "p" })).send().await;
    let response = response.expect("generate_video");
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let failed = response.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let rows = rows_of(&database_url, &failed).await;
    assert!(rows.contains(&("job_runs", 1)), "the failed job saved its prediction: {rows:?}");
    for job in [&canceled, &succeeded] {
        assert!(rows_of(&database_url, job).await.iter().any(|(_, n)| *n > 0), "job {job} has rows");
    }

    let deadline = Instant::now() + PATIENCE;
    for job in [&succeeded, &canceled, &failed] {
        loop {
            let (status, body) = get(base, &format!("/api/mv/jobs/{job}"), None).await;
            if status == StatusCode::NOT_FOUND {
                break;
            }
            assert!(Instant::now() < deadline, "finished job {job} never purged: {status} {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(get(base, &format!("/api/mv/jobs/{job}/events"), None).await.0, StatusCode::NOT_FOUND);
        let left = rows_of(&database_url, job).await;
        assert!(left.iter().all(|(_, n)| *n == 0), "job {job} left rows behind: {left:?}");
    }
    // The queued job is older than the retention too, and stays; so does the stored output.
    let (status, job) = get(base, &format!("/api/mv/jobs/{queued}"), None).await;
    assert_eq!((status, job["status"].as_str()), (StatusCode::OK, Some("queued")), "{job}");
    assert_eq!(get(base, &stored, None).await.0, StatusCode::OK, "outputs stay in the store");
    // The purge wrote the scenes the job's row kept to the store first: the same URL answers the
    // same document and Markdown, now from the file.
    assert!(scenes_file.is_file(), "the purge kept no file at {}", scenes_file.display());
    let after = (text(base, &stored).await, text(base, &format!("{stored}/markdown")).await);
    assert_eq!(after, before, "the scenes' URLs answer the same once their job is purged");
    // The canceled job's key went with it (its TTL, 24 h, has not passed): a new job now. The
    // queued job's key still replays it.
    let again = accepted(base, "canceled", None, Some("canceled-key")).await;
    assert_ne!(again, canceled, "a purged job's idempotency key is forgotten with it");
    assert_eq!(accepted(base, "queued", None, Some("queued-key")).await, queued, "a live job's key replays");
}

/// Finished jobs (succeeded, failed, canceled) are purged after `MVGEN_JOB_RETENTION` with their events,
/// runs and idempotency keys; a queued job of the same age and the stored outputs stay (SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_purged_after_the_retention_but_queued_jobs_and_outputs_stay() {
    finished_jobs_are_purged(&[], |server| format!("sqlite://{}", server.output_dir().join("jobs.db").display())).await;
}

/// Scenes an older build stored as a file of their own (ids that name no job) still answer from the
/// store, beside the ones this build keeps in their jobs' rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_stored_as_files_by_older_builds_still_answer() {
    let server = start(&[("MVGEN_WORKERS", "0")]);
    let base = server.base.as_str();
    let old = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
    let document = json!({ "scenes": [{ "description": "d", "negative_description": "n" }], "metadata": {
        "idea": "an older idea", "model_used": "m", "generation_timestamp": "2026-12-01T00:00:00Z",
        "config_flavor": { "used": "default" } } });
    let dir = server.output_dir().join("scenes");
    std::fs::create_dir_all(&dir).expect("scenes dir");
    std::fs::write(dir.join(format!("{old}.json")), serde_json::to_vec_pretty(&document).expect("json"))
        .expect("write");
    let (status, body) = get(base, &format!("/api/mv/get_scenes/{old}"), None).await;
    assert_eq!((status, body), (StatusCode::OK, document));
    let (status, markdown) = text(base, &format!("/api/mv/get_scenes/{old}/markdown")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(markdown.starts_with("# Scenes: an older idea\n"), "{markdown}");
    // A succeeded scenes job's id answers from its row; a job not (yet) succeeded names no
    // scenes: the store's 404, as for any unknown id; a malformed id is still a 400.
    let (_, _, job, _) = create_scenes(base, "fresh", None).await;
    assert_eq!(get(base, &format!("/api/mv/get_scenes/{job}"), None).await.0, StatusCode::OK);
    let queued = accepted(base, "queued", None, None).await;
    assert_eq!(get(base, &format!("/api/mv/get_scenes/{queued}"), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get(base, "/api/mv/get_scenes/not-an-id", None).await.0, StatusCode::BAD_REQUEST);
}

/// The same on PostgreSQL, where the purge takes an advisory lock per batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_purged_after_the_retention_on_postgres() {
    let Some(pg) = Postgres::start("finished_jobs_are_purged_after_the_retention_on_postgres") else {
        return;
    };
    finished_jobs_are_purged(&[("MVGEN_DATABASE_URL", &pg.url)], |_| pg.url.clone()).await;
}

/// The queue limit on the database `extra` selects.
async fn a_full_queue_refuses_submissions(extra: &[(&str, &str)]) {
    let mut env = vec![("MVGEN_WORKERS", "0"), ("MVGEN_MAX_QUEUED_JOBS", "2")];
    env.extend_from_slice(extra);
    let server = start(&env);
    let base = server.base.as_str();
    let first = accepted(base, "one", None, None).await;
    let second = accepted(base, "two", None, Some("two")).await;

    let (status, retry_after, body) = submit(base, "three", None, None).await;
    assert_queue_full(status, &retry_after, &body, "total", 2);
    // A sync route submits a job too: refused the same way, and nothing stored.
    let (status, retry_after, job_id, body) = create_scenes(base, "sync", None).await;
    assert_queue_full(status, &retry_after, &body, "total", 2);
    assert!(job_id.is_empty(), "no job was made: {job_id}");
    // A refused keyed submission does not use up its key; a replay is no new job and still answers.
    let (status, retry_after, body) = submit(base, "three", None, Some("three")).await;
    assert_queue_full(status, &retry_after, &body, "total", 2);
    assert_eq!(accepted(base, "two", None, Some("two")).await, second, "a replay is answered while full");
    let (_, listing) = get(base, "/api/mv/jobs", None).await;
    assert_eq!(listing["jobs"].as_array().map(Vec::len), Some(2), "nothing was stored: {listing}");

    // A job leaving the queue makes room: for a job, then (after another) for a sync request.
    cancel(base, &first, None).await;
    tokio::time::sleep(COUNT_STALE).await;
    let third = accepted(base, "three", None, Some("three")).await;
    assert_ne!(third, first);
    let (status, retry_after, body) = submit(base, "four", None, None).await;
    assert_queue_full(status, &retry_after, &body, "total", 2);
    cancel(base, &second, None).await;
    tokio::time::sleep(COUNT_STALE).await;
    let (status, _, job_id, body) = create_scenes(base, "sync", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!job_id.is_empty());
}

/// Past `MVGEN_MAX_QUEUED_JOBS` a submission (jobs API or sync route) is 503 `QueueFull` with
/// `Retry-After`, nothing stored; once a job leaves the queue submissions are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_submissions_until_a_job_leaves_it() {
    a_full_queue_refuses_submissions(&[]).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_submissions_on_postgres() {
    let Some(pg) = Postgres::start("a_full_queue_refuses_submissions_on_postgres") else {
        return;
    };
    a_full_queue_refuses_submissions(&[("MVGEN_DATABASE_URL", &pg.url)]).await;
}

/// With API keys: `MVGEN_MAX_QUEUED_PER_KEY` bounds each key's queued jobs (one key's full share
/// leaves the other's alone), and an `Idempotency-Key` is per API key: the same key from two API
/// keys makes two jobs, from the same API key it replays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_shares_and_idempotency_keys_are_per_api_key() {
    let server = start(&[("MVGEN_WORKERS", "0"), ("API_KEY", "key-a,key-b"), ("MVGEN_MAX_QUEUED_PER_KEY", "1")]);
    let base = server.base.as_str();
    let a = accepted(base, "shared body", Some("key-a"), Some("same-key")).await;
    let b = accepted(base, "shared body", Some("key-b"), Some("same-key")).await;
    assert_ne!(a, b, "another API key's Idempotency-Key is not ours to replay");
    assert_eq!(accepted(base, "shared body", Some("key-a"), Some("same-key")).await, a, "our own key replays");
    assert_eq!(accepted(base, "shared body", Some("key-b"), Some("same-key")).await, b);

    for api_key in ["key-a", "key-b"] {
        let (status, retry_after, body) = submit(base, "one more", Some(api_key), None).await;
        assert_queue_full(status, &retry_after, &body, "api_key", 1);
        let (status, retry_after, _, body) = create_scenes(base, "one more", Some(api_key)).await;
        assert_queue_full(status, &retry_after, &body, "api_key", 1);
    }
    // A's job leaves the queue: A may submit again, B is still full.
    cancel(base, &a, Some("key-a")).await;
    tokio::time::sleep(COUNT_STALE).await;
    accepted(base, "one more", Some("key-a"), None).await;
    let (status, retry_after, body) = submit(base, "one more", Some("key-b"), None).await;
    assert_queue_full(status, &retry_after, &body, "api_key", 1);
}

/// A database a newer build migrated further (a migration this build does not know is recorded as
/// applied) still opens: a rollback by one version keeps working. sqlx refused it before
/// ("migration N was previously applied but is missing"), whatever the migration did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_a_newer_build_still_opens() {
    let outputs = tempfile::tempdir().expect("temp dir");
    let outputs_dir = outputs.path().to_str().expect("utf-8 temp path");
    let env = [("MV_OUTPUT_DIR", outputs_dir), ("MVGEN_WORKERS", "0")];
    let first = start(&env);
    let id = accepted(&first.base, "before the upgrade", None, None).await;
    let (status, log) = tokio::task::block_in_place(|| first.terminate());
    assert!(status.success(), "{log}");

    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", outputs.path().join("jobs.db").display());
    let mut db = sqlx::AnyConnection::connect(&url).await.expect("open the jobs database");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer build', TRUE, x'00', 1)",
    )
    .execute(&mut db)
    .await
    .expect("record a newer migration");
    let _ = db.close().await;

    let again = tokio::task::block_in_place(|| ServerProcess::start(&env));
    let again = again.unwrap_or_else(|e| panic!("a newer build's database must still open: {e}"));
    let (status, job) = get(&again.base, &format!("/api/mv/jobs/{id}"), None).await;
    assert_eq!((status, job["status"].as_str()), (StatusCode::OK, Some("queued")), "{job}");
}
