//! The real Gemini client (scenes) against the fake Gemini: what it sends, retries and their bounds,
//! timeouts, unusable or refused answers; and, for every client, that errors never carry a secret.

use crate::support;

use std::time::Duration;

use mvgen::providers::{ImageMaker, ProviderError, RunContext, SceneWriter};
use serde_json::json;
use support::fake_upstream::{
    FakeGemini, FakeReplicate, Route, Scripted, TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN, test_provider_config,
};

use super::*;

#[tokio::test]
async fn gemini_sends_prompt_key_and_schema_and_returns_the_scenes() {
    let fake = FakeGemini::start().await;
    fake.set_default_scenes(4);
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let scenes = client.write_scenes(&scene_request(4)).await.unwrap();

    assert_eq!(scenes.len(), 4);
    assert_eq!(scenes[3].description, "fake scene 4 of 4");
    assert_eq!(scenes[3].negative_description, "fake negative 4");
    let received = fake.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(request.query, None, "the key goes in a header, never the query");
    assert_eq!(request.header("x-goog-api-key"), Some(TEST_GEMINI_KEY));
    assert_eq!(request.header("content-type"), Some("application/json"));
    // The exact body from providers.md, written out here independently of the client's code.
    assert_eq!(
        request.json(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Write 4 scenes about a night drive."}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseSchema": {
                    "type": "OBJECT",
                    "properties": {"scenes": {"type": "ARRAY", "items": {"type": "OBJECT",
                        "properties": {"description": {"type": "STRING"}, "negative_description": {"type": "STRING"}},
                        "required": ["description", "negative_description"]}}},
                    "required": ["scenes"]
                }
            }
        })
    );
}

#[tokio::test]
async fn gemini_waits_out_429_with_retry_after_then_succeeds() {
    let fake = FakeGemini::start().await;
    fake.push_response(
        Scripted::json(429, FakeGemini::error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
            .with_header("retry-after", "1"),
    );
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let scenes = client.write_scenes(&scene_request(3)).await.unwrap();

    assert_eq!(scenes.len(), 3);
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn gemini_retries_500_and_503_then_succeeds() {
    let fake = FakeGemini::start().await;
    fake.push_response(Scripted::json(500, FakeGemini::error_body(500, "INTERNAL", "oops")));
    fake.push_response(Scripted::json(503, FakeGemini::error_body(503, "UNAVAILABLE", "overloaded")));
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    assert_eq!(client.write_scenes(&scene_request(3)).await.unwrap().len(), 3);
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn gemini_retries_are_bounded_and_keep_the_upstream_message() {
    let fake = FakeGemini::start().await;
    for _ in 0..5 {
        fake.push_response(Scripted::json(503, FakeGemini::error_body(503, "UNAVAILABLE", "The model is overloaded.")));
    }
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.write_scenes(&scene_request(3)).await.unwrap_err();

    assert_eq!(
        err,
        ProviderError::Upstream { provider: "gemini", status: 503, message: "The model is overloaded.".into() }
    );
    assert_eq!(fake.received().len(), 3, "max_attempts is 3");
}

#[tokio::test]
async fn gemini_gives_up_on_429_as_rate_limited() {
    let fake = FakeGemini::start().await;
    for _ in 0..3 {
        fake.push_response(
            Scripted::json(429, FakeGemini::error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))
                .with_header("retry-after", "7"),
        );
    }
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.write_scenes(&scene_request(3)).await.unwrap_err();

    assert_eq!(err, ProviderError::RateLimited { provider: "gemini", retry_after: Some(Duration::from_secs(7)) });
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test]
async fn gemini_does_not_retry_other_4xx() {
    let fake = FakeGemini::start().await;
    fake.push_response(Scripted::json(
        400,
        FakeGemini::error_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    ));
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.write_scenes(&scene_request(3)).await.unwrap_err();

    assert_eq!(
        err,
        ProviderError::Upstream {
            provider: "gemini",
            status: 400,
            message: "API key not valid. Please pass a valid API key.".into()
        }
    );
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn gemini_times_out_without_retrying() {
    let fake = FakeGemini::start().await;
    fake.push_response(Scripted::hang());
    let mut config = test_provider_config(&fake.base_url, "http://127.0.0.1:9");
    config.request_timeout = Duration::from_millis(200);
    let client = gemini(&config);

    let err = tokio::time::timeout(BOUND, client.write_scenes(&scene_request(3))).await.unwrap().unwrap_err();

    assert_eq!(err, ProviderError::Timeout { provider: "gemini", after: Duration::from_millis(200) });
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn gemini_unusable_answers_are_malformed_and_say_why() {
    let cases = [
        (Scripted::bytes(200, "<html>Bad Gateway</html>"), "not a generateContent response"),
        (Scripted::json(200, FakeGemini::text_body("Here are your scenes: ...", "STOP")), "scenes text is not"),
        (Scripted::json(200, FakeGemini::text_body(r#"{"shots": []}"#, "STOP")), "scenes text is not"),
        (Scripted::json(200, FakeGemini::text_body(r#"{"scenes": [{"desc": 1}]}"#, "STOP")), "scenes text is not"),
        (Scripted::json(200, FakeGemini::text_body(r#"{"scenes": [{"descr"#, "MAX_TOKENS")), "MAX_TOKENS"),
        (Scripted::json(200, FakeGemini::scenes_body(4)), "asked for 6 scenes, got 4"),
    ];
    for (answer, expected) in cases {
        let fake = FakeGemini::start().await;
        fake.push_response(answer);
        let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

        let err = client.write_scenes(&scene_request(6)).await.unwrap_err();

        match &err {
            ProviderError::Malformed { provider: "gemini", message } => {
                assert!(message.contains(expected), "{message:?} should contain {expected:?}")
            }
            other => panic!("expected Malformed containing {expected:?}, got {other:?}"),
        }
        assert_eq!(fake.received().len(), 1, "a malformed answer is not retried");
    }
}

#[tokio::test]
async fn gemini_blocked_prompts_and_safety_stops_are_refused() {
    let blocked = Scripted::json(200, json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}));
    let safety = Scripted::json(200, FakeGemini::text_body("", "SAFETY"));
    for answer in [blocked, safety] {
        let fake = FakeGemini::start().await;
        fake.push_response(answer);
        let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

        let err = client.write_scenes(&scene_request(3)).await.unwrap_err();

        assert!(matches!(err, ProviderError::Refused { provider: "gemini", .. }), "{err:?}");
    }
}

#[tokio::test]
async fn gemini_connection_dropped_mid_answer_is_unreachable() {
    let fake = FakeGemini::start().await;
    fake.push_response(Scripted::broken(200, r#"{"candidates": [{"content": "#));
    let client = gemini(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.write_scenes(&scene_request(3)).await.unwrap_err();

    assert!(matches!(err, ProviderError::Unreachable { provider: "gemini", .. }), "{err:?}");
}

#[tokio::test]
async fn unreachable_upstreams_are_reported_without_secrets() {
    let (closed, _held) = closed_port_url();
    let client = gemini(&test_provider_config(&closed, &closed));
    let replicate = replicate(&test_provider_config(&closed, &closed));

    let scene_err = client.write_scenes(&scene_request(3)).await.unwrap_err();
    let image_err = replicate.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(matches!(scene_err, ProviderError::Unreachable { provider: "gemini", .. }), "{scene_err:?}");
    assert!(matches!(image_err, ProviderError::Unreachable { provider: "replicate", .. }), "{image_err:?}");
    assert_no_secrets(&scene_err);
    assert_no_secrets(&image_err);
}

#[tokio::test]
async fn echoed_credentials_are_redacted_from_errors() {
    let gemini_fake = FakeGemini::start().await;
    gemini_fake.push_response(Scripted::json(
        403,
        FakeGemini::error_body(403, "PERMISSION_DENIED", &format!("key {TEST_GEMINI_KEY} is suspended")),
    ));
    let replicate_fake = FakeReplicate::start().await;
    replicate_fake.push_response(
        Route::Create,
        Scripted::json(
            401,
            FakeReplicate::problem_body(401, "Unauthenticated", &format!("token {TEST_REPLICATE_TOKEN} revoked")),
        ),
    );
    let config = test_provider_config(&gemini_fake.base_url, &replicate_fake.base_url);

    let scene_err = gemini(&config).write_scenes(&scene_request(3)).await.unwrap_err();
    let image_err = replicate(&config).make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(
        matches!(&scene_err, ProviderError::Upstream { status: 403, message, .. } if message.contains("[redacted]"))
    );
    assert!(
        matches!(&image_err, ProviderError::Upstream { status: 401, message, .. } if message.contains("[redacted]"))
    );
    assert_no_secrets(&scene_err);
    assert_no_secrets(&image_err);
}
