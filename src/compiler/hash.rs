//! A resolved flavor's content hash: 12 hex digits of SHA-256 over a canonical form of its resolved
//! settings, so logs, responses and jobs can say exactly which content served a request.
//!
//! The canonical form holds what reaches a provider and nothing about how it was written down: every
//! settings key (file name and key name) with its resolved value, sorted by file then key. Origins,
//! file layout, inheritance path, YAML quoting and block styles never reach it; nor do the flavor's
//! name, label, description and parent, which change no request. Each value is tagged with its kind
//! and length-prefixed, so no two different settings encode alike.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::model::{Entry, ValueRef};

/// How many hex digits of the digest are kept: 48 bits, plenty to tell a handful of flavors and their
/// revisions apart while staying short enough for a header and a log line.
pub const HASH_LEN: usize = 12;

/// The content hash of a flavor's resolved `entries`.
pub fn content_hash(entries: &[Entry<'_>]) -> String {
    let mut sorted: Vec<&Entry<'_>> = entries.iter().collect();
    sorted.sort_by_key(|e| (e.file.file_name(), e.key));
    let mut hasher = Sha256::new();
    for e in sorted {
        hasher.update(canonical_line(e).as_bytes());
    }
    let mut hex = String::with_capacity(HASH_LEN);
    for byte in hasher.finalize().iter().take(HASH_LEN / 2) {
        write!(hex, "{byte:02x}").expect("write to String");
    }
    hex
}

/// `file/key=<kind>:<length in bytes>:<value>\n`. Templates count by their source text: two
/// sources that parse alike but read differently are different prompts to review.
fn canonical_line(e: &Entry<'_>) -> String {
    let (kind, value) = match e.value {
        ValueRef::Text(s) => ('s', s.to_string()),
        ValueRef::Int(n) => ('i', n.to_string()),
        ValueRef::Bool(b) => ('b', b.to_string()),
        ValueRef::Choice { wire, .. } => ('c', wire.to_string()),
        ValueRef::Template(t) => ('t', t.source.to_string()),
    };
    format!("{}/{}={kind}:{}:{value}\n", e.file.file_name(), e.key, value.len())
}
