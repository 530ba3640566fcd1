//! Integration tests of the flavor compiler and of the `mvgen` commands built on it.
//!
//! Belongs here: the configs compiler (fault fixtures, the drift guard, hashes, golden renders,
//! JSON Schemas) and the `mvgen` commands built on it, run as the real binary (`check`, `show`,
//! `diff`, `render`, `schema`). One module per concern.
//!
//! One test binary for the whole area, as for every area under `tests/` (linking the crate once,
//! not once per file, matters on a shared two-core machine).

mod cargo_build;
mod cli;
mod embedded;
mod fixtures;
mod golden;
mod hashes;
mod json_schema;
mod layering;
mod properties;
mod scratch;

#[path = "../support/tool.rs"]
mod tool;
