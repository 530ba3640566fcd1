//! End to end: the real server on 127.0.0.1 with the real Gemini and Replicate clients, against fake
//! upstreams speaking their protocols. What the fakes RECEIVE must be exactly what `mvgen render`
//! prints for the same flavor and inputs. Also the binary itself: startup, debug logs, no leaked
//! keys, graceful shutdown.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mvgen::api::AppState;
use mvgen::providers::Providers;
use mvgen::server::{Settings, app, serve};
use mvgen::storage::LocalStorage;
use serde_json::{Value, json};
use support::fake_upstream::{
    FakeFile, FakeGemini, FakeReplicate, Outcome, PredictionPlan, Route, Scripted, TEST_GEMINI_KEY,
    TEST_REPLICATE_TOKEN, test_provider_config,
};
use support::server_process::ServerProcess;

const CASES: [(Option<&str>, &str); 5] = [
    (None, "default"),
    (Some("default"), "default"),
    (Some("mv1"), "mv1"),
    (Some("example"), "example"),
    (Some("no-such"), "default"),
];

#[tokio::test]
async fn scene_prompts_received_by_gemini_equal_mvgen_render() {
    let up = Upstreams::start().await;
    let server = up.server(|_| {}).await;
    for (requested, used) in CASES {
        let flavor = mvgen::flavor::lookup(used).expect("flavor");
        up.gemini.set_default_scenes(flavor.parameters.number_of_scenes.value);
        let before = up.gemini.received().len();
        let mut body = json!({"idea": "a lighthouse keeper's last night", "character_description": "an old sailor"});
        if let Some(r) = requested {
            body["config_flavor"] = json!(r);
        }
        let (status, resp) = server.post("/api/mv/create_scenes", &body).await;
        assert_eq!(status, 200, "{requested:?}: {resp}");
        assert_eq!(resp["metadata"]["config_flavor"]["used"], used);
        assert_eq!(resp["metadata"]["backend_used"], "gemini");
        assert_eq!(resp["metadata"]["is_mock"], false);

        let render = mvgen_render(&[
            used,
            "scenes",
            "--idea",
            "a lighthouse keeper's last night",
            "--character-description",
            "an old sailor",
        ]);
        let received = &up.gemini.received()[before];
        let model = render["parameters"]["model"].as_str().expect("model");
        assert_eq!(received.path, format!("/v1beta/models/{model}:generateContent"));
        assert_eq!(received.header("x-goog-api-key"), Some(TEST_GEMINI_KEY));
        assert_eq!(received.json()["contents"][0]["parts"][0]["text"], render["prompt"], "{requested:?}");
        assert_eq!(resp["metadata"]["parameters_used"], render["parameters"]);
    }
}

#[tokio::test]
async fn image_and_video_inputs_received_by_replicate_equal_mvgen_render() {
    let up = Upstreams::start().await;
    let server = up.server(|_| {}).await;
    for (requested, used) in CASES {
        let before = up.replicate.received_on(Route::Create).len();
        let mut body = json!({"character_description": "a drummer with silver hair", "num_images": 1});
        if let Some(r) = requested {
            body["config_flavor"] = json!(r);
        }
        let (status, resp) = server.post("/api/mv/generate_character_reference", &body).await;
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp["metadata"]["config_flavor"]["used"], used);
        let image_id = resp["images"][0]["id"].as_str().expect("id").to_string();

        let render = mvgen_render(&[used, "character", "--character-description", "a drummer with silver hair"]);
        let created = &up.replicate.received_on(Route::Create)[before];
        let model = render["parameters"]["model"].as_str().expect("model");
        assert_eq!(created.path, format!("/v1/models/{model}/predictions"));
        assert_eq!(created.header("authorization"), Some(format!("Bearer {TEST_REPLICATE_TOKEN}").as_str()));
        let input = &created.json()["input"];
        assert_eq!(input["prompt"], render["prompt"]);
        for key in ["aspect_ratio", "output_format", "safety_filter_level", "person_generation"] {
            assert_eq!(input[key], render["parameters"][key], "{key}");
        }

        let mut body = json!({"prompt": "The drummer counts in the band.", "character_reference_id": image_id});
        if let Some(r) = requested {
            body["config_flavor"] = json!(r);
        }
        let (status, resp) = server.post("/api/mv/generate_video", &body).await;
        assert_eq!(status, 200, "{resp}");
        assert_eq!(resp["character_reference_warning"], Value::Null);
        let render = mvgen_render(&[used, "video", "--prompt", "The drummer counts in the band."]);
        let created = up.replicate.received_on(Route::Create).last().cloned().expect("video prediction");
        let input = &created.json()["input"];
        assert_eq!(input["prompt"], render["prompt"]);
        assert_eq!(input["duration"], render["parameters"]["duration"]);
        assert_eq!(input["aspect_ratio"], render["parameters"]["aspect_ratio"]);
        assert_eq!(input["generate_audio"], render["parameters"]["generate_audio"]);
        assert!(
            input["reference_images"][0].as_str().is_some_and(|u| u.starts_with("data:image/png;base64,")),
            "the character reference travels with the video request"
        );
        let (status, bytes) = server.get_bytes(resp["video_url"].as_str().expect("url")).await;
        assert_eq!(status, 200);
        assert!(bytes.windows(4).any(|w| w == b"ftyp"), "the downloaded video is stored and served");
    }
}

#[tokio::test]
async fn strict_mode_sends_nothing_upstream_for_unknown_flavors() {
    let up = Upstreams::start().await;
    let server = up.server(|s| s.strict_flavors = true).await;
    for (path, body) in [
        ("/api/mv/create_scenes", json!({"idea": "i", "character_description": "c", "config_flavor": "nope"})),
        ("/api/mv/generate_character_reference", json!({"character_description": "c", "config_flavor": "nope"})),
        ("/api/mv/generate_video", json!({"prompt": "p", "config_flavor": "nope"})),
    ] {
        let (status, resp) = server.post(path, &body).await;
        assert_eq!(status, 400, "{path}: {resp}");
        assert_eq!(resp["detail"]["error"], "UnknownFlavor");
    }
    assert!(up.gemini.received().is_empty() && up.replicate.received().is_empty());
}

#[tokio::test]
async fn upstream_faults_become_502_or_504_with_the_upstream_message() {
    let up = Upstreams::start_with(|c| c.request_timeout = Duration::from_secs(2)).await;
    let server = up.server(|_| {}).await;
    let scenes = json!({"idea": "i", "character_description": "c"});

    for _ in 0..3 {
        up.gemini.push_response(Scripted::json(500, FakeGemini::error_body(500, "INTERNAL", "the model fell over")));
    }
    let (status, resp) = server.post("/api/mv/create_scenes", &scenes).await;
    assert_eq!(status, 502, "{resp}");
    assert!(resp["detail"]["message"].as_str().is_some_and(|m| m.contains("the model fell over")), "{resp}");

    up.gemini.push_response(Scripted::hang());
    let (status, resp) = server.post("/api/mv/create_scenes", &scenes).await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (504, Some("UpstreamTimeout")), "{resp}");

    up.gemini.push_response(Scripted::bytes(200, "<html>not json</html>"));
    let (status, resp) = server.post("/api/mv/create_scenes", &scenes).await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (502, Some("UpstreamError")), "{resp}");

    up.gemini.push_response(Scripted::json(429, FakeGemini::error_body(429, "RESOURCE_EXHAUSTED", "slow down")));
    up.gemini.set_default_scenes(6);
    let (status, resp) = server.post("/api/mv/create_scenes", &scenes).await;
    assert_eq!(status, 200, "a single 429 is retried: {resp}");

    up.replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Fail("GPU lost".into()) });
    let (status, resp) = server.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, 502, "{resp}");

    let leaked = format!("{resp}");
    assert!(!leaked.contains(TEST_REPLICATE_TOKEN) && !leaked.contains(TEST_GEMINI_KEY));
}

/// Replicate faults end in bounded time with 502/504 and leave no file behind.
#[tokio::test]
async fn replicate_faults_end_in_bounded_time_and_store_nothing() {
    let up = Upstreams::start_with(|c| {
        c.video_deadline = Duration::from_millis(400);
        c.max_video_bytes = 64 * 1024;
    })
    .await;
    let (server, out_dir) = up.server_with_dir(|_| {}).await;
    let video = json!({"prompt": "p"});
    let cases: Vec<(PredictionPlan, u16, &str)> = vec![
        (PredictionPlan { polls_until_done: 1, outcome: Outcome::NeverFinish }, 504, "UpstreamTimeout"),
        (PredictionPlan { polls_until_done: 1, outcome: Outcome::SucceedWithMissingFile }, 502, "UpstreamError"),
        (
            PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::endless("huge.mp4")) },
            502,
            "UpstreamError",
        ),
        (PredictionPlan { polls_until_done: 2, outcome: Outcome::Canceled }, 502, "UpstreamError"),
    ];
    for (plan, status, kind) in cases {
        let label = format!("{:?}", plan.outcome);
        up.replicate.push_prediction(plan);
        // A liveness bound, not a speed target: a hang would otherwise stall the suite.
        let answer = tokio::time::timeout(Duration::from_secs(30), server.post("/api/mv/generate_video", &video)).await;
        let (got, resp) = answer.unwrap_or_else(|_| panic!("{label}: no answer within 30 s"));
        assert_eq!((got, resp["detail"]["error"].as_str()), (status, Some(kind)), "{label}: {resp}");
        assert!(resp["detail"]["message"].as_str().is_some_and(|m| m.contains("replicate")), "{label}: {resp}");
    }
    assert!(!up.replicate.cancelled().is_empty(), "a prediction past its deadline is cancelled upstream");
    let stored: Vec<_> = std::fs::read_dir(out_dir.join("videos")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(stored.is_empty(), "no partial or failed video may be stored: {stored:?}");
}

/// The binary as a user runs it: debug mode logs flavors at startup and config values per request,
/// keys never appear, and SIGTERM shuts it down cleanly.
#[test]
fn binary_serves_logs_in_debug_mode_and_never_prints_keys() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let gemini = rt.block_on(FakeGemini::start());
    gemini.set_default_scenes(8);
    let secret_gemini = "AIzaSy-super-secret-gemini-key";
    let secret_api = "api-key-never-logged-42";
    let server = ServerProcess::start(&[
        ("MV_DEBUG_MODE", "true"),
        ("GEMINI_API_KEY", secret_gemini),
        ("GEMINI_BASE_URL", &gemini.base_url),
        ("API_KEY", secret_api),
        ("MVGEN_ACCESS_LOG", "true"),
    ])
    .expect("start mvgen");
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let resp = rt.block_on(
        client
            .post(format!("{base}/api/mv/create_scenes"))
            .header("x-api-key", secret_api)
            .json(&json!({"idea": "i", "character_description": "c", "config_flavor": "mv1"}))
            .send(),
    );
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 200);
    let body: Value = rt.block_on(resp.json()).expect("json");
    assert_eq!(body["metadata"]["backend_used"], "gemini");

    let by_query = rt.block_on(client.get(format!("{base}/api/mv/get_config_flavors?api_key={secret_api}")).send());
    assert_eq!(by_query.expect("request").status(), 200, "the key also works as ?api_key=");

    let spec = rt.block_on(async {
        let resp = client.get(format!("{base}/api/openapi.json")).header("x-api-key", secret_api).send().await;
        resp.expect("request").text().await.expect("body")
    });
    assert!(spec.contains("\"openapi\"") && !spec.contains(secret_api) && !spec.contains(secret_gemini));
    let refused =
        rt.block_on(client.get(format!("{base}/api/mv/get_config_flavors")).header("x-api-key", "wrong").send());
    let refused = rt.block_on(refused.expect("request").text()).expect("body");
    assert!(refused.contains("Unauthorized") && !refused.contains(secret_api), "errors never echo a key: {refused}");

    let (status, logs) = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {logs}");
    assert!(logs.contains("debug mode: embedded config flavors") && logs.contains("default, example, mv1"), "{logs}");
    assert!(
        logs.contains("scenes=gemini") && logs.contains("images=mock"),
        "startup says which providers are mock: {logs}"
    );
    assert!(logs.contains("loaded_into") && logs.contains("scene_generator.camera_angle"), "{logs}");
    assert!(!logs.contains(secret_gemini) && !logs.contains(secret_api), "a key leaked into the logs:\n{logs}");
    assert!(logs.contains("path=/api/mv/get_config_flavors") && logs.contains("status=200"), "access log: {logs}");
    let received = gemini.received();
    assert_eq!(received[0].header("x-goog-api-key"), Some(secret_gemini), "the key is sent upstream as a header");
    assert!(received[0].query.as_deref().is_none_or(|q| !q.contains(secret_gemini)), "never in the URL");
}

// ---- helpers ----

struct Upstreams {
    gemini: FakeGemini,
    replicate: FakeReplicate,
    providers: Providers,
}

impl Upstreams {
    async fn start() -> Self {
        Upstreams::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut mvgen::providers::ProviderConfig)) -> Self {
        let gemini = FakeGemini::start().await;
        let replicate = FakeReplicate::start().await;
        let mut config = test_provider_config(&gemini.base_url, &replicate.base_url);
        tweak(&mut config);
        let providers = Providers::from_config(&config).expect("providers");
        Upstreams { gemini, replicate, providers }
    }

    async fn server(&self, tweak: impl FnOnce(&mut Settings)) -> TestServer {
        self.server_with_dir(tweak).await.0
    }

    /// A server and its output directory.
    async fn server_with_dir(&self, tweak: impl FnOnce(&mut Settings)) -> (TestServer, std::path::PathBuf) {
        let mut settings = Settings::from_vars(None, |_| None).expect("settings");
        let dir = tempfile::tempdir().expect("temp dir");
        settings.output_dir = dir.path().join("outputs");
        tweak(&mut settings);
        let state = AppState {
            providers: self.providers.clone(),
            storage: Arc::new(LocalStorage::new(&settings.output_dir)),
            debug: settings.debug,
            strict_flavors: settings.strict_flavors,
            flavors: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app(state, &settings);
        tokio::spawn(serve(listener, router, std::future::pending()));
        (TestServer { base, client: reqwest::Client::new(), _dir: dir }, settings.output_dir)
    }
}

struct TestServer {
    base: String,
    client: reqwest::Client,
    /// Holds the output directory until the test ends, then removes it.
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.client.post(format!("{}{path}", self.base)).json(body).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
    }
}

/// `mvgen render FLAVOR ... --json`, run as a user would.
fn mvgen_render(args: &[&str]) -> Value {
    let output =
        Command::new(env!("CARGO_BIN_EXE_mvgen")).arg("render").args(args).arg("--json").output().expect("run");
    assert!(output.status.success(), "render failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("render --json prints JSON")
}
