//! The HTTP API through `app(state).oneshot(..)`: no socket, recording providers defined below, a
//! temporary output directory. Real provider clients against fake upstreams live in tests/e2e/.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use mvgen::prompts::{self, SceneInputs};
use mvgen::providers::{ProviderError, Providers};
use serde_json::{Value, json};
use support::test_app::{FAKE_MP4, Recording, SceneCall, TINY_PNG, TestApp, capture_logs};

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
            SceneInputs {
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
        assert_eq!(resp["metadata"]["parameters_used"], json!(expected.parameters()));
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
    assert_eq!(resp["metadata"]["prompt"], "The courier runs.", "the request's prompt, without the rules");
    assert_eq!(resp["metadata"]["full_prompt"], expected.prompt);

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
        let t = TestApp::with(|_| {}, |p| p.scenes = Arc::new(Recording::<SceneCall>::failing(fault.clone())));
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
        "/api/mv/get_video/{id}/info",
        "/api/mv/get_scenes/{id}",
        "/api/mv/upload_audio",
        "/api/mv/get_audio/{id}",
        "/api/mv/get_audio/{id}/info",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing");
    }
    let upload = &spec["paths"]["/api/mv/upload_audio"]["post"]["requestBody"]["content"];
    assert!(upload["multipart/form-data"].is_object() && upload["audio/mpeg"].is_object(), "{upload}");
    assert!(spec["components"]["schemas"]["AudioInfo"]["properties"]["duration_seconds"].is_object());
    let schemas = &spec["components"]["schemas"];
    assert!(schemas["CreateScenesBody"]["properties"]["project_id"].is_object());
    for field in ["project_id", "sequence", "reference_image_base64"] {
        assert!(schemas["GenerateVideoBody"]["properties"][field].is_object(), "{field}");
    }
    for field in ["full_prompt", "generation_timestamp", "has_reference_image", "video_id"] {
        assert!(schemas["VideoMetadata"]["properties"][field].is_object(), "{field}");
    }
    assert!(schemas["CreateScenesResponse"]["properties"]["output_files"].is_object());
    assert!(schemas["UnauthorizedBody"]["properties"]["message"].is_object());
    let redirect = &spec["paths"]["/api/mv/get_video/{id}"]["get"]["parameters"];
    assert!(redirect.as_array().is_some_and(|p| p.iter().any(|p| p["name"] == "redirect")), "{redirect}");
    let content = |path: &str| spec["paths"][path]["get"]["responses"]["200"]["content"].clone();
    assert!(content("/api/mv/get_scenes/{id}")["application/json"].is_object());
    assert!(content("/api/mv/get_scenes/{id}/markdown")["text/markdown"].is_object());
    let backend = &spec["components"]["schemas"]["GenerateVideoBody"]["properties"]["backend"];
    assert!(backend["description"].as_str().is_some_and(|d| d.contains("`gemini`")), "{backend}");
    assert_eq!(backend["pattern"], r"^\s*(replicate|gemini)?\s*$");
    // A listing's items are jobs without their plans; one job read by id has it.
    assert_eq!(schemas["JobList"]["properties"]["jobs"]["items"]["$ref"], "#/components/schemas/JobSummary");
    let summary = &schemas["JobSummary"]["properties"];
    assert!(summary["id"].is_object() && summary["urls"].is_object() && summary.get("plan").is_none(), "{summary}");
    let job =
        spec["paths"]["/api/mv/jobs/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .map(|name| schemas[name].to_string())
            .unwrap_or_default();
    assert!(job.contains("\"plan\"") && job.contains("JobSummary"), "{job}");
}

/// README says the sync generation routes take `webhook` and `webhook_events_filter` beside their
/// own fields (as `POST /api/mv/jobs` does): their bodies' schemas list both, as the envelope's.
#[tokio::test]
async fn openapi_lists_the_webhook_fields_of_every_sync_generation_body() {
    let t = TestApp::new();
    let (_, spec) = t.get("/api/openapi.json").await;
    let schemas = &spec["components"]["schemas"];
    for body in ["CreateScenesBody", "CharacterReferenceBody", "GenerateVideoBody", "StitchVideosBody"] {
        for field in ["webhook", "webhook_events_filter"] {
            let declared = &schemas[body]["properties"][field];
            assert!(declared.is_object(), "{body}.{field} missing: {}", schemas[body]);
            assert_eq!(declared, &schemas["SubmitJobBody"]["properties"][field], "{body}.{field}");
        }
    }
}

#[tokio::test]
async fn openapi_offers_the_flavor_names_and_pins_them_in_strict_mode() {
    let names = json!(["default", "example", "mv1"]);
    for strict in [false, true] {
        let t = TestApp::with(|s| s.strict_flavors = strict, |_| {});
        let (status, spec) = t.get("/api/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        for body in ["CreateScenesBody", "CharacterReferenceBody", "GenerateVideoBody"] {
            let field = &spec["components"]["schemas"][body]["properties"]["config_flavor"];
            assert_eq!(field["examples"], names, "{body} (strict: {strict}): {field}");
            if strict {
                assert_eq!(field["enum"], json!(["default", "example", "mv1", "", null]), "{body}: {field}");
            } else {
                assert!(field.get("enum").is_none(), "unknown names fall back, so no enum: {field}");
            }
        }
    }
}

#[tokio::test]
async fn every_generation_names_the_content_hash_of_the_flavor_it_used() {
    let t = TestApp::new();
    let hash = |name: &str| mvgen::flavor::lookup(name).expect("flavor").hash.to_string();
    assert_ne!(hash("mv1"), hash("default"));
    let (_, list) = t.get("/api/mv/get_config_flavors").await;
    for d in list["details"].as_array().expect("details") {
        assert_eq!(d["hash"], hash(d["name"].as_str().expect("name")), "{d}");
    }
    for (uri, body, used) in [
        ("/api/mv/create_scenes", json!({"idea": "i", "character_description": "c", "config_flavor": "mv1"}), "mv1"),
        ("/api/mv/generate_character_reference", json!({"character_description": "c", "num_images": 1}), "default"),
        ("/api/mv/generate_video", json!({"prompt": "p", "config_flavor": "no-such"}), "default"),
    ] {
        let (status, headers, resp) = t.post_full(uri, &body).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {resp}");
        let header = headers.get("x-config-flavor-hash").and_then(|v| v.to_str().ok());
        assert_eq!(header, Some(hash(used).as_str()), "{uri}");
        assert_eq!(resp["metadata"]["config_flavor"]["hash"], hash(used), "{uri}: {resp}");
    }
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
    // All 1000 at once: the generation cap is not what this test is about.
    let t = Arc::new(TestApp::with(|s| s.max_concurrent_generations = 1000, |_| {}));
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
        let used = used_by_idea[&r.brief.idea];
        let flavor = mvgen::flavor::lookup(used).expect("flavor");
        let expected = prompts::scene_plan(
            flavor,
            SceneInputs { idea: r.brief.idea.clone(), character_description: "c".into(), ..Default::default() },
        );
        assert_eq!(r.prompt, expected.prompt, "{} got another flavor's prompt", r.brief.idea);
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
    let example_hash = &mvgen::flavor::lookup("example").expect("example").hash;
    assert!(logs.contains(&format!("hash={example_hash}")), "the chosen flavor's hash is logged: {logs}");
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
    let preflight = |origin: &str| preflight("/api/mv/create_scenes", origin);
    let (_, headers, _) = t.call(preflight("https://studio.example")).await;
    assert_eq!(
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()),
        Some("https://studio.example")
    );
    let (_, headers, _) = t.call(preflight("https://evil.example")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // The create page sends an Idempotency-Key with every job it submits.
    let (_, headers, _) = t.call(preflight_with("/api/mv/jobs", "https://studio.example", "idempotency-key")).await;
    let allowed = headers.get(header::ACCESS_CONTROL_ALLOW_HEADERS).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(allowed.split(',').any(|h| h.trim().eq_ignore_ascii_case("idempotency-key")), "{allowed:?}");
}

#[tokio::test]
async fn backend_picks_the_video_maker_and_gemini_gets_its_own_model() {
    let t = TestApp::new();
    let mv1_replicate_model = &*mvgen::flavor::lookup("mv1").expect("mv1").image_params.video_model.value;
    for backend in [None, Some(Value::Null), Some(json!("")), Some(json!("  ")), Some(json!(" replicate "))] {
        let mut body = json!({"prompt": "The courier runs.", "config_flavor": "mv1"});
        if let Some(value) = &backend {
            body["backend"] = value.clone();
        }
        let (status, resp) = t.post("/api/mv/generate_video", &body).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {resp}");
        assert_eq!(resp["metadata"]["model_used"], mv1_replicate_model, "{backend:?}");
    }
    assert_eq!(t.videos.received().len(), 5, "replicate is the default");
    assert!(t.gemini_videos.received().is_empty());

    let body = json!({"prompt": "The courier runs.", "config_flavor": "mv1", "backend": "gemini", "seed": 7});
    let (status, resp) = t.post("/api/mv/generate_video", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let to_gemini = t.gemini_videos.received();
    assert_eq!(to_gemini.len(), 1);
    assert_eq!(t.videos.received().len(), 5, "nothing more went to replicate");
    // The same full prompt (scene text + the flavor's rules) and parameters; only the model differs,
    // and it is never the Replicate name.
    let to_replicate = &t.videos.received()[0];
    assert_eq!(to_gemini[0].model, "veo-3.1-generate-preview");
    assert_eq!(to_gemini[0].prompt, to_replicate.prompt);
    assert_eq!(
        (to_gemini[0].duration, &to_gemini[0].aspect_ratio, &to_gemini[0].person_generation, to_gemini[0].seed),
        (to_replicate.duration, &to_replicate.aspect_ratio, &to_replicate.person_generation, Some(7))
    );
    assert_eq!(resp["metadata"]["model_used"], "veo-3.1-generate-preview");
    assert_eq!(resp["metadata"]["parameters_used"]["model"], "veo-3.1-generate-preview");
    let (status, _, bytes) = t.get_bytes(resp["video_url"].as_str().expect("url"), None).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FAKE_MP4));
}

#[tokio::test]
async fn unknown_backends_are_a_400_listing_both_and_reach_no_provider() {
    let t = TestApp::new();
    for value in ["vertex", "Gemini", "replicate,gemini"] {
        let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p", "backend": value})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{resp}");
        assert_eq!(resp["detail"]["error"], "ValidationError");
        assert_eq!(resp["detail"]["message"], format!("Invalid backend: {value}"));
        assert_eq!(resp["detail"]["details"]["field"], "backend");
        assert_eq!(resp["detail"]["details"]["message"], "Supported backends: 'replicate', 'gemini'");
        assert_eq!(resp["detail"]["details"]["supported"], json!(["replicate", "gemini"]));
    }
    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p", "backend": 1})).await;
    assert_eq!((status, resp["detail"]["details"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("backend")));
    assert!(t.videos.received().is_empty() && t.gemini_videos.received().is_empty());
}

#[tokio::test]
async fn mock_answers_backend_gemini_labelled_as_such() {
    let t = TestApp::with(|_| {}, |p| *p = Providers::mock());
    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p", "backend": "gemini"})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        (resp["metadata"]["backend_used"].as_str(), resp["metadata"]["is_mock"].as_bool()),
        (Some("gemini-mock"), Some(true))
    );
    assert_eq!(resp["metadata"]["model_used"], "veo-3.1-generate-preview");
    let (status, headers, mp4) = t.get_bytes(resp["video_url"].as_str().expect("url"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("video/mp4"));
    assert_eq!(&mp4[4..8], b"ftyp");
}

#[test]
fn debug_mode_never_claims_the_replicate_model_for_backend_gemini() {
    let logs = capture_logs(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let t = TestApp::with(|s| s.debug = true, |_| {});
            let (status, _) = t.post("/api/mv/generate_video", &json!({"prompt": "p", "backend": "gemini"})).await;
            assert_eq!(status, StatusCode::OK);
            let (status, _) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
            assert_eq!(status, StatusCode::OK);
        });
    });
    let lines_with = |key: &str| logs.lines().filter(|l| l.contains(key)).count();
    assert_eq!(lines_with("key=\"video_model\""), 1, "only the replicate render consumed video_model: {logs}");
    assert_eq!(lines_with("key=\"gemini_video_model\""), 1, "the gemini render consumed its own model: {logs}");
    assert_eq!(lines_with("loaded_into=\"video_generator.model\""), 2, "{logs}");
    assert_eq!(logs.matches("final prompt").count(), 2, "{logs}");
}

// ---- compatibility with the service mvgen replaces (issue 9) ----

const PROJECT: &str = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn is_rfc3339_utc(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.ends_with('Z') && humantime::parse_rfc3339(s).is_ok())
}

#[tokio::test]
async fn hash_keys_empty_headers_and_the_401_body_match_the_replaced_service() {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(b"their-key").iter().map(|b| format!("{b:02x}")).collect();
    let t = TestApp::with(|s| s.api_keys = vec![format!("hash:{digest}")], |_| {});
    let get = |key: Option<&str>, query: &str| {
        let mut req = Request::get(format!("/api/mv/get_config_flavors{query}"));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        req.body(Body::empty()).expect("request")
    };
    let (status, _, _) = t.call(get(Some("their-key"), "")).await;
    assert_eq!(status, StatusCode::OK, "a key matches its hash: entry");
    let (status, _, _) = t.call(get(Some(&format!("hash:{digest}")), "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the entry itself is no key");
    let (status, _, _) = t.call(get(Some(""), "?api_key=their-key")).await;
    assert_eq!(status, StatusCode::OK, "an empty X-API-Key must not hide ?api_key=");

    let (status, headers, body) = t.call(get(Some(""), "")).await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers.get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("ApiKey"));
    assert_eq!(body["error"], "Unauthorized");
    assert_eq!(body["message"], "API key missing. Provide X-API-Key header or ?api_key=YOUR_KEY");
    assert_eq!(body["detail"]["error"], "Unauthorized");
    assert_eq!(body["detail"]["details"], "x-api-key");
    let (_, _, body) = t.call(get(Some("wrong"), "")).await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (body["message"].as_str(), body["detail"]["message"].as_str()),
        (Some("Invalid API key"), Some("Invalid API key"))
    );

    // The refusal is made before any handler runs, yet names the request like every error body.
    let refused = Request::get("/api/mv/get_config_flavors").header("x-request-id", "keyless-1");
    let (status, headers, body) = t.call(refused.body(Body::empty()).expect("request")).await;
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("keyless-1"));
    assert_eq!(body["detail"]["request_id"], "keyless-1", "{body}");
}

#[tokio::test]
async fn cors_defaults_to_their_dev_server_and_none_turns_it_off() {
    let preflight = |origin: &str| preflight("/api/mv/generate_video", origin);
    let allowed = |headers: &axum::http::HeaderMap| {
        headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok()).map(String::from)
    };
    // TestApp reads an empty environment: CORS_ORIGINS unset.
    let t = TestApp::new();
    for origin in ["http://localhost:3000", "http://localhost:3001"] {
        let (status, headers, _) = t.call(preflight(origin)).await;
        assert_eq!((status, allowed(&headers).as_deref()), (StatusCode::OK, Some(origin)));
    }
    let (_, headers, _) = t.call(preflight("http://localhost:3002")).await;
    assert_eq!(allowed(&headers), None);
    let off = mvgen::server::Settings::from_vars(None, |n| (n == "CORS_ORIGINS").then(|| "none".into()))
        .expect("settings")
        .cors_origins;
    let t = TestApp::with(|s| s.cors_origins = off, |_| {});
    let (_, headers, _) = t.call(preflight("http://localhost:3000")).await;
    assert_eq!(allowed(&headers), None, "CORS_ORIGINS=none turns CORS off");
}

#[tokio::test]
async fn project_fields_are_checked_before_any_model_call_and_echoed() {
    let t = TestApp::new();
    let scenes = json!({"idea": "i", "character_description": "c"});
    for (path, extra, field) in [
        ("/api/mv/create_scenes", json!({"project_id": "project-7"}), "project_id"),
        ("/api/mv/generate_video", json!({"project_id": "nope", "sequence": 1}), "project_id"),
        ("/api/mv/generate_video", json!({"project_id": PROJECT}), "sequence"),
        ("/api/mv/generate_video", json!({"sequence": 2}), "project_id"),
        ("/api/mv/generate_video", json!({"project_id": PROJECT, "sequence": 0}), "sequence"),
        (
            "/api/mv/generate_video",
            json!({"reference_image_base64": b64(b"GIF89a not ours")}),
            "reference_image_base64",
        ),
        ("/api/mv/generate_video", json!({"reference_image_base64": "%%%"}), "reference_image_base64"),
    ] {
        let mut body = if path.ends_with("create_scenes") { scenes.clone() } else { json!({"prompt": "p"}) };
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, resp) = t.post(path, &body).await;
        assert_eq!(
            (status, resp["detail"]["details"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body}: {resp}"
        );
    }
    let (status, resp) =
        t.post("/api/mv/generate_video", &json!({"prompt": "p", "sequence": "2", "project_id": PROJECT})).await;
    assert_eq!((status, resp["detail"]["details"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("sequence")));
    let (status, resp) = t
        .post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c", "config_flavour": "mv1"}))
        .await;
    assert_eq!(
        (status, resp["detail"]["details"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("config_flavour")),
        "typos stay refused"
    );
    assert!(t.scenes.received().is_empty() && t.videos.received().is_empty(), "no bad request reached a provider");

    let upper = PROJECT.to_uppercase();
    let (status, resp) =
        t.post("/api/mv/create_scenes", &json!({"idea": "i", "character_description": "c", "project_id": upper})).await;
    assert_eq!((status, resp["metadata"]["project_id"].as_str()), (StatusCode::OK, Some(PROJECT)), "{resp}");
    let (status, resp) =
        t.post("/api/mv/generate_video", &json!({"prompt": "p", "project_id": PROJECT, "sequence": 3})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(
        (resp["metadata"]["project_id"].as_str(), resp["metadata"]["sequence"].as_u64()),
        (Some(PROJECT), Some(3))
    );
    let (_, info) = t.get(&format!("{}/info", resp["video_url"].as_str().expect("url"))).await;
    assert_eq!(
        (info["project_id"].as_str(), info["sequence"].as_u64()),
        (Some(PROJECT), Some(3)),
        "kept with the video"
    );
    let (status, resp) =
        t.post("/api/mv/generate_video", &json!({"prompt": "p", "project_id": "", "sequence": null})).await;
    assert_eq!(
        (status, resp["metadata"]["project_id"].clone()),
        (StatusCode::OK, Value::Null),
        "empty means not given"
    );
}

#[tokio::test]
async fn reference_image_base64_is_used_only_without_a_stored_reference() {
    let t = TestApp::new();
    let png = b"\x89PNG\r\n\x1a\nuploaded-by-the-client";
    let (status, resp) =
        t.post("/api/mv/generate_video", &json!({"prompt": "p", "reference_image_base64": b64(png)})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["metadata"]["has_reference_image"], true);
    assert_eq!(resp["metadata"]["character_reference_id"], Value::Null);
    let sent = &t.videos.received()[0];
    let reference = sent.reference_image.as_ref().expect("reference sent");
    assert_eq!((reference.bytes.as_slice(), reference.content_type.as_str()), (&png[..], "image/png"));

    let (_, images) =
        t.post("/api/mv/generate_character_reference", &json!({"character_description": "c", "num_images": 1})).await;
    let id = images["images"][0]["id"].as_str().expect("id").to_string();
    let body = json!({"prompt": "p", "character_reference_id": id, "reference_image_base64": b64(png)});
    let (_, resp) = t.post("/api/mv/generate_video", &body).await;
    assert_eq!(
        (resp["metadata"]["character_reference_id"].as_str(), resp["metadata"]["has_reference_image"].as_bool()),
        (Some(id.as_str()), Some(true))
    );
    assert_eq!(
        t.videos.received()[1].reference_image.as_ref().map(|m| m.bytes.as_slice()),
        Some(TINY_PNG),
        "the stored one wins"
    );
    // An id that names nothing: the upload stands in, and the warning says so (not "without it").
    let body = json!({"prompt": "p", "character_reference_id": PROJECT, "reference_image_base64": b64(png)});
    let (_, resp) = t.post("/api/mv/generate_video", &body).await;
    let warning = resp["character_reference_warning"].as_str().unwrap_or_default();
    assert!(warning.contains("not found") && warning.contains("reference_image_base64 was used"), "{resp}");
    assert_eq!(t.videos.received()[2].reference_image.as_ref().map(|m| m.bytes.as_slice()), Some(&png[..]));
    let (_, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p", "reference_image_base64": ""})).await;
    assert_eq!(resp["metadata"]["has_reference_image"], false);
    assert!(t.videos.received()[3].reference_image.is_none());
}

/// At the generation cap a bad request still gets its own 4xx, not a 503: the slot is taken only
/// once the request is known to be valid.
#[tokio::test]
async fn at_the_generation_cap_bad_requests_still_get_their_4xx() {
    let t = TestApp::with(|s| s.max_concurrent_generations = 1, |_| {});
    let _held = t.generations.take().expect("the only slot");
    for (uri, body) in [
        ("/api/mv/create_scenes", json!({"idea": " ", "character_description": "c"})),
        ("/api/mv/generate_character_reference", json!({"character_description": "c", "num_images": 9})),
        ("/api/mv/generate_video", json!({"prompt": "p", "backend": "vertex"})),
    ] {
        let (status, resp) = t.post(uri, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {resp}");
    }
    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(
        (status, resp["detail"]["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("TooManyGenerations"))
    );
}

/// A limit reached is a 503 by design, logged as a warning; a fault stays an error (above).
#[test]
fn a_refusal_at_a_limit_is_logged_as_a_warning_not_an_error() {
    let t = TestApp::with(|s| s.max_concurrent_generations = 1, |_| {});
    let _held = t.generations.take().expect("the only slot");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut answer = None;
    let logs = capture_logs(|| answer = Some(rt.block_on(t.post("/api/mv/generate_video", &json!({"prompt": "p"})))));
    let (status, body) = answer.expect("answered");
    assert_eq!(
        (status, body["detail"]["error"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("TooManyGenerations"))
    );
    assert!(logs.contains("WARN") && logs.contains("kind=TooManyGenerations"), "{logs}");
    assert!(!logs.contains("ERROR"), "{logs}");
}

#[tokio::test]
async fn responses_carry_their_fields_and_scenes_are_stored_per_request() {
    let t = TestApp::new();
    let (status, first) = t
        .post("/api/mv/create_scenes", &json!({"idea": "a heist", "character_description": "c", "number_of_scenes": 2}))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(is_rfc3339_utc(&first["metadata"]["generation_timestamp"]), "{first}");
    let json_url = first["output_files"]["json"].as_str().expect("json url").to_string();
    let md_url = first["output_files"]["markdown"].as_str().expect("markdown url").to_string();
    let (status, headers, bytes) = t.get_bytes(&json_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let stored: Value = serde_json::from_slice(&bytes).expect("stored json");
    assert_eq!(stored["scenes"], first["scenes"]);
    assert_eq!(stored["metadata"]["idea"], "a heist");
    let (status, headers, bytes) = t.get_bytes(&md_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/markdown"))
    );
    let md = String::from_utf8(bytes).expect("utf-8");
    assert!(md.starts_with("# Scenes: a heist\n") && md.contains("## Scene 2\n\nscene 1\n"), "{md}");
    let (_, second) = t.post("/api/mv/create_scenes", &json!({"idea": "another", "character_description": "c"})).await;
    assert_ne!(second["output_files"]["json"], first["output_files"]["json"], "never a fixed file name");
    let (status, headers, _) = t.get_bytes(&json_url, None).await;
    assert_eq!(status, StatusCode::OK, "the first request's file is still its own");
    assert!(headers.get(header::CONTENT_LENGTH).is_some());

    let (_, images) =
        t.post("/api/mv/generate_character_reference", &json!({"character_description": "c", "num_images": 1})).await;
    assert!(is_rfc3339_utc(&images["metadata"]["generation_timestamp"]), "{images}");
    let (_, video) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    let m = &video["metadata"];
    assert!(is_rfc3339_utc(&m["generation_timestamp"]), "{video}");
    assert_eq!(
        (m["video_id"].clone(), m["has_reference_image"].clone(), m["character_reference_id"].clone()),
        (video["video_id"].clone(), json!(false), Value::Null)
    );

    let video_url = video["video_url"].as_str().expect("url");
    let (status, info) = t.get(&format!("{video_url}/info")).await;
    assert_eq!(status, StatusCode::OK, "{info}");
    assert_eq!(info["size"], FAKE_MP4.len());
    assert_eq!((info["content_type"].as_str(), info["is_mock"].as_bool()), (Some("video/mp4"), Some(false)));
    assert_eq!(info["created"], m["generation_timestamp"]);
    // The flavor's content hash is kept with the video, as it was when the video was made.
    assert_eq!(info["config_flavor_hash"], m["config_flavor"]["hash"], "{info}");
    assert_eq!(info["config_flavor"], m["config_flavor"]["used"], "{info}");
    let (status, _) = t.get(&format!("/api/mv/get_video/{PROJECT}/info")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, resp) = t.get("/api/mv/get_video/not-an-id/info").await;
    assert_eq!((status, resp["detail"]["details"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));

    let image_url = images["images"][0]["url"].as_str().expect("image url");
    for url in [
        format!("{video_url}?redirect=true"),
        format!("{video_url}?redirect=false"),
        format!("{image_url}?redirect=false"),
    ] {
        let (status, _, bytes) = t.get_bytes(&url, None).await;
        assert_eq!((status, bytes.is_empty()), (StatusCode::OK, false), "{url}: served from local disk either way");
    }
    let (status, resp) = t.get(&format!("{image_url}?redirect=maybe")).await;
    assert_eq!((status, resp["detail"]["details"].as_str()), (StatusCode::BAD_REQUEST, Some("redirect")));
}

#[test]
fn blank_optional_strings_mean_not_given_and_strings_are_stripped() {
    let log = capture_logs(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(blank_and_padded_values());
    });
    assert!(!log.contains("unknown config flavor"), "an empty config_flavor is the default, silently: {log}");
}

async fn blank_and_padded_values() {
    let t = TestApp::new();
    let messy = json!({"idea": "  a heist \n", "character_description": "\ta thief ", "character_characteristics": "",
        "video_type": null, "camera_angle": "   ", "video_characteristics": " noir ", "config_flavor": ""});
    let clean = json!({"idea": "a heist", "character_description": "a thief", "video_characteristics": "noir"});
    assert_eq!(t.post("/api/mv/create_scenes", &messy).await.0, StatusCode::OK);
    assert_eq!(t.post("/api/mv/create_scenes", &clean).await.0, StatusCode::OK);
    let got = t.scenes.received();
    assert_eq!(got[0].prompt, got[1].prompt);
    assert_eq!(
        got[0].brief.character_characteristics,
        mvgen::flavor::default().parameters.character_characteristics.value
    );

    let messy = json!({"prompt": " A robot walks.  \n", "negative_prompt": "  ", "aspect_ratio": " 9:16 ",
        "video_rules_template": "Shot in {aspect_ratio}.\n", "character_reference_id": ""});
    let (status, resp) = t.post("/api/mv/generate_video", &messy).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let sent = &t.videos.received()[0];
    assert_eq!(sent.prompt, "A robot walks.\n\nShot in 9:16.");
    assert_eq!((sent.negative_prompt.clone(), &*sent.aspect_ratio), (None, "9:16"));
    let (status, resp) = t.post("/api/mv/generate_character_reference",
        &json!({"character_description": " c ", "aspect_ratio": "", "output_format": " jpg ", "negative_prompt": "", "num_images": 1})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let sent = &t.images.received()[0];
    assert_eq!((&*sent.output_format, sent.negative_prompt.clone()), ("jpg", None));
    assert_eq!(sent.aspect_ratio, mvgen::flavor::default().image_params.aspect_ratio.value.to_string());
}

/// A browser's CORS preflight for a POST with a JSON body and an API key.
fn preflight(uri: &str, origin: &str) -> Request<Body> {
    preflight_with(uri, origin, "")
}

/// [`preflight`] asking for `extra` request headers as well.
fn preflight_with(uri: &str, origin: &str, extra: &str) -> Request<Body> {
    let asked =
        if extra.is_empty() { "content-type,x-api-key".to_owned() } else { format!("content-type,x-api-key,{extra}") };
    Request::builder()
        .method("OPTIONS")
        .uri(uri)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, asked)
        .body(Body::empty())
        .expect("request")
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
    file.set_len(mvgen::limits::MAX_REFERENCE_BYTES + 1).expect("size");
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
        assert_eq!(max, &json!(mvgen::limits::MAX_TEXT_CHARS), "{body}.{field}: {}", schemas[body]);
    }
}

/// utoipa's `max_length` takes only a literal, so the text bound is written out on every body field
/// rather than naming `limits::MAX_TEXT_CHARS`: every `maxLength` in the document must equal it, so
/// the literal and the limit the handlers enforce cannot drift apart.
#[tokio::test]
async fn every_max_length_in_openapi_is_the_text_bound() {
    fn collect(value: &Value, at: &str, found: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    let path = format!("{at}/{key}");
                    if key == "maxLength" {
                        found.push((path.clone(), inner.clone()));
                    }
                    collect(inner, &path, found);
                }
            }
            Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| collect(v, &format!("{at}/{i}"), found)),
            _ => {}
        }
    }
    let t = TestApp::new();
    let (_, spec) = t.get("/api/openapi.json").await;
    let mut found = Vec::new();
    collect(&spec, "", &mut found);
    for body in ["CreateScenesBody", "CharacterReferenceBody", "GenerateVideoBody"] {
        assert!(found.iter().any(|(path, _)| path.contains(body)), "{body} has bounded text fields: {found:?}");
    }
    for (path, max) in &found {
        assert_eq!(max, &json!(mvgen::limits::MAX_TEXT_CHARS), "{path}");
    }
}

/// A `Content-Length` over the limit is refused from the header inside the router: the browser
/// front end sees the 413 (with its CORS headers), and a keyless caller its 401 first.
#[tokio::test]
async fn an_oversized_content_length_gets_413_with_cors_and_after_auth() {
    let oversized = |key: Option<&str>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/mv/create_scenes")
            .header(header::ORIGIN, "http://localhost:3000")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, "10737418240");
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        req.body(Body::empty()).expect("request")
    };
    let t = TestApp::new();
    let (status, headers, body) = t.call(oversized(None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{}", String::from_utf8_lossy(&body));
    let allowed = headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).and_then(|v| v.to_str().ok());
    assert_eq!(allowed, Some("http://localhost:3000"));
    assert_eq!(headers.get(header::CONNECTION).and_then(|v| v.to_str().ok()), Some("close"));

    let keyed = TestApp::with(|s| s.api_keys = vec!["sesame".into()], |_| {});
    assert_eq!(keyed.call(oversized(None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(keyed.call(oversized(Some("sesame"))).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

/// What upstream received, as JSON.
fn values<R: serde::Serialize>(requests: Vec<R>) -> Vec<Value> {
    requests.iter().map(|r| serde_json::to_value(r).expect("serializable")).collect()
}

/// The parts of an answer that differ between any two runs: fresh ids, their URLs, clocks.
fn without_ids_and_times(mut answer: Value) -> Value {
    for pointer in [
        "/output_files",
        "/video_id",
        "/video_url",
        "/metadata/video_id",
        "/metadata/generation_timestamp",
        "/metadata/processing_time_seconds",
    ] {
        if let Some(v) = answer.pointer_mut(pointer) {
            *v = Value::Null;
        }
    }
    for image in answer.get_mut("images").and_then(Value::as_array_mut).into_iter().flatten() {
        *image = json!(image["content_type"]);
    }
    answer
}

#[tokio::test]
async fn a_job_planned_then_run_answers_and_asks_upstream_as_the_sync_endpoint_does() {
    use mvgen::generation::Kind;
    use mvgen::jobs::Generations;
    use mvgen::jobs::JobPipeline;
    use mvgen::providers::RunContext;

    let project = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
    let png = base64::engine::general_purpose::STANDARD.encode(TINY_PNG);
    let cases = [
        (
            "scenes",
            "/api/mv/create_scenes",
            json!({"idea": " a night drive ", "character_description": "a courier", "number_of_scenes": 3,
                   "camera_angle": "low", "config_flavor": "mv1", "project_id": project}),
        ),
        (
            "character_reference",
            "/api/mv/generate_character_reference",
            json!({"character_description": "a tall woman", "num_images": 2, "seed": 7, "aspect_ratio": "1:1"}),
        ),
        (
            "video",
            "/api/mv/generate_video",
            json!({"prompt": "A robot walks.", "duration": 5, "backend": "gemini", "project_id": project,
                   "sequence": 2, "reference_image_base64": png, "config_flavor": "no-such-flavor"}),
        ),
    ];
    for (kind, uri, body) in cases {
        let t = TestApp::new();
        let (status, headers, sync) = t.post_full(uri, &body).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {sync}");
        let pipeline = Generations::new(t.state.clone());
        let planned =
            pipeline.plan(Kind::parse(kind).expect("a kind"), body.clone()).await.expect("a valid input plans");
        assert_eq!(planned.config_flavor, sync["metadata"]["config_flavor"], "{kind}");
        assert_eq!(headers["x-config-flavor"], planned.config_flavor["used"].as_str().expect("used"), "{kind}");
        // Stored as JSON and read back, as the job store does.
        let stored: Value = serde_json::from_str(&planned.plan.to_string()).expect("the plan is JSON");
        let job = pipeline
            .run(Kind::parse(kind).expect("a kind"), &stored, RunContext::detached())
            .await
            .expect("the plan runs");
        assert_eq!(without_ids_and_times(job), without_ids_and_times(sync.clone()), "{kind}");

        let upstream = |requests: Vec<Value>| {
            assert_eq!(requests.len() % 2, 0, "{kind}: the sync run and the job asked alike");
            let (a, b) = requests.split_at(requests.len() / 2);
            assert_eq!(a, b, "{kind}: the job sent upstream what the sync endpoint sent");
        };
        match kind {
            "scenes" => upstream(values(t.scenes.received())),
            "character_reference" => upstream(values(t.images.received())),
            _ => {
                let videos = t.gemini_videos.received();
                upstream(values(videos.clone()));
                let references: Vec<_> = videos.iter().map(|v| v.reference_image.clone()).collect();
                assert_eq!(references[0].as_ref().map(|m| m.bytes.as_slice()), Some(TINY_PNG));
                assert_eq!(references[0], references[1], "the uploaded reference went with the plan");
                assert_eq!((planned.project_id.as_deref(), planned.sequence), (Some(project), Some(2)));
            }
        }
    }
}

/// Builds up to 3db7cdb stored a video's `reference_image_base64` inline in its plan; this build
/// stores the image as a file and the plan names it. A job such a build queued (its plan as it wrote
/// it) still runs with its image, and a reader of that job is not shown the image.
#[tokio::test]
async fn a_plan_stored_with_its_upload_inline_still_runs_with_that_image() {
    use mvgen::generation::{Kind, stored};
    use mvgen::jobs::Generations;
    use mvgen::jobs::JobPipeline;
    use mvgen::providers::RunContext;

    let t = TestApp::new();
    let pipeline = Generations::new(t.state.clone());
    let uploaded = b"\x89PNG\r\n\x1a\nuploaded-by-an-older-client";
    let body = json!({"prompt": "p", "reference_image_base64": b64(uploaded), "seed": 3});
    let planned = pipeline.plan(Kind::Video, body).await.expect("plans");
    let mut old = planned.plan.clone();
    let kept = old["plan"]["kept"].as_object_mut().expect("kept");
    assert!(kept.remove("uploaded_reference_id").is_some_and(|id| id.is_string()), "this build names the upload");
    kept.insert("uploaded_reference".into(), json!({"content_type": "image/png", "base64": b64(uploaded)}));
    let answer = pipeline.run(Kind::Video, &old, RunContext::detached()).await.expect("the old plan runs");
    assert_eq!(answer["metadata"]["has_reference_image"], true, "{answer}");
    let sent = t.videos.received();
    let reference = sent[0].reference_image.as_ref().expect("a reference image went upstream");
    assert_eq!((reference.bytes.as_slice(), reference.content_type.as_str()), (&uploaded[..], "image/png"));
    let shown = stored::shown(old).to_string();
    assert!(!shown.contains(&b64(uploaded)), "a reader is shown the inline image: {shown}");
    assert!(shown.contains("base64_length"), "{shown}");
}

#[tokio::test]
async fn a_job_input_is_refused_as_the_sync_endpoint_refuses_it() {
    use mvgen::generation::Kind;
    use mvgen::jobs::Generations;
    use mvgen::jobs::JobPipeline;

    let t = TestApp::with(|s| s.strict_flavors = true, |_| {});
    let pipeline = Generations::new(t.state.clone());
    for (kind, uri, body) in [
        ("scenes", "/api/mv/create_scenes", json!({"idea": "  ", "character_description": "c"})),
        ("scenes", "/api/mv/create_scenes", json!({"idea": "i", "character_description": "c", "extra": 1})),
        ("scenes", "/api/mv/create_scenes", json!({"idea": "i", "character_description": "c", "config_flavor": "x"})),
        (
            "character_reference",
            "/api/mv/generate_character_reference",
            json!({"character_description": "c", "num_images": 5}),
        ),
        ("video", "/api/mv/generate_video", json!({"prompt": "p", "backend": "vertex"})),
        (
            "video",
            "/api/mv/generate_video",
            json!({"prompt": "p", "project_id": "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d"}),
        ),
    ] {
        let (status, sync) = t.post(uri, &body).await;
        let err = pipeline.plan(Kind::parse(kind).expect("a kind"), body.clone()).await.expect_err("refused");
        assert_eq!(err.status(), status, "{body}");
        assert_eq!(
            (json!(err.kind), json!(err.message), err.details),
            (sync["detail"]["error"].clone(), sync["detail"]["message"].clone(), sync["detail"]["details"].clone()),
            "{body}"
        );
    }
    // A kind is typed: an unknown name is refused where it is read, before any pipeline.
    let err = Kind::from_field("song").expect_err("no such kind");
    assert_eq!((err.status(), err.details), (StatusCode::BAD_REQUEST, json!("kind")));
    assert!(t.scenes.received().is_empty() && t.images.received().is_empty() && t.videos.received().is_empty());
}

#[test]
fn a_server_fault_is_logged_once_and_a_caller_mistake_not_at_all() {
    let blocker = tempfile::NamedTempFile::new().expect("temp file");
    // The output directory is a file: nothing can be stored, a 500 with the cause logged.
    let t = TestApp::with(|s| s.output_dir = blocker.path().join("outputs"), |_| {});
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let mut answers = Vec::new();
    let logs = capture_logs(|| {
        for body in
            [json!({"idea": "i", "character_description": "c"}), json!({"idea": " ", "character_description": "c"})]
        {
            answers.push(rt.block_on(t.post("/api/mv/create_scenes", &body)));
        }
    });
    assert_eq!(answers[0].0, StatusCode::INTERNAL_SERVER_ERROR, "{}", answers[0].1);
    assert_eq!(answers[0].1["detail"]["error"], "StorageError");
    assert_eq!(answers[1].0, StatusCode::BAD_REQUEST);
    let message = answers[0].1["detail"]["message"].as_str().expect("message");
    assert_eq!(logs.matches(message).count(), 1, "{logs}");
    assert!(logs.contains("ERROR") && logs.contains("kind=StorageError") && logs.contains("status=500"), "{logs}");
    assert!(!logs.contains("must not be empty"), "a caller mistake is answered, not logged: {logs}");
}
