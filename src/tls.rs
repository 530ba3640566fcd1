//! The crypto under every TLS client mvgen builds (the providers' API and download clients, the
//! webhook sender, the S3 connector, the OTLP exporter, all reqwest over rustls): *ring*, installed
//! as rustls' process-wide provider. reqwest is built with `rustls-no-provider` (its `rustls`
//! feature would link aws-lc), so it takes the provider installed here and panics building a
//! client when there is none. sqlx's PostgreSQL TLS names ring itself (`tls-rustls-ring-webpki`)
//! and object_store's S3 signing uses ring's HMAC and SHA-256 (its `ring` feature).

use std::sync::Once;

/// Installs ring as rustls' default crypto provider, once per process. Every HTTPS client builder
/// calls this first; a provider some embedding program installed before is kept.
pub fn install_crypto_provider() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // Err only when a provider is installed already, which is what this ensures.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
