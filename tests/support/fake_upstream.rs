//! Fake Gemini and Replicate servers on `127.0.0.1:0`, speaking the wire formats of
//! `shared/reference/providers.md`, so tests exercise the real HTTP clients without the network.
//!
//! Both fakes record every request they receive ([`ReceivedRequest`]: method, path, query, headers,
//! body) and can be scripted per call: [`Scripted`] answers (status, headers, body, delay; also
//! endless and broken bodies) are queued and used before the default behaviour. A fake stops when
//! it is dropped.
//!
//! ```ignore
//! let gemini = FakeGemini::start().await;
//! gemini.set_default_scenes(4);
//! gemini.push_response(Scripted::json(429, FakeGemini::error_body(429, "RESOURCE_EXHAUSTED", "slow down"))
//!     .with_header("retry-after", "1"));
//! let replicate = FakeReplicate::start().await;
//! replicate.push_prediction(PredictionPlan { polls_until_done: 3, outcome: Outcome::Fail("boom".into()) });
//! let config = test_provider_config(&gemini.base_url, &replicate.base_url);
//! let providers = Providers::from_config(&config)?;
//! // ... then assert on gemini.received(), replicate.received_on(Route::Create), ...
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{StreamExt, stream};
use mvgen::providers::{ProviderConfig, RetryPolicy};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The Gemini key [`test_provider_config`] configures.
pub const TEST_GEMINI_KEY: &str = "test-gemini-key-AIza0000";
/// The Replicate token [`test_provider_config`] configures.
pub const TEST_REPLICATE_TOKEN: &str = "r8_test-replicate-token-0000";

/// Real clients pointed at the fakes with test keys and tiny timeouts, poll intervals and backoff,
/// so a whole retrying, polling run takes milliseconds. Tests tweak single fields as needed.
pub fn test_provider_config(gemini_base_url: &str, replicate_base_url: &str) -> ProviderConfig {
    ProviderConfig {
        force_mock: false,
        gemini_api_key: Some(TEST_GEMINI_KEY.to_owned()),
        gemini_base_url: gemini_base_url.to_owned(),
        replicate_api_token: Some(TEST_REPLICATE_TOKEN.to_owned()),
        replicate_base_url: replicate_base_url.to_owned(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
        replicate_wait: Duration::from_secs(5),
        poll_interval: Duration::from_millis(5),
        image_deadline: Duration::from_secs(5),
        video_deadline: Duration::from_secs(5),
        download_timeout: Duration::from_secs(5),
        max_image_bytes: 20 * 1024 * 1024,
        max_video_bytes: 200 * 1024 * 1024,
        gemini_poll_interval: Duration::from_millis(5),
        replicate_webhook_url: None,
        replicate_backstop_poll: Duration::from_secs(30),
    }
}

/// One request as a fake received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    /// The path without the query, e.g. `/v1/predictions/pred-1`.
    pub path: String,
    pub query: Option<String>,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or `Value::Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A canned answer for one request.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ScriptedBody,
    /// Waited before answering: longer than the client's timeout makes it a hang.
    pub delay: Duration,
}

/// How a [`Scripted`] body is sent.
#[derive(Debug, Clone)]
pub enum ScriptedBody {
    /// All at once, with `Content-Length`.
    Bytes(Vec<u8>),
    /// Chunked, without `Content-Length`.
    Streamed(Vec<u8>),
    /// Chunked zeros that never end (until the client hangs up).
    Endless,
    /// These bytes, chunked, then the connection is aborted mid-body.
    BrokenAfter(Vec<u8>),
    /// The first `at` bytes, then nothing until the [`Gate`] opens, then the rest (with
    /// `Content-Length`): a download caught mid-body for as long as a test needs.
    Held { bytes: Vec<u8>, at: usize, gate: Gate },
    /// These bytes, chunked, then nothing more (the connection stays open): a stalled download.
    StalledAfter(Vec<u8>),
}

/// Holds [`ScriptedBody::Held`] bodies mid-body until opened; counts the bodies it holds. Clones
/// share one gate.
#[derive(Debug, Clone)]
pub struct Gate {
    open: Arc<tokio::sync::watch::Sender<bool>>,
    reached: Arc<AtomicU32>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate { open: Arc::new(tokio::sync::watch::Sender::new(false)), reached: Arc::default() }
    }
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every held body (and every later one) send its rest.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// How many bodies have sent their first part and reached the gate (held or let through).
    pub fn reached(&self) -> u32 {
        self.reached.load(Ordering::SeqCst)
    }

    /// The rest of a body, once the gate is open. Counted when the first part has been taken by
    /// the server, that is when the client is mid-download.
    async fn pass(self, rest: Bytes) -> Result<Bytes, std::io::Error> {
        self.reached.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.subscribe();
        // The sender lives in `self`, so the wait ends only by opening.
        let _ = open.wait_for(|open| *open).await;
        Ok(rest)
    }
}

impl Scripted {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: Value) -> Self {
        Scripted::bytes(status, body.to_string().into_bytes()).with_header("content-type", "application/json")
    }

    /// `status` with raw bytes and no content type (for garbage answers).
    pub fn bytes(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Scripted { status, headers: Vec::new(), body: ScriptedBody::Bytes(body.into()), delay: Duration::ZERO }
    }

    /// `status` with an empty body.
    pub fn status(status: u16) -> Self {
        Scripted::bytes(status, Vec::new())
    }

    /// 200 with a body that never ends.
    pub fn endless() -> Self {
        Scripted { body: ScriptedBody::Endless, ..Scripted::status(200) }
    }

    /// `status` and the start of `body`, then the connection drops.
    pub fn broken(status: u16, body_start: impl Into<Vec<u8>>) -> Self {
        Scripted { body: ScriptedBody::BrokenAfter(body_start.into()), ..Scripted::status(status) }
    }

    /// An answer that does not come for an hour: a client timeout fires first.
    pub fn hang() -> Self {
        Scripted::status(200).with_delay(Duration::from_secs(3600))
    }

    /// Adds a response header (e.g. `retry-after`).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Waits this long before answering.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    async fn into_response(self) -> Response {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        // Set for a streamed body that still announces its length.
        let mut length = None;
        let body = match self.body {
            ScriptedBody::Bytes(bytes) => Body::from(bytes),
            ScriptedBody::Streamed(bytes) => {
                let chunks: Vec<Result<Bytes, std::io::Error>> =
                    bytes.chunks(4096).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                Body::from_stream(stream::iter(chunks))
            }
            ScriptedBody::Endless => Body::from_stream(stream::repeat_with(|| {
                Ok::<_, std::io::Error>(Bytes::from_static(&[0u8; 16 * 1024]))
            })),
            ScriptedBody::BrokenAfter(bytes) => {
                // A moment before the cut, so the bytes before it go out first (hyper would drop
                // a chunk still buffered with the headers, and the cut would come before the body).
                let cut = stream::once(async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fake upstream hung up"))
                });
                Body::from_stream(futures_util::StreamExt::chain(stream::iter([Ok(Bytes::from(bytes))]), cut))
            }
            ScriptedBody::StalledAfter(bytes) => {
                let start = stream::iter([Ok::<_, std::io::Error>(Bytes::from(bytes))]);
                Body::from_stream(futures_util::StreamExt::chain(start, stream::pending()))
            }
            ScriptedBody::Held { bytes, at, gate } => {
                let mut bytes = Bytes::from(bytes);
                length = Some(bytes.len());
                let rest = bytes.split_off(at.min(bytes.len()));
                let first = stream::iter([Ok::<_, std::io::Error>(bytes)]);
                Body::from_stream(first.chain(stream::once(gate.pass(rest))))
            }
        };
        let mut response = Response::new(body);
        if let Some(length) = length {
            response.headers_mut().insert(axum::http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// A fake Gemini: `POST /v1beta/models/{model}:generateContent` answers queued responses first,
/// then a valid scenes answer with [`FakeGemini::set_default_scenes`] scenes (3 unless set).
///
/// It also speaks Veo's long-running protocol ([`VeoRoute`]): `predictLongRunning` starts an
/// operation that behaves as the next queued [`VeoPlan`] says (default: done on the first poll with
/// an MP4), polls and `:cancel` work on it by name, and the video URI redirects to a second
/// listener, [`FakeGemini::file_host_url`], another origin as Google's file host is. Veo routes
/// without an `x-goog-api-key` header get 403, as the real API answers unregistered callers.
pub struct FakeGemini {
    /// `http://127.0.0.1:PORT`, for `GEMINI_BASE_URL`.
    pub base_url: String,
    /// `http://127.0.0.1:OTHER_PORT`: where video downloads are redirected to.
    pub file_host_url: String,
    shared: Arc<GeminiShared>,
    server: JoinHandle<()>,
    file_host: JoinHandle<()>,
}

#[derive(Default)]
struct GeminiShared {
    base_url: Mutex<String>,
    file_host_url: Mutex<String>,
    received: Mutex<Vec<ReceivedRequest>>,
    queue: Mutex<VecDeque<Scripted>>,
    default_scenes: AtomicU32,
    veo_overrides: Mutex<HashMap<VeoRoute, VecDeque<Scripted>>>,
    veo_plans: Mutex<VecDeque<VeoPlan>>,
    operations: Mutex<HashMap<String, LiveOperation>>,
    next_operation: AtomicU64,
}

/// Which Veo endpoint of [`FakeGemini`] a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VeoRoute {
    /// `POST /v1beta/models/{model}:predictLongRunning`
    Start,
    /// `GET /v1beta/models/{model}/operations/{id}`
    Poll,
    /// `POST /v1beta/models/{model}/operations/{id}:cancel`
    Cancel,
    /// `GET /v1beta/files/{id}:download?alt=media`: redirects to the file host.
    Download,
    /// `GET /video-host/{id}` on the file host.
    FileHost,
}

impl VeoRoute {
    fn of(method: &str, path: &str) -> Option<VeoRoute> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["v1beta", "models", m]) if m.ends_with(":predictLongRunning") => Some(VeoRoute::Start),
            ("GET", ["v1beta", "models", _, "operations", id]) if !id.contains(':') => Some(VeoRoute::Poll),
            ("POST", ["v1beta", "models", _, "operations", id]) if id.ends_with(":cancel") => Some(VeoRoute::Cancel),
            ("GET", ["v1beta", "files", f]) if f.ends_with(":download") => Some(VeoRoute::Download),
            ("GET", ["video-host", _]) => Some(VeoRoute::FileHost),
            _ => None,
        }
    }
}

/// How one Veo operation started on [`FakeGemini`] behaves.
#[derive(Debug, Clone)]
pub struct VeoPlan {
    /// 0: the start answer is already done; n: polls 1..n-1 say not done, poll n is done.
    pub polls_until_done: u32,
    pub outcome: VeoOutcome,
}

impl VeoPlan {
    /// Not done until [`FakeGemini::finish_operation`], then `outcome`.
    pub fn held(outcome: VeoOutcome) -> VeoPlan {
        VeoPlan { polls_until_done: u32::MAX, outcome }
    }
}

/// How a Veo operation ends.
#[derive(Debug, Clone)]
pub enum VeoOutcome {
    /// One generated sample whose URI serves this file (through the file host redirect).
    Succeed(FakeFile),
    /// `error: {code, message}`.
    Fail { code: i64, message: String },
    /// Done with no samples and these `raiMediaFilteredReasons`.
    SafetyBlock(Vec<String>),
    /// Never done until cancelled.
    NeverFinish,
}

struct LiveOperation {
    /// The last segment of the name, which the video URI and the file host use.
    id: String,
    plan: VeoPlan,
    polls: u32,
    canceled: bool,
}

impl FakeGemini {
    /// Binds two free local ports (the API and the file host) and starts serving.
    pub async fn start() -> FakeGemini {
        let shared = Arc::new(GeminiShared { default_scenes: AtomicU32::new(3), ..Default::default() });
        let app = Router::new().fallback(gemini_handler).with_state(shared.clone());
        let (base_url, server) = serve(app).await;
        let files = Router::new().fallback(file_host_handler).with_state(shared.clone());
        let (file_host_url, file_host) = serve(files).await;
        *lock(&shared.base_url) = base_url.clone();
        *lock(&shared.file_host_url) = file_host_url.clone();
        FakeGemini { base_url, file_host_url, shared, server, file_host }
    }

    /// The requests that hit Veo route `route`, oldest first (file host requests included).
    pub fn received_on(&self, route: VeoRoute) -> Vec<ReceivedRequest> {
        self.received().into_iter().filter(|r| VeoRoute::of(&r.method, &r.path) == Some(route)).collect()
    }

    /// The plan for the next Veo operation started (queued, first in first out).
    pub fn push_veo_plan(&self, plan: VeoPlan) {
        lock(&self.shared.veo_plans).push_back(plan);
    }

    /// Answers the next request on `route` with `response` instead of the normal behaviour
    /// (queued per route). The request is still recorded.
    pub fn push_veo_response(&self, route: VeoRoute, response: Scripted) {
        lock(&self.shared.veo_overrides).entry(route).or_default().push_back(response);
    }

    /// How many operations were started on `model`: each start is a paid run.
    pub fn starts_for(&self, model: &str) -> usize {
        let path = format!("/v1beta/models/{model}:predictLongRunning");
        self.received_on(VeoRoute::Start).iter().filter(|r| r.path == path).count()
    }

    /// How many times operation `name` was fetched (`GET /v1beta/{name}`).
    pub fn polls_of(&self, name: &str) -> usize {
        let path = format!("/v1beta/{name}");
        self.received_on(VeoRoute::Poll).iter().filter(|r| r.path == path).count()
    }

    /// Lets an operation planned with [`VeoPlan::held`] end as planned on its next fetch.
    /// Operations live in the fake, so any client sees them; unknown names answer 404.
    pub fn finish_operation(&self, name: &str) {
        if let Some(live) = lock(&self.shared.operations).get_mut(name) {
            live.plan.polls_until_done = 0;
        }
    }

    /// Names of the operations that were cancelled, in order.
    pub fn cancelled_operations(&self) -> Vec<String> {
        self.received_on(VeoRoute::Cancel)
            .iter()
            .filter_map(|r| r.path.strip_prefix("/v1beta/")?.strip_suffix(":cancel").map(str::to_owned))
            .collect()
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.received).clone()
    }

    /// Answers the next `generateContent` call with `response` (queued, first in first out).
    pub fn push_response(&self, response: Scripted) {
        lock(&self.shared.queue).push_back(response);
    }

    /// How many scenes the default answer has.
    pub fn set_default_scenes(&self, n: u32) {
        self.shared.default_scenes.store(n, Ordering::SeqCst);
    }

    /// A 200 `generateContent` body whose text is `{"scenes": [...]}` with `n` scenes.
    pub fn scenes_body(n: u32) -> Value {
        FakeGemini::text_body(&FakeGemini::scenes_json(n).to_string(), "STOP")
    }

    /// `{"scenes": [...]}` with `n` scenes: `fake scene {i} of {n}` / `fake negative {i}`.
    pub fn scenes_json(n: u32) -> Value {
        let scenes: Vec<Value> = (1..=n)
            .map(|i| json!({"description": format!("fake scene {i} of {n}"), "negative_description": format!("fake negative {i}")}))
            .collect();
        json!({ "scenes": scenes })
    }

    /// A 200 `generateContent` body with one candidate whose single part is `text`.
    pub fn text_body(text: &str, finish_reason: &str) -> Value {
        json!({
            "candidates": [{
                "content": {"role": "model", "parts": [{"text": text}]},
                "finishReason": finish_reason,
                "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 20, "totalTokenCount": 30},
            "modelVersion": "gemini-2.5-flash"
        })
    }

    /// Google's error body: `{"error": {"code", "message", "status"}}`.
    pub fn error_body(code: u16, status: &str, message: &str) -> Value {
        json!({"error": {"code": code, "message": message, "status": status}})
    }
}

impl Drop for FakeGemini {
    fn drop(&mut self) {
        self.server.abort();
        self.file_host.abort();
    }
}

async fn gemini_handler(State(shared): State<Arc<GeminiShared>>, request: Request) -> Response {
    let received = record(&shared.received, request).await;
    if let Some(route) = VeoRoute::of(&received.method, &received.path).filter(|r| *r != VeoRoute::FileHost) {
        return veo_answer(&shared, route, &received).into_response().await;
    }
    let is_generate = received.method == "POST"
        && received.path.strip_prefix("/v1beta/models/").is_some_and(|rest| rest.ends_with(":generateContent"));
    if !is_generate {
        let body = FakeGemini::error_body(404, "NOT_FOUND", &format!("no such method: {}", received.path));
        return Scripted::json(404, body).into_response().await;
    }
    let scripted = lock(&shared.queue).pop_front();
    let scripted = scripted
        .unwrap_or_else(|| Scripted::json(200, FakeGemini::scenes_body(shared.default_scenes.load(Ordering::SeqCst))));
    scripted.into_response().await
}

/// The file host: serves `/video-host/{operation id}` without asking for a key, like a pre-signed
/// link.
async fn file_host_handler(State(shared): State<Arc<GeminiShared>>, request: Request) -> Response {
    let received = record(&shared.received, request).await;
    let scripted = lock(&shared.veo_overrides).get_mut(&VeoRoute::FileHost).and_then(VecDeque::pop_front);
    if let Some(scripted) = scripted {
        return scripted.into_response().await;
    }
    let file = match (VeoRoute::of(&received.method, &received.path), received.path.rsplit('/').next()) {
        (Some(VeoRoute::FileHost), Some(id)) => operation_file(&shared, id),
        _ => None,
    };
    file.unwrap_or_else(|| Scripted::status(404)).into_response().await
}

fn operation_file(shared: &GeminiShared, id: &str) -> Option<Scripted> {
    let operations = lock(&shared.operations);
    let live = operations.values().find(|op| op.id == id)?;
    match &live.plan.outcome {
        VeoOutcome::Succeed(file) => Some(file.scripted()),
        _ => None,
    }
}

fn veo_answer(shared: &GeminiShared, route: VeoRoute, received: &ReceivedRequest) -> Scripted {
    if let Some(scripted) = lock(&shared.veo_overrides).get_mut(&route).and_then(VecDeque::pop_front) {
        return scripted;
    }
    if received.header("x-goog-api-key").is_none_or(str::is_empty) {
        let body = FakeGemini::error_body(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers");
        return Scripted::json(403, body);
    }
    let not_found = || {
        let body = FakeGemini::error_body(404, "NOT_FOUND", &format!("no such resource: {}", received.path));
        Scripted::json(404, body)
    };
    let path = received.path.strip_prefix("/v1beta/").unwrap_or_default();
    match route {
        VeoRoute::Start => start_operation(shared, received, path),
        VeoRoute::Poll => update_operation(shared, path, |op| op.polls += 1).unwrap_or_else(not_found),
        VeoRoute::Cancel => {
            let name = path.strip_suffix(":cancel").unwrap_or_default();
            match update_operation(shared, name, |op| op.canceled = true) {
                Some(_) => Scripted::json(200, json!({})),
                None => not_found(),
            }
        }
        VeoRoute::Download => {
            let id = path.strip_prefix("files/").and_then(|f| f.strip_suffix(":download")).unwrap_or_default();
            match received.query.as_deref() {
                Some("alt=media") => {
                    let location = format!("{}/video-host/{id}", lock(&shared.file_host_url));
                    Scripted::status(302).with_header("location", &location)
                }
                _ => Scripted::json(400, FakeGemini::error_body(400, "INVALID_ARGUMENT", "alt=media is required")),
            }
        }
        VeoRoute::FileHost => not_found(),
    }
}

fn start_operation(shared: &GeminiShared, received: &ReceivedRequest, path: &str) -> Scripted {
    let model = path.strip_prefix("models/").and_then(|m| m.strip_suffix(":predictLongRunning")).unwrap_or_default();
    let body = received.json();
    let prompt_ok = body["instances"][0]["prompt"].as_str().is_some_and(|p| !p.trim().is_empty());
    if !prompt_ok || !body["parameters"].is_object() {
        let message = "body must be {\"instances\": [{\"prompt\": ...}], \"parameters\": {...}}";
        return Scripted::json(400, FakeGemini::error_body(400, "INVALID_ARGUMENT", message));
    }
    let plan = lock(&shared.veo_plans)
        .pop_front()
        .unwrap_or_else(|| VeoPlan { polls_until_done: 1, outcome: VeoOutcome::Succeed(FakeFile::mp4()) });
    let id = format!("op-{}", shared.next_operation.fetch_add(1, Ordering::SeqCst) + 1);
    let name = format!("models/{model}/operations/{id}");
    let live = LiveOperation { id, plan, polls: 0, canceled: false };
    let answer = operation_json(&lock(&shared.base_url), &name, &live);
    lock(&shared.operations).insert(name, live);
    Scripted::json(200, answer)
}

fn update_operation(shared: &GeminiShared, name: &str, update: impl FnOnce(&mut LiveOperation)) -> Option<Scripted> {
    let base_url = lock(&shared.base_url).clone();
    let mut operations = lock(&shared.operations);
    let live = operations.get_mut(name)?;
    update(live);
    Some(Scripted::json(200, operation_json(&base_url, name, live)))
}

/// The operation as the Gemini API sends it, in the state `live` is in now.
fn operation_json(base_url: &str, name: &str, live: &LiveOperation) -> Value {
    let done = live.canceled || live.polls >= live.plan.polls_until_done;
    let result = match (&live.plan.outcome, live.canceled, done) {
        (_, true, _) => json!({"error": {"code": 1, "message": "Operation was cancelled."}}),
        (VeoOutcome::NeverFinish, ..) | (_, _, false) => return json!({"name": name}),
        (VeoOutcome::Succeed(_), ..) => json!({"response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [
                {"video": {"uri": format!("{base_url}/v1beta/files/{}:download?alt=media", live.id)}}
            ]}
        }}),
        (VeoOutcome::Fail { code, message }, ..) => json!({"error": {"code": code, "message": message}}),
        (VeoOutcome::SafetyBlock(reasons), ..) => json!({"response": {"generateVideoResponse": {
            "raiMediaFilteredCount": reasons.len(), "raiMediaFilteredReasons": reasons
        }}}),
    };
    let mut operation = json!({"name": name, "done": true});
    if let (Some(target), Some(extra)) = (operation.as_object_mut(), result.as_object()) {
        target.extend(extra.clone());
    }
    operation
}

/// Which Replicate endpoint a request hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /v1/models/{owner}/{name}/predictions`
    Create,
    /// `GET /v1/predictions/{id}`
    Poll,
    /// `POST /v1/predictions/{id}/cancel`
    Cancel,
    /// `GET /files/...`: the output files the fake serves itself.
    File,
    /// Anything else (answered 404).
    Other,
}

impl Route {
    fn of(method: &str, path: &str) -> Route {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("POST", ["v1", "models", _, _, "predictions"]) => Route::Create,
            ("GET", ["v1", "predictions", _]) => Route::Poll,
            ("POST", ["v1", "predictions", _, "cancel"]) => Route::Cancel,
            ("GET", ["files", ..]) => Route::File,
            _ => Route::Other,
        }
    }
}

/// How one prediction created on [`FakeReplicate`] behaves.
#[derive(Debug, Clone)]
pub struct PredictionPlan {
    /// 0: the create answer is already terminal (as if `Prefer: wait` saw it finish);
    /// n: create says `starting`, polls 1..n-1 say `processing`, poll n is terminal.
    pub polls_until_done: u32,
    pub outcome: Outcome,
}

impl PredictionPlan {
    /// `starting`, then `processing` until [`FakeReplicate::finish`], then `outcome`.
    pub fn held(outcome: Outcome) -> PredictionPlan {
        PredictionPlan { polls_until_done: u32::MAX, outcome }
    }
}

/// How a prediction ends.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `output` is the URL of this file, served by the fake.
    Succeed(FakeFile),
    /// `output` is a one-element list with the URL of this file.
    SucceedAsList(FakeFile),
    /// `output` points at a file the fake answers 404 for.
    SucceedWithMissingFile,
    /// `output` is this URL, wherever it points.
    SucceedWithUrl(String),
    /// `status: failed` with this `error`.
    Fail(String),
    /// `status: canceled` (cancelled by someone else).
    Canceled,
    /// Stays `processing` until cancelled.
    NeverFinish,
}

/// An output file the fake serves at `{base_url}/files/{prediction id}/{name}`.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub name: String,
    /// `None` sends no `Content-Type` header.
    pub content_type: Option<String>,
    pub body: ScriptedBody,
}

impl FakeFile {
    /// `bytes` served whole (with `Content-Length`) as `name`.
    pub fn new(name: &str, content_type: Option<&str>, bytes: impl Into<Vec<u8>>) -> FakeFile {
        FakeFile {
            name: name.to_owned(),
            content_type: content_type.map(str::to_owned),
            body: ScriptedBody::Bytes(bytes.into()),
        }
    }

    /// A real 16x9 PNG (`out.png`, `image/png`).
    pub fn png() -> FakeFile {
        let bytes = mvgen::providers::mock::mock_png("fake replicate", Some(1), 16, 9).unwrap_or_default();
        FakeFile::new("out.png", Some("image/png"), bytes)
    }

    /// A real small MP4 (`out.mp4`, `video/mp4`).
    pub fn mp4() -> FakeFile {
        FakeFile::new("out.mp4", Some("video/mp4"), mvgen::providers::mock::MOCK_CLIP)
    }

    /// A file whose body never ends and has no `Content-Length`.
    pub fn endless(name: &str) -> FakeFile {
        FakeFile { name: name.to_owned(), content_type: Some("video/mp4".to_owned()), body: ScriptedBody::Endless }
    }

    /// Sends the first `at` bytes, then holds the rest until `gate` opens (see [`Gate`]).
    pub fn held_at(mut self, at: usize, gate: &Gate) -> FakeFile {
        if let ScriptedBody::Bytes(bytes) | ScriptedBody::Streamed(bytes) = self.body {
            self.body = ScriptedBody::Held { bytes, at, gate: gate.clone() };
        }
        self
    }

    /// Sends the body chunked, without `Content-Length`.
    pub fn streamed(mut self) -> FakeFile {
        if let ScriptedBody::Bytes(bytes) = self.body {
            self.body = ScriptedBody::Streamed(bytes);
        }
        self
    }

    /// The bytes the file serves (empty for endless or broken bodies).
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            ScriptedBody::Bytes(b) | ScriptedBody::Streamed(b) | ScriptedBody::Held { bytes: b, .. } => b,
            _ => &[],
        }
    }

    fn scripted(&self) -> Scripted {
        let mut scripted = Scripted { body: self.body.clone(), ..Scripted::status(200) };
        if let Some(content_type) = &self.content_type {
            scripted = scripted.with_header("content-type", content_type);
        }
        scripted
    }
}

/// A fake Replicate: creates, polls and cancels predictions as planned, and serves their outputs.
///
/// Without a queued [`PredictionPlan`], a prediction succeeds on its first poll with a PNG, or an
/// MP4 when the model name contains `veo`. Requests without `Authorization: Bearer ...` get 401.
pub struct FakeReplicate {
    /// `http://127.0.0.1:PORT`, for `REPLICATE_BASE_URL`.
    pub base_url: String,
    shared: Arc<ReplicateShared>,
    server: JoinHandle<()>,
}

#[derive(Default)]
struct ReplicateShared {
    base_url: Mutex<String>,
    received: Mutex<Vec<ReceivedRequest>>,
    overrides: Mutex<HashMap<Route, VecDeque<Scripted>>>,
    plans: Mutex<VecDeque<PredictionPlan>>,
    predictions: Mutex<HashMap<String, LivePrediction>>,
    next_id: AtomicU64,
    /// How long a create's answer is held after the prediction exists (see `hold_creates`).
    create_hold: Mutex<Duration>,
    /// The `whsec_` secret webhooks are signed with (see `send_webhooks`); `None`: none are sent.
    webhook_secret: Mutex<Option<String>>,
    /// Every webhook sent: the URL, and the status it was answered with (0: no answer).
    webhooks_sent: Mutex<Vec<(String, u16)>>,
    /// The runtime the fake serves on, where webhooks are sent from.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
}

struct LivePrediction {
    model: String,
    input: Value,
    plan: PredictionPlan,
    polls: u32,
    canceled: bool,
    /// The create's `webhook`, when it asked for one.
    webhook: Option<String>,
}

impl FakeReplicate {
    /// Binds a free local port and starts serving.
    pub async fn start() -> FakeReplicate {
        let shared = Arc::new(ReplicateShared::default());
        let app = Router::new().fallback(replicate_handler).with_state(shared.clone());
        let (base_url, server) = serve(app).await;
        *lock(&shared.base_url) = base_url.clone();
        *lock(&shared.runtime) = Some(tokio::runtime::Handle::current());
        FakeReplicate { base_url, shared, server }
    }

    /// From now on, when [`FakeReplicate::finish`] ends a prediction whose create asked for a
    /// `webhook`, the fake POSTs the finished prediction there as Replicate does: Standard Webhooks
    /// headers, signed with `secret` (`whsec_…`).
    pub fn send_webhooks(&self, secret: &str) {
        *lock(&self.shared.webhook_secret) = Some(secret.to_owned());
    }

    /// Every webhook sent so far: its URL and the status mvgen answered (0: no answer).
    pub fn webhooks_sent(&self) -> Vec<(String, u16)> {
        lock(&self.shared.webhooks_sent).clone()
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.received).clone()
    }

    /// The requests that hit `route`, oldest first.
    pub fn received_on(&self, route: Route) -> Vec<ReceivedRequest> {
        self.received().into_iter().filter(|r| Route::of(&r.method, &r.path) == route).collect()
    }

    /// The plan for the next prediction created (queued, first in first out).
    pub fn push_prediction(&self, plan: PredictionPlan) {
        lock(&self.shared.plans).push_back(plan);
    }

    /// Answers the next request on `route` with `response` instead of the normal behaviour
    /// (queued per route). The request is still recorded.
    pub fn push_response(&self, route: Route, response: Scripted) {
        lock(&self.shared.overrides).entry(route).or_default().push_back(response);
    }

    /// From now on every create makes its prediction at once (it runs and bills) but holds the
    /// answer, and so its id, back for `hold`: a client stopped meanwhile never learns the id.
    pub fn hold_creates(&self, hold: Duration) {
        *lock(&self.shared.create_hold) = hold;
    }

    /// How many predictions were asked for on `model` (`owner/name`): each create is a paid run.
    pub fn creates_for(&self, model: &str) -> usize {
        let path = format!("/v1/models/{model}/predictions");
        self.received_on(Route::Create).iter().filter(|r| r.path == path).count()
    }

    /// How many times prediction `id` was fetched (`GET /v1/predictions/{id}`).
    pub fn polls_of(&self, id: &str) -> usize {
        let path = format!("/v1/predictions/{id}");
        self.received_on(Route::Poll).iter().filter(|r| r.path == path).count()
    }

    /// Lets a prediction planned with [`PredictionPlan::held`] end as planned on its next fetch.
    /// Predictions live in the fake, not in a client, so any client (a fresh one, as after a
    /// restart) sees the same prediction; unknown ids answer 404.
    ///
    /// With [`FakeReplicate::send_webhooks`], a prediction whose create asked for a webhook is
    /// also announced there, signed, at once (in the background).
    pub fn finish(&self, id: &str) {
        let base_url = lock(&self.shared.base_url).clone();
        let announce = {
            let mut predictions = lock(&self.shared.predictions);
            let Some(live) = predictions.get_mut(id) else { return };
            live.plan.polls_until_done = 0;
            live.webhook.clone().map(|url| (url, prediction_json(&base_url, id, live)))
        };
        let secret = lock(&self.shared.webhook_secret).clone();
        let runtime = lock(&self.shared.runtime).clone();
        if let (Some((url, prediction)), Some(secret), Some(runtime)) = (announce, secret, runtime) {
            let shared = self.shared.clone();
            let id = id.to_owned();
            runtime.spawn(async move {
                let status = send_signed(&url, &secret, &format!("msg_fake_{id}"), &prediction).await;
                lock(&shared.webhooks_sent).push((url, status));
            });
        }
    }

    /// Ids of the predictions that were cancelled, in order.
    pub fn cancelled(&self) -> Vec<String> {
        self.received_on(Route::Cancel).iter().filter_map(|r| r.path.split('/').nth(3).map(str::to_owned)).collect()
    }

    /// Replicate's problem+json error body.
    pub fn problem_body(status: u16, title: &str, detail: &str) -> Value {
        json!({"title": title, "detail": detail, "status": status})
    }
}

impl Drop for FakeReplicate {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn replicate_handler(State(shared): State<Arc<ReplicateShared>>, request: Request) -> Response {
    let received = record(&shared.received, request).await;
    let route = Route::of(&received.method, &received.path);
    let scripted = lock(&shared.overrides).get_mut(&route).and_then(VecDeque::pop_front);
    if let Some(scripted) = scripted {
        return scripted.into_response().await;
    }
    let problem = |status: u16, title: &str, detail: &str| {
        Scripted::json(status, FakeReplicate::problem_body(status, title, detail))
    };
    let authorized = received.header("authorization").is_some_and(|v| v.starts_with("Bearer ") && v.len() > 7);
    if route != Route::File && !authorized {
        return problem(401, "Unauthenticated", "You did not pass a valid authentication token").into_response().await;
    }
    let segments: Vec<&str> = received.path.trim_start_matches('/').split('/').collect();
    let answer = match route {
        Route::Create => create_prediction(&shared, &received, &format!("{}/{}", segments[2], segments[3])),
        Route::Poll => poll_prediction(&shared, segments[2]),
        Route::Cancel => cancel_prediction(&shared, segments[2]),
        Route::File => serve_file(&shared, &segments[1..]),
        Route::Other => None,
    };
    answer
        .unwrap_or_else(|| problem(404, "Not found", "The requested resource could not be found."))
        .into_response()
        .await
}

fn create_prediction(shared: &ReplicateShared, received: &ReceivedRequest, model: &str) -> Option<Scripted> {
    let body = received.json();
    let Some(input) = body.get("input").filter(|i| i.is_object()).cloned() else {
        let problem = FakeReplicate::problem_body(422, "Input validation failed", "body must be {\"input\": {...}}");
        return Some(Scripted::json(422, problem));
    };
    let plan = lock(&shared.plans).pop_front().unwrap_or_else(|| PredictionPlan {
        polls_until_done: 1,
        outcome: Outcome::Succeed(if model.contains("veo") { FakeFile::mp4() } else { FakeFile::png() }),
    });
    let id = format!("pred-{}", shared.next_id.fetch_add(1, Ordering::SeqCst) + 1);
    let webhook = body.get("webhook").and_then(Value::as_str).map(str::to_owned);
    let live = LivePrediction { model: model.to_owned(), input, plan, polls: 0, canceled: false, webhook };
    let done = live.plan.polls_until_done == 0;
    let answer = prediction_json(&lock(&shared.base_url), &id, &live);
    lock(&shared.predictions).insert(id, live);
    Some(Scripted::json(if done { 200 } else { 201 }, answer).with_delay(*lock(&shared.create_hold)))
}

fn poll_prediction(shared: &ReplicateShared, id: &str) -> Option<Scripted> {
    let base_url = lock(&shared.base_url).clone();
    let mut predictions = lock(&shared.predictions);
    let live = predictions.get_mut(id)?;
    live.polls += 1;
    Some(Scripted::json(200, prediction_json(&base_url, id, live)))
}

fn cancel_prediction(shared: &ReplicateShared, id: &str) -> Option<Scripted> {
    let base_url = lock(&shared.base_url).clone();
    let mut predictions = lock(&shared.predictions);
    let live = predictions.get_mut(id)?;
    live.canceled = true;
    Some(Scripted::json(200, prediction_json(&base_url, id, live)))
}

/// `/files/{id}/{name}`: the output of a succeeded prediction.
fn serve_file(shared: &ReplicateShared, rest: &[&str]) -> Option<Scripted> {
    let [id, name] = rest else { return None };
    let predictions = lock(&shared.predictions);
    match &predictions.get(*id)?.plan.outcome {
        Outcome::Succeed(file) | Outcome::SucceedAsList(file) if file.name == *name => Some(file.scripted()),
        _ => None,
    }
}

/// The prediction object as Replicate sends it, in the state `live` is in now.
fn prediction_json(base_url: &str, id: &str, live: &LivePrediction) -> Value {
    let finished = live.polls >= live.plan.polls_until_done;
    let file_url = |name: &str| format!("{base_url}/files/{id}/{name}");
    let (status, output, error) = match (&live.plan.outcome, live.canceled, finished) {
        (_, true, _) => ("canceled", Value::Null, Value::Null),
        (Outcome::NeverFinish, false, _) | (_, false, false) if live.polls == 0 => {
            ("starting", Value::Null, Value::Null)
        }
        (Outcome::NeverFinish, false, _) | (_, false, false) => ("processing", Value::Null, Value::Null),
        (Outcome::Succeed(file), ..) => ("succeeded", json!(file_url(&file.name)), Value::Null),
        (Outcome::SucceedAsList(file), ..) => ("succeeded", json!([file_url(&file.name)]), Value::Null),
        (Outcome::SucceedWithMissingFile, ..) => ("succeeded", json!(file_url("missing.png")), Value::Null),
        (Outcome::SucceedWithUrl(url), ..) => ("succeeded", json!(url), Value::Null),
        (Outcome::Fail(message), ..) => ("failed", Value::Null, json!(message)),
        (Outcome::Canceled, ..) => ("canceled", Value::Null, Value::Null),
    };
    json!({
        "id": id,
        "model": live.model,
        "version": "fake-version",
        "input": live.input,
        "status": status,
        "output": output,
        "error": error,
        "logs": "",
        "created_at": "2025-01-01T00:00:00.000Z",
        "started_at": null,
        "completed_at": null,
        "urls": {
            "get": format!("{base_url}/v1/predictions/{id}"),
            "cancel": format!("{base_url}/v1/predictions/{id}/cancel")
        }
    })
}

/// POSTs `body` to `url` as Replicate sends a webhook: `webhook-id`, `webhook-timestamp` (now) and
/// `webhook-signature` (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` with `secret`,
/// computed here with the hmac crate directly). The answer's status, or 0 without one.
pub async fn send_signed(url: &str, secret: &str, id: &str, body: &Value) -> u16 {
    use base64::Engine as _;
    use hmac::{Mac, digest::KeyInit};
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine.decode(secret.trim_start_matches("whsec_")).unwrap_or_default();
    let body = body.to_string();
    let timestamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string();
    let Ok(mut mac) = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key) else { return 0 };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let signature = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    let sent = crate::support::http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp)
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    sent.map_or(0, |answer| answer.status().as_u16())
}

/// Binds `127.0.0.1:0` and serves `app` in the background.
async fn serve(app: Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a local port for a fake upstream");
    let address = listener.local_addr().expect("a bound listener has an address");
    let server = tokio::spawn(async move {
        // Ends only when the fake is dropped (the task is aborted) or the runtime shuts down.
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), server)
}

/// Records a request and returns what was recorded.
async fn record(log: &Mutex<Vec<ReceivedRequest>>, request: Request) -> ReceivedRequest {
    let (parts, body) = request.into_parts();
    // Large enough for a reference image inlined as a data URI.
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.map(|b| b.to_vec()).unwrap_or_default();
    let received = ReceivedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    lock(log).push(received.clone());
    received
}

/// A std mutex is enough: no lock is held across an await. A test that panicked while holding
/// one has already failed, so the poison is ignored.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
