//! Request ids: every request gets one, kept from the caller's `X-Request-Id` when it is short and
//! plain (at most 128 visible ASCII characters), otherwise a fresh UUID; an oversized or
//! control-character value is dropped, never echoed. The id is a field of the request's tracing
//! span (so every log line of the request carries it), the `X-Request-Id` response header, and
//! `detail.request_id` in error bodies (through a task-local that `ApiError` reads).
//!
//! One service ([`RequestIds`]) does all of it, where tower-http took five layers (a request map,
//! `SetRequestId`, `PropagateRequestId`, `TraceLayer`, a task-local scope): their futures nested,
//! the trace layer read the clock and wrapped every response body to time it, and the UUID went
//! through a `String` and a copy. Each of those showed in a profile of the flavor-list GET
//! (BENCHMARKS.md, issue 22); what a client or a log reader sees is unchanged.
//!
//! The request's context in the log, `request{request_id=…}`, is a real tracing span only when
//! something needs one: by default (any subscriber), with spans exported (OpenTelemetry), with the
//! access log (its line is logged in the span after the handler) and with a coloured text log.
//! Otherwise `serve` sets [`LogContext::Written`]: no span is made, entered or closed (made,
//! entered, exited and closed in tracing's registry, it was ~2,300 instructions of a flavor-list
//! GET's ~22,600), and `log_fields::WithRequest` writes the same context into every line logged
//! while the request is being handled: where the span would have been entered ([`logged`]).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use tracing::Span;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longer incoming ids are replaced: they would bloat every log line of the request.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// The request span's target (its module), for a filter's verdict on it.
pub const SPAN_TARGET: &str = module_path!();

/// How a request's id reaches the lines logged while it is handled (set once, before serving).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LogContext {
    /// A tracing span per request, `request` with the field `request_id`: what any subscriber
    /// sees, and what exported traces and the access log need. The default.
    Span = 0,
    /// No span: the log's event format writes the same context from [`logged`] (only a log
    /// formatted by `log_fields::WithRequest` may be told this).
    Written = 1,
    /// No span, nothing written: the log's filter would have dropped the span (e.g. `RUST_LOG=warn`).
    Dropped = 2,
}

static LOG_CONTEXT: AtomicU8 = AtomicU8::new(LogContext::Span as u8);

/// Sets how requests appear in the log (see [`LogContext`]); `serve` calls it once, before the
/// request service is made ([`around`] reads it), from what its subscriber records.
pub fn set_log_context(how: LogContext) {
    LOG_CONTEXT.store(how as u8, Ordering::Relaxed);
}

fn log_context() -> LogContext {
    match LOG_CONTEXT.load(Ordering::Relaxed) {
        1 => LogContext::Written,
        2 => LogContext::Dropped,
        _ => LogContext::Span,
    }
}

thread_local! {
    /// Set while a request's handling runs on this thread with [`LogContext::Written`]: around
    /// its service's `call` and every poll of its answer, where its span would be entered.
    static IN_REQUEST: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as running a request's handling until dropped (restoring what it was).
struct InRequest(Option<bool>);

impl InRequest {
    fn enter(on: bool) -> Self {
        InRequest(on.then(|| IN_REQUEST.replace(true)))
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        if let Some(was) = self.0 {
            IN_REQUEST.set(was);
        }
    }
}

/// `f` of the id of the request being handled on this thread, when its log context is written by
/// the log's formatter ([`LogContext::Written`]): `None` outside a request's handling (another
/// task, a spawned job, a response body streamed after the handler) as outside its span.
pub fn logged<R>(f: impl FnOnce(&str) -> R) -> Option<R> {
    if !IN_REQUEST.get() {
        return None;
    }
    CURRENT.try_with(|id| f(text(id))).ok()
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_str().ok().map(String::from)).ok().flatten()
}

/// Whether an incoming id may be kept: 1..=128 bytes of visible ASCII (no spaces, no controls).
pub fn acceptable(value: &HeaderValue) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

/// The request's id: its `X-Request-Id` if that may be kept (one acceptable value), else a fresh
/// UUID written into the request in its place, so the handler sees the id the caller is told.
fn identify<B>(request: &mut Request<B>) -> HeaderValue {
    let mut values = request.headers().get_all(&HEADER).iter();
    if let (Some(value), None) = (values.next(), values.next())
        && acceptable(value)
    {
        return value.clone();
    }
    let id = fresh_id();
    // `insert` also removes every other value of the header.
    request.headers_mut().insert(HEADER, id.clone());
    id
}

/// A random (v4) UUID, hyphenated, as a header value made with one allocation: the text is
/// written on the stack and the value owns it, so the clones for the response header and the
/// task-local only count references (a `String` and a copy of it took three allocations).
fn fresh_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // Hex digits and hyphens are always a valid header value; the fallback is never taken.
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The id as span text (an id is visible ASCII, kept or made).
fn text(id: &HeaderValue) -> &str {
    id.to_str().unwrap_or_default()
}

/// Wraps `service` (the router, with CORS around it when on) in [`RequestIds`]: from outside, once
/// for the whole app, not once per route (see `server::app_with_jobs`). `access_log` adds the
/// method and path (never the query: `?api_key=` may carry a key) to the span, and one line per
/// response.
/// The log context is the one [`set_log_context`] set last (a span unless told otherwise; always
/// a span with the access log).
pub fn around<S>(service: S, access_log: bool) -> RequestIds<S> {
    let log_context = if access_log { LogContext::Span } else { log_context() };
    RequestIds { inner: service, access_log, log_context }
}

/// Gives each request its id and span, makes the id readable through [`current`] while the
/// handler runs, and echoes it as the response's `X-Request-Id` (unless the handler set one).
#[derive(Debug, Clone)]
pub struct RequestIds<S> {
    inner: S,
    access_log: bool,
    log_context: LogContext,
}

impl<S> RequestIds<S> {
    /// The same service, its requests shown in the log as `how` says (for tests of the log).
    pub fn with_log_context(self, how: LogContext) -> Self {
        RequestIds { log_context: if self.access_log { LogContext::Span } else { how }, ..self }
    }
}

impl<S, B, R> tower::Service<Request<B>> for RequestIds<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Identified<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = identify(&mut request);
        let context = self.log_context;
        // The id as text, not `%` (`Display`): the text log then writes it in one piece
        // (`log_fields`, the field's name is `log_fields::REQUEST_ID`), and JSON lines and
        // exported spans read the same string either way.
        let span = match context {
            LogContext::Span if self.access_log => {
                let (method, path) = (request.method(), request.uri().path());
                tracing::info_span!("request", request_id = text(&id), %method, path = %path)
            }
            LogContext::Span => tracing::info_span!("request", request_id = text(&id)),
            LogContext::Written | LogContext::Dropped => Span::none(),
        };
        // The caller's W3C `traceparent` makes this span its child (when traces are exported).
        crate::trace_context::adopt_header(&span, request.headers());
        let started = self.access_log.then(Instant::now);
        let written = context == LogContext::Written;
        // The id is current during `call` too, not only while its future runs: a layer that
        // answers at once from `call` (the API key check's 401) builds its error body there.
        let inner = CURRENT.sync_scope(id.clone(), || {
            let _in_request = InRequest::enter(written);
            span.in_scope(|| self.inner.call(request))
        });
        Identified { inner: CURRENT.scope(id.clone(), inner), span, written, id: Some(id), started }
    }
}

pin_project_lite::pin_project! {
    /// The inner response future, polled in the request's span (or [`InRequest`]) with its id in
    /// [`CURRENT`].
    pub struct Identified<F> {
        #[pin]
        inner: tokio::task::futures::TaskLocalFuture<HeaderValue, F>,
        span: Span,
        // The log's formatter writes the request's context (`LogContext::Written`).
        written: bool,
        id: Option<HeaderValue>,
        // Set when the access log is on: when the request began.
        started: Option<Instant>,
    }
}

impl<F, R, E> Future for Identified<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let in_request = InRequest::enter(*this.written);
        let mut result = ready!(this.inner.poll(cx));
        drop(in_request);
        if let Ok(response) = &mut result {
            // One lookup, not a `contains_key` and then an `insert`. A map too full to take
            // one more header (never, for an answer of ours) goes without the echo.
            if let Some(id) = this.id.take()
                && let Ok(entry) = response.headers_mut().try_entry(HEADER)
            {
                let _ = entry.or_try_insert(id);
            }
            if let Some(started) = this.started {
                // The line and fields tower-http's `DefaultOnResponse` wrote, in microseconds.
                let latency = format_args!("{} μs", started.elapsed().as_micros());
                tracing::info!(%latency, status = response.status().as_u16(), "finished processing request");
            }
        }
        Poll::Ready(result)
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
    fn a_repeated_header_is_replaced_by_one_fresh_id() {
        let mut request = Request::builder().header(HEADER, "a").header(HEADER, "b").body(()).expect("request");
        let id = identify(&mut request);
        let sent: Vec<_> = request.headers().get_all(&HEADER).iter().cloned().collect();
        assert_eq!(sent, std::slice::from_ref(&id), "one value, the fresh id");
        assert!(uuid::Uuid::parse_str(text(&id)).is_ok_and(|u| u.get_version_num() == 4), "{id:?}");
        let mut request = Request::builder().header(HEADER, "a").body(()).expect("request");
        assert_eq!(identify(&mut request).as_bytes(), b"a");
        assert_eq!(request.headers().get(&HEADER).map(HeaderValue::as_bytes), Some(&b"a"[..]));
    }
}
