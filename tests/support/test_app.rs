//! An in-process app for API tests: `app(state)` driven with `oneshot` (no socket), recording
//! providers that answer from a small script, and a temporary output directory.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use mvgen::providers::{
    BoxFuture, ImageMaker, ImageRequest, Output, ProviderError, Providers, RunContext, Scene, SceneBrief, SceneRequest,
    SceneWriter, VideoMaker, VideoRequest,
};
use mvgen::server::{Settings, app};
use mvgen::state::AppState;
use mvgen::storage::local::LocalStorage;
use serde_json::Value;
use tower::ServiceExt;

pub const TINY_PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot-really-a-png";
pub const FAKE_MP4: &[u8] = b"\x00\x00\x00\x18ftypmp42fake-video-bytes";

/// A provider that records what it receives and answers from its own small script.
pub struct Recording<R> {
    received: Mutex<Vec<R>>,
    fail_with: Option<ProviderError>,
}

impl<R: Clone> Recording<R> {
    pub fn new() -> Self {
        Recording { received: Mutex::new(Vec::new()), fail_with: None }
    }

    pub fn failing(error: ProviderError) -> Self {
        Recording { received: Mutex::new(Vec::new()), fail_with: Some(error) }
    }

    pub fn received(&self) -> Vec<R> {
        self.received.lock().expect("lock").clone()
    }

    fn record(&self, r: &R) -> Result<(), ProviderError> {
        self.received.lock().expect("lock").push(r.clone());
        match &self.fail_with {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// What a scene writer was given: the request sent upstream, and the brief its prompt was rendered
/// from (which only the mock reads). Reads as the request (`call.prompt`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SceneCall {
    pub request: SceneRequest,
    pub brief: SceneBrief,
}

impl std::ops::Deref for SceneCall {
    type Target = SceneRequest;
    fn deref(&self) -> &SceneRequest {
        &self.request
    }
}

impl Recording<SceneCall> {
    fn scenes(&self, request: &SceneRequest, brief: &SceneBrief) -> Result<Vec<Scene>, ProviderError> {
        self.record(&SceneCall { request: request.clone(), brief: brief.clone() })?;
        Ok((0..request.number_of_scenes)
            .map(|i| Scene { description: format!("scene {i}"), negative_description: "none".into() })
            .collect())
    }
}

impl SceneWriter for Recording<SceneCall> {
    fn backend(&self) -> &'static str {
        "recording"
    }
    fn write_scenes<'a>(&'a self, request: &'a SceneRequest) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>> {
        Box::pin(async move { self.scenes(request, &SceneBrief::default()) })
    }
    fn write_scenes_from<'a>(
        &'a self,
        request: &'a SceneRequest,
        brief: &'a SceneBrief,
    ) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>> {
        Box::pin(async move { self.scenes(request, brief) })
    }
}

impl ImageMaker for Recording<ImageRequest> {
    fn backend(&self) -> &'static str {
        "recording"
    }
    fn make_image<'a>(
        &'a self,
        request: &'a ImageRequest,
        _ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(async move {
            self.record(request)?;
            Ok(Output::from_bytes("recording", "image/png", TINY_PNG))
        })
    }
}

impl VideoMaker for Recording<VideoRequest> {
    fn backend(&self) -> &'static str {
        "recording"
    }
    fn make_video<'a>(
        &'a self,
        request: &'a VideoRequest,
        _ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(async move {
            self.record(request)?;
            Ok(Output::from_bytes("recording", "video/mp4", FAKE_MP4))
        })
    }
}

pub struct TestApp {
    pub router: mvgen::server::App,
    pub scenes: Arc<Recording<SceneCall>>,
    pub images: Arc<Recording<ImageRequest>>,
    pub videos: Arc<Recording<VideoRequest>>,
    /// What `backend: "gemini"` videos go to.
    pub gemini_videos: Arc<Recording<VideoRequest>>,
    pub output_dir: std::path::PathBuf,
    /// The app's generation slots, so a test can hold some.
    pub generations: mvgen::limits::GenerationSlots,
    /// The state the router serves, so a test can drive the same app without HTTP (jobs).
    pub state: AppState,
    /// Removes the output directory when the test ends.
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub fn new() -> Self {
        TestApp::with(|_| {}, |_| {})
    }

    pub fn with(settings: impl FnOnce(&mut Settings), providers: impl FnOnce(&mut Providers)) -> Self {
        TestApp::with_storage(settings, providers, |dir| Arc::new(LocalStorage::new(dir)))
    }

    /// An app on `storage` (given the output directory, which `file://` would use).
    pub fn on(storage: Arc<dyn mvgen::storage::Storage>) -> Self {
        TestApp::with_storage(|_| {}, |_| {}, |_| storage)
    }

    fn with_storage(
        settings: impl FnOnce(&mut Settings),
        providers: impl FnOnce(&mut Providers),
        storage: impl FnOnce(&std::path::Path) -> Arc<dyn mvgen::storage::Storage>,
    ) -> Self {
        let mut s = Settings::from_vars(None, |_| None).expect("settings");
        let dir = tempfile::tempdir().expect("temp dir");
        s.output_dir = dir.path().join("outputs");
        settings(&mut s);
        let scenes = Arc::new(Recording::new());
        let images = Arc::new(Recording::new());
        let videos = Arc::new(Recording::new());
        let gemini_videos = Arc::new(Recording::new());
        let mut p = Providers {
            scenes: scenes.clone(),
            images: images.clone(),
            videos: videos.clone(),
            gemini_videos: gemini_videos.clone(),
        };
        providers(&mut p);
        let generations = mvgen::limits::GenerationSlots::new(s.max_concurrent_generations);
        let state = AppState {
            providers: p,
            storage: storage(&s.output_dir),
            debug: s.debug,
            strict_flavors: s.strict_flavors,
            generations: generations.clone(),
            flavors: Default::default(),
        };
        let router = app(state.clone(), &s);
        TestApp {
            router,
            scenes,
            images,
            videos,
            gemini_videos,
            output_dir: s.output_dir,
            generations,
            state,
            _dir: dir,
        }
    }

    pub async fn send(&self, req: axum::http::request::Builder) -> (StatusCode, Value) {
        let req = req.body(Body::empty()).expect("request");
        let (status, _, body) = self.call(req).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    pub async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes().to_vec();
        (status, headers, body)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri)).await
    }

    pub async fn get_bytes(&self, uri: &str, range: Option<&str>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut req = Request::get(uri);
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        self.call(req.body(Body::empty()).expect("request")).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, value) = self.post_full(uri, body).await;
        (status, value)
    }

    pub async fn post_full(&self, uri: &str, body: &Value) -> (StatusCode, axum::http::HeaderMap, Value) {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let (status, headers, bytes) = self.call(req).await;
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn raw_post(&self, uri: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_string()))
            .expect("request");
        let (status, _, bytes) = self.call(req).await;
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

/// Runs `f` with a tracing subscriber that writes into a buffer, and returns what was logged.
pub fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().expect("lock").clone();
    String::from_utf8_lossy(&bytes).into_owned()
}
