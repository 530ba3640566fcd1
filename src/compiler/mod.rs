//! The flavor compiler: a `configs/` directory in, fully resolved flavors (or every fault found) out.
//!
//! Stages, in order: `discover` finds flavor directories and their files, `yaml` reads each file into
//! positioned entries, `schema` checks every key, `resolve` applies inheritance. The same code runs in
//! build.rs (through a `#[path]` module) and in the `mvgen check/show/diff/render` commands, so files
//! here refer to each other with `super::`, use only std, serde, serde-saphyr and sha2, never print and
//! never panic: they return values and let the caller decide how to show them.

mod diag;
mod discover;
mod hash;
mod layer;
mod model;
mod resolve;
mod schema;
pub mod template;
mod yaml;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics, did_you_mean, nearest};
pub use hash::{HASH_LEN, content_hash};
pub use model::{
    AspectRatio, Choice, Entry, FileKind, Flavor, Key, Origin, OutputFormat, PersonGeneration, SafetyFilterLevel,
    Sourced, Text, ValueRef, VideoAspectRatio, VideoPersonGeneration,
};
pub use schema::{
    ImageParams, ImagePrompts, KeySchema, NUMBER_OF_SCENES, Parameters, ScenePrompts, Shape, VIDEO_DURATION,
    meta_key_schemas,
};
pub use template::{Segment, Template, TemplateError, Var};

/// The flavor every other one inherits from, and the one used when a request names none.
pub const DEFAULT_FLAVOR: &str = "default";

/// Compiles every flavor under `dir`. Paths in diagnostics start with `dir` as given, so
/// `compile(Path::new("configs"))` reports `configs/mv1/parameters.yaml:7:19: ...`.
/// On success the flavors are sorted by name.
pub fn compile(dir: &Path) -> Result<Vec<Flavor>, Diagnostics> {
    let mut diags = Diagnostics::default();
    let sources = discover::discover(dir, &mut diags);
    let layers: Vec<layer::Layer> = sources.into_iter().map(|s| layer::Layer::read(s, &mut diags)).collect();
    let flavors = resolve::resolve(&layers, &mut diags);
    if diags.is_empty() { Ok(flavors) } else { Err(diags.sorted()) }
}

/// What [`is_flavor_name`] accepts, as a regex (for `mvgen schema`).
pub const FLAVOR_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,63}$";

/// Whether `name` is a valid flavor name: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn is_flavor_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}
