//! W3C trace context (`traceparent`) in and out of tracing spans, for the OpenTelemetry export
//! (`trace_export`): an incoming request's `traceparent` becomes its request span's parent, and a
//! job stores the context it was submitted under so whichever replica runs it (first, or after a
//! takeover) continues the same trace.
//!
//! Everything here is a no-op unless `trace_export` switched the export on ([`enable`]): with the
//! variables unset no header is parsed, nothing is stored with a job (its column stays NULL), and
//! no span's parent is touched.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C header (and the key a stored context is written under).
const TRACEPARENT: &str = "traceparent";

static ON: AtomicBool = AtomicBool::new(false);

/// Called once by `trace_export` when spans are exported.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The span `make` builds when spans are exported, else a disabled one: the job's and upstream
/// calls' spans exist only for the export, so with it off they cost nothing and add nothing to
/// the log lines of the work they wrap.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() { make() } else { tracing::Span::none() }
}

/// Makes `span` (not yet entered) a child of the request's valid `traceparent` header, if any.
/// An absent or malformed header leaves it a new trace's root, as the W3C spec asks.
pub fn adopt_header(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !enabled() {
        return;
    }
    let Some(value) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) else {
        return;
    };
    adopt(span, value);
}

/// Makes `span` (not yet entered) a child of the stored context `traceparent`, when there is one
/// and it is valid; otherwise its parent stays the current span.
pub fn adopt_stored(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(value) = traceparent.filter(|_| enabled()) {
        adopt(span, value);
    }
}

fn adopt(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when the span was already started or is disabled: it then keeps its parent.
        let _ = span.set_parent(parent);
    }
}

/// `span`'s context as a `traceparent` value to store with a job; `None` when spans are not
/// exported (or the span is not recorded).
pub fn of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_read_or_written_while_export_is_off() {
        // `enable` is never called in the lib's unit tests: no exporter is built there.
        let span = tracing::info_span!("request");
        assert_eq!(of(&span), None);
        adopt_stored(&span, Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
        assert_eq!(of(&span), None);
    }
}
