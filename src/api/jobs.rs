//! `/api/mv/jobs`: durable generation jobs (see `crate::jobs`). Submit answers 202 at once with the
//! job; a client then reads it, lists jobs, follows its events over SSE, or cancels it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::extract::{ValidJson, ValidPath};
use crate::api_keys::KeyScope;
use crate::error::{ApiError, ErrorKind};
use crate::generation::Kind;
use crate::jobs::engine::unavailable;
use crate::jobs::state::JobStatus;
use crate::jobs::store::idempotency::Replay;
use crate::jobs::store::queries::Filter;
use crate::jobs::store::rows::{EventRow, JobRow};
use crate::jobs::store::{Dialect, StoreError};
use crate::jobs::view::rfc3339;
pub use crate::jobs::view::{JobError, JobProgress, JobResource, JobSummary, JobUpstream, JobUrls};
use crate::jobs::{Jobs, SubmitKey, Submitted};
use crate::webhooks::target::{self, Requested};

const MAX_LIMIT: i64 = 100;

/// A generation to run as a job.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SubmitJobBody {
    /// `scenes`, `character_reference` or `video`.
    pub kind: String,
    /// The body the kind's sync endpoint takes (`create_scenes`, `generate_character_reference`,
    /// `generate_video`).
    pub input: Value,
    /// An https URL told of the job (Standard Webhooks, signed): its body is the job as
    /// `GET /api/mv/jobs/{id}` shows it. Loopback, private and link-local hosts are refused unless
    /// the server allows them (`MVGEN_WEBHOOK_ALLOW_PRIVATE`).
    pub webhook: Option<String>,
    /// Which of `start`, `progress`, `completed` the webhook is sent (default `["completed"]`).
    pub webhook_events_filter: Option<Vec<String>>,
}

/// [`SubmitJobBody`] as it is read: the fields it does not know are kept, to be refused by name.
/// Not `deny_unknown_fields`: that is a 422 through `ValidJson` (the sync bodies' shape error),
/// while a stray envelope field is a value in the wrong place (a `config_flavor` beside `input`
/// instead of in it), so a 400 naming it; and the OpenAPI schema stays as it was.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    kind: String,
    input: Value,
    /// Read as values and checked by `webhooks::target`, which names the field in its 400s.
    #[serde(default)]
    webhook: Option<Value>,
    #[serde(default)]
    webhook_events_filter: Option<Value>,
    #[serde(flatten)]
    unknown: serde_json::Map<String, Value>,
}

impl Envelope {
    /// 400 naming the fields the envelope does not know (`details`: the first, the message: all);
    /// the kind and input, and the webhook asked for.
    fn known(self) -> Result<(String, Value, Option<Requested>), ApiError> {
        if let Some(first) = self.unknown.keys().next() {
            let names = self.unknown.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            return Err(ApiError::new(
                ErrorKind::ValidationError,
                format!(
                    "unknown field {names}: a job body has only `kind`, `input`, `webhook` and \
                     `webhook_events_filter` (the sync body goes in `input`)"
                ),
                json!(first),
            ));
        }
        let webhook = target::requested(self.webhook.as_ref(), self.webhook_events_filter.as_ref())?;
        Ok((self.kind, self.input, webhook))
    }
}

/// A page of jobs, newest first, without their plans.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A job id is a UUID; anything else is a 400, not a 404.
fn job_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::new(ErrorKind::InvalidId, format!("{raw:?} is not a job id (a UUID)"), json!("id")))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no job {id}"), json!("id"))
}

pub(super) async fn load(jobs: &Jobs, raw: &str) -> Result<JobRow, ApiError> {
    let id = job_id(raw)?;
    jobs.store().get(&id).await.map_err(unavailable)?.ok_or_else(|| not_found(&id))
}

fn with_location(status: StatusCode, job: JobResource) -> Response {
    let location = HeaderValue::from_str(&job.job.urls.get).ok();
    let mut response = (status, axum::Json(job)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A job answer as the bytes `body` (the serialized [`JobResource`]), with its `Location`. The
/// first answer to an `Idempotency-Key` is sent through here and its bytes kept with the key, so a
/// replay is the same bytes (a `serde_json::Value` would re-sort its keys).
fn job_answer(status: StatusCode, body: String) -> Response {
    let location = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|body| body.pointer("/urls/get").and_then(Value::as_str).and_then(|l| HeaderValue::from_str(l).ok()));
    let json = HeaderValue::from_static("application/json");
    let mut response = (status, [(header::CONTENT_TYPE, json)], body).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The first answer to an `Idempotency-Key`, sent again as it was (status, body, `Location`).
fn replayed(status: u16, body: String) -> Response {
    job_answer(StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED), body)
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, sent once (two keys name no
/// one submission, and honouring either would surprise whoever sent the other).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::new(
            ErrorKind::InvalidIdempotencyKey,
            "send one Idempotency-Key header, not several",
            json!("idempotency-key"),
        ));
    }
    let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255);
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidIdempotencyKey,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            json!("idempotency-key"),
        )
    })
}

#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
enum JobReadErrors {
    #[response(status = 400, description = "Malformed job id (not a UUID)")]
    BadId(crate::error::ErrorBody),
    #[response(status = 401, description = "A valid API key is required")]
    Unauthorized(crate::error::UnauthorizedBody),
    #[response(status = 404, description = "No such job")]
    NotFound(crate::error::ErrorBody),
    #[response(status = 503, description = "The jobs database is unavailable; see Retry-After")]
    Unavailable(crate::error::ErrorBody),
}

/// Submit a generation as a job.
///
/// The input is validated and its plan rendered now, so a bad input is the sync endpoint's 4xx and
/// is never queued. With `Idempotency-Key` (IETF draft): the same key and body answer with the
/// first answer as it was sent (status and body, not the job as it is now); the same key while
/// that first request is still submitting is a 409 (a key its submission abandoned by crashing is
/// free again after a minute); the same key with another body is a 422. Keys expire after
/// `MVGEN_IDEMPOTENCY_TTL` (24 h by default); then the same key makes a new job.
#[utoipa::path(
    post,
    path = "/api/mv/jobs",
    tag = "jobs",
    request_body = SubmitJobBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried submission safe")),
    responses(
        (status = 202, description = "Queued (or the first answer this Idempotency-Key got, replayed)", body = JobResource,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 409, description = "The Idempotency-Key's first request is still being submitted", body = crate::error::ErrorBody),
        crate::error::GenerationErrors,
    )
)]
pub async fn submit_job(
    State(jobs): State<Arc<Jobs>>,
    scope: Option<Extension<KeyScope>>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<Envelope>,
) -> Result<Response, ApiError> {
    let (kind, input, webhook) = body.known()?;
    let key = idempotency_key(&headers)?;
    let fingerprint = key.as_ref().map(|_| {
        // The webhook is part of the request: the same key with another webhook is another body.
        // Without one the fingerprint is the one keys were stored with before webhooks existed.
        let canonical = match &webhook {
            None => json!({ "kind": kind, "input": input }),
            Some(hook) => json!({ "kind": kind, "input": input, "webhook": hook.url, "events": hook.events.stored() }),
        }
        .to_string();
        Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>()
    });
    // Kept with the key in the job's transaction: a replay sends this, not the job as it is now.
    // The bytes rendered last are also the ones this request sends, so the two are the same bytes.
    let sent = std::sync::Mutex::new(None::<String>);
    let answer = |row: &JobRow| {
        let body = serde_json::to_string(&JobResource::from(row.clone())).unwrap_or_else(|_| "null".to_owned());
        if let Ok(mut sent) = sent.lock() {
            *sent = Some(body.clone());
        }
        (StatusCode::ACCEPTED.as_u16(), body)
    };
    let key = key.as_deref().zip(fingerprint.as_deref()).map(|(key, fingerprint)| SubmitKey {
        key,
        fingerprint,
        answer: &answer,
    });
    let kind = Kind::from_field(&kind)?;
    let webhook = match webhook {
        Some(requested) => Some(target::check(requested, jobs.config().webhooks).await?),
        None => None,
    };
    let scope = scope.as_ref().map(|s| s.as_str());
    let row = match jobs.submit_with(kind, input, key, scope, webhook.as_ref()).await? {
        Submitted::New(row) => match sent.into_inner().ok().flatten() {
            Some(body) => return Ok(job_answer(StatusCode::ACCEPTED, body)),
            None => *row,
        },
        Submitted::Replayed(Replay { answer: Some((status, body)), .. }) => return Ok(replayed(status, body)),
        // A key stored before first answers were kept: the job as it is now.
        Submitted::Replayed(Replay { job_id, answer: None }) => {
            jobs.store().get(&job_id).await.map_err(unavailable)?.ok_or_else(|| not_found(&job_id))?
        }
    };
    Ok(with_location(StatusCode::ACCEPTED, row.into()))
}

/// A job: status, progress, plan, and its output once succeeded.
#[utoipa::path(
    get,
    path = "/api/mv/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, description = "The job", body = JobResource), JobReadErrors)
)]
pub async fn get_job(State(jobs): State<Arc<Jobs>>, ValidPath(id): ValidPath<String>) -> Result<Response, ApiError> {
    let row = load(&jobs, &id).await?;
    Ok(axum::Json(JobResource::from(row)).into_response())
}

fn bad_query(field: &str, message: String) -> ApiError {
    ApiError::new(ErrorKind::ValidationError, format!("{field}: {message}"), json!(field))
}

fn listing_filter(query: Option<&str>) -> Result<Filter, ApiError> {
    let mut filter = Filter { limit: 20, ..Filter::default() };
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        // PostgreSQL cannot compare text with a NUL in it (a 503): refused here, on both engines.
        if value.contains('\0') {
            return Err(bad_query(&name, "must not contain a NUL byte (%00)".into()));
        }
        match name.as_ref() {
            "status" => {
                let status = value.parse().map_err(|_| {
                    let known = JobStatus::ALL.map(JobStatus::as_str).join(", ");
                    bad_query("status", format!("{value:?} is not one of {known}"))
                })?;
                filter.status = Some(status);
            }
            "kind" => filter.kind = Some(Kind::from_field(&value)?),
            // Jobs store a project's id as the canonical UUID (`generation::inputs::project_id`):
            // matched however it is written, and anything else names no project.
            "project_id" => match uuid::Uuid::try_parse(&value) {
                Ok(id) => filter.project_id = Some(id.hyphenated().to_string()),
                Err(_) => {
                    return Err(bad_query(
                        "project_id",
                        format!("{:?} is not a project id (a UUID)", value.chars().take(80).collect::<String>()),
                    ));
                }
            },
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad_query("limit", format!("expected a whole number from 1 to {MAX_LIMIT}")))?;
            }
            "cursor" => {
                let before = value.parse().ok().filter(|n: &i64| *n > 0);
                filter.before =
                    Some(before.ok_or_else(|| bad_query("cursor", "not a cursor from next_cursor".into()))?);
            }
            // The key may come as a query parameter (see `server::require_api_key`).
            "api_key" => {}
            other => return Err(bad_query(other, "unknown parameter".into())),
        }
    }
    Ok(filter)
}

/// Jobs, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/mv/jobs",
    tag = "jobs",
    params(
        ("status" = Option<String>, Query, description = "queued, processing, succeeded, failed or canceled"),
        ("kind" = Option<String>, Query, description = "scenes, character_reference or video"),
        ("project_id" = Option<String>, Query, description = "Only this project's jobs"),
        ("limit" = Option<i64>, Query, description = "1 to 100 (default 20)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of jobs", body = JobList),
        (status = 400, description = "An unknown filter value or parameter", body = crate::error::ErrorBody),
        (status = 401, description = "A valid API key is required", body = crate::error::UnauthorizedBody),
        (status = 503, description = "The jobs database is unavailable; see Retry-After", body = crate::error::ErrorBody),
    )
)]
pub async fn list_jobs(State(jobs): State<Arc<Jobs>>, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let filter = listing_filter(query.as_deref())?;
    let rows = jobs.store().list(&filter).await.map_err(unavailable)?;
    let next_cursor = (rows.len() as i64 == filter.limit).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    let jobs = rows.into_iter().map(JobSummary::from).collect();
    Ok(axum::Json(JobList { jobs, next_cursor }).into_response())
}

/// Cancel a job: a queued job is canceled at once, a running one is stopped by its worker (and its
/// upstream prediction cancelled). A finished job answers 409 with its status.
#[utoipa::path(
    post,
    path = "/api/mv/jobs/{id}/cancel",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 202, description = "Canceled, or cancellation requested", body = JobResource),
        (status = 409, description = "The job already finished; `details.status` says how", body = crate::error::ErrorBody),
        JobReadErrors,
    )
)]
pub async fn cancel_job(State(jobs): State<Arc<Jobs>>, ValidPath(id): ValidPath<String>) -> Result<Response, ApiError> {
    let row = load(&jobs, &id).await?;
    if row.status.is_final() {
        return Err(ApiError::new(
            ErrorKind::JobFinished,
            format!("job {} already {}", row.id, row.status),
            json!({ "status": row.status }),
        ));
    }
    let row = jobs.cancel(&row.id).await.map_err(unavailable)?.ok_or_else(|| not_found(&row.id))?;
    Ok(with_location(StatusCode::ACCEPTED, row.into()))
}

/// The job's events as Server-Sent Events.
///
/// Every state change and progress step is an event whose `id` increases; the event name is its
/// kind (`queued`, `processing`, `upstream`, `progress`, `cancel_requested`, `retrying`,
/// `released`, and the final `succeeded`, `failed` or `canceled`) and its data a JSON object. A
/// reconnect with `Last-Event-ID` first gets what it missed. Comments keep the connection alive;
/// the stream ends after the final event.
/// One Server-Sent Event of a job's stream, as OpenAPI 3.1 describes `text/event-stream` items:
/// `id` (the resume point for `Last-Event-ID`), `event` (`queued`, `processing`, `upstream`,
/// `progress`, `retrying`, `released`, `succeeded`, `failed`, `canceled`) and `data` (a JSON object
/// with `job_id`, `at` and the event's fields).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    retry: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/mv/jobs/{id}/events",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job id"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id seen"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = SseEvent),
        JobReadErrors,
    )
)]
pub async fn job_events(
    State(jobs): State<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = load(&jobs, &id).await?;
    let after = last_event_id(&headers)?;
    let follow = Follow { wake: jobs.subscribe(), jobs, id: row.id, after, pending: VecDeque::new(), done: false };
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(15));
    Ok(Sse::new(follow.into_stream()).keep_alive(keep_alive).into_response())
}

/// Where a reconnecting event stream resumes: after the `Last-Event-ID` it names (an id this
/// service gave, so a whole number from 0), else from the start.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(0) };
    value.to_str().ok().and_then(|v| v.trim().parse().ok()).filter(|n: &i64| *n >= 0).ok_or_else(|| {
        ApiError::new(
            ErrorKind::ValidationError,
            "Last-Event-ID: expected an event id from this stream",
            json!("last-event-id"),
        )
    })
}

/// One client's position in a job's events.
struct Follow {
    jobs: Arc<Jobs>,
    wake: broadcast::Receiver<String>,
    id: String,
    after: i64,
    pending: VecDeque<EventRow>,
    done: bool,
}

impl Follow {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> {
        futures_util::stream::unfold(self, |mut follow| async move {
            let event = follow.next().await?;
            Some((Ok(event), follow))
        })
    }

    /// How long to wait for a wake-up before reading the rows anyway: on SQLite another process
    /// may write without telling us; on PostgreSQL a notification could be lost with a connection.
    fn poll(&self) -> Duration {
        match self.jobs.store().dialect() {
            Dialect::Sqlite => Duration::from_secs(1),
            Dialect::Postgres => Duration::from_secs(5),
        }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                self.after = row.id;
                self.done = row.kind.is_final();
                let mut data = row.data;
                if let Value::Object(map) = &mut data {
                    map.insert("job_id".into(), Value::from(row.job_id));
                    map.insert("at".into(), Value::from(rfc3339(row.at)));
                }
                return Some(Event::default().id(row.id.to_string()).event(row.kind.as_str()).data(data.to_string()));
            }
            if self.done {
                return None;
            }
            match self.jobs.store().events_after(&self.id, self.after, 200).await {
                Ok(rows) if !rows.is_empty() => {
                    self.pending.extend(rows);
                    continue;
                }
                Ok(_) => {
                    // Reconnected after the final event: nothing more will come.
                    if let Ok(Some(job)) = self.jobs.store().get(&self.id).await
                        && job.status.is_final()
                        && self.jobs.store().events_after(&self.id, self.after, 1).await.is_ok_and(|r| r.is_empty())
                    {
                        return None;
                    }
                }
                // An event this build cannot read will not become readable: end the stream (the
                // job itself is still there to read) rather than poll at it forever.
                Err(e @ StoreError::Unreadable { .. }) => {
                    tracing::warn!(job = %self.id, error = %e, "event stream ends at an event it cannot read");
                    return None;
                }
                Err(e) => tracing::debug!(job = %self.id, error = %e, "event stream cannot read; retrying"),
            }
            let poll = self.poll();
            let jobs = self.jobs.clone();
            let draining = jobs.draining();
            if draining.is_cancelled() {
                return None;
            }
            let wait = crate::jobs::engine::woken(&mut self.wake, &self.id, poll);
            tokio::select! {
                _ = draining.cancelled() => return None,
                _ = wait => {}
            }
        }
    }
}
