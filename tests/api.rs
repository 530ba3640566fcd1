//! The HTTP API through `app(state).oneshot(..)`: no socket, recording providers defined below, a
//! temporary output directory. Real provider clients against fake upstreams live in tests/e2e.rs.

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mvgen::prompts::{self, SceneInputs};
use mvgen::providers::{ProviderError, Providers, SceneRequest};
use serde_json::{Value, json};
use support::test_app::{FAKE_MP4, Recording, TINY_PNG, TestApp, capture_logs};

#[tokio::test]
async fn flavors_are_listed_sorted_with_details() {
    let t = TestApp::new();
    let (status, body) = t.get("/api/mv/get_config_flavors").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["flavors"], json!(["default", "example", "mv1"]));
    assert_eq!(body["default"], "default");
    let mv1 = body["details"].as_array().expect("details").iter().find(|d| d["name"] == "mv1").expect("mv1").clone();
    assert_eq!(mv1["label"], "Live performance MV");
    assert_eq!(mv1["extends"], "default");
}

#[tokio::test]
async fn each_flavor_reaches_the_scene_writer_exactly_as_rendered() {
    for (requested, used, fallback) in [
        (None, "default", false),
        (Some("default"), "default", false),
        (Some("mv1"), "mv1", false),
        (Some("example"), "example", false),
        (Some("nope"), "default", true),
    ] {
        let t = TestApp::new();
        let mut body = json!({"idea": "a night drive", "character_description": "a courier in a yellow coat"});
        if let Some(name) = requested {
            body["config_flavor"] = json!(name);
        }
        let (status, headers, resp) = t.post_full("/api/mv/create_scenes", &body).await;
        assert_eq!(status, StatusCode::OK, "{requested:?}: {resp}");
        assert_eq!(headers.get("x-config-flavor").and_then(|v| v.to_str().ok()), Some(used));
        assert_eq!(resp["metadata"]["config_flavor"]["used"], used);
        assert_eq!(resp["metadata"]["config_flavor"]["requested"], json!(requested));
        assert_eq!(resp["metadata"]["config_flavor"]["fallback"], fallback);
        assert_eq!(resp["metadata"]["config_flavor"]["reason"].is_string(), fallback);

        let flavor = mvgen::flavor::lookup(used).expect("flavor");
        let expected = prompts::scene_plan(
            flavor,
            &SceneInputs {
                idea: "a night drive".into(),
                character_description: "a courier in a yellow coat".into(),
                ..Default::default()
            },
        );
        let received = t.scenes.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].prompt, expected.prompt);
        assert_eq!(received[0].model, flavor.parameters.scene_model.value);
        let n = flavor.parameters.number_of_scenes.value;
        assert_eq!(received[0].number_of_scenes, n);
        assert_eq!(resp["scenes"].as_array().map(Vec::len), Some(n as usize));
        assert_eq!(resp["metadata"]["number_of_scenes"], n);
        assert_eq!(resp["metadata"]["parameters_used"], expected.parameters());
        assert_eq!(resp["metadata"]["backend_used"], "recording");
        assert_eq!(resp["metadata"]["model_used"], flavor.parameters.scene_model.value.as_ref());
    }
}

#[tokio::test]
async fn request_values_override_the_flavor_and_stay_verbatim() {
    let t = TestApp::new();
    let body = json!({
        "idea": "literal {idea} and {{braces}}",
        "character_description": "x",
        "number_of_scenes": 3,
        "camera_angle": "overhead {camera_angle}",
        "config_flavor": "mv1",
    });
    let (status, resp) = t.post("/api/mv/create_scenes", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let prompt = &t.scenes.received()[0].prompt;
    assert!(prompt.contains("Song idea: literal {idea} and {{braces}}"), "{prompt}");
    assert!(prompt.contains("Camera: overhead {camera_angle}."), "{prompt}");
    assert!(prompt.contains("exactly 3 scenes"), "{prompt}");
    assert_eq!(resp["metadata"]["parameters_used"]["camera_angle"], "overhead {camera_angle}");
    assert_eq!(resp["scenes"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn strict_mode_refuses_unknown_flavors_and_lists_the_known_ones() {
    let t = TestApp::with(|s| s.strict_flavors = true, |_| {});
    let (status, resp) = t
        .post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c", "config_flavor": "MV1"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(resp["detail"]["error"], "UnknownFlavor");
    assert_eq!(resp["detail"]["details"]["available"], json!(["default", "example", "mv1"]));
    assert!(t.scenes.received().is_empty(), "nothing may reach the provider");
    let (status, _) = t
        .post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c", "config_flavor": "mv1"}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn caller_mistakes_get_the_right_status_and_name_the_field() {
    let t = TestApp::new();
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"idea": "  ", "character_description": "c"}), StatusCode::BAD_REQUEST, "idea"),
        (json!({"idea": "i", "character_description": ""}), StatusCode::BAD_REQUEST, "character_description"),
        (
            json!({"idea": "i", "character_description": "c", "number_of_scenes": 0}),
            StatusCode::BAD_REQUEST,
            "number_of_scenes",
        ),
        (
            json!({"idea": "i", "character_description": "c", "number_of_scenes": 33}),
            StatusCode::BAD_REQUEST,
            "number_of_scenes",
        ),
        (
            json!({"idea": "i", "character_description": "c", "number_of_scenes": "six"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "number_of_scenes",
        ),
        (
            json!({"idea": "i", "character_description": "c", "number_of_scenes": 2.5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "number_of_scenes",
        ),
        (json!({"character_description": "c"}), StatusCode::UNPROCESSABLE_ENTITY, "idea"),
        (
            json!({"idea": "i", "character_description": "c", "config_flavour": "mv1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "config_flavour",
        ),
        (
            json!({"idea": "i", "character_description": "c", "config_flavor": ["mv1"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "config_flavor",
        ),
        (json!({"idea": 5, "character_description": "c"}), StatusCode::UNPROCESSABLE_ENTITY, "idea"),
    ];
    for (body, status, field) in cases {
        let (got, resp) = t.post("/api/mv/create_scenes", &body).await;
        assert_eq!(got, status, "{body}: {resp}");
        assert_eq!(resp["detail"]["details"], json!(field), "{body}: {resp}");
        assert!(resp["detail"]["message"].as_str().is_some_and(|m| m.contains(field)), "{resp}");
    }
    assert!(t.scenes.received().is_empty());

    let (status, resp) = t.raw_post("/api/mv/create_scenes", "application/json", "{\"idea\": ").await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidJson")));
    let (status, _) = t.raw_post("/api/mv/create_scenes", "text/plain", "{}").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"idea\": \"{}\", \"character_description\": \"c\"}}", "a".repeat(1024 * 1024 + 10));
    let (status, resp) = t.raw_post("/api/mv/create_scenes", "application/json", &huge).await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("PayloadTooLarge")));
}

#[tokio::test]
async fn character_references_are_stored_and_served() {
    let t = TestApp::new();
    let body = json!({"character_description": "a tall dancer", "num_images": 2, "aspect_ratio": "1:1", "seed": 7,
        "config_flavor": "mv1"});
    let (status, resp) = t.post("/api/mv/generate_character_reference", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let images = resp["images"].as_array().expect("images").clone();
    assert_eq!(images.len(), 2);
    assert_eq!(resp["metadata"]["num_images_generated"], 2);
    assert_eq!(resp["metadata"]["parameters_used"]["aspect_ratio"], "1:1");
    assert_eq!(resp["metadata"]["parameters_used"]["output_format"], "png");
    let received = t.images.received();
    assert_eq!(received.len(), 2);
    assert!(received[0].prompt.starts_with("A full-body character reference photo of a tall dancer."));
    let mut seeds: Vec<Option<i64>> = received.iter().map(|r| r.seed).collect();
    seeds.sort();
    assert_eq!(seeds, vec![Some(7), Some(8)], "each image gets its own seed");
    assert_eq!(received[0].aspect_ratio, "1:1");

    let url = images[0]["url"].as_str().expect("url");
    let (status, headers, bytes) = t.get_bytes(url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("image/png"));
    assert_eq!(bytes, TINY_PNG);

    let (status, resp) = t.get("/api/mv/get_character_reference/..%2F..%2Fetc%2Fpasswd").await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::BAD_REQUEST, Some("InvalidId")));
    let (status, _) = t.get("/api/mv/get_character_reference/3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for bad in [
        json!({"character_description": "c", "num_images": 5}),
        json!({"character_description": "c", "aspect_ratio": "2:1"}),
    ] {
        let (status, resp) = t.post("/api/mv/generate_character_reference", &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
    }
}

#[tokio::test]
async fn videos_carry_the_reference_rules_and_support_range() {
    let t = TestApp::new();
    let (_, resp) =
        t.post("/api/mv/generate_character_reference", &json!({"character_description": "c", "num_images": 1})).await;
    let reference_id = resp["images"][0]["id"].as_str().expect("id").to_string();

    let body = json!({"prompt": "The courier runs.", "character_reference_id": reference_id, "config_flavor": "example",
        "duration": 5});
    let (status, resp) = t.post("/api/mv/generate_video", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["character_reference_warning"], Value::Null);
    let received = t.videos.received();
    assert_eq!(received[0].reference_image.as_ref().map(|m| m.bytes.as_slice()), Some(TINY_PNG));
    assert_eq!(received[0].duration, 5);
    let expected = prompts::video_plan(
        mvgen::flavor::lookup("example").expect("example"),
        &prompts::VideoInputs { prompt: "The courier runs.".into(), duration: Some(5), ..Default::default() },
    );
    assert_eq!(received[0].prompt, expected.prompt);
    assert_eq!(resp["metadata"]["prompt"], expected.prompt);

    let video_url = resp["video_url"].as_str().expect("url").to_string();
    let (status, headers, bytes) = t.get_bytes(&video_url, Some("bytes=2-5")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("video/mp4"));
    assert_eq!(bytes, &FAKE_MP4[2..=5]);

    let body = json!({"prompt": "p", "character_reference_id": "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d",
        "video_rules_template": "Shot in {aspect_ratio}."});
    let (status, resp) = t.post("/api/mv/generate_video", &body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(resp["character_reference_warning"].as_str().is_some_and(|w| w.contains("not found")));
    assert_eq!(t.videos.received()[1].prompt, "p\n\nShot in 16:9.");

    let (status, resp) =
        t.post("/api/mv/generate_video", &json!({"prompt": "p", "video_rules_template": "{idea}"})).await;
    assert_eq!((status, resp["detail"]["details"].as_str()), (StatusCode::BAD_REQUEST, Some("video_rules_template")));
}

#[tokio::test]
async fn upstream_faults_map_to_502_503_504_and_refusals_to_422() {
    for (fault, status) in [
        (ProviderError::Timeout { provider: "gemini", after: Duration::from_secs(60) }, StatusCode::GATEWAY_TIMEOUT),
        (ProviderError::Upstream { provider: "gemini", status: 500, message: "boom".into() }, StatusCode::BAD_GATEWAY),
        (ProviderError::Malformed { provider: "gemini", message: "not JSON".into() }, StatusCode::BAD_GATEWAY),
        (
            ProviderError::Refused { provider: "gemini", message: "blocked: SAFETY".into() },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            ProviderError::RateLimited { provider: "gemini", retry_after: Some(Duration::from_secs(7)) },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let t = TestApp::with(|_| {}, |p| p.scenes = Arc::new(Recording::<SceneRequest>::failing(fault.clone())));
        let (got, headers, resp) =
            t.post_full("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c"})).await;
        assert_eq!(got, status, "{resp}");
        assert!(resp["detail"]["message"].as_str().is_some_and(|m| m.contains("gemini")), "{resp}");
        assert_eq!(resp["detail"]["details"]["provider"], "gemini");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("7"));
        }
    }
}

#[tokio::test]
async fn api_keys_are_required_when_configured() {
    let t = TestApp::with(|s| s.api_keys = vec!["k-one".into(), "k two".into()], |_| {});
    let (status, resp) = t.get("/api/mv/get_config_flavors").await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("Unauthorized")));
    let (status, _) = t.send(Request::get("/api/mv/get_config_flavors").header("x-api-key", "k-one")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.get("/api/mv/get_config_flavors?api_key=k%20two").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.send(Request::get("/api/mv/get_config_flavors").header("x-api-key", "k-on")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = t.get("/health").await;
    assert_eq!(status, StatusCode::OK, "health stays open for probes");

    // Without a key, unknown API paths and wrong methods say nothing about which routes exist.
    for req in [
        Request::get("/api/mv/no_such_route"),
        Request::get("/api/nothing"),
        Request::get("/api"),
        Request::get("/api/mv/create_scenes"),
        Request::delete("/api/mv/get_video/3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d"),
    ] {
        let (status, resp) = t.send(req).await;
        assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("Unauthorized")));
    }
    let (status, _) = t.send(Request::get("/api/mv/no_such_route").header("x-api-key", "k-one")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = t.send(Request::get("/api/mv/create_scenes").header("x-api-key", "k-one")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = t.get("/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "only /api is guarded");
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    let t = TestApp::new();
    let (status, spec) = t.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/mv/get_config_flavors",
        "/api/mv/create_scenes",
        "/api/mv/generate_character_reference",
        "/api/mv/generate_video",
        "/api/mv/get_character_reference/{id}",
        "/api/mv/get_video/{id}",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing");
    }
    assert!(spec["components"]["schemas"]["CreateScenesBody"].is_object());
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let t = TestApp::new();
    let (status, resp) = t.get("/api/mv/nope").await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::NOT_FOUND, Some("NotFound")));
}

/// 1000 requests across flavors at once: every prompt the provider received must be its own
/// request's flavor's rendering (no request ever sees another's config).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_different_flavors_never_mix() {
    let t = Arc::new(TestApp::new());
    let flavors = ["default", "mv1", "example", "unknown-one"];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let t = Arc::clone(&t);
        let flavor = flavors[i % flavors.len()];
        tasks.spawn(async move {
            let body = json!({"idea": format!("idea-{i}"), "character_description": "c", "config_flavor": flavor});
            let (status, resp) = t.post("/api/mv/create_scenes", &body).await;
            assert_eq!(status, StatusCode::OK);
            (i, flavor, resp["metadata"]["config_flavor"]["used"].as_str().map(String::from))
        });
    }
    let mut used_by_idea = std::collections::HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (i, requested, used) = done.expect("task");
        let expected_used = if requested == "unknown-one" { "default" } else { requested };
        assert_eq!(used.as_deref(), Some(expected_used));
        used_by_idea.insert(format!("idea-{i}"), expected_used);
    }
    let received = t.scenes.received();
    assert_eq!(received.len(), 1000);
    for r in received {
        let used = used_by_idea[&r.idea];
        let flavor = mvgen::flavor::lookup(used).expect("flavor");
        let expected = prompts::scene_plan(
            flavor,
            &SceneInputs { idea: r.idea.clone(), character_description: "c".into(), ..Default::default() },
        );
        assert_eq!(r.prompt, expected.prompt, "{} got another flavor's prompt", r.idea);
    }
}

#[test]
fn debug_mode_logs_flavor_values_targets_and_prompt_but_never_keys() {
    let logs = capture_logs(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let t = TestApp::with(
                |s| {
                    s.debug = true;
                    s.api_keys = vec!["secret-api-key-123".into()];
                },
                |_| {},
            );
            let req = Request::post("/api/mv/create_scenes")
                .header("content-type", "application/json")
                .header("x-api-key", "secret-api-key-123")
                .body(Body::from(
                    json!({"idea": "i", "character_description": "c", "config_flavor": "example"}).to_string(),
                ));
            let (status, _, _) = t.call(req.expect("request")).await;
            assert_eq!(status, StatusCode::OK);
            let req = Request::post("/api/mv/create_scenes")
                .header("content-type", "application/json")
                .header("x-api-key", "secret-api-key-123")
                .body(Body::from(
                    json!({"idea": "i", "character_description": "c", "config_flavor": "zzz"}).to_string(),
                ));
            t.call(req.expect("request")).await;
        });
    });
    assert!(
        logs.contains("config flavor chosen") && logs.contains("used=example") && logs.contains("found=\"found\""),
        "{logs}"
    );
    assert!(logs.contains("found=\"not found\""), "{logs}");
    let line = logs
        .lines()
        .find(|l| l.contains("key=\"camera_angle\"") && l.contains("flavor=example"))
        .unwrap_or_else(|| panic!("no camera_angle line in {logs}"));
    assert!(line.contains("file=\"parameters.yaml\""), "{line}");
    assert!(line.contains("loaded_into=\"scene_generator.camera_angle\""), "{line}");
    assert!(line.contains("own example/parameters.yaml"), "{line}");
    let inherited = logs.lines().find(|l| l.contains("key=\"video_characteristics\"") && l.contains("flavor=example"));
    assert!(inherited.is_some_and(|l| l.contains("inherited from default")), "{logs}");
    assert!(logs.contains("key=\"scene_generation_prompt\""), "templates are logged in full: {logs}");
    assert!(logs.contains("final prompt"), "{logs}");
    assert!(!logs.contains("secret-api-key-123"), "a key leaked into the logs");

    let quiet = capture_logs(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let t = TestApp::new();
            t.post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c"})).await;
        });
    });
    assert!(!quiet.contains("config value loaded") && !quiet.contains("final prompt"), "{quiet}");
}

#[tokio::test]
async fn mock_providers_work_offline_and_say_so_in_every_answer() {
    let t = TestApp::with(|_| {}, |p| *p = Providers::mock());
    let (status, resp) = t
        .post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c", "config_flavor": "mv1"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        (resp["metadata"]["backend_used"].as_str(), resp["metadata"]["is_mock"].as_bool()),
        (Some("mock"), Some(true))
    );
    assert_eq!(resp["scenes"].as_array().map(Vec::len), Some(8), "mv1 asks for 8 scenes");

    let (status, resp) =
        t.post("/api/mv/generate_character_reference", &json!({"character_description": "c", "num_images": 1})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        (resp["metadata"]["backend_used"].as_str(), resp["metadata"]["is_mock"].as_bool()),
        (Some("mock"), Some(true))
    );
    let (_, _, png) = t.get_bytes(resp["images"][0]["url"].as_str().expect("url"), None).await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a real PNG is stored");

    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        (resp["metadata"]["backend_used"].as_str(), resp["metadata"]["is_mock"].as_bool()),
        (Some("mock"), Some(true))
    );
    let (status, headers, mp4) = t.get_bytes(resp["video_url"].as_str().expect("url"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("video/mp4"));
    assert_eq!(&mp4[4..8], b"ftyp");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let t = TestApp::with(|s| s.cors_origins = vec!["https://studio.example".into()], |_| {});
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/api/mv/create_scenes")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type,x-api-key")
            .body(Body::empty())
            .expect("request")
    };
    let (_, headers, _) = t.call(preflight("https://studio.example")).await;
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()),
        Some("https://studio.example")
    );
    let (_, headers, _) = t.call(preflight("https://evil.example")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

/// A directory, a link to a file outside (standing in for /etc/shadow) or a linked parent
/// directory planted where a stored file belongs is never served or used as a reference.
#[tokio::test]
async fn stored_files_are_served_only_as_regular_files_reached_without_links() {
    let t = TestApp::new();
    let secret_dir = tempfile::tempdir().expect("temp dir");
    let secret = secret_dir.path().join("shadow");
    std::fs::write(&secret, b"root:$6$secret-hash").expect("secret");
    let refs = t.output_dir.join("character_references");
    std::fs::create_dir_all(&refs).expect("mkdir");
    let id = |n: u8| format!("3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c{n:02x}");
    std::fs::create_dir(refs.join(format!("{}.png", id(1)))).expect("a directory");
    std::os::unix::fs::symlink(&secret, refs.join(format!("{}.png", id(2)))).expect("a link");
    // The kind's directory itself a link to somewhere else holding a "stored" video.
    let elsewhere = secret_dir.path().join("videos");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    std::fs::write(elsewhere.join(format!("{}.mp4", id(3))), FAKE_MP4).expect("video");
    std::os::unix::fs::symlink(&elsewhere, t.output_dir.join("videos")).expect("linked dir");

    for url in [
        format!("/api/mv/get_character_reference/{}", id(1)),
        format!("/api/mv/get_character_reference/{}", id(2)),
        format!("/api/mv/get_video/{}", id(3)),
    ] {
        let (status, headers, bytes) = t.get_bytes(&url, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("application/json"));
        assert!(!String::from_utf8_lossy(&bytes).contains("secret-hash"), "{url}");
    }
    let body = json!({"prompt": "p", "character_reference_id": id(2)});
    let (status, resp) = t.post("/api/mv/generate_video", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert!(resp["character_reference_warning"].as_str().is_some_and(|w| w.contains("not found")), "{resp}");
    assert_eq!(t.videos.received()[0].reference_image, None, "the linked file must not be sent upstream");
}

/// RFC 9110 on the file GETs: a non-matching If-Range gets the whole file, an unknown range unit
/// or a malformed Range is ignored, an If-Modified-Since in the future is ignored.
#[tokio::test]
async fn file_gets_follow_rfc_9110_conditionals_and_ranges() {
    let t = TestApp::new();
    let (_, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    let url = resp["video_url"].as_str().expect("url").to_string();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = Request::get(url.as_str());
        for (name, value) in headers {
            req = req.header(name, value);
        }
        t.call(req.body(Body::empty()).expect("request"))
    };
    let (status, headers, bytes) = get(vec![]).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FAKE_MP4));
    let last_modified = headers.get(header::LAST_MODIFIED).and_then(|v| v.to_str().ok()).expect("Last-Modified");
    let last_modified = last_modified.to_string();

    let whole = |label: &str, (status, _, bytes): (StatusCode, axum::http::HeaderMap, Vec<u8>)| {
        assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FAKE_MP4), "{label}");
    };
    whole("etag If-Range", get(vec![("range", "bytes=2-5".into()), ("if-range", "\"other\"".into())]).await);
    let stale = "Wed, 21 Oct 2015 07:28:00 GMT".to_string();
    whole("old date If-Range", get(vec![("range", "bytes=2-5".into()), ("if-range", stale)]).await);
    for range in ["items=0-1", "bytes=5-2", "bytes=x-y", "bytes 0-1"] {
        whole(range, get(vec![("range", range.into())]).await);
    }
    let future = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(86_400));
    whole("future If-Modified-Since", get(vec![("if-modified-since", future)]).await);

    let (status, _, bytes) = get(vec![("range", "bytes=2-5".into()), ("if-range", last_modified.clone())]).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, &FAKE_MP4[2..=5]), "matching If-Range");
    let (status, _, bytes) = get(vec![("if-modified-since", last_modified)]).await;
    assert_eq!((status, bytes.len()), (StatusCode::NOT_MODIFIED, 0));
    let (status, headers, _) = get(vec![("range", "bytes=9999-".into())]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    let expected = format!("bytes */{}", FAKE_MP4.len());
    assert_eq!(headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()), Some(expected.as_str()));
}

/// The reference image is read into memory for the video request: a planted oversized one is
/// refused by its size, not read whole.
#[tokio::test]
async fn oversized_character_references_are_refused_not_read_whole() {
    let t = TestApp::new();
    let refs = t.output_dir.join("character_references");
    std::fs::create_dir_all(&refs).expect("mkdir");
    let id = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
    let file = std::fs::File::create(refs.join(format!("{id}.png"))).expect("create");
    // Sparse: 20 MiB + 1 byte without writing them.
    file.set_len(mvgen::api::limits::MAX_REFERENCE_BYTES + 1).expect("size");
    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p", "character_reference_id": id})).await;
    assert_eq!((status, resp["detail"]["details"].as_str()), (StatusCode::BAD_REQUEST, Some("character_reference_id")));
    assert!(t.videos.received().is_empty(), "nothing is sent upstream");
}

#[tokio::test]
async fn openapi_documents_the_text_length_bound() {
    let t = TestApp::new();
    let (_, spec) = t.get("/api/openapi.json").await;
    let schemas = &spec["components"]["schemas"];
    for (body, field) in [
        ("CreateScenesBody", "idea"),
        ("CreateScenesBody", "camera_angle"),
        ("CharacterReferenceBody", "negative_prompt"),
        ("GenerateVideoBody", "prompt"),
        ("GenerateVideoBody", "video_rules_template"),
    ] {
        let max = &schemas[body]["properties"][field]["maxLength"];
        assert_eq!(max, &json!(mvgen::api::limits::MAX_TEXT_CHARS), "{body}.{field}: {}", schemas[body]);
    }
}
