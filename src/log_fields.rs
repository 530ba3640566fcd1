//! How the text log writes fields: exactly as tracing-subscriber's `DefaultFields` does, except the
//! request span's `request_id`, written in one piece.
//!
//! The log formats a span's fields when the span is created (and keeps the text for every line
//! logged inside it), so every request pays for formatting its id whether or not anything is
//! logged. Through `DefaultFields` that took ~1,700 instructions of a flavor-list GET's ~25k
//! (BENCHMARKS.md, issue 22): the name and `=` go through `nu_ansi_term`'s `Display` even with
//! colours off, the id through `format_args!`, and the text grows by three writes (one allocation,
//! two reallocations). Here, with colours off, `request_id=<id>` is one write of text already at
//! hand. What a log line says is unchanged: the id unquoted, as the `%` (`Display`) it was
//! recorded with before; with colours on, and for every other field, `DefaultFields` writes it.
//!
//! [`WithRequest`] is the text and JSON logs' event format: tracing-subscriber's own, plus the
//! request's context written from `request_id::logged` when no request span is made
//! (`request_id::LogContext::Written`), exactly where and as the span's would have been.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The field carrying a request's id (`request_id::RequestIds` records it as text).
pub const REQUEST_ID: &str = "request_id";

/// The longest id written from the stack (ids are at most `request_id::MAX_LEN`, 128 bytes).
const ONE_PIECE: usize = 192;

/// The text log's field formatter (`fmt::layer().fmt_fields(Fields)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields;

impl<'a> MakeVisitor<Writer<'a>> for Fields {
    type Visitor = FieldsVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> FieldsVisitor<'a> {
        FieldsVisitor { fresh: Some(target), fields: None, result: Ok(()), nowhere: Nowhere }
    }
}

/// `DefaultVisitor`, made only when a field needs it: a first field that is a request id is
/// written directly, and the visitor made after it knows a field came first (for the padding).
pub struct FieldsVisitor<'a> {
    /// The writer, until a field is written.
    fresh: Option<Writer<'a>>,
    /// tracing-subscriber's visitor, once made: exactly one of the two is `Some`.
    fields: Option<DefaultVisitor<'a>>,
    result: fmt::Result,
    nowhere: Nowhere,
}

/// A writer that drops what it is given (see [`FieldsVisitor`]'s `writer`).
struct Nowhere;

impl fmt::Write for Nowhere {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

impl<'a> FieldsVisitor<'a> {
    /// tracing-subscriber's visitor, made on the writer if it is not yet (always `Some`).
    fn fields(&mut self) -> Option<&mut DefaultVisitor<'a>> {
        if let Some(writer) = self.fresh.take() {
            self.fields = Some(DefaultVisitor::new(writer, true));
        }
        self.fields.as_mut()
    }

    /// Writes `request_id=<id>` as the first field, in one write when it fits on the stack.
    /// `false` when it is not the first field or colours are on: `DefaultVisitor` then writes it.
    fn write_request_id(&mut self, id: &str) -> bool {
        let Some(mut writer) = self.fresh.take_if(|w| !w.has_ansi_escapes()) else { return false };
        // Three plain copies, not `write!`: its formatting machinery cost more than the copies.
        let mut text = StackText::<ONE_PIECE>::new();
        let pieces = [REQUEST_ID, "=", id];
        self.result = if pieces.iter().all(|piece| text.write_str(piece).is_ok()) {
            writer.write_str(text.as_str())
        } else {
            pieces.iter().try_for_each(|piece| writer.write_str(piece))
        };
        self.fields = Some(DefaultVisitor::new(writer, false));
        true
    }
}

impl Visit for FieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != REQUEST_ID {
            if let Some(v) = self.fields() {
                v.record_str(field, value);
            }
        } else if !self.write_request_id(value) {
            // Unquoted, as `DefaultVisitor` writes a `Display` value.
            if let Some(v) = self.fields() {
                v.record_debug(field, &format_args!("{value}"));
            }
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if let Some(v) = self.fields() {
            v.record_error(field, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(v) = self.fields() {
            v.record_debug(field, value);
        }
    }
}

impl VisitOutput<fmt::Result> for FieldsVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result?;
        self.fields.map_or(Ok(()), VisitOutput::finish)
    }
}

impl VisitFmt for FieldsVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.fields();
        match &mut self.fields {
            Some(fields) => fields.writer(),
            // Never: `fields` always makes the visitor. Writing nowhere beats a panic in a log call.
            None => &mut self.nowhere,
        }
    }
}

/// The request span's name, as its lines show it.
const REQUEST_SPAN: &str = "request";

/// tracing-subscriber's text (`Format<Full>`) or JSON (`Format<Json>`) event format, with the
/// request's context added to each line logged while a request is handled without a span of its
/// own (`request_id::LogContext::Written`): `request{request_id=…}:` before the line's spans in
/// text, `"span"`/`"spans"` entries in JSON, as tracing-subscriber writes a `request` span with
/// that one field as the outermost span. Other lines are the inner format's, untouched.
///
/// The line is formatted by the inner format first, then the context spliced in: text only
/// without colours (`request_id`'s context is a span with them), after the level; JSON as the
/// outermost entry of `"spans"`. A line in which the place is not found is written as it is.
#[derive(Debug, Clone, Copy)]
pub struct WithRequest<F> {
    inner: F,
    json: bool,
}

impl<F> WithRequest<F> {
    /// Around the text log's `Format<Full>` (plain text, no colours).
    pub fn text(inner: F) -> Self {
        WithRequest { inner, json: false }
    }

    /// Around the JSON log's `Format<Json>`.
    pub fn json(inner: F) -> Self {
        WithRequest { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // An explicit root (`parent: None`) was outside the request span in text; tracing-
        // subscriber's JSON lists the current spans for it all the same.
        let id = if event.is_root() && !self.json { None } else { crate::request_id::logged(str::to_owned) };
        let Some(id) = id else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let spliced = if self.json {
            json_with_request(&line, &id)
        } else {
            text_with_request(&line, &id, *event.metadata().level(), ctx.event_scope().is_some())
        };
        writer.write_str(spliced.as_deref().unwrap_or(&line))
    }
}

/// A plain text line with `request{request_id=<id>}:` as its outermost span, after the level
/// (`Format<Full>` writes `<time> <level> <spans>: <target>: <fields>`, the spans' list ending
/// in a space, and pads the level to five characters). `None` when the level is not found.
fn text_with_request(line: &str, id: &str, level: Level, other_spans: bool) -> Option<String> {
    let level = match level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    };
    let at = line.find(level)? + level.len();
    let (head, tail) = line.split_at(at);
    let end = if other_spans { ":" } else { ": " };
    Some([head, REQUEST_SPAN, "{", REQUEST_ID, "=", id, "}", end, tail].concat())
}

/// A JSON line with the request span as its outermost span: first in `"spans"`, and also
/// `"span"` (the innermost) when it is the only one. `None` when the line does not end in `}`.
fn json_with_request(line: &str, id: &str) -> Option<String> {
    let span = format!(r#"{{"{REQUEST_ID}":{},"name":"{REQUEST_SPAN}"}}"#, serde_json::to_string(id).ok()?);
    // Field values are strings (a `[` in one is inside quotes), so `,"spans":[` is the list.
    const SPANS: &str = r#","spans":["#;
    if let Some(at) = line.rfind(SPANS) {
        let (head, tail) = line.split_at(at + SPANS.len());
        return Some([head, &span, ",", tail].concat());
    }
    let (head, tail) = line.split_at(line.rfind('}')?);
    Some([head, r#","span":"#, &span, SPANS, &span, "]", tail].concat())
}

/// A few bytes of text on the stack; a write past its end fails (and is written another way).
struct StackText<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackText<N> {
    fn new() -> Self {
        StackText { bytes: [0; N], len: 0 }
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s are ever copied in, so the bytes are UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Log text kept in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lines").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What the text log (as `cli::lifecycle` sets it up, without the time) writes while `f` runs,
    /// through [`Fields`] or tracing-subscriber's `DefaultFields`.
    fn log(ours: bool, ansi: bool, f: impl FnOnce()) -> String {
        let lines = Lines::default();
        let sink = lines.clone();
        let layer = tracing_subscriber::fmt::layer().with_writer(move || sink.clone()).with_ansi(ansi).without_time();
        if ours {
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer.fmt_fields(Fields)), f);
        } else {
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        }
        String::from_utf8(lines.0.lock().expect("lines").clone()).expect("UTF-8")
    }

    /// What the log said when the request span recorded its id as `Display` (`%`) through
    /// `DefaultFields`, it says now that the id is recorded as text through [`Fields`]: spans with
    /// the id first, with the access log's fields, with the id not first or recorded later, and an
    /// event's fields of every kind inside them; colours on and off; an id too long for the stack.
    #[test]
    fn the_log_reads_as_before() {
        fn lines(id: &str, as_text: bool) {
            let error: &(dyn std::error::Error + 'static) = &io::Error::other("refused");
            let request = if as_text {
                tracing::info_span!("request", request_id = id, method = %"GET", path = %"/x")
            } else {
                tracing::info_span!("request", request_id = %id, method = %"GET", path = %"/x")
            };
            let _request = request.enter();
            tracing::info!(kind = "a str", n = 3, ok = true, error, "answered {id}");
            let alone = if as_text {
                tracing::info_span!("request", request_id = id)
            } else {
                tracing::info_span!("request", request_id = %id)
            };
            alone.in_scope(|| tracing::warn!(status = 503, "slow"));
            let job = tracing::info_span!("job", job = 7, request_id = tracing::field::Empty);
            if as_text {
                job.record(REQUEST_ID, id);
            } else {
                job.record(REQUEST_ID, tracing::field::display(id));
            }
            job.in_scope(|| tracing::info!("claimed"));
        }
        let long = "x".repeat(ONE_PIECE + 10);
        for ansi in [false, true] {
            for id in ["4f1c0e2a-aa61-4c3e-9d0b-6a1f2b3c4d5e", "caller's:id/\\\"x\"", long.as_str()] {
                let ours = log(true, ansi, || lines(id, true));
                let before = log(false, ansi, || lines(id, false));
                assert_eq!(ours, before, "ansi {ansi}, id {id:?}");
                assert!(ours.contains(&format!("request_id={id}")) || ansi, "{ours}");
            }
        }
    }

    /// A service that logs in its `call` and its answer: at every level, in a span of its own, as
    /// an explicit root, and from a task it spawns (outside the request, so without its id).
    #[derive(Clone)]
    struct Chatty;

    impl tower::Service<axum::http::Request<()>> for Chatty {
        type Response = axum::http::Response<()>;
        type Error = std::convert::Infallible;
        type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: axum::http::Request<()>) -> Self::Future {
            tracing::warn!(reason = "none", "in call");
            Box::pin(async {
                tracing::trace!("trace");
                tracing::debug!(n = 1, "debug");
                tracing::info!(quoted = "a \"b\" [c]", "info {}", 3);
                tracing::error!(error = %io::Error::other("x"), "error");
                tokio::task::yield_now().await;
                tracing::info_span!("inner", step = 2).in_scope(|| tracing::info!("nested"));
                tracing::info!(parent: None, "explicit root");
                let spawned = tokio::spawn(async { tracing::info!("spawned") });
                let _ = spawned.await;
                Ok(axum::http::Response::new(()))
            })
        }
    }

    /// What the log (text or JSON, as `cli::lifecycle` sets it up without the time and colours)
    /// writes for two requests (a kept id, and a fresh one: returned) through `Chatty`.
    fn request_lines(json: bool, how: crate::request_id::LogContext, filter: &str) -> (String, String) {
        use tower::ServiceExt as _;
        let lines = Lines::default();
        let sink = lines.clone();
        let filter: tracing_subscriber::filter::Targets = filter.parse().expect("filter");
        let layer = tracing_subscriber::fmt::layer().with_writer(move || sink.clone()).with_ansi(false).without_time();
        let registry = tracing_subscriber::registry().with(filter);
        let dispatch = if json {
            tracing::Dispatch::new(registry.with(layer.json().map_event_format(WithRequest::json)))
        } else {
            tracing::Dispatch::new(registry.with(layer.fmt_fields(Fields).map_event_format(WithRequest::text)))
        };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let fresh = tracing::dispatcher::with_default(&dispatch, || {
            runtime.block_on(async {
                let service = crate::request_id::around(Chatty, false).with_log_context(how);
                let kept = axum::http::Request::get("/").header("x-request-id", "kept-1").body(()).expect("request");
                service.clone().oneshot(kept).await.expect("infallible");
                let response = service.oneshot(axum::http::Request::new(())).await.expect("infallible");
                let fresh = response.headers().get("x-request-id").expect("an id");
                fresh.to_str().expect("text").to_owned()
            })
        });
        (String::from_utf8(lines.0.lock().expect("lines").clone()).expect("UTF-8"), fresh)
    }

    /// A request handled without a span (`LogContext::Written`, the context written by
    /// [`WithRequest`]) logs exactly what it logged in its span, text and JSON: the id in every
    /// line of its `call` and its answer, inside a span of the handler's too, and not in a
    /// spawned task's line (nor in an explicit root's, in text). With the span filtered out (`Dropped`) it logs what
    /// it did with the span disabled.
    #[test]
    fn a_request_without_a_span_logs_as_in_its_span() {
        use crate::request_id::LogContext;
        let all = "trace";
        for json in [false, true] {
            let (with_span, fresh) = request_lines(json, LogContext::Span, all);
            let (written, fresh_written) = request_lines(json, LogContext::Written, all);
            let written = written.replace(&fresh_written, &fresh);
            assert_eq!(written, with_span, "json {json}");
            assert_eq!(with_span.lines().count(), 16, "{with_span}");
            let context = |id: &str| {
                if json {
                    format!(r#""spans":[{{"request_id":"{id}","name":"request"}}"#)
                } else {
                    format!("request{{request_id={id}}}")
                }
            };
            for id in ["kept-1", fresh.as_str()] {
                assert_eq!(with_span.matches(&context(id)).count(), if json { 7 } else { 6 }, "{id}: {with_span}");
            }
            // JSON lists the current spans for an explicit root too (tracing-subscriber's choice).
            let outside = |l: &&str| l.contains("spawned") || (!json && l.contains("explicit root"));
            for line in with_span.lines().filter(outside) {
                assert!(!line.contains("request"), "{line}");
            }
            let quiet = "trace,mvgen::request_id=warn";
            let (with_span, fresh) = request_lines(json, LogContext::Span, quiet);
            let (dropped, fresh_dropped) = request_lines(json, LogContext::Dropped, quiet);
            assert_eq!(dropped.replace(&fresh_dropped, &fresh), with_span, "json {json}");
            assert!(!with_span.contains("request_id"), "{with_span}");
        }
    }
}
