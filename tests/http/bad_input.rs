//! Table-driven bad input over every endpoint: each case must get the right status and the JSON
//! error body naming the field, never a 5xx, and the server must stay healthy afterwards. Cases
//! that are odd but valid (strange flavor names, braces in user text) must succeed.

use crate::support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use support::test_app::TestApp;

const CS: &str = "/api/mv/create_scenes";
const CR: &str = "/api/mv/generate_character_reference";
const GV: &str = "/api/mv/generate_video";
const UNKNOWN_ID: &str = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";

/// One request and what it must get.
struct Case {
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// The `detail.error` kind, for error answers.
    kind: Option<&'static str>,
    /// What `detail.details` must name (a field), for error answers.
    field: Option<&'static str>,
}

fn post(path: &str, body: Value, status: u16, kind: &'static str, field: Option<&'static str>) -> Case {
    Case {
        method: "POST",
        path: path.to_string(),
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        status,
        kind: if status >= 400 { Some(kind) } else { None },
        field,
    }
}

fn raw(path: &str, content_type: Option<&'static str>, body: &[u8], status: u16, kind: &'static str) -> Case {
    Case {
        method: "POST",
        path: path.to_string(),
        content_type,
        body: body.to_vec(),
        status,
        kind: Some(kind),
        field: None,
    }
}

fn get(path: String, status: u16, kind: &'static str) -> Case {
    Case { method: "GET", path, content_type: None, body: Vec::new(), status, kind: Some(kind), field: None }
}

/// A valid body for `path` with `key` set to `value` (or removed when `value` is `None`).
fn with(path: &str, key: &str, value: Option<Value>) -> Value {
    let mut body = match path {
        CS => json!({"idea": "a storm at sea", "character_description": "a young captain"}),
        CR => json!({"character_description": "a young captain", "num_images": 1}),
        _ => json!({"prompt": "The captain climbs the mast."}),
    };
    match value {
        Some(v) => body[key] = v,
        None => {
            body.as_object_mut().map(|o| o.remove(key));
        }
    }
    body
}

fn bad(path: &str, key: &'static str, value: Value, status: u16) -> Case {
    let kind = if status == 422 { "RequestValidationError" } else { "ValidationError" };
    post(path, with(path, key, Some(value)), status, kind, Some(key))
}

fn ok(path: &str, key: &str, value: Value) -> Case {
    post(path, with(path, key, Some(value)), 200, "", None)
}

fn cases() -> Vec<Case> {
    let long_name = "x".repeat(10_000);
    let huge = format!("{{\"idea\": \"{}\", \"character_description\": \"c\"}}", "y".repeat(1024 * 1024));
    let deep = format!("{{\"idea\": {}\"x\"{}, \"character_description\": \"c\"}}", "[".repeat(500), "]".repeat(500));
    let mut cases = Vec::new();

    // Malformed bodies, on every generation endpoint.
    for path in [CS, CR, GV] {
        cases.push(raw(path, Some("application/json"), b"{", 400, "InvalidJson"));
        cases.push(raw(path, Some("application/json"), b"", 400, "InvalidJson"));
        cases.push(raw(path, Some("application/json"), b"{\"a\": 1} trailing", 400, "InvalidJson"));
        cases.push(raw(path, Some("application/json"), b"{\"idea\": \"\xff\xfe\"}", 400, "InvalidJson"));
        cases.push(raw(path, Some("application/json"), b"null", 422, "RequestValidationError"));
        cases.push(raw(path, Some("application/json"), b"[]", 422, "RequestValidationError"));
        cases.push(raw(path, Some("application/json"), b"\"text\"", 422, "RequestValidationError"));
        cases.push(raw(path, Some("application/json"), b"42", 422, "RequestValidationError"));
        cases.push(raw(path, Some("text/plain"), b"{}", 415, "UnsupportedMediaType"));
        cases.push(raw(path, None, b"{}", 415, "UnsupportedMediaType"));
        cases.push(raw(path, Some("application/x-www-form-urlencoded"), b"idea=x", 415, "UnsupportedMediaType"));
        cases.push(raw(path, Some("application/json"), huge.as_bytes(), 413, "PayloadTooLarge"));
        cases.push(bad(path, "unexpected_field", json!(1), 422));
        cases.push(bad(path, "config_flavor", json!(123), 422));
        cases.push(bad(path, "config_flavor", json!(["mv1"]), 422));
        cases.push(bad(path, "config_flavor", json!({"name": "mv1"}), 422));
        cases.push(bad(path, "config_flavor", json!(true), 422));
        // Flavor names are only ever map keys: anything unknown falls back to default.
        for name in ["../../etc/passwd", "DEFAULT", "", "mv1 ", "default/../mv1", long_name.as_str()] {
            cases.push(ok(path, "config_flavor", json!(name)));
        }
        // Except a NUL, refused in every text (issue 21: PostgreSQL cannot hold one).
        cases.push(bad(path, "config_flavor", json!("mv1\u{0}"), 400));
        cases.push(ok(path, "config_flavor", Value::Null));
    }

    // create_scenes
    cases.push(post(CS, with(CS, "idea", None), 422, "RequestValidationError", Some("idea")));
    cases.push(post(
        CS,
        with(CS, "character_description", None),
        422,
        "RequestValidationError",
        Some("character_description"),
    ));
    for v in [Value::Null, json!(5), json!(["idea"]), json!({"text": "x"}), json!(false)] {
        cases.push(bad(CS, "idea", v, 422));
    }
    for v in ["", "   ", "\n\t "] {
        cases.push(bad(CS, "idea", json!(v), 400));
        cases.push(bad(CS, "character_description", json!(v), 400));
    }
    for v in [0, -1, 33, 1000, i64::MIN] {
        cases.push(bad(CS, "number_of_scenes", json!(v), 400));
    }
    for v in [json!(2.5), json!("6"), json!(1e30), json!(true), json!([6])] {
        cases.push(bad(CS, "number_of_scenes", v, 422));
    }
    cases.push(raw(
        CS,
        Some("application/json"),
        b"{\"idea\": \"x\", \"character_description\": \"c\", \"number_of_scenes\": 99999999999999999999}",
        422,
        "RequestValidationError",
    ));
    cases.push(raw(CS, Some("application/json"), deep.as_bytes(), 422, "RequestValidationError"));
    cases.push(raw(
        CS,
        Some("application/json"),
        b"{\"idea\": \"a\", \"idea\": \"b\", \"character_description\": \"c\"}",
        422,
        "RequestValidationError",
    ));
    cases.push(raw(
        CS,
        Some("application/json"),
        b"{\"idea\": \"\\ud800\", \"character_description\": \"c\"}",
        400,
        "InvalidJson",
    ));
    for key in ["camera_angle", "video_type", "video_characteristics", "character_characteristics"] {
        cases.push(bad(CS, key, json!(3), 422));
        cases.push(ok(CS, key, Value::Null));
    }
    cases.push(ok(CS, "number_of_scenes", Value::Null));
    cases.push(ok(CS, "number_of_scenes", json!(32)));
    for text in ["{idea} {{ }} {", "\u{1b}[31m escape", "雨の夜 🌧️", "}} {0} {idea!r}"] {
        cases.push(ok(CS, "idea", json!(text)));
    }

    // generate_character_reference
    cases.push(post(
        CR,
        with(CR, "character_description", None),
        422,
        "RequestValidationError",
        Some("character_description"),
    ));
    cases.push(bad(CR, "character_description", json!(""), 400));
    cases.push(bad(CR, "character_description", json!(7), 422));
    for v in [0, 5, -3] {
        cases.push(bad(CR, "num_images", json!(v), 400));
    }
    for v in [json!(2.0), json!("4")] {
        cases.push(bad(CR, "num_images", v, 422));
    }
    for (key, v) in [
        ("aspect_ratio", "2:1"),
        ("aspect_ratio", "16 :9"), // surrounding whitespace is stripped, inner is not
        ("safety_filter_level", "none"),
        ("person_generation", "allow_all"),
        ("output_format", "gif"),
        ("output_format", "PNG"),
    ] {
        cases.push(bad(CR, key, json!(v), 400));
    }
    cases.push(bad(CR, "aspect_ratio", json!(16), 422));
    cases.push(bad(CR, "seed", json!(-1), 400));
    cases.push(bad(CR, "seed", json!(4_294_967_296_i64), 400));
    cases.push(bad(CR, "seed", json!("7"), 422));
    cases.push(bad(CR, "seed", json!(1.5), 422));
    cases.push(bad(CR, "negative_prompt", json!(1), 422));
    cases.push(ok(CR, "seed", json!(4_294_967_295_i64)));
    cases.push(ok(CR, "output_format", json!("webp")));

    // generate_video
    cases.push(post(GV, with(GV, "prompt", None), 422, "RequestValidationError", Some("prompt")));
    cases.push(bad(GV, "prompt", json!(""), 400));
    cases.push(bad(GV, "prompt", json!("  "), 400));
    for v in [0, 61, -5] {
        cases.push(bad(GV, "duration", json!(v), 400));
    }
    cases.push(bad(GV, "duration", json!("8"), 422));
    cases.push(bad(GV, "aspect_ratio", json!("4:3"), 400));
    cases.push(bad(GV, "generate_audio", json!("yes"), 422));
    cases.push(bad(GV, "generate_audio", json!(1), 422));
    cases.push(bad(GV, "seed", json!(-7), 400));
    for id in ["../../etc/passwd", "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D", "not-an-id"] {
        cases.push(bad(GV, "character_reference_id", json!(id), 400));
    }
    cases.push(bad(GV, "character_reference_id", json!(123), 422));
    cases.push(ok(GV, "character_reference_id", json!("")));
    cases.push(ok(GV, "character_reference_id", json!(UNKNOWN_ID)));
    for template in ["{idea}", "{", "}", "{0}", "{}", "{aspect_ratio:>3}", "{aspect_ratio!r}"] {
        cases.push(bad(GV, "video_rules_template", json!(template), 400));
    }
    cases.push(ok(GV, "video_rules_template", json!("{{literal}} in {aspect_ratio}")));
    for backend in ["vertex", "Gemini", "REPLICATE", "gemini-mock", "mock"] {
        cases.push(bad(GV, "backend", json!(backend), 400));
    }
    for backend in [json!(1), json!(["gemini"]), json!(true), json!({"name": "gemini"})] {
        cases.push(bad(GV, "backend", backend, 422));
    }
    for backend in [Value::Null, json!(""), json!("  "), json!("replicate"), json!("gemini"), json!(" gemini\n")] {
        cases.push(ok(GV, "backend", backend));
    }

    // Fields from the service mvgen replaces: checked before any model call.
    for path in [CS, GV] {
        cases.push(bad(path, "project_id", json!("project-1"), 400));
        cases.push(bad(path, "project_id", json!(7), 422));
    }
    cases.push(ok(CS, "project_id", json!(" ")));
    let video = |extra: Value| {
        let mut body = with(GV, "project_id", Some(json!(UNKNOWN_ID)));
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    cases.push(post(GV, video(json!({"sequence": 0})), 400, "ValidationError", Some("sequence")));
    cases.push(post(GV, video(json!({"sequence": 1.5})), 422, "RequestValidationError", Some("sequence")));
    cases.push(post(GV, video(json!({})), 400, "ValidationError", Some("sequence")));
    for image in ["bm90IGFuIGltYWdl", "!!!", "data:text/plain;base64,aGk="] {
        cases.push(bad(GV, "reference_image_base64", json!(image), 400));
    }
    cases.push(bad(GV, "reference_image_base64", json!(5), 422));
    for route in [
        "/api/mv/get_scenes/{id}",
        "/api/mv/get_scenes/{id}/markdown",
        "/api/mv/get_video/{id}/info",
        "/api/mv/get_audio/{id}",
        "/api/mv/get_audio/{id}/info",
    ] {
        cases.push(get(route.replace("{id}", "not-a-uuid"), 400, "InvalidId"));
        cases.push(get(route.replace("{id}", UNKNOWN_ID), 404, "NotFound"));
    }
    cases.push(get(format!("/api/mv/get_video/{UNKNOWN_ID}?redirect=maybe"), 400, "ValidationError"));
    cases.push(get(format!("/api/mv/get_audio/{UNKNOWN_ID}?redirect=maybe"), 400, "ValidationError"));

    // Every text field is bounded (20 000 characters, counted as characters, not bytes).
    let over = "x".repeat(20_001);
    for (path, keys) in [
        (
            CS,
            &[
                "idea",
                "character_description",
                "character_characteristics",
                "video_type",
                "video_characteristics",
                "camera_angle",
                "config_flavor",
            ][..],
        ),
        (
            CR,
            &[
                "character_description",
                "aspect_ratio",
                "safety_filter_level",
                "person_generation",
                "output_format",
                "negative_prompt",
                "config_flavor",
            ][..],
        ),
        (
            GV,
            &[
                "prompt",
                "negative_prompt",
                "aspect_ratio",
                "character_reference_id",
                "video_rules_template",
                "config_flavor",
            ][..],
        ),
    ] {
        for key in keys {
            cases.push(bad(path, key, json!(over), 400));
        }
    }
    // A NUL byte in any text: PostgreSQL cannot hold one, so both engines refuse it alike.
    for (path, key) in [(CS, "idea"), (CS, "camera_angle"), (CR, "character_description"), (GV, "prompt")] {
        cases.push(bad(path, key, json!("a\u{0}b"), 400));
    }
    cases.push(ok(CS, "idea", json!("é".repeat(20_000))));
    cases.push(ok(GV, "prompt", json!("p".repeat(20_000))));

    // Stored files.
    for kind in ["get_character_reference", "get_video"] {
        for id in ["not-a-uuid", "..%2F..%2Fetc%2Fpasswd", "%00", "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D"] {
            cases.push(get(format!("/api/mv/{kind}/{id}"), 400, "InvalidId"));
        }
        cases.push(get(format!("/api/mv/{kind}/{UNKNOWN_ID}.mp4"), 400, "InvalidId"));
        cases.push(get(format!("/api/mv/{kind}/{}", "a".repeat(10_000)), 400, "InvalidId"));
        cases.push(get(format!("/api/mv/{kind}/{UNKNOWN_ID}"), 404, "NotFound"));
        // Not UTF-8 once decoded: axum's own rejection, which must still be the JSON shape.
        cases.push(get(format!("/api/mv/{kind}/%ff"), 400, "InvalidPath"));
        cases.push(get(format!("/api/mv/{kind}/%c3%28{UNKNOWN_ID}"), 400, "InvalidPath"));
        cases.push(raw(
            &format!("/api/mv/{kind}/{UNKNOWN_ID}"),
            Some("application/json"),
            b"{}",
            405,
            "MethodNotAllowed",
        ));
    }
    cases.push(get(CS.to_string(), 405, "MethodNotAllowed"));
    cases.push(get("/api/mv/does_not_exist".to_string(), 404, "NotFound"));
    cases
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_4xx_and_the_server_stays_healthy() {
    let t = TestApp::new();
    let cases = cases();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let mut req = Request::builder().method(case.method).uri(&case.path);
        if let Some(ct) = case.content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let req = req.body(Body::from(case.body.clone())).expect("request");
        let (status, _, bytes) = t.call(req).await;
        let label =
            format!("{} {} {}", case.method, shorten(&case.path), shorten(&String::from_utf8_lossy(&case.body)));
        if status.as_u16() != case.status {
            failures.push(format!(
                "{label}: expected {}, got {status}: {}",
                case.status,
                shorten(&String::from_utf8_lossy(&bytes))
            ));
            continue;
        }
        let Some(kind) = case.kind else { continue };
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let detail = &body["detail"];
        if detail["error"] != kind || detail["message"].as_str().is_none_or(str::is_empty) {
            failures.push(format!("{label}: expected error kind {kind} with a message, got {body}"));
        }
        // `details` is the field, or an object naming it beside other specifics.
        if let Some(field) = case.field
            && detail["details"] != json!(field)
            && detail["details"]["field"] != json!(field)
        {
            failures.push(format!("{label}: expected details to name {field}, got {body}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    let (status, _) = t.get("/health").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn user_text_with_braces_reaches_the_prompt_verbatim() {
    let t = TestApp::new();
    let idea = "{idea} {{ }} {character_description} {0} {";
    let (status, _) = t.post(CS, &json!({"idea": idea, "character_description": "c"})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.scenes.received()[0].prompt.contains(&format!("Idea: {idea}\n")));
}

fn shorten(s: &str) -> String {
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s.to_string() }
}
