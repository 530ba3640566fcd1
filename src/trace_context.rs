//! W3C trace context (`traceparent` and `tracestate`) in and out of tracing spans, for the
//! OpenTelemetry export (`trace_export`): an incoming request's `traceparent` becomes its request
//! span's parent, with the caller's `tracestate` (vendors' entries, passed on untouched), and a job
//! stores the context it was submitted under so whichever replica runs it (first, or after a
//! takeover) continues the same trace. Calls to the providers carry both headers on.
//!
//! A `tracestate` is checked as the W3C spec says: a malformed one (a bad key or value, a key
//! twice) or one of more than 32 list-members is dropped, never failing the request, and one over
//! 512 characters is cut: members over 128 characters go first, then members from the end.
//!
//! Everything here is a no-op unless `trace_export` switched the export on ([`enable`]): with the
//! variables unset no header is parsed, nothing is stored with a job (its column stays NULL), and
//! no span's parent is touched.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The W3C headers (and the keys a context is carried under).
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// W3C's bounds on a `tracestate`: list-members in all, characters kept, and the length past which
/// a member is the first to go when cutting.
const MAX_MEMBERS: usize = 32;
const MAX_CHARS: usize = 512;
const LONG_MEMBER: usize = 128;

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

/// Makes `span` (not yet entered) a child of the request's valid `traceparent` header, if any,
/// with its `tracestate` (every such header, as one list). An absent or malformed `traceparent`
/// leaves it a new trace's root, as the W3C spec asks; a malformed `tracestate` is dropped.
pub fn adopt_header(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !enabled() {
        return;
    }
    let Some(value) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let state: Vec<&str> = headers.get_all(TRACESTATE).iter().filter_map(|v| v.to_str().ok()).collect();
    adopt(span, value, tracestate(&state.join(",")).as_deref());
}

/// Makes `span` (not yet entered) a child of the stored context (see [`of`]), when there is one
/// and it is valid; otherwise its parent stays the current span.
pub fn adopt_stored(span: &tracing::Span, stored: Option<&str>) {
    if let Some(stored) = stored.filter(|_| enabled()) {
        // A context stored by a build before `tracestate` was kept is the `traceparent` alone.
        let (traceparent, state) = stored.split_once('\n').map_or((stored, None), |(p, s)| (p, Some(s)));
        adopt(span, traceparent, state.and_then(tracestate).as_deref());
    }
}

fn adopt(span: &tracing::Span, traceparent: &str, state: Option<&str>) {
    let mut carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    if let Some(state) = state {
        carrier.insert(TRACESTATE.to_owned(), state.to_owned());
    }
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when the span was already started or is disabled: it then keeps its parent.
        let _ = span.set_parent(parent);
    }
}

/// A `tracestate` list as W3C asks it to be passed on: `None` when it is empty, malformed (a key
/// or value outside the grammar, a key twice) or has more than 32 members; else its members
/// (blank ones dropped), cut to 512 characters by removing members over 128 characters first,
/// then members from the end.
pub fn tracestate(raw: &str) -> Option<String> {
    let mut members: Vec<&str> =
        raw.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty()).collect();
    if members.is_empty() || members.len() > MAX_MEMBERS {
        return None;
    }
    // A key twice is malformed; the SDK's parser holds the rest of the grammar (keys, values).
    let mut keys = std::collections::HashSet::new();
    if !members.iter().all(|m| keys.insert(m.split('=').next().unwrap_or_default())) {
        return None;
    }
    opentelemetry::trace::TraceState::from_str(&members.join(",")).ok()?;
    let length = |members: &[&str]| members.iter().map(|m| m.len()).sum::<usize>() + members.len().saturating_sub(1);
    while length(&members) > MAX_CHARS {
        match members.iter().rposition(|m| m.len() > LONG_MEMBER) {
            Some(long) => members.remove(long),
            None => members.pop()?,
        };
    }
    (!members.is_empty()).then(|| members.join(","))
}

/// `span`'s context to store with a job: its `traceparent`, then its `tracestate` on a second
/// line when it has one; `None` when spans are not exported (or the span is not recorded).
pub fn of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    let traceparent = carrier.remove(TRACEPARENT)?;
    Some(match carrier.remove(TRACESTATE).filter(|s| !s.is_empty()) {
        Some(state) => format!("{traceparent}\n{state}"),
        None => traceparent,
    })
}

/// The W3C headers an outgoing call made in the current span carries (`traceparent`, and
/// `tracestate` when the trace has one), so the upstream's own tracing joins the trace; none
/// when spans are not exported.
pub fn outgoing() -> Vec<(&'static str, String)> {
    if !enabled() {
        return Vec::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    [TRACEPARENT, TRACESTATE]
        .into_iter()
        .filter_map(|name| carrier.remove(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
        .collect()
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
        assert!(outgoing().is_empty());
    }

    #[test]
    fn a_tracestate_is_kept_checked_and_cut_as_w3c_says() {
        assert_eq!(
            tracestate("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7").as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_eq!(tracestate(" ,a=1,, b=2 ").as_deref(), Some("a=1,b=2"), "blank members dropped");
        for bad in ["", "no-equals", "UPPER=1", "a=1,a=2", "a=b=c\u{1}", "a=1\nb=2"] {
            assert_eq!(tracestate(bad), None, "{bad:?} is dropped");
        }
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(tracestate(&members.join(",")), None, "33 members: dropped");
        assert!(tracestate(&members[..32].join(",")).is_some(), "32 are fine");
        // Over 512: the long member goes first, then members from the end.
        let long = format!("long={}", "x".repeat(200));
        let fill: Vec<String> = (0..10).map(|i| format!("f{i}={}", "y".repeat(40))).collect();
        let cut = tracestate(&format!("first=1,{long},{}", fill.join(","))).expect("kept");
        assert!(cut.len() <= 512 && !cut.contains("long=") && cut.starts_with("first=1,f0="), "{cut}");
        let cut = tracestate(&(0..20).map(|i| format!("m{i}={}", "z".repeat(40))).collect::<Vec<_>>().join(","))
            .expect("kept");
        assert!(cut.len() <= 512 && cut.starts_with("m0=") && !cut.contains("m19="), "{cut}");
    }
}
