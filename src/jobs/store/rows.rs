//! The rows the API and the workers read back (a job, an event, a claimed job) and how a stored
//! row is decoded into them. No queries here: they are with their concepts.
//!
//! A stored word (status, error code, event kind) this build does not know makes the row
//! unreadable ([`StoreError::Unreadable`], naming the job): never mapped to a word it knows, which
//! would answer a client with a state the job is not in.

use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use crate::error::{ApiError, ErrorKind};
use crate::generation::Kind;
use crate::jobs::state::{EventKind, JobStatus, UnknownWord};
use crate::providers::UpstreamRun;

/// A job's row, as the API and the workers read it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub seq: i64,
    pub id: String,
    pub kind: Kind,
    pub status: JobStatus,
    /// The stored plan; `None` in a listing, which does not read it (a plan may be large, and a
    /// page of a hundred of them is what a listing would otherwise hold in memory).
    pub plan: Option<Value>,
    pub config_flavor: Value,
    pub project_id: Option<String>,
    pub sequence: Option<i64>,
    pub output: Option<Value>,
    /// The error kind of the last failure (kept across a retry, cleared by success).
    pub error_code: Option<ErrorKind>,
    pub error_message: Option<String>,
    /// The HTTP status and `details` the sync endpoint would have answered the failure with.
    pub error_status: Option<i64>,
    pub error_details: Value,
    pub attempts: i64,
    /// Claims that took the job over from a dead worker (they do not count as attempts).
    pub takeovers: i64,
    pub progress_stage: Option<String>,
    pub progress_upstream_status: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub cancel_requested: bool,
    /// The latest saved upstream run.
    pub upstream: Option<UpstreamRun>,
}

impl JobRow {
    /// The error the sync endpoint answers for this failed job: the kind (and so the status),
    /// message and details the pipeline failed with (so `Retry-After` and the field name survive
    /// the store). A failed row without a code (the store never writes one) is answered as an
    /// upstream error; an unknown code never gets this far (the row is unreadable).
    pub fn api_error(&self) -> Option<ApiError> {
        if self.status != JobStatus::Failed {
            return None;
        }
        Some(ApiError::new(
            self.error_code.unwrap_or(ErrorKind::UpstreamError),
            self.error_message.clone().unwrap_or_default(),
            self.error_details.clone(),
        ))
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub job_id: String,
    pub at: i64,
    pub kind: EventKind,
    pub data: Value,
}

/// A job a worker claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    /// Its kind, or the word a newer build stored for one this build does not know: such a job is
    /// claimed and then fails with a 400 naming `kind`, as it did when kinds were looked up by
    /// name (refusing the claim instead would leave it processing, taken over again and again).
    pub kind: Result<Kind, UnknownWord>,
    pub plan: Value,
    pub attempts: i64,
    /// Takeovers so far, this claim included if it is one.
    pub takeovers: i64,
    /// The job's own attempt limit (`None`: the engine's).
    pub max_attempts: Option<i64>,
    pub claim: String,
    pub cancel_requested: bool,
    /// Stored claimed by this process a moment ago (`Store::insert` with a claim): it has no
    /// saved upstream runs yet, so none are read back.
    pub fresh: bool,
    /// This claim took the job over from a worker whose heartbeat stopped.
    pub taken_over: bool,
    /// On a takeover, the claim it replaced: the dead worker's (`{process}/{worker}/…` for a
    /// worker, as its process's `job workers started` line names it; `{uuid}/now` for a sync
    /// request's own run). `None` otherwise.
    pub previous_claim: Option<String>,
    /// The flavor the job renders with (for its log lines).
    pub flavor: String,
    /// That flavor's content hash (for its trace spans).
    pub flavor_hash: String,
    /// The W3C `traceparent` the job was submitted under: its run's spans continue that trace
    /// (`crate::trace_context`). `None` when traces are not exported.
    pub trace_context: Option<String>,
    /// The job has a webhook: its end also queues a delivery, so `Store::finish` goes straight to
    /// its transaction instead of first trying the one statement that only a job without one can
    /// take (a round trip for nothing on every such job's end).
    pub webhook: bool,
}

/// The flavor a stored flavor report says was used (`FlavorReport::used`).
pub fn flavor_used(report: &Value) -> String {
    report["used"].as_str().unwrap_or("unknown").to_owned()
}

/// The content hash of that flavor (`FlavorReport::hash`).
pub fn flavor_hash(report: &Value) -> String {
    report["hash"].as_str().unwrap_or("unknown").to_owned()
}

impl Claimed {
    /// The claim on a job just stored claimed (`row`, as `Store::insert` returned it, with the
    /// `plan`, `max_attempts`, `trace_context` and whether a `webhook` was stored with it).
    pub fn stored(
        row: &JobRow,
        plan: Value,
        claim: String,
        max_attempts: Option<i64>,
        trace_context: Option<String>,
        webhook: bool,
    ) -> Claimed {
        Claimed {
            id: row.id.clone(),
            kind: Ok(row.kind),
            plan,
            attempts: row.attempts,
            takeovers: row.takeovers,
            max_attempts,
            claim,
            cancel_requested: false,
            fresh: true,
            taken_over: false,
            previous_claim: None,
            flavor: flavor_used(&row.config_flavor),
            flavor_hash: flavor_hash(&row.config_flavor),
            trace_context,
            webhook,
        }
    }
}

/// Every column of a job's row but `plan`: a listing reads these alone (see [`JobRow::plan`]), a
/// read of one job adds `plan` ([`with_plan`]).
pub(super) const COLUMNS: &str = "seq, id, kind, status, config_flavor, project_id, sequence, output, error_code, \
     error_message, error_status, error_details, attempts, takeovers, progress_stage, progress_upstream_status, created_at, started_at, completed_at, \
     cancel_requested, (SELECT provider FROM job_runs r WHERE r.job_id = jobs.id ORDER BY at DESC, slot DESC LIMIT 1) \
     AS up_provider, (SELECT upstream_id FROM job_runs r WHERE r.job_id = jobs.id ORDER BY at DESC, slot DESC LIMIT 1) \
     AS up_id";

pub(super) fn json(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
}

/// `value` read by `parse`, or the row is unreadable: the error names job `job_id` and the value.
pub(super) fn known<T>(
    job_id: &str,
    what: &'static str,
    value: String,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(&value).ok_or_else(|| StoreError::Unreadable { job_id: job_id.to_owned(), word: UnknownWord { what, value } })
}

/// An error kind by its wire name (`ErrorKind`'s serde name, as `Display` writes it).
fn error_kind(code: &str) -> Option<ErrorKind> {
    ErrorKind::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(code)).ok()
}

pub(super) fn job_row(row: &AnyRow) -> Result<JobRow, StoreError> {
    let provider: Option<String> = row.try_get("up_provider")?;
    let upstream_id: Option<String> = row.try_get("up_id")?;
    let id: String = row.try_get("id")?;
    let kind = known(&id, "kind", row.try_get("kind")?, Kind::parse)?;
    let status = known(&id, "status", row.try_get("status")?, |s| s.parse().ok())?;
    let error_code: Option<String> = row.try_get("error_code")?;
    let error_code = error_code.map(|code| known(&id, "error code", code, error_kind)).transpose()?;
    Ok(JobRow {
        seq: row.try_get("seq")?,
        id,
        kind,
        status,
        plan: None,
        config_flavor: json(row.try_get("config_flavor")?),
        project_id: row.try_get("project_id")?,
        sequence: row.try_get("sequence")?,
        output: row.try_get::<Option<String>, _>("output")?.map(|t| json(Some(t))),
        error_code,
        error_message: row.try_get("error_message")?,
        error_status: row.try_get("error_status")?,
        error_details: json(row.try_get("error_details")?),
        attempts: row.try_get("attempts")?,
        takeovers: row.try_get("takeovers")?,
        progress_stage: row.try_get("progress_stage")?,
        progress_upstream_status: row.try_get("progress_upstream_status")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        upstream: provider.zip(upstream_id).map(|(provider, id)| UpstreamRun { provider, id, slot: 0 }),
    })
}

/// A job's row read with its `plan` column (`SELECT plan, {COLUMNS}`).
pub(super) fn with_plan(row: &AnyRow) -> Result<JobRow, StoreError> {
    Ok(JobRow { plan: Some(json(row.try_get("plan")?)), ..job_row(row)? })
}

pub(super) fn event_row(row: &AnyRow) -> Result<EventRow, StoreError> {
    let job_id: String = row.try_get("job_id")?;
    Ok(EventRow {
        id: row.try_get("id")?,
        kind: known(&job_id, "event kind", row.try_get("kind")?, |k| k.parse().ok())?,
        job_id,
        at: row.try_get("at")?,
        data: json(row.try_get("data")?),
    })
}
