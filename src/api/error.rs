//! `ApiError`: the one error type handlers return, and its JSON body.
//!
//! The body keeps the original service's shape, `{"detail": {"error", "message", "details"}}`.
//! Caller mistakes get a 4xx saying what and where; upstream faults 502/504; only a true internal
//! fault is a 500, logged once here with its cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::providers::ProviderError;
use crate::storage::StorageError;

/// An error answer: status, a machine-readable kind, a human message and where it applies.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub details: Value,
}

/// The JSON body of every error (documented in the OpenAPI spec).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub detail: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable kind, e.g. `ValidationError`, `UpstreamError`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
    /// The field path (a string) or other specifics (an object), or null.
    pub details: Value,
    /// The request's id (also the `X-Request-Id` response header), for finding its log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The 401 body: mvgen's `detail` object plus the top-level `error` and `message` that clients of
/// the service mvgen replaces read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnauthorizedBody {
    /// Always `Unauthorized`.
    pub error: String,
    /// `API key missing. ...` or `Invalid API key`.
    pub message: String,
    pub detail: ErrorDetail,
}

/// A 401 with `WWW-Authenticate: ApiKey`; `message` says whether the key was missing or wrong.
pub fn unauthorized(message: &str) -> Response {
    let body = UnauthorizedBody {
        error: "Unauthorized".into(),
        message: message.into(),
        detail: ErrorDetail {
            error: "Unauthorized".into(),
            message: message.into(),
            details: json!("x-api-key"),
            request_id: crate::request_id::current(),
        },
    };
    let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
    response
}

/// The error answers every generation endpoint may give, listed once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only read by the OpenAPI derive, never constructed.
pub enum GenerationErrors {
    #[response(
        status = 400,
        description = "Invalid values (a text field over 20 000 characters included) or malformed JSON"
    )]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "A valid API key is required")]
    Unauthorized(UnauthorizedBody),
    #[response(status = 413, description = "Body larger than 1 MiB")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "The body is not JSON")]
    NotJson(ErrorBody),
    #[response(
        status = 422,
        description = "JSON of the wrong shape (`details` names the field), or content the model refused"
    )]
    WrongShape(ErrorBody),
    #[response(status = 500, description = "A generated file could not be stored")]
    Storage(ErrorBody),
    #[response(status = 502, description = "The upstream model failed; the message is the upstream's")]
    Upstream(ErrorBody),
    #[response(
        status = 503,
        description = "The upstream is rate limiting, or too many generations are running here \
                       (`TooManyGenerations`); see Retry-After (at most 300 s)"
    )]
    RateLimited(ErrorBody),
    #[response(status = 504, description = "The upstream model timed out")]
    Timeout(ErrorBody),
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>, details: Value) -> Self {
        ApiError { status, kind, message: message.into(), details }
    }

    /// A well-formed request whose values make no sense (400), naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::new(StatusCode::BAD_REQUEST, "ValidationError", format!("{field}: {message}"), json!(field))
    }

    /// JSON that does not fit the body type (422).
    pub fn body_mismatch(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "RequestValidationError", message, json!(field))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message, Value::Null)
    }
}

/// The longest `Retry-After` we pass on to our clients: an upstream asking for a day (or sending
/// garbage such as 99999) must not park every client that long.
pub const MAX_RETRY_AFTER_SECS: u64 = 300;

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        // Capped before anything reads it, so the header, `details` and the message all agree.
        let e = match e {
            ProviderError::RateLimited { provider, retry_after } => ProviderError::RateLimited {
                provider,
                retry_after: retry_after.map(|d| d.min(std::time::Duration::from_secs(MAX_RETRY_AFTER_SECS))),
            },
            other => other,
        };
        let (status, kind) = match &e {
            ProviderError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "UpstreamTimeout"),
            // Still limited after our own bounded retries: the caller may try again later.
            ProviderError::RateLimited { .. } => (StatusCode::SERVICE_UNAVAILABLE, "UpstreamRateLimited"),
            // A safety refusal is about the caller's content; retrying the same prompt won't help.
            ProviderError::Refused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "ContentRefused"),
            ProviderError::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "UpstreamUnreachable"),
            ProviderError::Upstream { .. } | ProviderError::Malformed { .. } | ProviderError::RunFailed { .. } => {
                (StatusCode::BAD_GATEWAY, "UpstreamError")
            }
        };
        let provider = match &e {
            ProviderError::Timeout { provider, .. }
            | ProviderError::Unreachable { provider, .. }
            | ProviderError::RateLimited { provider, .. }
            | ProviderError::Upstream { provider, .. }
            | ProviderError::Malformed { provider, .. }
            | ProviderError::RunFailed { provider, .. }
            | ProviderError::Refused { provider, .. } => *provider,
        };
        let retry_after = match &e {
            ProviderError::RateLimited { retry_after, .. } => Some(retry_after.map_or(30, |d| d.as_secs().max(1))),
            _ => None,
        };
        let details = match retry_after {
            Some(secs) => json!({ "provider": provider, "retry_after_seconds": secs }),
            None => json!({ "provider": provider }),
        };
        ApiError::new(status, kind, e.to_string(), details)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BadId(_) => ApiError::new(StatusCode::BAD_REQUEST, "InvalidId", e.to_string(), json!("id")),
            StorageError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "NotFound", e.to_string(), json!("id")),
            // The model answered with a file type we can't serve back: the upstream's fault.
            StorageError::Unsupported { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "UpstreamError", format!("the model's output: {e}"), Value::Null)
            }
            StorageError::Io(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "StorageError",
                format!("the generated file could not be stored or read ({e}); nothing was saved under its final name"),
                Value::Null,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_answer(self.status, self.kind, self.message, self.details)
    }
}

/// An error answer from its parts; also how a sync endpoint answers a failed job's stored error,
/// whose kind is read back from the database (hence `&str`).
pub fn error_answer(status: StatusCode, kind: &str, message: String, details: Value) -> Response {
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), kind, "{message}");
    }
    let retry_after = details.get("retry_after_seconds").and_then(Value::as_u64);
    let body = ErrorBody {
        detail: ErrorDetail { error: kind.to_string(), message, details, request_id: crate::request_id::current() },
    };
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
    }
    response
}
