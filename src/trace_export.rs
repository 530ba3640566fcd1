//! OpenTelemetry trace export over OTLP/HTTP (protobuf), built only when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set. Off, nothing is
//! built: no exporter, no layer, no thread, and `trace_context` stays a no-op.
//!
//! The SDK reads the rest of the standard variables itself: `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` (the resource), `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS` and
//! `_TIMEOUT` (the exporter), `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`,
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (the batch processor), `OTEL_TRACES_SAMPLER[_ARG]`. Not built
//! in: compression (`_COMPRESSION`), gRPC and JSON: another `OTEL_EXPORTER_OTLP_PROTOCOL` than
//! `http/protobuf` is a settings error rather than traces sent in a form the collector refuses.
//!
//! The batch processor exports from its own thread; the requests go through a reqwest client (the
//! same crate and TLS roots as the providers'), run on the process's tokio runtime, since a
//! reqwest future needs one and that thread has none.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The variables that switch the export on (either one).
const ENDPOINTS: [&str; 2] = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"];

/// Whether an OTLP endpoint is configured (`OTEL_SDK_DISABLED=true` turns it off again).
pub fn configured(env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && ENDPOINTS.iter().any(|name| set(name))
}

/// The tracer provider spans are exported through; flush it on exit with [`Exporting::shutdown`].
pub struct Exporting {
    provider: SdkTracerProvider,
}

impl Exporting {
    /// The tracing layer that turns spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("mvgen"))
    }

    /// Sends the spans still batched (blocks; call outside the runtime's worker threads).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("mvgen: could not flush the last trace spans: {e}");
        }
    }
}

/// Builds the exporter when [`configured`]; `Ok(None)` otherwise. `runtime` runs its requests.
pub fn start(runtime: tokio::runtime::Handle) -> Result<Option<Exporting>, String> {
    let env = |name: &str| std::env::var(name).ok();
    if !configured(env) {
        return Ok(None);
    }
    for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(protocol) = env(name).filter(|p| !p.trim().is_empty()) {
            if protocol.trim() != "http/protobuf" {
                return Err(format!("{name}={protocol:?}: only \"http/protobuf\" is supported"));
            }
            break;
        }
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("mvgen/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(crate::tls::client_config()?)
        .build()
        .map_err(|e| format!("cannot set up the trace exporter's HTTP client: {e}"))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(OnRuntime { client, runtime })
        .build()
        .map_err(|e| format!("cannot set up the OTLP trace exporter: {e}"))?;
    // `Resource::builder()` runs the SDK's detectors: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES.
    let resource = opentelemetry_sdk::Resource::builder().build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    crate::trace_context::enable();
    Ok(Some(Exporting { provider }))
}

/// reqwest's client, its requests spawned on the process's runtime (see the module doc).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        self.runtime.spawn(async move { client.send_bytes(request).await }).await?
    }
}

#[cfg(test)]
mod tests {
    use super::configured;

    #[test]
    fn either_endpoint_switches_export_on_and_sdk_disabled_off() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert!(!configured(env(&[])));
        assert!(!configured(env(&[("OTEL_SERVICE_NAME", "mvgen")])));
        assert!(!configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(configured(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")])));
        assert!(configured(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])));
        let off = &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_SDK_DISABLED", "true")];
        assert!(!configured(env(off)));
    }
}
