//! `GET /readyz`: whether this replica should get traffic, for a load balancer or Kubernetes'
//! readiness probe. `/health` says only that the process answers (liveness: restarting it would not
//! help when the database is down); this one checks what a request needs, so a replica cut off from
//! the jobs database or the object store, or draining for shutdown, is taken out of rotation
//! instead of answering 503s.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::state::AppState;

/// Each check's bound: a probe must answer within the balancer's timeout (typically 1–5 s) even
/// when a store hangs; the store client's own retries would take up to 10 s.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a 503 asks the prober to wait (as for the other unavailable answers).
const RETRY_AFTER_SECS: u64 = 5;

/// Ready: the jobs database answers a query, the store takes a write (a probe object written and
/// deleted, as at startup) and shutdown has not begun. Open even when `API_KEY` is set.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready: the jobs database and the store answer, no shutdown under way"),
    (status = 503, description = "Not ready: `DatabaseUnavailable` or `StorageUnavailable` names the failing engine (`details` has each check), or the replica is draining", body = crate::error::ErrorBody),
))]
pub async fn readyz(State(state): State<AppState>, jobs: Option<Extension<Arc<Jobs>>>) -> Response {
    let database = async {
        match &jobs {
            Some(jobs) => bounded(async { jobs.store().ping().await.map_err(|e| e.to_string()) }).await,
            None => Ok(()),
        }
    };
    let storage = bounded(async { state.storage.check().await.map_err(|e| e.to_string()) });
    let (database, storage) = tokio::join!(database, storage);
    let draining = jobs.as_ref().is_some_and(|jobs| jobs.draining().is_cancelled());
    let shown = |check: &Result<(), String>| match check {
        Ok(()) => Value::from("ok"),
        Err(e) => Value::from(e.as_str()),
    };
    let details = json!({
        "database": shown(&database),
        "storage": shown(&storage),
        "draining": draining,
        "retry_after_seconds": RETRY_AFTER_SECS,
    });
    let (kind, what) = match (&database, &storage) {
        (Err(e), _) => (ErrorKind::DatabaseUnavailable, format!("the jobs database is unavailable: {e}")),
        (_, Err(e)) => (ErrorKind::StorageUnavailable, format!("the store is unavailable: {e}")),
        // No engine's fault, still a 503: the balancer stops sending new requests here.
        _ if draining => (ErrorKind::ShuttingDown, "shutting down: draining in-flight requests".to_owned()),
        _ => return axum::Json(json!({ "status": "ready", "database": "ok", "storage": "ok" })).into_response(),
    };
    let message = match (&database, &storage) {
        (Err(_), Err(e)) => format!("not ready: {what}; the store is unavailable too: {e}"),
        _ => format!("not ready: {what}"),
    };
    ApiError::new(kind, message, details).into_response()
}

async fn bounded(check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())))
}
