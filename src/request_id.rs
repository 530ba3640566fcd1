//! Request ids: every request gets one, kept from the caller's `X-Request-Id` when it is short and
//! plain (at most 128 visible ASCII characters), otherwise a fresh UUID; an oversized or
//! control-character value is dropped, never echoed. The id is a field of the request's tracing
//! span (so every log line of the request carries it), the `X-Request-Id` response header, and
//! `detail.request_id` in error bodies.
//!
//! tower-http's `SetRequestIdLayer` and `PropagateRequestIdLayer` do the setting and echoing; the
//! pieces here are the check before them, the span (a child of the caller's `traceparent` when
//! traces are exported, `trace_context`), and a task-local that `ApiError` reads.

use std::convert::Infallible;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower::ServiceBuilder;
use tower::util::MapRequestLayer;
use tower_http::LatencyUnit;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longer incoming ids are replaced: they would bloat every log line of the request.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_str().ok().map(String::from)).ok().flatten()
}

/// Whether an incoming id may be kept: 1..=128 bytes of visible ASCII (no spaces, no controls).
pub fn acceptable(value: &HeaderValue) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

/// Drops an incoming `X-Request-Id` that may not be kept (or that comes more than once), so the
/// next layer makes a fresh one.
fn drop_unacceptable<B>(mut request: Request<B>) -> Request<B> {
    let mut values = request.headers().get_all(&HEADER).iter();
    let keep = match (values.next(), values.next()) {
        (None, _) => true,
        (Some(value), None) => acceptable(value),
        (Some(_), Some(_)) => false,
    };
    if !keep {
        request.headers_mut().remove(&HEADER);
    }
    request
}

fn id_of<B>(request: &Request<B>) -> &str {
    request.headers().get(&HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Wraps `service` (the router, with CORS around it when on) in the request-id layers and the
/// request span, from outside: one box for the whole stack, not one per route and layer (see
/// `server::app_with_jobs`). `access_log` adds the method, path (never the query: `?api_key=` may
/// carry a key) and one line per response.
pub fn around<S>(service: S, access_log: bool) -> Router
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let ids = ServiceBuilder::new()
        .layer(MapRequestLayer::new(drop_unacceptable::<Body>))
        .layer(SetRequestIdLayer::new(HEADER, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(HEADER));
    if access_log {
        let trace = TraceLayer::new_for_http()
            .make_span_with(|request: &Request<_>| {
                let (method, path) = (request.method(), request.uri().path());
                let span = tracing::info_span!("request", request_id = %id_of(request), %method, path = %path);
                crate::trace_context::adopt_header(&span, request.headers());
                span
            })
            .on_request(())
            // ApiError already logs a 5xx once, with its cause.
            .on_failure(())
            .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros));
        Router::new().fallback_service(ids.layer(trace).layer(ScopeLayer).service(service))
    } else {
        let trace = TraceLayer::new_for_http()
            .make_span_with(|request: &Request<_>| {
                let span = tracing::info_span!("request", request_id = %id_of(request));
                // The caller's W3C `traceparent` makes this span its child (when traces are exported).
                crate::trace_context::adopt_header(&span, request.headers());
                span
            })
            // Only the span is wanted here: no callback per request, body chunk or end of stream.
            .on_request(())
            .on_response(())
            .on_body_chunk(())
            .on_eos(())
            .on_failure(());
        Router::new().fallback_service(ids.layer(trace).layer(ScopeLayer).service(service))
    }
}

/// Makes the request's id readable through `current()` while its handler runs.
#[derive(Debug, Clone, Copy)]
struct ScopeLayer;

impl<S> tower::Layer<S> for ScopeLayer {
    type Service = Scope<S>;

    fn layer(&self, inner: S) -> Scope<S> {
        Scope { inner }
    }
}

#[derive(Debug, Clone)]
struct Scope<S> {
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for Scope<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<HeaderValue, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let id = request.headers().get(&HEADER).cloned().unwrap_or_else(|| HeaderValue::from_static(""));
        CURRENT.scope(id, self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_ids_are_kept() {
        let ok = |s: &str| acceptable(&HeaderValue::from_str(s).expect("header value"));
        assert!(ok("abc-123_DEF.~:/"));
        assert!(ok(&"a".repeat(MAX_LEN)));
        assert!(!ok(&"a".repeat(MAX_LEN + 1)));
        assert!(!ok("two words"));
        assert!(!ok("tab\there"));
        assert!(!ok(""));
        assert!(!acceptable(&HeaderValue::from_bytes(b"caf\xc3\xa9").expect("obs-text")));
    }

    #[test]
    fn a_repeated_header_is_dropped() {
        let request = Request::builder().header(HEADER, "a").header(HEADER, "b").body(()).expect("request");
        assert!(drop_unacceptable(request).headers().get(&HEADER).is_none());
        let request = Request::builder().header(HEADER, "a").body(()).expect("request");
        assert_eq!(drop_unacceptable(request).headers().get(&HEADER).map(HeaderValue::as_bytes), Some(&b"a"[..]));
    }
}
