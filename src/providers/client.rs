//! The `reqwest::Client`s every real provider shares: one for API calls (redirects only within the
//! API's own origin, so a key header never follows one elsewhere) and one for output downloads (no
//! redirects, addresses checked by [`OutboundPolicy`](super::outbound::OutboundPolicy)), both with
//! Mozilla's TLS roots compiled in. Building them is all this file does: it sends nothing.

use reqwest::{Url, redirect};

use super::config::ProviderConfig;
use super::upstream_error::describe;

/// Same-origin API redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Builds the client all providers share for API calls (one connection pool, one TLS setup).
///
/// Fails rather than panics when the platform has no usable TLS roots, so the server can report it
/// at startup.
pub fn build_client(config: &ProviderConfig) -> Result<reqwest::Client, String> {
    let api_origins: Vec<_> = [&config.gemini_base_url, &config.replicate_base_url]
        .into_iter()
        .filter_map(|base| Url::parse(base).ok())
        .map(|url| url.origin())
        .collect();
    // API calls carry a key in a header that reqwest would forward on a redirect to another host
    // (it strips only `Authorization`), so an API answer may redirect only within its own origin.
    let policy = redirect::Policy::custom(move |attempt| {
        let first_origin = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if first_origin.as_ref().is_some_and(|o| api_origins.contains(o) && *o == attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    finish(common(config).redirect(policy))
}

/// The client for output downloads: URLs an upstream's answer chose, so it follows no redirect (the
/// target would sidestep the address check) and resolves names only to addresses downloads may
/// reach from the provider at `base_url` (see [`OutboundPolicy`](super::outbound::OutboundPolicy)).
pub fn build_download_client(config: &ProviderConfig, base_url: &str) -> Result<reqwest::Client, String> {
    let policy = super::outbound::OutboundPolicy::new(base_url);
    finish(common(config).redirect(redirect::Policy::none()).dns_resolver(policy))
}

fn common(config: &ProviderConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("mvgen/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
}

fn finish(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        // Mozilla's roots are compiled in, so HTTPS works where there is no CA store at all (a
        // `scratch` image has no /etc/ssl) and trusts the same roots on every host.
        .tls_backend_preconfigured(crate::tls::client_config()?)
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", describe(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client must not depend on the host's CA store. `SSL_CERT_FILE` and `SSL_CERT_DIR`
    /// pointing at nothing leave rustls' platform verifier with no roots (the empty-root case); the
    /// check runs in a child process so this process's environment stays untouched.
    #[test]
    fn client_builds_without_a_system_ca_store() {
        let empty = std::env::temp_dir().join(format!("mvgen-no-ca-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("create an empty CA dir");
        let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "providers::client::tests::client_builds_here", "--ignored", "--nocapture"])
            .env("SSL_CERT_FILE", empty.join("no-such-bundle.pem"))
            .env("SSL_CERT_DIR", &empty)
            .output()
            .expect("run the test binary");
        let _ = std::fs::remove_dir(&empty);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && stdout.contains("1 passed"), "{stdout}\n{stderr}");
    }

    #[test]
    #[ignore = "run by client_builds_without_a_system_ca_store with the CA store hidden"]
    fn client_builds_here() {
        build_client(&ProviderConfig::default()).expect("the HTTP client builds");
    }
}
