//! Request extractors that answer with `ApiError` instead of axum's plain-text rejections.
//!
//! `ValidJson<T>` checks the content type (415), the size (413), the JSON syntax (400, with line and
//! column) and the shape (422, naming the field path), so handlers only see well-typed bodies.
//! `HookedJson<T>` is `ValidJson<T>` for the sync generation routes, whose body may also carry the
//! job's `webhook` fields. `ValidPath<T>` does the same for path parameters (400), e.g. `%ff`,
//! which is not UTF-8.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::Response;
use futures_util::future::{Either, Ready, ready};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::json_body::parse;
use crate::webhooks::target::{self, Requested};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A route whose body is not held to [`BODY_LIMIT`]: a song is streamed to the store under
/// its own cap (`MV_MAX_AUDIO_BYTES`), which the route checks `Content-Length` against itself.
pub const UPLOAD_AUDIO_PATH: &str = "/api/mv/upload_audio";

/// A project's creation carries its song: held to the song's cap, like [`UPLOAD_AUDIO_PATH`].
pub const CREATE_PROJECT_PATH: &str = "/api/mv/projects";

/// An uploaded character reference image, streamed under its own cap (`upload::MAX_IMAGE_BYTES`).
pub const UPLOAD_IMAGE_PATH: &str = "/api/mv/upload_character_reference";

/// Whether the route at `path` streams its body under a cap of its own rather than [`BODY_LIMIT`]:
/// songs, project creation, images, and a scene's uploaded video
/// (`/api/mv/projects/{id}/scenes/{sequence}/upload_video`).
pub fn streams_own_body(path: &str) -> bool {
    [UPLOAD_AUDIO_PATH, CREATE_PROJECT_PATH, UPLOAD_IMAGE_PATH].contains(&path)
        || (path.starts_with("/api/mv/projects/") && path.ends_with("/upload_video"))
}

/// A JSON body of type `T`.
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        parse(&json_bytes(req).await?).map(ValidJson)
    }
}

/// A sync generation body of type `T`, with the `webhook` and `webhook_events_filter` of the job
/// it runs as taken out first: they are the job's, not the kind's (whose bodies refuse unknown
/// fields), so a sync request may ask for the same webhook as `POST /api/mv/jobs`.
pub struct HookedJson<T>(pub T, pub Option<Requested>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for HookedJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req).await?;
        // Most bodies have no webhook: they are parsed once, as before.
        if !bytes.windows(WEBHOOK_KEY.len()).any(|w| w == WEBHOOK_KEY) {
            return parse(&bytes).map(|body| HookedJson(body, None));
        }
        let Ok(mut fields) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes) else {
            // Not an object: the body's own parse says what is wrong, where.
            return parse(&bytes).map(|body| HookedJson(body, None));
        };
        let webhook = fields.remove("webhook");
        let filter = fields.remove("webhook_events_filter");
        let requested = target::requested(webhook.as_ref(), filter.as_ref())?;
        let rest = serde_json::to_vec(&fields).map_err(|e| ApiError::internal(format!("re-encoding a body: {e}")))?;
        parse(&rest).map(|body| HookedJson(body, requested))
    }
}

/// What a body holding a webhook field must contain (a key is quoted).
const WEBHOOK_KEY: &[u8] = b"\"webhook";

/// The body of a JSON request: its content type checked (415) and at most [`BODY_LIMIT`] (413).
async fn json_bytes(req: Request) -> Result<axum::body::Bytes, ApiError> {
    if !is_json(req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())) {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "send the body as JSON with `Content-Type: application/json`",
            json!("content-type"),
        ));
    }
    // The limit is applied here, where the body is read, rather than by a `DefaultBodyLimit`
    // layer: that one inserts a request extension into every request, GETs included.
    let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|cause| cause.is::<http_body_util::LengthLimitError>()) {
            payload_too_large()
        } else {
            ApiError::new(
                ErrorKind::InvalidBody,
                format!("Failed to buffer the request body: {e}"),
                serde_json::Value::Null,
            )
        }
    })?;
    Ok(bytes)
}

/// Path parameters of type `T`; a value axum cannot decode is a 400 in the JSON error shape.
pub struct ValidPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ValidPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ValidPath(value)),
            Err(rejection) => {
                Err(ApiError::new(ErrorKind::InvalidPath, rejection.body_text(), json!({ "path": parts.uri.path() })))
            }
        }
    }
}

/// 413 for a body over [`BODY_LIMIT`] (also answered from `Content-Length` alone, before reading).
/// A query string axum's `Query` could not read, as a 400 naming the parameter at fault when
/// serde names one (`cursor: invalid digit found in string`), else the query as a whole.
pub fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    let text = e.body_text();
    let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    let field = detail
        .split_once(": ")
        .map(|(name, _)| name)
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    match field {
        Some(name) => ApiError::new(ErrorKind::ValidationError, detail.to_owned(), json!(name)),
        None => ApiError::new(ErrorKind::ValidationError, text, json!("query")),
    }
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("the request body is larger than {BODY_LIMIT} bytes"),
        json!({ "limit_bytes": BODY_LIMIT }),
    )
}

/// A layer: a request whose `Content-Length` is over [`BODY_LIMIT`] gets 413 from the header
/// alone, before any of the body is read, so hyper never invites it with `100 Continue`. It runs
/// inside the router, so the answer carries CORS headers (a browser sees the 413, not a network
/// error) and a keyless caller gets its 401 first. The body is left unread: the connection closes.
///
/// A plain tower service rather than `middleware::from_fn`, which boxes the rest of the stack and
/// its future for every request: this runs on every request, GETs included.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefuseDeclaredOversize;

impl<S> tower::Layer<S> for RefuseDeclaredOversize {
    type Service = RefuseOversize<S>;

    fn layer(&self, inner: S) -> RefuseOversize<S> {
        RefuseOversize { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RefuseOversize<S> {
    inner: S,
}

impl<S> tower::Service<Request> for RefuseOversize<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok());
        if declared.is_some_and(|len: u64| len > BODY_LIMIT as u64) && !streams_own_body(request.uri().path()) {
            let mut response = axum::response::IntoResponse::into_response(payload_too_large());
            response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
            return Either::Left(ready(Ok(response)));
        }
        Either::Right(self.inner.call(request))
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = crate::media::essence(ct);
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/merge-patch+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
