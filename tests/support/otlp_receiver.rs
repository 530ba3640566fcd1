//! A fake OpenTelemetry collector on `127.0.0.1:0`: takes OTLP/HTTP trace exports
//! (`POST /v1/traces`, protobuf), decodes them with the protocol's own generated types
//! (`opentelemetry-proto`, apart from the SDK that encoded them) and records every span with its
//! trace, parent, attributes and the exporting process's `service.name`. Runs on its own thread and
//! runtime, and stops when dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;

/// One exported span, its ids in lowercase hex (the parent empty for a root).
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    /// The W3C `tracestate` the span carries (`""` without one).
    pub trace_state: String,
    pub attributes: BTreeMap<String, String>,
}

impl Span {
    /// The attribute `key` as text (`""` when absent).
    pub fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct Recorded {
    spans: Vec<Span>,
    /// Every request that reached the receiver, valid or not (a test of "nothing is sent").
    requests: usize,
    /// Why a request could not be decoded, if one could not.
    faults: Vec<String>,
}

pub struct OtlpReceiver {
    base: String,
    recorded: Arc<Mutex<Recorded>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the OTLP receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = recorded.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().fallback(receive).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        OtlpReceiver { base, recorded, stop: Some(stop), thread: Some(thread) }
    }

    /// The value for `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter appends `/v1/traces`).
    pub fn endpoint(&self) -> String {
        self.base.clone()
    }

    pub fn spans(&self) -> Vec<Span> {
        let recorded = self.recorded.lock().expect("recorded");
        assert!(recorded.faults.is_empty(), "undecodable exports: {:?}", recorded.faults);
        recorded.spans.clone()
    }

    pub fn requests(&self) -> usize {
        self.recorded.lock().expect("recorded").requests
    }

    /// Waits up to `limit` until `done` holds for the spans received; the spans either way.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.spans();
            if done(&spans) || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn receive(
    State(recorded): State<Arc<Mutex<Recorded>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut recorded = recorded.lock().expect("recorded");
    recorded.requests += 1;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if uri.path() != "/v1/traces" || content_type != "application/x-protobuf" {
        recorded.faults.push(format!("{} with content-type {content_type:?}", uri.path()));
        return StatusCode::NOT_FOUND.into_response();
    }
    let request = match ExportTraceServiceRequest::decode(body) {
        Ok(request) => request,
        Err(e) => {
            recorded.faults.push(format!("not an ExportTraceServiceRequest: {e}"));
            return StatusCode::BAD_REQUEST.into_response();
        }
    };
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                recorded.spans.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    trace_state: span.trace_state,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    // An empty ExportTraceServiceResponse: everything accepted.
    (StatusCode::OK, [("content-type", "application/x-protobuf")]).into_response()
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    pairs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map(text).unwrap_or_default())).collect()
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
