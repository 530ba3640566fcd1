//! End to end: the real server on 127.0.0.1 with the real Gemini and Replicate clients, against fake
//! upstreams speaking their protocols. What the fakes RECEIVE must be exactly what `mvgen render`
//! prints for the same flavor and inputs. Also the binary itself: startup, debug logs, no leaked
//! keys, graceful shutdown.

use crate::support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mvgen::providers::Providers;
use mvgen::server::{Settings, app, serve};
use mvgen::state::AppState;
use mvgen::storage::local::LocalStorage;
use serde_json::{Value, json};
use support::fake_upstream::{
    FakeFile, FakeGemini, FakeReplicate, Outcome, PredictionPlan, Route, Scripted, TEST_GEMINI_KEY,
    TEST_REPLICATE_TOKEN, VeoOutcome, VeoPlan, VeoRoute, test_provider_config,
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

/// An upstream asking us to wait a day: our client is told at most 300 s, in every place it looks.
#[tokio::test]
async fn retry_after_passed_to_clients_is_capped() {
    let up = Upstreams::start().await;
    let server = up.server(|_| {}).await;
    for _ in 0..3 {
        up.gemini.push_response(
            Scripted::json(429, FakeGemini::error_body(429, "RESOURCE_EXHAUSTED", "slow down"))
                .with_header("retry-after", "99999"),
        );
    }
    let url = format!("{}/api/mv/create_scenes", server.base);
    let resp = server.client.post(url).json(&json!({"idea": "i", "character_description": "c"})).send().await;
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("300"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["detail"]["details"]["retry_after_seconds"], 300, "{body}");
    assert!(!body.to_string().contains("99999"), "{body}");
}

/// Past `MV_MAX_CONCURRENT_GENERATIONS` a generation is refused at once with 503 and Retry-After,
/// never queued behind minutes of renders; other requests keep working and the slot comes back.
#[tokio::test]
async fn generations_past_the_cap_get_503_at_once() {
    let up = Upstreams::start().await;
    let server = up.server(|s| s.max_concurrent_generations = 1).await;
    let n = mvgen::flavor::lookup("default").expect("default").parameters.number_of_scenes.value;
    up.gemini.set_default_scenes(n);
    up.gemini.push_response(Scripted::json(200, FakeGemini::scenes_body(n)).with_delay(Duration::from_secs(2)));
    let scenes = json!({"idea": "i", "character_description": "c"});
    let first = {
        let (client, url, body) =
            (server.client.clone(), format!("{}/api/mv/create_scenes", server.base), scenes.clone());
        tokio::spawn(async move { client.post(url).json(&body).send().await.map(|r| r.status().as_u16()) })
    };
    while up.gemini.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = server.client.post(format!("{}/api/mv/generate_video", server.base)).json(&json!({"prompt": "p"}));
    let resp = tokio::time::timeout(Duration::from_secs(1), second.send()).await.expect("answered at once");
    let resp = resp.expect("request");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["detail"]["error"], "TooManyGenerations", "{body}");
    let flavors = server.client.get(format!("{}/api/mv/get_config_flavors", server.base)).send().await;
    assert_eq!(flavors.expect("request").status(), 200, "non-generation requests are not limited");

    assert_eq!(first.await.expect("task").expect("request"), 200);
    let (status, resp) = server.post("/api/mv/create_scenes", &scenes).await;
    assert_eq!(status, 200, "the slot is released: {resp}");
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
        // Labelled a video, but an HTML page: the bytes decide, and it is refused.
        (
            PredictionPlan {
                polls_until_done: 1,
                outcome: Outcome::Succeed(FakeFile::new("out.mp4", Some("video/mp4"), b"<html>login</html>".to_vec())),
            },
            502,
            "UpstreamError",
        ),
        (
            PredictionPlan {
                polls_until_done: 1,
                outcome: Outcome::SucceedWithUrl("http://169.254.169.254/latest/meta-data/clip.mp4".into()),
            },
            502,
            "UpstreamError",
        ),
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
    let client = crate::support::http_client();
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
    assert!(logs.contains("API key auth is on"), "startup says auth is on: {logs}");
    assert!(logs.contains("path=/api/mv/get_config_flavors") && logs.contains("status=200"), "access log: {logs}");
    let received = gemini.received();
    assert_eq!(received[0].header("x-goog-api-key"), Some(secret_gemini), "the key is sent upstream as a header");
    assert!(received[0].query.as_deref().is_none_or(|q| !q.contains(secret_gemini)), "never in the URL");
}

/// The binary with `backend: "gemini"`: Veo through the (fake) Gemini API renders the video with
/// the Gemini video model, the same full prompt `mvgen render` prints, the flavor's parameters and
/// the character reference as the start frame; the file is stored and served; a safety block is a
/// 422; a bad backend never reaches an upstream.
#[test]
fn binary_renders_backend_gemini_through_veo() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let gemini = rt.block_on(FakeGemini::start());
    gemini.push_veo_plan(VeoPlan { polls_until_done: 2, outcome: VeoOutcome::Succeed(FakeFile::mp4()) });
    let server = ServerProcess::start(&[
        ("GEMINI_API_KEY", TEST_GEMINI_KEY),
        ("GEMINI_BASE_URL", &gemini.base_url),
        ("MV_GEMINI_POLL_SECS", "0.05"),
    ])
    .expect("start mvgen");
    let base = server.base.clone();
    let client = crate::support::http_client();
    let post = |path: &str, body: Value| {
        rt.block_on(async {
            let resp = client.post(format!("{base}{path}")).json(&body).send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    let get = |path: &str| {
        rt.block_on(async {
            let resp = client.get(format!("{base}{path}")).send().await.expect("request");
            let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
            (resp.status().as_u16(), content_type, resp.bytes().await.expect("body").to_vec())
        })
    };

    // No Replicate token: the character reference comes from the mock, the video from Veo.
    let (status, reference) =
        post("/api/mv/generate_character_reference", json!({"character_description": "a drummer", "num_images": 1}));
    assert_eq!(status, 200, "{reference}");
    let reference_id = reference["images"][0]["id"].as_str().expect("id").to_owned();
    let (_, _, reference_png) = get(reference["images"][0]["url"].as_str().expect("url"));

    let prompt = "The drummer counts in the band.";
    let body = json!({"prompt": prompt, "backend": "gemini", "config_flavor": "mv1",
        "character_reference_id": reference_id, "negative_prompt": "crowd", "seed": 42});
    let (status, resp) = post("/api/mv/generate_video", body);
    assert_eq!(status, 200, "{resp}");
    assert_eq!(resp["metadata"]["backend_used"], "gemini");
    assert_eq!(resp["metadata"]["is_mock"], false);
    assert_eq!(resp["metadata"]["model_used"], "veo-3.1-generate-preview");
    assert_eq!(resp["metadata"]["config_flavor"]["used"], "mv1");
    assert_eq!(resp["character_reference_warning"], Value::Null);
    let video_id = resp["video_id"].as_str().expect("video_id");
    assert_eq!(resp["video_url"], format!("/api/mv/get_video/{video_id}"));
    let (status, content_type, bytes) = get(resp["video_url"].as_str().expect("url"));
    assert_eq!((status, content_type.as_deref()), (200, Some("video/mp4")));
    assert_eq!(bytes, FakeFile::mp4().bytes(), "the file Veo made is stored and served whole");

    let render = mvgen_render(&["mv1", "video", "--prompt", prompt]);
    let started = gemini.received_on(VeoRoute::Start);
    assert_eq!(started.len(), 1);
    // The flavor's Gemini video model, never its Replicate `video_model`.
    assert_eq!(started[0].path, "/v1beta/models/veo-3.1-generate-preview:predictLongRunning");
    assert_ne!(render["parameters"]["model"], "veo-3.1-generate-preview");
    assert_eq!(started[0].header("x-goog-api-key"), Some(TEST_GEMINI_KEY));
    let sent = started[0].json();
    assert_eq!(sent["instances"][0]["prompt"], render["prompt"]);
    let start_frame = &sent["instances"][0]["image"];
    assert_eq!(start_frame["mimeType"], "image/png");
    use base64::Engine as _;
    let frame =
        base64::engine::general_purpose::STANDARD.decode(start_frame["bytesBase64Encoded"].as_str().expect("b64"));
    assert_eq!(frame.expect("base64"), reference_png, "the character reference is the start frame");
    assert_eq!(
        sent["parameters"],
        json!({"aspectRatio": render["parameters"]["aspect_ratio"], "personGeneration": render["parameters"]["person_generation"],
               "negativePrompt": "crowd", "durationSeconds": render["parameters"]["duration"], "seed": 42})
    );
    assert_eq!(gemini.received_on(VeoRoute::Poll).len(), 2);
    assert_eq!(gemini.received_on(VeoRoute::FileHost)[0].header("x-goog-api-key"), None);

    // A safety block is the caller's content: 422 ContentRefused, nothing stored.
    gemini.push_veo_plan(VeoPlan {
        polls_until_done: 1,
        outcome: VeoOutcome::SafetyBlock(vec!["Contains a celebrity likeness.".into()]),
    });
    let (status, resp) = post("/api/mv/generate_video", json!({"prompt": "p", "backend": "gemini"}));
    assert_eq!((status, resp["detail"]["error"].as_str()), (422, Some("ContentRefused")), "{resp}");
    assert!(resp["detail"]["message"].as_str().is_some_and(|m| m.contains("celebrity")), "{resp}");

    let (status, resp) = post("/api/mv/generate_video", json!({"prompt": "p", "backend": "veo"}));
    assert_eq!((status, resp["detail"]["message"].as_str()), (400, Some("Invalid backend: veo")));
    assert_eq!(gemini.received_on(VeoRoute::Start).len(), 2, "a bad backend reaches no upstream");
    let stored = std::fs::read_dir(server.output_dir().join("videos")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 1, "only the rendered video is stored");
}

/// Runs `mvgen serve` with exactly `envs` until it exits: its status (`None` when it was still
/// running after 20 s, and was killed: it started when it should have refused) and its stderr.
fn run_to_exit(envs: &[(&str, &str)]) -> (Option<std::process::ExitStatus>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mvgen"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_clear()
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mvgen");
    // A server that starts anyway would run forever: give it a bounded time to refuse.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr)
}

/// `API_KEY` set to something holding no key must stop the server, not leave the API open.
#[test]
fn binary_refuses_an_api_key_setting_without_a_key_and_logs_when_auth_is_off() {
    for empty in [" , ", ""] {
        let (status, stderr) = run_to_exit(&[("API_KEY", empty)]);
        assert!(status.is_some_and(|s| !s.success()), "API_KEY={empty:?} must not start: {stderr}");
        assert!(stderr.contains("API_KEY is set but holds no key"), "{stderr}");
    }
    // Logged before the listening line the helper waits for.
    let logs = ServerProcess::start(&[]).expect("start mvgen").log();
    assert!(logs.contains("API key auth is off"), "startup says auth is off: {logs}");
}

/// A setting the server cannot honour stops it with exit code 2 and one line naming the setting
/// and its bounds (before bounds, each of these started: workers stole each other's jobs, replay
/// was off, and polls ran a microsecond apart).
#[test]
fn binary_refuses_settings_out_of_bounds_with_exit_code_2_and_the_reason() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("outputs");
    let out = out.to_str().expect("utf-8 path");
    for (name, value, context) in [
        ("MVGEN_JOB_STALE_AFTER", "18446744073709551615", "invalid settings"),
        ("MVGEN_IDEMPOTENCY_TTL", "18446744073709551615", "invalid settings"),
        ("MV_REPLICATE_POLL_SECS", "0.000001", "invalid provider settings"),
        ("MVGEN_JOB_RETENTION", "0", "invalid settings"),
        ("MVGEN_MAX_QUEUED_JOBS", "0", "invalid settings"),
        ("MVGEN_MAX_QUEUED_PER_KEY", "1000001", "invalid settings"),
        // A typo must pick neither side: `false` makes a DDL-less replica refuse an old schema.
        ("MVGEN_MIGRATE_ON_START", "flase", "invalid settings"),
    ] {
        let (status, stderr) = run_to_exit(&[("MV_OUTPUT_DIR", out), ("RUST_LOG", "off"), (name, value)]);
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{name}={value}: {stderr}");
        let line = stderr.trim_end();
        assert!(!line.contains('\n'), "one line: {stderr}");
        assert!(line.starts_with(&format!("mvgen: {context}: {name}={value:?}: expected ")), "{stderr}");
    }
}

/// A jobs file that is not a database stops the server with exit code 2 and one line naming the
/// file and SQLite's reason (it used to say only that a pool timed out).
#[test]
fn binary_refuses_a_corrupt_jobs_file_in_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("outputs");
    std::fs::create_dir_all(&out).expect("outputs dir");
    let file = out.join("jobs.db");
    std::fs::write(&file, vec![0x5a_u8; 8192]).expect("garbage");
    let (status, stderr) = run_to_exit(&[("MV_OUTPUT_DIR", out.to_str().expect("utf-8")), ("RUST_LOG", "off")]);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{stderr}");
    let expected = format!("mvgen: cannot open the jobs database {}: file is not a database", file.display());
    assert_eq!(stderr.trim_end(), expected);
}

/// A write killed mid-way leaves a hidden `.partial` file that no drop guard removes: the next
/// start cleans up the stale ones and nothing else.
#[test]
fn startup_removes_stale_partial_files_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("outputs");
    let id = |n: u8| format!("3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c{n:02x}");
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    let plant = |path: std::path::PathBuf, modified: Option<std::time::SystemTime>| {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let file = std::fs::File::create(&path).expect("create");
        if let Some(t) = modified {
            file.set_modified(t).expect("set mtime");
        }
        path
    };
    let stale = [
        plant(out.join("videos").join(format!(".{}.partial", id(1))), Some(old)),
        plant(out.join("character_references").join(format!(".{}.partial", id(2))), Some(old)),
    ];
    let kept = [
        plant(out.join("videos").join(format!(".{}.partial", id(3))), None),
        plant(out.join("videos").join(format!("{}.mp4", id(4))), Some(old)),
        plant(out.join("videos").join("notes.partial"), Some(old)),
    ];
    std::fs::create_dir_all(out.join("videos").join(".dir.partial")).expect("a directory");

    let server = ServerProcess::start(&[("MV_OUTPUT_DIR", out.to_str().expect("utf-8"))]).expect("start mvgen");
    let (_, logs) = server.terminate();
    assert!(logs.contains("removed stale partial files") && logs.contains("removed=2"), "{logs}");
    assert!(stale.iter().all(|p| !p.exists()), "stale partial files remain");
    assert!(kept.iter().all(|p| p.exists()), "only stale hidden .partial files may go");
    assert!(out.join("videos").join(".dir.partial").is_dir());
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
            generations: mvgen::limits::GenerationSlots::new(settings.max_concurrent_generations),
            flavors: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let router = app(state, &settings);
        tokio::spawn(serve(listener, router, std::future::pending()));
        (TestServer { base, client: crate::support::http_client(), _dir: dir }, settings.output_dir)
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

/// Issue 9: the replaced service stripped every string and treated blank optionals as "not given"
/// before rendering. A padded request must reach the real Gemini and Replicate clients' upstreams
/// as exactly the same bytes as its clean twin (what that service sent for it).
#[tokio::test]
async fn padded_and_blank_inputs_send_the_same_bytes_upstream_as_their_clean_twin() {
    use base64::Engine;
    let up = Upstreams::start().await;
    let server = up.server(|_| {}).await;
    let png = FakeFile::png().bytes().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let cases = [
        (
            "/api/mv/create_scenes",
            json!({"idea": "  A robot walks.  \n", "character_description": " a robot ", "character_characteristics": "",
                "video_type": null, "camera_angle": "  ", "config_flavor": ""}),
            json!({"idea": "A robot walks.", "character_description": "a robot"}),
        ),
        (
            "/api/mv/create_scenes",
            json!({"idea": "x\t", "character_description": "\u{3000}y", "config_flavor": " mv1 ", "number_of_scenes": 3,
                "video_characteristics": " grainy\n"}),
            json!({"idea": "x", "character_description": "y", "config_flavor": "mv1", "number_of_scenes": 3,
                "video_characteristics": "grainy"}),
        ),
        (
            "/api/mv/generate_character_reference",
            json!({"character_description": " a drummer \n", "aspect_ratio": "", "negative_prompt": " ",
                "output_format": " png ", "num_images": 1, "seed": null}),
            json!({"character_description": "a drummer", "output_format": "png", "num_images": 1}),
        ),
        (
            "/api/mv/generate_video",
            json!({"prompt": "  A robot walks.  \n", "negative_prompt": "", "aspect_ratio": " 9:16 ",
                "video_rules_template": "In {aspect_ratio}.\n", "character_reference_id": "", "config_flavor": "",
                "duration": null}),
            json!({"prompt": "A robot walks.", "aspect_ratio": "9:16", "video_rules_template": "In {aspect_ratio}."}),
        ),
        (
            "/api/mv/generate_video",
            json!({"prompt": "p ", "reference_image_base64": format!(" {b64}\n"), "seed": 7}),
            json!({"prompt": "p", "reference_image_base64": b64, "seed": 7}),
        ),
    ];
    for (path, padded, clean) in cases {
        let mut sent = Vec::new();
        for body in [&padded, &clean] {
            let scenes = body["number_of_scenes"].as_u64().map_or_else(
                || {
                    mvgen::flavor::lookup(body["config_flavor"].as_str().unwrap_or("default").trim())
                        .map_or(6, |f| f.parameters.number_of_scenes.value)
                },
                |n| n as u32,
            );
            up.gemini.set_default_scenes(scenes);
            let (status, resp) = server.post(path, body).await;
            assert_eq!(status, 200, "{body}: {resp}");
            let received = if path.ends_with("create_scenes") {
                up.gemini.received().last().cloned()
            } else {
                up.replicate.received_on(Route::Create).last().cloned()
            };
            sent.push(received.expect("something went upstream"));
        }
        assert_eq!(
            String::from_utf8_lossy(&sent[0].body),
            String::from_utf8_lossy(&sent[1].body),
            "{path}: {padded} went upstream differently from {clean}"
        );
        assert_eq!(sent[0].path, sent[1].path);
    }
    let videos = up.replicate.received_on(Route::Create);
    let plain = videos.iter().rev().nth(2).expect("the padded video request").json();
    assert_eq!(plain["input"]["prompt"], "A robot walks.\n\nIn 9:16.");
    assert!(plain["input"].get("negative_prompt").is_none(), "an empty negative_prompt is not sent: {plain}");
    let uploaded = videos.last().expect("the uploaded-reference request").json();
    assert_eq!(uploaded["input"]["reference_images"][0], format!("data:image/png;base64,{b64}"));
}

/// Their kind of client, for real: the real binary (mock providers), a `hash:` key, no
/// CORS_ORIGINS, and their exact requests: `X-API-Key: ''` beside `?api_key=`, a JSON
/// `Content-Type` on GETs, their dev server's preflight, their bodies with blank optionals,
/// `project_id`, `sequence` and `reference_image_base64`, and the routes their front end reads.
#[test]
fn their_front_end_and_scripts_work_against_the_real_binary() {
    use base64::Engine;
    use sha2::Digest;
    let key = "their-team-key";
    let digest: String = sha2::Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let server = ServerProcess::start(&[("API_KEY", &format!("hash:{digest}"))]).expect("start mvgen");
    let log = server.log();
    assert!(log.contains("http://localhost:3000, http://localhost:3001"), "the effective CORS list is logged: {log}");
    let base = server.base.clone();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let client = crate::support::http_client();
        // What their page sends on every GET: an empty key header when it has none, JSON type.
        let get = |path: String, key: &str| {
            client.get(format!("{base}{path}")).header("x-api-key", key).header("content-type", "application/json")
        };
        let post = |path: &str, body: Value| {
            client.post(format!("{base}{path}")).header("x-api-key", key).header("origin", "http://localhost:3000").json(&body)
        };

        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{base}/api/mv/generate_video"))
            .header("origin", "http://localhost:3001")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-api-key")
            .send()
            .await
            .expect("preflight");
        assert_eq!(preflight.status(), 200);
        assert_eq!(preflight.headers()["access-control-allow-origin"], "http://localhost:3001");
        // Caches must key CORS answers on these: one Vary, on preflights and plain answers alike.
        let vary = |headers: &reqwest::header::HeaderMap| {
            headers.get_all("vary").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect::<Vec<_>>()
        };
        let cors_vary = ["origin, access-control-request-method, access-control-request-headers"];
        assert_eq!(vary(preflight.headers()), cors_vary);

        let resp = get(format!("/api/mv/get_config_flavors?api_key={key}"), "").send().await.expect("flavors");
        assert_eq!(resp.status(), 200, "an empty X-API-Key must not hide ?api_key=");
        assert_eq!(vary(resp.headers()), cors_vary);
        // The page reads the flavor, range and request-id headers of any answer, a refusal's too;
        // a preflight exposes nothing.
        let exposed = |headers: &reqwest::header::HeaderMap| {
            let values = headers.get_all("access-control-expose-headers").iter();
            values.map(|v| v.to_str().expect("ascii").to_owned()).collect::<Vec<_>>()
        };
        let cors_exposed = ["x-config-flavor,x-config-flavor-hash,content-range,x-request-id"];
        assert_eq!(exposed(resp.headers()), cors_exposed);
        assert_eq!(exposed(preflight.headers()), Vec::<String>::new());
        let resp = get("/api/mv/get_config_flavors".into(), "").send().await.expect("no key");
        assert_eq!(resp.status(), 401);
        assert_eq!(exposed(resp.headers()), cors_exposed);
        assert_eq!(resp.headers()["www-authenticate"], "ApiKey");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["message"], "API key missing. Provide X-API-Key header or ?api_key=YOUR_KEY");
        assert_eq!(body["detail"]["error"], "Unauthorized");

        // Their project ids name stored projects: an unknown one is their 404, as theirs answered.
        let unknown = "0e4f1a2b-8f0a-4d2b-9c51-3f2b6c1e3c4d";
        let resp = post("/api/mv/create_scenes", json!({"idea": "A robot", "character_description": "a robot", "project_id": unknown}))
            .send()
            .await
            .expect("unknown project");
        assert_eq!(resp.status(), 404);
        let created: Value = post("/api/mv/projects", json!({"mode": "ad-creative", "prompt": "A robot learns to dance."}))
            .send()
            .await
            .expect("project")
            .json()
            .await
            .expect("json");
        let project = created["projectId"].as_str().expect("a project id").to_owned();
        let project = project.as_str();
        let resp = post("/api/mv/create_scenes", json!({"idea": " A robot learns to dance. ", "character_description": "a small robot",
            "character_characteristics": "", "number_of_scenes": 3, "video_type": null, "config_flavor": "", "project_id": project}))
            .send()
            .await
            .expect("scenes");
        assert_eq!(resp.headers()["access-control-allow-origin"], "http://localhost:3000");
        let scenes: Value = resp.json().await.expect("json");
        assert_eq!(scenes["scenes"].as_array().map(Vec::len), Some(3), "{scenes}");
        assert_eq!((scenes["metadata"]["idea"].as_str(), scenes["metadata"]["project_id"].as_str()), (Some("A robot learns to dance."), Some(project)));
        for (kind, expect) in [("json", "application/json"), ("markdown", "text/markdown")] {
            let url = scenes["output_files"][kind].as_str().expect("url").to_string();
            let resp = get(url, key).send().await.expect("scenes file");
            assert_eq!(resp.status(), 200, "{kind}");
            assert!(resp.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with(expect)), "{kind}");
        }

        let images: Value = post("/api/mv/generate_character_reference", json!({"character_description": "a small robot", "num_images": 1}))
            .send().await.expect("images").json().await.expect("json");
        let image_id = images["images"][0]["id"].as_str().expect("id").to_string();
        let image = get(format!("/api/mv/get_character_reference/{image_id}?redirect=false"), key).send().await.expect("image");
        assert_eq!(image.status(), 200);
        let image = image.bytes().await.expect("bytes");

        // Their newest pipeline sends the picked image again as base64 on every video request.
        let body = json!({"prompt": "The robot spins under a spotlight.\n", "negative_prompt": "", "aspect_ratio": "16:9",
            "character_reference_id": image_id, "reference_image_base64": base64::engine::general_purpose::STANDARD.encode(&image),
            "project_id": project, "sequence": 1, "config_flavor": ""});
        let video: Value = post("/api/mv/generate_video", body).send().await.expect("video").json().await.expect("json");
        let m = &video["metadata"];
        assert_eq!((m["prompt"].as_str(), m["backend_used"].as_str(), m["has_reference_image"].as_bool()), (Some("The robot spins under a spotlight."), Some("mock"), Some(true)), "{video}");
        assert!(m["full_prompt"].as_str().is_some_and(|p| p.starts_with("The robot spins under a spotlight.\n\n")));
        assert_eq!((m["project_id"].as_str(), m["sequence"].as_u64(), m["character_reference_id"].as_str()), (Some(project), Some(1), Some(image_id.as_str())));
        let video_url = video["video_url"].as_str().expect("url").to_string();
        let info: Value = get(format!("{video_url}/info"), key).send().await.expect("info").json().await.expect("json");
        let file = get(format!("{video_url}?redirect=true"), key).send().await.expect("video file");
        assert_eq!(file.status(), 200);
        let size = file.bytes().await.expect("bytes").len();
        assert_eq!((info["size"].as_u64(), info["is_mock"].as_bool(), info["content_type"].as_str()), (Some(size as u64), Some(true), Some("video/mp4")), "{info}");

        let bad = post("/api/mv/generate_video", json!({"prompt": "p", "project_id": "proj-1", "sequence": 1})).send().await.expect("bad");
        assert_eq!(bad.status(), 400);
        let bad: Value = bad.json().await.expect("json");
        assert_eq!(bad["detail"]["details"], "project_id");
    });
}
