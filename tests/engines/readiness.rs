//! `GET /readyz` on the in-process app with the embedded SQLite engine and a `file://` store: ready
//! while both answer (also without a key when `API_KEY` is set), 503 naming the store when it
//! can't take a write, `ShuttingDown` once the drain began, `DatabaseUnavailable` once the
//! database is gone. The same probe against PostgreSQL and SeaweedFS stopped for real is in
//! `tests/e2e/replicas_storage.rs`.

use crate::support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mvgen::jobs::{EngineConfig, Jobs};
use mvgen::server::{Settings, app_with_jobs};
use mvgen::storage::Storage;
use mvgen::storage::local::LocalStorage;
use serde_json::Value;
use support::job_pipeline::FakePipeline;
use tower::ServiceExt;

/// The app on `storage` with an engine on a fresh SQLite file (no workers), and that engine.
async fn app(
    dir: &std::path::Path,
    storage: Arc<dyn Storage>,
    api_key: Option<&str>,
) -> (mvgen::server::App, Arc<Jobs>) {
    let key = api_key.map(str::to_owned);
    let settings = Settings::from_vars(None, |name| (name == "API_KEY").then(|| key.clone()).flatten()).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("jobs.db").display());
    let (pipeline, _) = FakePipeline::new();
    let jobs = Jobs::open(&url, pipeline, EngineConfig { workers: 0, ..EngineConfig::default() }).await.unwrap();
    let state = support::mock_app_state(storage);
    (app_with_jobs(state, &settings, Some(jobs.clone())), jobs)
}

/// Status, `Retry-After` and JSON body of `GET /readyz`, sent without any key.
async fn readyz(app: &mvgen::server::App) -> (StatusCode, Option<String>, Value) {
    let request = Request::get("/readyz").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, retry_after, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ready_while_database_and_store_answer_and_open_without_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    std::fs::create_dir_all(&outputs).unwrap();
    let (app, jobs) = app(dir.path(), Arc::new(LocalStorage::new(&outputs)), Some("secret-key")).await;
    let (status, retry_after, body) = readyz(&app).await;
    assert_eq!((status, retry_after), (StatusCode::OK, None), "{body}");
    assert_eq!(body, serde_json::json!({ "status": "ready", "database": "ok", "storage": "ok" }));
    let files: Vec<_> = std::fs::read_dir(&outputs).unwrap().flatten().filter(|e| e.path().is_file()).collect();
    assert!(files.is_empty(), "the store's probe left nothing behind: {files:?}");

    jobs.end_streams();
    let (status, retry_after, body) = readyz(&app).await;
    assert_eq!((status, retry_after.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")), "{body}");
    assert_eq!(body["detail"]["error"], "ShuttingDown", "{body}");
    assert_eq!(body["detail"]["details"]["draining"], true, "{body}");
}

#[tokio::test]
async fn not_ready_names_the_store_or_the_database_that_fails() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the output directory should be: no probe object can be written.
    let blocked = dir.path().join("not-a-directory");
    std::fs::write(&blocked, b"x").unwrap();
    let (app, jobs) = app(dir.path(), Arc::new(LocalStorage::new(&blocked)), None).await;
    let (status, retry_after, body) = readyz(&app).await;
    assert_eq!((status, retry_after.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")), "{body}");
    assert_eq!(body["detail"]["error"], "StorageUnavailable", "{body}");
    assert_eq!(body["detail"]["details"]["database"], "ok", "{body}");
    assert_ne!(body["detail"]["details"]["storage"], "ok", "{body}");

    jobs.close().await;
    let (status, _, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{body}");
    let message = body["detail"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("jobs database") && message.contains("store is unavailable too"), "{message}");
}

#[tokio::test]
async fn a_database_file_deleted_or_replaced_under_the_server_makes_it_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    let (app, _jobs) = app(dir.path(), Arc::new(LocalStorage::new(&outputs)), None).await;
    let (status, _, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Replaced: another file now at the path (a restore copied over, a volume remounted).
    let db = dir.path().join("jobs.db");
    std::fs::rename(&db, dir.path().join("jobs.db.old")).unwrap();
    std::fs::copy(dir.path().join("jobs.db.old"), &db).unwrap();
    let (status, _, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{body}");
    let message = body["detail"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("jobs.db") && message.contains("replaced"), "{message}");

    // Deleted: nothing at the path any more (within the second a cached write check would answer).
    std::fs::remove_file(&db).unwrap();
    let (status, retry_after, body) = readyz(&app).await;
    assert_eq!((status, retry_after.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")), "{body}");
    assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{body}");
    assert_eq!(body["detail"]["details"]["storage"], "ok", "{body}");
    let message = body["detail"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("jobs.db") && message.contains("deleted"), "{message}");
}

#[tokio::test]
async fn a_flood_of_probes_within_a_second_writes_the_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    let (app, _jobs) = app(dir.path(), Arc::new(LocalStorage::new(&outputs)), None).await;
    let flood = || futures_util::future::join_all((0..20).map(|_| readyz(&app)));
    for (status, _, body) in flood().await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let checked = std::time::Instant::now();
    // The store can no longer take a write; a probe that wrote again would see it at once.
    std::fs::remove_dir_all(&outputs).unwrap();
    std::fs::write(&outputs, b"not a directory").unwrap();
    let answers = flood().await;
    assert!(checked.elapsed() < std::time::Duration::from_millis(900), "the flood took too long to prove anything");
    for (status, _, body) in answers {
        assert_eq!(status, StatusCode::OK, "the outcome of the second's one probe answers: {body}");
    }
    // After the second the store is probed again, and its failure shows.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["detail"]["error"], "StorageUnavailable", "{body}");
}

#[tokio::test]
async fn a_writer_that_cannot_write_makes_it_not_ready_while_reads_still_answer() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let outputs = dir.path().join("outputs");
    let (app, _jobs) = app(dir.path(), Arc::new(LocalStorage::new(&outputs)), None).await;
    // Another process holds the file's write lock: reads (WAL) go on, no write can start.
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let (status, _, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{body}");
    assert_eq!(body["detail"]["details"]["storage"], "ok", "{body}");

    // Once the lock is released (and the failure's second is over) the writer writes again: the
    // probe cut by its bound left no transaction open on it.
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, body) = readyz(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
