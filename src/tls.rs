//! The TLS under every HTTPS client mvgen builds (the providers' API and download clients, the
//! webhook sender, the S3 connector, the OTLP exporter, all reqwest over rustls): one rustls
//! setup, [`client_config`], with *ring* as its crypto and Mozilla's roots compiled in.
//!
//! reqwest is built with `rustls-no-provider` (its `rustls` feature would link aws-lc) and gets
//! this setup whole (`tls_backend_preconfigured`), so it neither looks for rustls' process-wide
//! provider nor parses root certificates of its own. The roots are `webpki-roots`' trust anchors,
//! the ones sqlx's PostgreSQL TLS (`tls-rustls-ring-webpki`) links anyway, so the binary carries
//! one copy of Mozilla's list. object_store's S3 signing uses ring too (its `ring` feature).

use std::sync::{Arc, Once};

/// The rustls client setup: ring, TLS 1.2 and 1.3, Mozilla's roots compiled in (so HTTPS works
/// where there is no CA store at all, a `scratch` image has no /etc/ssl, and trusts the same roots
/// on every host), HTTP/1.1 offered by ALPN as reqwest offers it (its HTTP/2 is not built).
pub fn client_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Installs ring as rustls' process-wide crypto provider, once: for a reqwest client built
/// without [`client_config`] (one a library makes for itself, such as chromiumoxide's; a test's
/// `reqwest::Client::new()`), which reqwest sets up from that provider and panics without one.
pub fn install_crypto_provider() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // Err only when a provider is installed already, which is what this ensures.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
