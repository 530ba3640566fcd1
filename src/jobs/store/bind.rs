//! A value bound into a statement, owned: for statements whose values are built in one place and
//! bound in another (a project's edits, a write waiting for its group commit).

use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A query on either engine, its values bound in turn.
pub type AnyQuery<'q> = Query<'q, sqlx::Any, AnyArguments<'q>>;

/// A value bound into a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
}

impl Bind {
    /// NULL.
    pub fn none() -> Bind {
        Bind::Text(None)
    }

    /// `value` as JSON text. Not through `Value`'s `Display` (`value.to_string()`): that writes
    /// through `fmt::Formatter` into an `io::Write` adapter, a call per escaped piece, some three
    /// times the instructions of serialising into a buffer; the text is the same (compact).
    pub fn json(value: &serde_json::Value) -> Bind {
        Bind::Text(Some(json_text(value)))
    }

    /// `query` with this value bound next, borrowed (no copy of a plan's text per bind).
    pub fn bind_to<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Bind::Text(text) => query.bind(text.as_deref()),
            Bind::Int(n) => query.bind(*n),
        }
    }
}

/// `value` as compact JSON text (see [`Bind::json`]).
pub fn json_text(value: &serde_json::Value) -> String {
    // A `Value` always serialises (its keys are strings); the fallback is never taken.
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

/// `query` with `values` bound in order.
pub fn bind_all<'q>(query: AnyQuery<'q>, values: &'q [Bind]) -> AnyQuery<'q> {
    values.iter().fold(query, |query, value| value.bind_to(query))
}

impl From<&str> for Bind {
    fn from(s: &str) -> Bind {
        Bind::Text(Some(s.to_owned()))
    }
}

impl From<String> for Bind {
    fn from(s: String) -> Bind {
        Bind::Text(Some(s))
    }
}

impl From<Option<&str>> for Bind {
    fn from(s: Option<&str>) -> Bind {
        Bind::Text(s.map(str::to_owned))
    }
}

impl From<Option<String>> for Bind {
    fn from(s: Option<String>) -> Bind {
        Bind::Text(s)
    }
}

impl From<i64> for Bind {
    fn from(n: i64) -> Bind {
        Bind::Int(Some(n))
    }
}

impl From<Option<i64>> for Bind {
    fn from(n: Option<i64>) -> Bind {
        Bind::Int(n)
    }
}
