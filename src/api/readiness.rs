//! `GET /readyz`: whether this replica should get traffic, for a load balancer or Kubernetes'
//! readiness probe. `/health` says only that the process answers (liveness: restarting it would not
//! help when the database is down); this one checks what a request needs, so a replica cut off from
//! the jobs database or the object store, or draining for shutdown, is taken out of rotation
//! instead of answering 503s.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// How long a check's outcome answers further probes. The checks write (a rolled-back
/// transaction on the one SQLite writer, a probe object in the store): a balancer, Kubernetes and
/// a monitor probing every replica, or a flood of probes, must not turn into a flood of writes.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// The app's cached outcome of each engine's writing check (one per router; see [`FRESH_FOR`]).
#[derive(Default)]
pub struct Probes {
    database: Cached,
    storage: Cached,
}

/// One check's last outcome (with its message) and when it was taken. A `tokio` mutex held across
/// the check: probes arriving while it runs wait for it and share its outcome instead of starting
/// their own, and the wait is bounded since the check is (by [`CHECK_TIMEOUT`]).
#[derive(Default)]
struct Cached(tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>);

impl Cached {
    async fn get(&self, check: impl Future<Output = Result<(), String>>) -> Result<(), String> {
        let mut last = self.0.lock().await;
        if let Some((at, outcome)) = last.as_ref()
            && at.elapsed() < FRESH_FOR
        {
            return outcome.clone();
        }
        let outcome = bounded(check).await;
        *last = Some((Instant::now(), outcome.clone()));
        outcome
    }
}

/// Ready: the jobs database takes a write (a transaction on the writer, rolled back), its SQLite
/// file is still the one opened (not deleted or replaced under the process), the store takes a
/// write (a probe object written and deleted, as at startup) and shutdown has not begun. The two
/// writes are made at most once a second, whatever the number of probes: their outcome is reused
/// for [`FRESH_FOR`]; the checks that cost nothing (file identity, closed pools, draining) run on
/// every probe. Open even when `API_KEY` is set.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready: the jobs database and the store answer, no shutdown under way"),
    (status = 503, description = "Not ready: `DatabaseUnavailable` or `StorageUnavailable` names the failing engine (`details` has each check), or the replica is draining", body = crate::error::ErrorBody),
))]
pub async fn readyz(
    State(state): State<Arc<AppState>>,
    Extension(probes): Extension<Arc<Probes>>,
    jobs: Option<Extension<Arc<Jobs>>>,
) -> Response {
    let database = async {
        match &jobs {
            Some(jobs) => match jobs.store().check_local() {
                Err(e) => Err(e),
                Ok(()) => {
                    let writer = async { jobs.store().check_writer().await.map_err(|e| e.to_string()) };
                    probes.database.get(writer).await
                }
            },
            None => Ok(()),
        }
    };
    let storage = probes.storage.get(async { state.storage.check().await.map_err(|e| e.to_string()) });
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
