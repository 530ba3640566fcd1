//! Integration tests of the flavor compiler and of the `mvgen` commands built on it.
//!
//! One test binary for the whole area (linking the crate once, not once per file, matters on a
//! shared two-core machine). The modules live in `tests/compiler/` and are pulled in by path so
//! cargo doesn't also build each of them as a test binary of its own.

#[path = "compiler/scratch.rs"]
mod scratch;

#[path = "compiler/fixtures.rs"]
mod fixtures;

#[path = "compiler/embedded.rs"]
mod embedded;

#[path = "compiler/cli.rs"]
mod cli;

#[path = "compiler/cargo_build.rs"]
mod cargo_build;

#[path = "compiler/properties.rs"]
mod properties;

#[path = "compiler/hashes.rs"]
mod hashes;

#[path = "compiler/golden.rs"]
mod golden;

#[path = "compiler/json_schema.rs"]
mod json_schema;

#[path = "support/tool.rs"]
mod tool;
