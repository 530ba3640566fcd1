//! A resolved config value: the text type every compiled string uses, and the borrowed view any
//! value gives of itself for listing, hashing and debug logs.

use std::borrow::Cow;
use std::fmt;

use super::template::Template;

/// Text in a compiled flavor. A `Cow` so that one type serves both worlds: build.rs emits
/// `Cow::Borrowed` literals into a `static` table (no allocation, no parsing at run time), while
/// `--configs DIR` compiles the same types with owned strings.
pub type Text = Cow<'static, str>;

/// A borrowed view of any resolved value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Text(&'a str),
    Int(u32),
    Bool(bool),
    /// An enum value: its wire spelling and, for generated code, its Rust path.
    Choice {
        wire: &'static str,
        rust_path: &'static str,
    },
    Template(&'a Template),
}

impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Text(s) => f.write_str(s),
            ValueRef::Int(n) => write!(f, "{n}"),
            ValueRef::Bool(b) => write!(f, "{b}"),
            ValueRef::Choice { wire, .. } => f.write_str(wire),
            ValueRef::Template(t) => f.write_str(&t.source),
        }
    }
}

/// Anything a schema key can hold knows how to show itself generically.
pub trait View {
    fn view(&self) -> ValueRef<'_>;
}

impl View for Text {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl View for u32 {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Int(*self)
    }
}

impl View for bool {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Bool(*self)
    }
}

impl View for Template {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Template(self)
    }
}
