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

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

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
}
