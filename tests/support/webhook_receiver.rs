//! A webhook receiver on `127.0.0.1:0` for the outbound webhook tests: records every request it
//! gets (headers and body) and answers each path from a script (a queue of answers, then a
//! default), and checks Standard Webhooks signatures with its own HMAC-SHA256 code path, apart
//! from mvgen's signing module. Runs on its own thread and runtime, so blocking tests can use it;
//! it stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Mac, digest::KeyInit};

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// When it arrived, since the receiver started.
    pub at: Duration,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `webhook-signature` holds a `v1,` signature made with `secret` (`whsec_…`) over
    /// `{webhook-id}.{webhook-timestamp}.{body}`.
    pub fn signed_with(&self, secret: &str) -> bool {
        let key = STANDARD.decode(secret.trim_start_matches("whsec_")).expect("a base64 secret");
        let signed =
            [self.header("webhook-id").as_bytes(), b".", self.header("webhook-timestamp").as_bytes(), b".", &self.body]
                .concat();
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("key");
        mac.update(&signed);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        self.header("webhook-signature").split(' ').any(|sig| sig == expected)
    }
}

/// An answer: a status and, for a redirect, its `Location`.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    /// How long the answer is held back after the request arrived.
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer { status, location: None, delay: Duration::ZERO }
    }

    pub fn redirect(to: &str) -> Answer {
        Answer { status: 302, location: Some(to.to_owned()), delay: Duration::ZERO }
    }

    /// `status`, sent only after `delay`.
    pub fn after(delay: Duration, status: u16) -> Answer {
        Answer { delay, ..Answer::status(status) }
    }
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    queued: HashMap<String, VecDeque<Answer>>,
    defaults: HashMap<String, Answer>,
}

pub struct WebhookReceiver {
    pub base: String,
    script: Arc<Mutex<Script>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Starts on a free port; every path answers 204 until scripted.
    pub fn start() -> WebhookReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        WebhookReceiver::on(listener)
    }

    /// Starts on `listener` (a port chosen earlier, for a receiver that comes up late).
    pub fn on(listener: std::net::TcpListener) -> WebhookReceiver {
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let script = Arc::new(Mutex::new(Script::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = (script.clone(), Instant::now());
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
        WebhookReceiver { base, script, stop: Some(stop), thread: Some(thread) }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Answers the next requests to `path` with these, in order, before its default.
    pub fn push(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().expect("script").queued.entry(path.to_owned()).or_default().extend(answers);
    }

    /// What `path` answers once its queue is empty (204 when never set).
    pub fn set_default(&self, path: &str, answer: Answer) {
        self.script.lock().expect("script").defaults.insert(path.to_owned(), answer);
    }

    /// Every request received so far to `path`, in arrival order.
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.script.lock().expect("script").received.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits up to `limit` for `n` requests to `path`; what arrived either way.
    pub fn wait_for(&self, path: &str, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received(path);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn receive(State((script, started)): State<(Arc<Mutex<Script>>, Instant)>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body: Bytes = axum::body::to_bytes(request.into_body(), 16 << 20).await.unwrap_or_default();
    let answer = {
        let mut script = script.lock().expect("script");
        script.received.push(Received { path: path.clone(), headers, body: body.to_vec(), at: started.elapsed() });
        let queued = script.queued.get_mut(&path).and_then(VecDeque::pop_front);
        queued.or_else(|| script.defaults.get(&path).cloned()).unwrap_or(Answer::status(204))
    };
    tokio::time::sleep(answer.delay).await;
    let status = StatusCode::from_u16(answer.status).expect("a status");
    match answer.location {
        Some(location) => (status, [("location", location)]).into_response(),
        None => status.into_response(),
    }
}
