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

/// The app state of a test that runs the job engine itself: the offline mock providers, files in
/// `storage`, the default flavors, eight generations at once.
pub fn mock_app_state(storage: std::sync::Arc<dyn mvgen::storage::Storage>) -> mvgen::state::AppState {
    mvgen::state::AppState {
        providers: mvgen::providers::Providers::mock(),
        storage,
        debug: false,
        strict_flavors: false,
        generations: mvgen::limits::GenerationSlots::new(8),
        flavors: Default::default(),
    }
}

/// A plain reqwest client for a test's own requests. reqwest links no crypto provider of its own
/// (`rustls-no-provider`), so a test's client gets mvgen's TLS setup (ring, `mvgen::tls`) as the
/// server's clients do.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("the test's HTTP client")
}

/// [`http_client`]'s builder, for a test that sets timeouts, pools or headers.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(mvgen::tls::client_config().expect("mvgen's TLS setup"))
}
