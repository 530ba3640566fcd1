//! Typed config keys, and one resolved key with its value and origin.

use super::origin::{FileKind, Origin};
use super::value::ValueRef;

/// A config key: its file and its name. Only the key declaration (`settings_files!` in
/// `settings.rs`) makes them, one associated constant per key (`Parameters::video_type`), so code
/// naming a key that was renamed or removed does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub file: FileKind,
    pub name: &'static str,
}

/// One resolved key, for listing, diffing, explaining and debug logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    pub file: FileKind,
    pub key: &'static str,
    pub value: ValueRef<'a>,
    pub origin: &'a Origin,
}
