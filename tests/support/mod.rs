//! Helpers shared by the integration test binaries (`tests/*.rs` include this with `mod support;`).
//!
//! Each test binary uses only some of these helpers, and each binary is linted on its own, so
//! unused-item warnings here would be noise.
#![allow(dead_code)]

pub mod client;
pub mod fake_upstream;
pub mod seaweed;
pub mod server_process;
pub mod test_app;
pub mod tool;
