//! The flavor compiler: a `configs/` directory in, fully resolved flavors (or every fault found) out.
//!
//! Stages, in order: `discover` finds flavor directories and their files (`read` opens each, refusing
//! what cannot be a configs file), `yaml` parses each into positioned entries, `schema` checks every
//! key, `resolve` applies inheritance. What it builds are the run-time types of [`crate::model`]: the compiler depends on the model, never the reverse, and
//! nothing on a request path imports the compiler. The same code runs in build.rs (through a `#[path]`
//! module, with `model` included next to it so `crate::model` names the same files) and in the
//! `mvgen check/show/diff/render --configs` commands and `serve --configs` (`live_configs`), so files
//! here refer to each other with `super::`, use only std, serde, serde-saphyr, sha2 and libc, never
//! print and never panic: they return values and let the caller decide how to show them.

mod diag;
mod discover;
mod hash;
mod layer;
mod read;
mod resolve;
mod schema;
mod yaml;

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{FileKind, Flavor, MAX_FLAVOR_NAME_CHARS};

pub use diag::{Diagnostic, Diagnostics};
pub use hash::{HASH_LEN, content_hash};
pub use read::MAX_FILE_BYTES;
pub use schema::{KeySchema, Shape, meta_key_schemas};

/// Compiles every flavor under `dir`. Paths in diagnostics start with `dir` as given, so
/// `compile(Path::new("configs"))` reports `configs/mv1/parameters.yaml:7:19: ...`.
/// On success the flavors are sorted by name.
pub fn compile(dir: &Path) -> Result<Vec<Flavor>, Diagnostics> {
    compile_reading(dir).0
}

/// Every configs file a compile read, by the path its diagnostics use, with its size in bytes; a
/// file that could not be read (missing, special, too big) is not in it.
pub type FilesRead = BTreeMap<String, usize>;

/// [`compile`], and which files that compile read. `serve --configs` decides from these sizes, the
/// bytes the compile actually saw, whether an edit is still being written (`live_configs`).
pub fn compile_reading(dir: &Path) -> (Result<Vec<Flavor>, Diagnostics>, FilesRead) {
    let mut diags = Diagnostics::default();
    let sources = discover::discover(dir, &mut diags);
    let read: FilesRead = sources.iter().flat_map(|s| s.read.iter().cloned()).collect();
    let layers: Vec<layer::Layer> = sources.into_iter().map(|s| layer::Layer::read(s, &mut diags)).collect();
    let flavors = resolve::resolve(&layers, &mut diags);
    (if diags.is_empty() { Ok(flavors) } else { Err(diags.sorted()) }, read)
}

/// Compiles one self-contained flavor from settings files held in memory (`files`: each file's
/// kind and YAML text), with no parent: every key must be set. This is how a project's pinned
/// flavor comes back from its stored content (`pinned_flavor`) once the served table no longer has
/// it as it was. Diagnostics name the files `pinned/{name}/{file}`.
pub fn compile_flavor_files(name: &str, files: &[(FileKind, String)]) -> Result<Flavor, Diagnostics> {
    let mut diags = Diagnostics::default();
    let path = format!("pinned/{name}");
    let mut parsed = Vec::new();
    for (kind, text) in files {
        match yaml::YamlFile::parse(format!("{path}/{}", kind.file_name()), text.as_bytes()) {
            Ok(file) => parsed.push((*kind, file)),
            Err(d) => diags.push(d),
        }
    }
    if !diags.is_empty() {
        return Err(diags.sorted());
    }
    let source = discover::FlavorSource { name: name.to_owned(), path, files: parsed, read: Vec::new(), broken: false };
    let layer = layer::Layer::read(source, &mut diags);
    let flavor = resolve::resolve_alone(&layer, &mut diags);
    match flavor {
        Some(flavor) if diags.is_empty() => Ok(flavor),
        _ => Err(diags.sorted()),
    }
}

/// What [`is_flavor_name`] accepts, as a regex (for `mvgen schema`). Spelled out, since a
/// `&'static str` cannot be formatted from a constant: its `{0,63}` is [`MAX_FLAVOR_NAME_CHARS`]
/// less the first character, which a test below checks.
pub const FLAVOR_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// Whether `name` is a valid flavor name: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_flavor_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= MAX_FLAVOR_NAME_CHARS
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_and_the_check_agree_on_the_longest_name() {
        let tail = MAX_FLAVOR_NAME_CHARS - 1;
        assert_eq!(FLAVOR_NAME_PATTERN, format!("^[a-z0-9][a-z0-9_-]{{0,{tail}}}$"));
        assert!(is_flavor_name(&"a".repeat(MAX_FLAVOR_NAME_CHARS)));
        assert!(!is_flavor_name(&"a".repeat(MAX_FLAVOR_NAME_CHARS + 1)));
    }
}
