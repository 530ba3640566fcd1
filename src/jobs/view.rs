//! A job as a client sees it: `GET /api/mv/jobs/{id}` ([`JobResource`]), a listing's item
//! ([`JobSummary`]), and a webhook delivery's body, which is the same JSON as the GET. Here rather
//! than in `api` because the store writes a delivery's body in the transaction that ends the job
//! (`Store::open` takes [`webhook_body`]), and the store stands below the API.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::error::ErrorKind;
use crate::generation::{Kind, stored};
use crate::jobs::state::JobStatus;
use crate::jobs::store::now_ms;
use crate::jobs::store::rows::JobRow;

/// A job as a client sees it: what a listing shows of it (`JobSummary`), and its plan.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobResource {
    #[serde(flatten)]
    pub job: JobSummary,
    /// What runs: prompt, model, parameters and the flavor's content, rendered at submit. An
    /// uploaded file is named by its stored id, never carried.
    pub plan: Value,
}

/// A job as a listing shows it: everything but its plan, which only `GET /api/mv/jobs/{id}`
/// answers (a page of a hundred plans is what made a listing large).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: String,
    #[schema(value_type = String)]
    pub kind: Kind,
    /// `queued`, `processing`, `succeeded`, `failed` or `canceled`.
    #[schema(value_type = String)]
    pub status: JobStatus,
    /// RFC 3339.
    pub created_at: String,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub progress: JobProgress,
    /// Which flavor the plan was rendered with (as the sync endpoints report it).
    pub config_flavor: Value,
    /// The sync endpoint's answer body, once succeeded.
    pub output: Option<Value>,
    pub error: Option<JobError>,
    /// Tries so far: a retry after a failure adds one; a takeover from a dead worker or a
    /// restart continues the same try.
    pub attempts: i64,
    /// Times the job was taken over from a worker that died (bounded by
    /// `MVGEN_JOB_MAX_TAKEOVERS`, then the job fails).
    pub takeovers: i64,
    /// The upstream run last saved.
    pub upstream: Option<JobUpstream>,
    pub project_id: Option<String>,
    pub sequence: Option<i64>,
    /// True once a cancel was asked for a running job.
    pub cancel_requested: bool,
    pub urls: JobUrls,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    /// e.g. `creating`, `waiting`, `downloading`.
    pub stage: Option<String>,
    /// Seconds since the job started (until it completed).
    pub elapsed_seconds: Option<f64>,
    /// The upstream's own status word (`starting`, `processing`, …).
    pub upstream_status: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobError {
    /// The error kind the sync endpoint would answer with, e.g. `UpstreamError`.
    #[schema(value_type = String)]
    pub code: ErrorKind,
    pub message: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobUpstream {
    pub provider: String,
    pub id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobUrls {
    pub get: String,
    pub cancel: String,
    pub events: String,
}

/// Unix milliseconds as RFC 3339 (UTC, milliseconds), as every time of a job is answered.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

impl From<JobRow> for JobResource {
    fn from(mut row: JobRow) -> Self {
        // Every read of one job reads its plan (`Store::get`); only a listing leaves it out.
        let plan = row.plan.take().map_or(Value::Null, stored::shown);
        JobResource { job: row.into(), plan }
    }
}

impl From<JobRow> for JobSummary {
    fn from(row: JobRow) -> Self {
        let elapsed =
            row.started_at.map(|start| (row.completed_at.unwrap_or_else(now_ms) - start).max(0) as f64 / 1000.0);
        let error = match (row.status, row.error_code, row.error_message) {
            (JobStatus::Failed, Some(code), Some(message)) => Some(JobError { code, message }),
            _ => None,
        };
        let base = format!("/api/mv/jobs/{}", row.id);
        JobSummary {
            urls: JobUrls { get: base.clone(), cancel: format!("{base}/cancel"), events: format!("{base}/events") },
            id: row.id,
            kind: row.kind,
            output: if row.status == JobStatus::Succeeded { row.output } else { None },
            status: row.status,
            created_at: rfc3339(row.created_at),
            started_at: row.started_at.map(rfc3339),
            completed_at: row.completed_at.map(rfc3339),
            progress: JobProgress {
                stage: row.progress_stage,
                elapsed_seconds: elapsed,
                upstream_status: row.progress_upstream_status,
            },
            config_flavor: row.config_flavor,
            error,
            attempts: row.attempts,
            takeovers: row.takeovers,
            upstream: row.upstream.map(|u| JobUpstream { provider: u.provider, id: u.id }),
            project_id: row.project_id,
            sequence: row.sequence,
            cancel_requested: row.cancel_requested,
        }
    }
}

/// A webhook delivery's body: the job (read with its plan) as `GET /api/mv/jobs/{id}` answers it.
pub fn webhook_body(row: &JobRow) -> String {
    serde_json::to_string(&JobResource::from(row.clone())).unwrap_or_else(|_| "null".to_owned())
}
