//! The jobs database across versions: one a newer build migrated further still opens, so a
//! rollback by one version works.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::server_process::ServerProcess;

fn start(env: &[(&str, &str)]) -> ServerProcess {
    tokio::task::block_in_place(|| ServerProcess::start(env).expect("start mvgen"))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
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

async fn get(base: &str, path: &str, api_key: Option<&str>) -> (StatusCode, Value) {
    let mut request = http().get(format!("{base}{path}"));
    if let Some(api_key) = api_key {
        request = request.header("x-api-key", api_key);
    }
    let response = request.send().await.expect("get");
    (response.status(), response.json().await.unwrap_or(Value::Null))
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
