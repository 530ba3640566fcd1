//! Helpers shared by the integration test binaries: each area's `main.rs` (and `tests/browser.rs`)
//! includes this with `mod support;`, and its modules reach it as `crate::support`.
//!
//! Each test binary uses only some of these helpers, and each binary is linted on its own, so
//! unused-item warnings here would be noise.
#![allow(dead_code)]

// `chromium.rs` is not declared here: only `tests/browser.rs` includes it (by path), so the other
// binaries never compile chromiumoxide's protocol types.

pub mod certs;
pub mod client;
pub mod fake_upstream;
pub mod job_pipeline;
pub mod nginx;
pub mod otlp_receiver;
pub mod postgres;
pub mod seaweed;
pub mod server_process;
pub mod test_app;
pub mod tmpfs;
pub mod tool;
pub mod webhook_receiver;
