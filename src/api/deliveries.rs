//! `/api/mv/jobs/{id}/deliveries` and `/api/mv/projects/{id}/deliveries`: a job's or a project's
//! outbound webhook deliveries (issue 26), each with its attempts, and sending one again by hand.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::extract::ValidPath;
use super::jobs::load;
use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::deliveries::{DeliveryRow, DeliveryStatus, Retried, Subject};
use crate::jobs::view::rfc3339;

/// One message a job's webhook is owed, and how sending it went.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The `webhook-id` header: the same on every attempt, so a receiver can drop duplicates.
    pub id: String,
    /// `start`, `progress` or `completed`.
    pub event: String,
    pub url: String,
    /// `pending` (waiting for `next_attempt_at`, or being sent), `delivered` (a 2xx), `failed`
    /// (the retry schedule ran out) or `gone` (the receiver answered 410: never sent again).
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// RFC 3339; while pending.
    pub next_attempt_at: Option<String>,
    /// An attempt is being sent now.
    pub in_flight: bool,
    /// The last attempt's HTTP status (none when it got no answer).
    pub last_code: Option<i64>,
    /// Why the last attempt got no answer (refused, timed out, …).
    pub last_error: Option<String>,
    pub created_at: String,
    /// When it was delivered, failed for good or stopped by a 410.
    pub completed_at: Option<String>,
    /// Every attempt, oldest first.
    pub attempt_log: Vec<DeliveryAttempt>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    /// RFC 3339.
    pub at: String,
    pub duration_ms: i64,
    /// The receiver's HTTP status; none when there was no answer.
    pub code: Option<i64>,
    pub error: Option<String>,
}

/// A job's deliveries, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Delivery {
            id: row.id,
            event: row.event,
            url: row.url,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: row.next_at.map(rfc3339),
            in_flight: row.in_flight,
            last_code: row.last_code,
            last_error: row.last_error,
            created_at: rfc3339(row.created_at),
            completed_at: row.completed_at.map(rfc3339),
            attempt_log: row
                .attempt_log
                .into_iter()
                .map(|a| DeliveryAttempt {
                    attempt: a.attempt,
                    at: rfc3339(a.at),
                    duration_ms: a.duration_ms,
                    code: a.code,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// A delivery id is `msg_` and 32 hex digits (a UUID); anything else is a 400.
fn delivery_id(raw: &str) -> Result<String, ApiError> {
    raw.strip_prefix("msg_")
        .filter(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|_| raw.to_ascii_lowercase())
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidId,
                format!("{raw:?} is not a delivery id (msg_ and 32 hex digits)"),
                json!("delivery_id"),
            )
        })
}

#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
enum DeliveryErrors {
    #[response(status = 400, description = "Malformed job, project or delivery id")]
    BadId(crate::error::ErrorBody),
    #[response(status = 401, description = "A valid API key is required")]
    Unauthorized(crate::error::UnauthorizedBody),
    #[response(status = 404, description = "No such job or project, or no such delivery of it")]
    NotFound(crate::error::ErrorBody),
    #[response(status = 503, description = "The jobs database is unavailable; see Retry-After")]
    Unavailable(crate::error::ErrorBody),
}

/// A job's webhook deliveries: status, answer codes, the next try, every attempt.
#[utoipa::path(
    get,
    path = "/api/mv/jobs/{id}/deliveries",
    tag = "jobs",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, description = "The job's deliveries, oldest first", body = DeliveryList), DeliveryErrors)
)]
pub async fn list_deliveries(
    State(jobs): State<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let job = load(&jobs, &id).await?;
    list(&jobs, Subject::Job, &job.id).await
}

/// The deliveries of `subject` `id` (known to exist), oldest first.
async fn list(jobs: &Jobs, subject: Subject, id: &str) -> Result<Response, ApiError> {
    let rows = jobs.store().deliveries_of(subject, id).await.map_err(unavailable)?;
    Ok(axum::Json(DeliveryList { deliveries: rows.into_iter().map(Delivery::from).collect() }).into_response())
}

/// Send a delivery once more, now, with the same `webhook-id` (whatever its status: a failed one,
/// one stopped by a 410, or one delivered that the receiver lost). Refused with 409 while an
/// attempt of it is being sent.
#[utoipa::path(
    post,
    path = "/api/mv/jobs/{id}/deliveries/{delivery_id}/retry",
    tag = "jobs",
    params(
        ("id" = String, Path, description = "The job id"),
        ("delivery_id" = String, Path, description = "The delivery id (its webhook-id)"),
    ),
    responses(
        (status = 202, description = "Due now; the next attempt is recorded in its attempt_log", body = Delivery),
        (status = 409, description = "An attempt of it is being sent now", body = crate::error::ErrorBody),
        DeliveryErrors,
    )
)]
pub async fn retry_delivery(
    State(jobs): State<Arc<Jobs>>,
    ValidPath((id, delivery)): ValidPath<(String, String)>,
) -> Result<Response, ApiError> {
    let job = load(&jobs, &id).await?;
    retry(&jobs, Subject::Job, &job.id, &delivery).await
}

/// Makes delivery `delivery` of `subject` `id` (known to exist) due now.
async fn retry(jobs: &Jobs, subject: Subject, id: &str, delivery: &str) -> Result<Response, ApiError> {
    let delivery = delivery_id(delivery)?;
    match jobs.store().retry_delivery_of(subject, id, &delivery).await.map_err(unavailable)? {
        Retried::Unknown => Err(ApiError::new(
            ErrorKind::NotFound,
            format!("{} {id} has no delivery {delivery}", subject.as_str()),
            json!("delivery_id"),
        )),
        Retried::InFlight => Err(ApiError::new(
            ErrorKind::DeliveryInFlight,
            format!("delivery {delivery} is being sent now; retry once its attempt is recorded"),
            json!("delivery_id"),
        )),
        Retried::Queued(row) => {
            // This process's sender takes it at once; another replica's within its poll.
            jobs.woke(id);
            Ok((StatusCode::ACCEPTED, axum::Json(Delivery::from(*row))).into_response())
        }
    }
}

/// Project `id` (parsed), or its 404: a deleted project's deliveries are no longer listed.
async fn project(jobs: &Jobs, id: &str) -> Result<String, ApiError> {
    let id = crate::projects::parse_id(id)?;
    match jobs.store().project_head(&id).await.map_err(unavailable)? {
        Some(_) => Ok(id),
        None => Err(crate::projects::not_found(&id)),
    }
}

/// A project's webhook deliveries: status, answer codes, the next try, every attempt.
#[utoipa::path(
    get,
    path = "/api/mv/projects/{id}/deliveries",
    tag = "projects",
    params(("id" = String, Path, description = "The project id")),
    responses((status = 200, description = "The project's deliveries, oldest first", body = DeliveryList), DeliveryErrors)
)]
pub async fn list_project_deliveries(
    axum::Extension(jobs): axum::Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let id = project(&jobs, &id).await?;
    list(&jobs, Subject::Project, &id).await
}

/// Send a project's delivery once more, now, with the same `webhook-id`, as a job's.
#[utoipa::path(
    post,
    path = "/api/mv/projects/{id}/deliveries/{delivery_id}/retry",
    tag = "projects",
    params(
        ("id" = String, Path, description = "The project id"),
        ("delivery_id" = String, Path, description = "The delivery id (its webhook-id)"),
    ),
    responses(
        (status = 202, description = "Due now; the next attempt is recorded in its attempt_log", body = Delivery),
        (status = 409, description = "An attempt of it is being sent now", body = crate::error::ErrorBody),
        DeliveryErrors,
    )
)]
pub async fn retry_project_delivery(
    axum::Extension(jobs): axum::Extension<Arc<Jobs>>,
    ValidPath((id, delivery)): ValidPath<(String, String)>,
) -> Result<Response, ApiError> {
    let id = project(&jobs, &id).await?;
    retry(&jobs, Subject::Project, &id, &delivery).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_msg_and_a_uuid() {
        assert!(delivery_id("msg_0123456789abcdef0123456789ABCDEF").is_ok());
        for bad in ["msg_", "0123456789abcdef0123456789abcdef", "msg_0123456789abcdef0123456789abcdeg", "../x"] {
            let e = delivery_id(bad).expect_err(bad);
            assert_eq!((e.kind, e.details.as_str()), (ErrorKind::InvalidId, Some("delivery_id")), "{bad}");
        }
    }
}
