//! `ApiError`: the one error type handlers return, and its JSON body.
//!
//! The body keeps the original service's shape, `{"detail": {"error", "message", "details"}}`.
//! Caller mistakes get a 4xx saying what and where; upstream faults 502/503/504; only a true
//! internal fault is a 500. Every error's status comes from its [`ErrorKind`] in one match. Turning
//! an error into a response has no side effect: a server fault rides in a response extension to
//! [`log_server_errors`], a layer, which logs it once with its cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use crate::providers::ProviderError;
use crate::storage::StorageError;

/// An error answer: what kind of error (which decides the status), a human message and where it
/// applies.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    pub details: Value,
}

/// Every error the API answers with. The variant's name is the body's `error` field.
// Deserialize: a failed job stores its kind by name and answers with it again (jobs::store::rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum ErrorKind {
    /// A well-formed request whose values make no sense.
    ValidationError,
    /// JSON of the wrong shape.
    RequestValidationError,
    InvalidJson,
    InvalidBody,
    InvalidPath,
    InvalidId,
    UnknownFlavor,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    RangeNotSatisfiable,
    /// A safety refusal: about the caller's content, so retrying the same prompt won't help.
    ContentRefused,
    /// The generation cap of this server (`MV_MAX_CONCURRENT_GENERATIONS`).
    TooManyGenerations,
    /// Still limited after the provider's own bounded retries: the caller may try again later.
    UpstreamRateLimited,
    UpstreamError,
    UpstreamUnreachable,
    UpstreamTimeout,
    StorageError,
    InternalError,
    /// Jobs: an `Idempotency-Key` that is not a short printable string.
    InvalidIdempotencyKey,
    /// Jobs: the first request with this `Idempotency-Key` is still being submitted.
    IdempotencyKeyInUse,
    /// Jobs: this `Idempotency-Key` was used with another body.
    IdempotencyKeyReused,
    /// Jobs: a cancel of a job that already ended.
    JobFinished,
    /// A sync request whose job was canceled (through the jobs API) while it waited.
    JobCanceled,
    /// Jobs: a retry of a webhook delivery while an attempt of it is being sent.
    DeliveryInFlight,
    /// An inbound webhook whose Standard Webhooks signature does not verify, or whose timestamp
    /// is more than 5 minutes away (a replay).
    WebhookSignatureInvalid,
    /// A sync request that waited `MVGEN_SYNC_WAIT` for its job: the job goes on (`X-Job-Id`).
    JobStillRunning,
    /// Jobs: the jobs database cannot be reached; nothing was stored.
    DatabaseUnavailable,
    /// Jobs: the queue holds `MVGEN_MAX_QUEUED_JOBS` jobs (or the caller's API key
    /// `MVGEN_MAX_QUEUED_PER_KEY`); nothing was stored.
    QueueFull,
    /// The object store is down or failing: this request fails, retryable; nothing stored is lost.
    StorageUnavailable,
    /// `GET /readyz` during shutdown: the replica drains and takes no new work.
    ShuttingDown,
    /// A connection past the connection cap, in the probes' reserve, asked for something else.
    TooManyConnections,
    /// A final cut of clips that can't share one track (codec, frame size, frame rate), or of a
    /// clip that is not an MP4 the cut can read.
    ClipsIncompatible,
    /// A project's state forbids the change now (deleting a scene while it is pending or composing;
    /// composing twice at once).
    ProjectBusy,
}

impl ErrorKind {
    /// The one place an error's status is decided.
    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            ValidationError
            | InvalidJson
            | InvalidBody
            | InvalidPath
            | InvalidId
            | UnknownFlavor
            | InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            RequestValidationError | ContentRefused | IdempotencyKeyReused | ClipsIncompatible => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            IdempotencyKeyInUse | JobFinished | JobCanceled | ProjectBusy | DeliveryInFlight => StatusCode::CONFLICT,
            NotFound => StatusCode::NOT_FOUND,
            WebhookSignatureInvalid => StatusCode::UNAUTHORIZED,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            TooManyGenerations | UpstreamRateLimited | DatabaseUnavailable | QueueFull | StorageUnavailable
            | ShuttingDown | TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError | UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            UpstreamTimeout | JobStillRunning => StatusCode::GATEWAY_TIMEOUT,
            StorageError | InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl ErrorKind {
    /// A 5xx that says "not now" by design: a limit reached, a drain, a bounded wait, an upstream's
    /// own rate limit. Nothing is broken, so it is logged as a warning: an operator's error-level
    /// alerts stay for faults (a database or store down, a bug).
    pub fn is_by_design(self) -> bool {
        use ErrorKind::*;
        matches!(
            self,
            TooManyGenerations | QueueFull | ShuttingDown | JobStillRunning | UpstreamRateLimited | TooManyConnections
        )
    }
}

/// The wire name is the variant's name.
impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// So a test can compare a kind with its wire name.
impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        *other == format!("{self:?}")
    }
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
        description = "The upstream is rate limiting, too many generations are running here \
                       (`TooManyGenerations`), the job queue is full (`QueueFull`), or the output store is \
                       unavailable (`StorageUnavailable`); see Retry-After (at most 300 s)"
    )]
    RateLimited(ErrorBody),
    #[response(
        status = 504,
        description = "The upstream model timed out, or the request waited `MVGEN_SYNC_WAIT` for its job \
                       (`JobStillRunning`): the job goes on, follow it by `X-Job-Id` after Retry-After"
    )]
    Timeout(ErrorBody),
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, details: Value) -> Self {
        ApiError { kind, message: message.into(), details }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// A well-formed request whose values make no sense (400), naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::new(ErrorKind::ValidationError, format!("{field}: {message}"), json!(field))
    }

    /// JSON that does not fit the body type (422).
    pub fn body_mismatch(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::RequestValidationError, message, json!(field))
    }

    /// Nothing by that name (404); `details` says what was looked for.
    pub fn not_found(message: impl Into<String>, details: Value) -> Self {
        ApiError::new(ErrorKind::NotFound, message, details)
    }

    /// A true internal fault (500): the message is logged by [`log_server_errors`].
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InternalError, message, Value::Null)
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
        let kind = match &e {
            ProviderError::Timeout { .. } => ErrorKind::UpstreamTimeout,
            ProviderError::RateLimited { .. } => ErrorKind::UpstreamRateLimited,
            ProviderError::Refused { .. } => ErrorKind::ContentRefused,
            ProviderError::Unreachable { .. } => ErrorKind::UpstreamUnreachable,
            ProviderError::Upstream { .. } | ProviderError::Malformed { .. } | ProviderError::RunFailed { .. } => {
                ErrorKind::UpstreamError
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
        ApiError::new(kind, e.to_string(), details)
    }
}

/// Store operations that failed, counted here where they become an answer or a job's failure
/// (described with the other metrics in `telemetry`).
pub const STORAGE_FAILURES_METRIC: &str = "mvgen_storage_failures_total";

/// Retry-After on a failing store: long enough for a restart or failover to finish.
const STORAGE_RETRY_AFTER_SECS: u64 = 5;

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BadId(_) => ApiError::new(ErrorKind::InvalidId, e.to_string(), json!("id")),
            StorageError::NotFound(_) => ApiError::not_found(e.to_string(), json!("id")),
            // The model answered with a file type we can't serve back: the upstream's fault.
            StorageError::Unsupported { .. } => {
                ApiError::new(ErrorKind::UpstreamError, format!("the model's output: {e}"), Value::Null)
            }
            StorageError::Io(_) => {
                metrics::counter!(STORAGE_FAILURES_METRIC, "kind" => "StorageError").increment(1);
                ApiError::new(
                    ErrorKind::StorageError,
                    format!(
                        "the generated file could not be stored or read ({e}); nothing was saved under its final name"
                    ),
                    Value::Null,
                )
            }
            // The store is down or failing: this request fails, retryable; nothing stored is lost.
            StorageError::Unavailable(_) => {
                metrics::counter!(STORAGE_FAILURES_METRIC, "kind" => "StorageUnavailable").increment(1);
                ApiError::new(
                    ErrorKind::StorageUnavailable,
                    format!("{e}; nothing was saved under a final name, try again shortly"),
                    json!({ "retry_after_seconds": STORAGE_RETRY_AFTER_SECS }),
                )
            }
            // What a provider streamed was refused or cut: the upstream's output, not the caller's.
            StorageError::TooLarge { .. } | StorageError::Rejected(_) | StorageError::Interrupted(_) => {
                ApiError::new(ErrorKind::UpstreamError, format!("the model's output: {e}"), Value::Null)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let logged = status.is_server_error().then(|| ServerError { kind: self.kind, message: self.message.clone() });
        let retry_after = self.details.get("retry_after_seconds").and_then(Value::as_u64);
        let body = ErrorBody {
            detail: ErrorDetail {
                error: self.kind.to_string(),
                message: self.message,
                details: self.details,
                request_id: crate::request_id::current(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(logged) = logged {
            response.extensions_mut().insert(logged);
        }
        response
    }
}

/// A server fault on its way out, for [`log_server_errors`].
#[derive(Debug, Clone)]
struct ServerError {
    kind: ErrorKind,
    message: String,
}

/// Logs the server faults answered (once each, with their cause); caller mistakes are answered,
/// not logged. A plain function for `tower::util::MapResponseLayer`, so it costs a request no
/// boxed middleware.
pub fn log_server_errors(response: Response) -> Response {
    if let Some(e) = response.extensions().get::<ServerError>() {
        if e.kind.is_by_design() {
            tracing::warn!(status = response.status().as_u16(), kind = %e.kind, "{}", e.message);
        } else {
            tracing::error!(status = response.status().as_u16(), kind = %e.kind, "{}", e.message);
        }
    }
    response
}
