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

/// The error answers every generation endpoint may give, listed once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only read by the OpenAPI derive, never constructed.
pub enum GenerationErrors {
    #[response(status = 400, description = "Invalid values or malformed JSON")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "A valid API key is required")]
    Unauthorized(ErrorBody),
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
    #[response(status = 503, description = "The upstream is rate limiting; see Retry-After")]
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

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
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
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), kind = self.kind, "{}", self.message);
        }
        let retry_after = self.details.get("retry_after_seconds").and_then(Value::as_u64);
        let body = ErrorBody {
            detail: ErrorDetail {
                error: self.kind.to_string(),
                message: self.message,
                details: self.details,
                request_id: crate::request_id::current(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
        }
        response
    }
}
