//! The real Gemini and Replicate clients against the fake upstreams in `support/fake_upstream.rs`,
//! asserting what the fakes received as much as what the clients returned; and the offline mocks.
//!
//! Timeouts, poll intervals and backoff are configured tiny, so every test takes milliseconds; the
//! few that wait for a timeout are bounded by an outer `tokio::time::timeout`, never by a sleep.

mod support;

use std::time::Duration;

use mvgen::providers::gemini::GeminiClient;
use mvgen::providers::gemini_video::GeminiVideoClient;
use mvgen::providers::mock::{MOCK_LABEL, MockGeminiVideos, MockImages, MockScenes, MockVideos};
use mvgen::providers::replicate::ReplicateClient;
use mvgen::providers::{
    ImageMaker, ImageRequest, Media, ProviderConfig, ProviderError, Providers, RunContext, SceneRequest, SceneWriter,
    VideoMaker, VideoRequest,
};
use serde_json::{Value, json};
use support::fake_upstream::{
    FakeFile, FakeGemini, FakeReplicate, Outcome, PredictionPlan, Route, Scripted, TEST_GEMINI_KEY,
    TEST_REPLICATE_TOKEN, VeoOutcome, VeoPlan, VeoRoute, test_provider_config,
};

/// Outer bound for calls expected to time out: far above the configured timeouts, far below
/// anything that would hang CI.
const BOUND: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Gemini

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

// ---------------------------------------------------------------------------------------------
// Replicate

#[tokio::test]
async fn replicate_image_creates_polls_and_downloads_without_the_token() {
    let fake = FakeReplicate::start().await;
    let file = FakeFile::png();
    fake.push_prediction(PredictionPlan { polls_until_done: 2, outcome: Outcome::Succeed(file.clone()) });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));
    let mut request = image_request();
    request.seed = Some(42);

    let media = client.make_image(&request, RunContext::detached()).await.unwrap();

    assert_eq!(media, Media { bytes: file.bytes().to_vec(), content_type: "image/png".into() });
    let creates = fake.received_on(Route::Create);
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].path, "/v1/models/google/imagen-4/predictions");
    assert_eq!(creates[0].header("authorization"), Some(format!("Bearer {TEST_REPLICATE_TOKEN}").as_str()));
    assert_eq!(creates[0].header("prefer"), Some("wait=5"));
    assert_eq!(creates[0].header("content-type"), Some("application/json"));
    assert_eq!(
        creates[0].json(),
        json!({"input": {
            "prompt": "a woman in a red coat, full body, studio light",
            "aspect_ratio": "3:4",
            "output_format": "png",
            "safety_filter_level": "block_medium_and_above",
            "person_generation": "allow_adult",
            "seed": 42
        }})
    );
    let polls = fake.received_on(Route::Poll);
    assert_eq!(polls.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/v1/predictions/pred-1"; 2]);
    assert!(polls.iter().all(|p| p.header("authorization") == Some(&format!("Bearer {TEST_REPLICATE_TOKEN}"))));
    let files = fake.received_on(Route::File);
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].header("authorization"), None, "the token must not go to the file host");
    assert!(fake.cancelled().is_empty());
}

#[tokio::test]
async fn replicate_video_sends_veo_inputs_and_the_reference_as_a_data_uri() {
    let fake = FakeReplicate::start().await;
    let file = FakeFile::mp4();
    fake.push_prediction(PredictionPlan { polls_until_done: 0, outcome: Outcome::SucceedAsList(file.clone()) });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));
    let request = VideoRequest {
        model: "google/veo-3.1-fast".into(),
        prompt: "she drives through neon rain".into(),
        aspect_ratio: "16:9".into(),
        duration: 8,
        generate_audio: false,
        person_generation: "allow_all".into(),
        negative_prompt: Some("blurry".into()),
        seed: Some(7),
        reference_image: Some(Media { bytes: vec![0x89, b'P', b'N', b'G'], content_type: "image/png".into() }),
    };

    let media = client.make_video(&request, RunContext::detached()).await.unwrap();

    assert_eq!(media.content_type, "video/mp4");
    assert_eq!(media.bytes, file.bytes());
    let creates = fake.received_on(Route::Create);
    assert_eq!(creates[0].path, "/v1/models/google/veo-3.1-fast/predictions");
    assert_eq!(
        creates[0].json(),
        json!({"input": {
            "prompt": "she drives through neon rain",
            "aspect_ratio": "16:9",
            "duration": 8,
            "resolution": "720p",
            "generate_audio": false,
            "negative_prompt": "blurry",
            "seed": 7,
            "reference_images": ["data:image/png;base64,iVBORw=="]
        }})
    );
    assert!(fake.received_on(Route::Poll).is_empty(), "a finished create answer needs no poll");
}

#[tokio::test]
async fn replicate_output_type_comes_from_the_bytes_not_the_host() {
    let fake = FakeReplicate::start().await;
    // A generic type, and a wrong one: the bytes decide.
    let webp = FakeFile::new("frame.png", Some("application/octet-stream"), b"RIFF....WEBPVP8 ".to_vec()).streamed();
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(webp) });
    let mp4 = FakeFile::new("clip.bin", Some("image/png"), mvgen::providers::mock::MOCK_CLIP);
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(mp4) });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let media = client.make_image(&image_request(), RunContext::detached()).await.unwrap();
    assert_eq!((media.content_type.as_str(), media.bytes.as_slice()), ("image/webp", &b"RIFF....WEBPVP8 "[..]));
    let media = client.make_video(&video_request(), RunContext::detached()).await.unwrap();
    assert_eq!(media.content_type, "video/mp4");
}

#[tokio::test]
async fn replicate_outputs_that_are_not_the_expected_kind_are_refused() {
    let fake = FakeReplicate::start().await;
    let html = FakeFile::new("out.mp4", Some("video/mp4"), b"<html>a login page</html>".to_vec());
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(html) });
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::png()) });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    for expected in ["not in a stored video format", "image/png, not the video"] {
        let err = client.make_video(&video_request(), RunContext::detached()).await.unwrap_err();
        assert!(
            matches!(&err, ProviderError::Malformed { message, .. } if message.contains(expected)),
            "{expected}: {err:?}"
        );
    }
}

#[tokio::test]
async fn replicate_output_redirects_are_not_followed() {
    let fake = FakeReplicate::start().await;
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::png()) });
    // The real file is one hop away: following would succeed.
    let target = format!("{}/files/pred-1/out.png", fake.base_url);
    fake.push_response(Route::File, Scripted::status(302).with_header("location", &target));
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let err = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(matches!(&err, ProviderError::Malformed { message, .. } if message.contains("redirect")), "{err:?}");
    assert_eq!(fake.received_on(Route::File).len(), 1, "the redirect target is never requested");
}

#[tokio::test]
async fn replicate_outputs_on_other_private_networks_are_refused_without_a_request() {
    let fake = FakeReplicate::start().await;
    // The base URL is loopback (the fake), so loopback outputs are allowed; link-local (cloud
    // metadata) and private addresses are another matter.
    for url in ["http://169.254.169.254/latest/meta-data/x.png", "http://10.0.0.1/x.png", "http://[fe80::1]/x.png"] {
        fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::SucceedWithUrl(url.to_owned()) });
    }
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    for _ in 0..3 {
        let err = tokio::time::timeout(BOUND, client.make_image(&image_request(), RunContext::detached()))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::Malformed { message, .. } if message.contains("downloads may not reach")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn replicate_waits_out_429_on_create_then_succeeds() {
    let fake = FakeReplicate::start().await;
    fake.push_response(
        Route::Create,
        Scripted::json(429, FakeReplicate::problem_body(429, "Too Many Requests", "slow down"))
            .with_header("retry-after", "1"),
    );
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let media = client.make_image(&image_request(), RunContext::detached()).await.unwrap();

    assert_eq!(media.content_type, "image/png");
    assert_eq!(fake.received_on(Route::Create).len(), 2);
}

#[tokio::test]
async fn replicate_retries_5xx_on_polls_and_downloads() {
    let fake = FakeReplicate::start().await;
    fake.push_response(Route::Poll, Scripted::status(502));
    fake.push_response(Route::File, Scripted::status(503));
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    client.make_image(&image_request(), RunContext::detached()).await.unwrap();

    assert_eq!(fake.received_on(Route::Poll).len(), 2);
    assert_eq!(fake.received_on(Route::File).len(), 2);
}

#[tokio::test]
async fn replicate_create_retries_are_bounded() {
    let fake = FakeReplicate::start().await;
    for _ in 0..5 {
        fake.push_response(
            Route::Create,
            Scripted::json(503, FakeReplicate::problem_body(503, "Service Unavailable", "try later")),
        );
    }
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let err = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert_eq!(err, ProviderError::Upstream { provider: "replicate", status: 503, message: "try later".into() });
    assert_eq!(fake.received_on(Route::Create).len(), 3);
}

#[tokio::test]
async fn replicate_create_is_not_repeated_after_an_ambiguous_5xx() {
    // A 500 may arrive after the prediction was created; a retry would start (and bill) it twice.
    let fake = FakeReplicate::start().await;
    fake.push_response(Route::Create, Scripted::json(500, FakeReplicate::problem_body(500, "Internal", "oops")));
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let err = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(matches!(err, ProviderError::Upstream { status: 500, .. }), "{err:?}");
    assert_eq!(fake.received_on(Route::Create).len(), 1);
}

#[tokio::test]
async fn replicate_prediction_is_cancelled_when_polling_fails() {
    let fake = FakeReplicate::start().await;
    fake.push_prediction(PredictionPlan { polls_until_done: 5, outcome: Outcome::NeverFinish });
    fake.push_response(Route::Poll, Scripted::json(404, FakeReplicate::problem_body(404, "Not found", "gone")));
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let err = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(matches!(err, ProviderError::Upstream { status: 404, .. }), "{err:?}");
    // The cancel goes out on its own task; give it a bounded moment to arrive.
    for _ in 0..200 {
        if !fake.cancelled().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.cancelled(), ["pred-1"], "an abandoned prediction is cancelled upstream");
}

#[tokio::test]
async fn replicate_validation_errors_use_the_problem_detail_and_are_not_retried() {
    let fake = FakeReplicate::start().await;
    let detail = "- input.aspect_ratio: aspect_ratio must be one of the following: \"1:1\", \"9:16\"";
    fake.push_response(
        Route::Create,
        Scripted::json(422, FakeReplicate::problem_body(422, "Input validation failed", detail)),
    );
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let err = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert_eq!(err, ProviderError::Upstream { provider: "replicate", status: 422, message: detail.into() });
    assert_eq!(fake.received_on(Route::Create).len(), 1);
}

#[tokio::test]
async fn replicate_failed_predictions_carry_replicates_message() {
    let fake = FakeReplicate::start().await;
    fake.push_prediction(PredictionPlan { polls_until_done: 2, outcome: Outcome::Fail("CUDA out of memory".into()) });
    fake.push_prediction(PredictionPlan {
        polls_until_done: 1,
        outcome: Outcome::Fail("The output was flagged as sensitive (E005)".into()),
    });
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Canceled });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let failed = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();
    let flagged = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();
    let canceled = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(
        matches!(&failed, ProviderError::RunFailed { provider: "replicate", message } if message.contains("CUDA out of memory")),
        "{failed:?}"
    );
    assert_eq!(
        flagged,
        ProviderError::Refused { provider: "replicate", message: "The output was flagged as sensitive (E005)".into() }
    );
    assert!(
        matches!(&canceled, ProviderError::RunFailed { message, .. } if message.contains("canceled")),
        "{canceled:?}"
    );
    assert!(fake.received_on(Route::File).is_empty());
}

#[tokio::test]
async fn replicate_never_finishing_prediction_times_out_and_is_cancelled() {
    let fake = FakeReplicate::start().await;
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::NeverFinish });
    let mut config = test_provider_config("http://127.0.0.1:9", &fake.base_url);
    config.video_deadline = Duration::from_millis(300);
    let client = replicate(&config);

    let err = tokio::time::timeout(BOUND, client.make_video(&video_request(), RunContext::detached()))
        .await
        .unwrap()
        .unwrap_err();

    assert_eq!(err, ProviderError::Timeout { provider: "replicate", after: Duration::from_millis(300) });
    assert_eq!(fake.cancelled(), ["pred-1"]);
    let cancel = &fake.received_on(Route::Cancel)[0];
    assert_eq!(cancel.header("authorization"), Some(format!("Bearer {TEST_REPLICATE_TOKEN}").as_str()));
    assert!(fake.received_on(Route::Poll).len() >= 2, "it polled while waiting");
}

#[tokio::test]
async fn replicate_hanging_create_times_out_at_the_deadline() {
    let fake = FakeReplicate::start().await;
    fake.push_response(Route::Create, Scripted::hang());
    let mut config = test_provider_config("http://127.0.0.1:9", &fake.base_url);
    config.image_deadline = Duration::from_millis(300);
    let client = replicate(&config);

    let err = tokio::time::timeout(BOUND, client.make_image(&image_request(), RunContext::detached()))
        .await
        .unwrap()
        .unwrap_err();

    assert_eq!(err, ProviderError::Timeout { provider: "replicate", after: Duration::from_millis(300) });
}

#[tokio::test]
async fn replicate_answer_that_is_not_a_prediction_object_fails_at_once() {
    let fake = FakeReplicate::start().await;
    // serde would read this array as a `starting` prediction by position and poll it forever.
    fake.push_response(Route::Create, Scripted::json(201, json!(["pred-1", "starting", null, null])));
    let mut config = test_provider_config("http://127.0.0.1:9", &fake.base_url);
    config.image_deadline = Duration::from_secs(60);
    let client = replicate(&config);

    let err = tokio::time::timeout(BOUND, client.make_image(&image_request(), RunContext::detached()))
        .await
        .unwrap()
        .unwrap_err();

    assert!(
        matches!(&err, ProviderError::Malformed { message, .. } if message.contains("array instead of an object")),
        "{err:?}"
    );
    assert!(fake.received_on(Route::Poll).is_empty(), "never polled");
}

#[tokio::test]
async fn replicate_missing_output_file_is_an_upstream_error() {
    let fake = FakeReplicate::start().await;
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::SucceedWithMissingFile });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    let err = client.make_image(&image_request(), RunContext::detached()).await.unwrap_err();

    assert!(matches!(err, ProviderError::Upstream { provider: "replicate", status: 404, .. }), "{err:?}");
    assert_eq!(fake.received_on(Route::File).len(), 1, "404 is not retried");
}

#[tokio::test]
async fn replicate_oversized_outputs_are_rejected() {
    let fake = FakeReplicate::start().await;
    // One announced by Content-Length, one streamed without it, one that never ends: the last
    // only finishes if the client stops reading at the limit instead of buffering everything.
    let big = FakeFile::new("big.png", Some("image/png"), vec![7u8; 64 * 1024]);
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(big.clone()) });
    fake.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(big.streamed()) });
    fake.push_prediction(PredictionPlan {
        polls_until_done: 1,
        outcome: Outcome::Succeed(FakeFile::endless("big.mp4")),
    });
    let mut config = test_provider_config("http://127.0.0.1:9", &fake.base_url);
    config.max_image_bytes = 1024;
    let client = replicate(&config);

    for _ in 0..3 {
        let err = tokio::time::timeout(BOUND, client.make_image(&image_request(), RunContext::detached()))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err, ProviderError::Malformed { provider: "replicate", message: "output larger than 1 KiB".into() });
    }
}

#[tokio::test]
async fn replicate_requests_without_a_token_are_rejected_by_the_fake() {
    // Guards the fake itself: the API tests rely on it rejecting unauthenticated calls.
    let fake = FakeReplicate::start().await;
    let url = format!("{}/v1/models/google/imagen-4/predictions", fake.base_url);
    let answer = reqwest::Client::new().post(url).json(&json!({"input": {}})).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["title"], "Unauthenticated");
}

// ---------------------------------------------------------------------------------------------
// Veo on the Gemini API (backend: "gemini")

#[tokio::test]
async fn veo_starts_polls_and_downloads_with_the_key_only_where_it_belongs() {
    let fake = FakeGemini::start().await;
    fake.push_veo_plan(VeoPlan { polls_until_done: 3, outcome: VeoOutcome::Succeed(FakeFile::mp4()) });
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));
    let mut request = veo_request();
    request.negative_prompt = Some("blurry".into());
    request.seed = Some(42);
    request.reference_image = Some(Media { bytes: vec![0x89, b'P', b'N', b'G'], content_type: "image/png".into() });

    let video = client.make_video(&request, RunContext::detached()).await.unwrap();

    assert_eq!(video, Media { bytes: FakeFile::mp4().bytes().to_vec(), content_type: "video/mp4".into() });
    let started = fake.received_on(VeoRoute::Start);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].path, "/v1beta/models/veo-3.1-generate-preview:predictLongRunning");
    // The exact body from providers.md, written out here independently of the client's code.
    assert_eq!(
        started[0].json(),
        json!({
            "instances": [{"prompt": "she drives\n\nRules: 16:9",
                           "image": {"bytesBase64Encoded": "iVBORw==", "mimeType": "image/png"}}],
            "parameters": {"aspectRatio": "16:9", "personGeneration": "allow_all", "negativePrompt": "blurry",
                           "durationSeconds": 8, "seed": 42}
        })
    );
    let polls = fake.received_on(VeoRoute::Poll);
    assert_eq!(polls.len(), 3, "polled until done");
    assert!(polls.iter().all(|p| p.path == "/v1beta/models/veo-3.1-generate-preview/operations/op-1"));
    assert_eq!(fake.received_on(VeoRoute::Download).len(), 1);
    for sent in started.iter().chain(&polls).chain(&fake.received_on(VeoRoute::Download)) {
        assert_eq!(sent.header("x-goog-api-key"), Some(TEST_GEMINI_KEY), "{}", sent.path);
    }
    let file_host = fake.received_on(VeoRoute::FileHost);
    assert_eq!(file_host.len(), 1, "the redirect to the file host was followed");
    assert_eq!(file_host[0].header("x-goog-api-key"), None, "the key never goes to the file host");
    for sent in fake.received() {
        assert!(sent.query.as_deref().is_none_or(|q| !q.contains(TEST_GEMINI_KEY)), "key in a query: {sent:?}");
    }
    assert!(fake.cancelled_operations().is_empty(), "a finished operation is not cancelled");
}

#[tokio::test]
async fn veo_without_a_reference_sends_no_image_and_no_optional_parameters() {
    let fake = FakeGemini::start().await;
    fake.push_veo_plan(VeoPlan { polls_until_done: 0, outcome: VeoOutcome::Succeed(FakeFile::mp4()) });
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    client.make_video(&veo_request(), RunContext::detached()).await.unwrap();

    let body = fake.received_on(VeoRoute::Start)[0].json();
    assert_eq!(body["instances"], json!([{"prompt": "she drives\n\nRules: 16:9"}]));
    assert_eq!(
        body["parameters"],
        json!({"aspectRatio": "16:9", "personGeneration": "allow_all", "durationSeconds": 8})
    );
    assert!(fake.received_on(VeoRoute::Poll).is_empty(), "an operation done at once is not polled");
}

#[tokio::test]
async fn veo_failed_operation_carries_its_message_and_is_not_cancelled() {
    let fake = FakeGemini::start().await;
    let message = "Video generation failed due to an internal error.".to_owned();
    fake.push_veo_plan(VeoPlan { polls_until_done: 2, outcome: VeoOutcome::Fail { code: 13, message } });
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();

    assert_eq!(
        err,
        ProviderError::RunFailed {
            provider: "gemini",
            message: "operation models/veo-3.1-generate-preview/operations/op-1 failed: Video generation failed due to an internal error. (code 13)".into()
        }
    );
    assert!(fake.received_on(VeoRoute::Download).is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(fake.cancelled_operations().is_empty(), "an operation that ended upstream needs no cancel");
}

#[tokio::test]
async fn veo_safety_block_is_refused() {
    let fake = FakeGemini::start().await;
    let reasons = vec!["The video could not be generated because it may violate our policies.".to_owned()];
    fake.push_veo_plan(VeoPlan { polls_until_done: 1, outcome: VeoOutcome::SafetyBlock(reasons) });
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();

    assert!(
        matches!(&err, ProviderError::Refused { provider: "gemini", message } if message.contains("violate our policies")),
        "{err:?}"
    );
}

#[tokio::test]
async fn veo_retries_429_and_503_then_succeeds() {
    let fake = FakeGemini::start().await;
    let busy = |status: u16, name: &str| Scripted::json(status, FakeGemini::error_body(status, name, "try later"));
    fake.push_veo_response(VeoRoute::Start, busy(429, "RESOURCE_EXHAUSTED").with_header("retry-after", "0"));
    fake.push_veo_response(VeoRoute::Start, busy(503, "UNAVAILABLE"));
    fake.push_veo_response(VeoRoute::Poll, busy(503, "UNAVAILABLE"));
    fake.push_veo_response(VeoRoute::Download, busy(500, "INTERNAL"));
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let video = client.make_video(&veo_request(), RunContext::detached()).await.unwrap();

    assert_eq!(video.content_type, "video/mp4");
    assert_eq!(fake.received_on(VeoRoute::Start).len(), 3);
    assert_eq!(fake.received_on(VeoRoute::Poll).len(), 2);
    assert_eq!(fake.received_on(VeoRoute::Download).len(), 2);
}

#[tokio::test]
async fn veo_start_is_bounded_and_not_repeated_after_an_ambiguous_5xx() {
    let fake = FakeGemini::start().await;
    for _ in 0..3 {
        let body = FakeGemini::error_body(429, "RESOURCE_EXHAUSTED", "Quota exceeded");
        fake.push_veo_response(VeoRoute::Start, Scripted::json(429, body).with_header("retry-after", "0"));
    }
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));
    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();
    assert_eq!(err, ProviderError::RateLimited { provider: "gemini", retry_after: Some(Duration::ZERO) });
    assert_eq!(fake.received_on(VeoRoute::Start).len(), 3, "max_attempts in all");

    // A 500 may come after the operation was created; repeating would render (and bill) twice.
    let fake = FakeGemini::start().await;
    fake.push_veo_response(VeoRoute::Start, Scripted::json(500, FakeGemini::error_body(500, "INTERNAL", "oops")));
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));
    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();
    assert_eq!(err, ProviderError::Upstream { provider: "gemini", status: 500, message: "oops".into() });
    assert_eq!(fake.received_on(VeoRoute::Start).len(), 1);
}

#[tokio::test]
async fn veo_never_finishing_operation_times_out_and_is_cancelled() {
    let fake = FakeGemini::start().await;
    fake.push_veo_plan(VeoPlan { polls_until_done: 1, outcome: VeoOutcome::NeverFinish });
    let mut config = test_provider_config(&fake.base_url, "http://127.0.0.1:9");
    config.video_deadline = Duration::from_millis(300);
    let client = veo(&config);

    let err = tokio::time::timeout(BOUND, client.make_video(&veo_request(), RunContext::detached()))
        .await
        .unwrap()
        .unwrap_err();

    assert_eq!(err, ProviderError::Timeout { provider: "gemini", after: Duration::from_millis(300) });
    assert_eq!(fake.cancelled_operations(), ["models/veo-3.1-generate-preview/operations/op-1"]);
    assert_eq!(fake.received_on(VeoRoute::Cancel)[0].header("x-goog-api-key"), Some(TEST_GEMINI_KEY));
    assert!(fake.received_on(VeoRoute::Poll).len() >= 2, "it polled while waiting");
}

#[tokio::test]
async fn veo_hanging_start_times_out_at_the_deadline() {
    let fake = FakeGemini::start().await;
    fake.push_veo_response(VeoRoute::Start, Scripted::hang());
    let mut config = test_provider_config(&fake.base_url, "http://127.0.0.1:9");
    config.video_deadline = Duration::from_millis(300);
    let client = veo(&config);

    let err = tokio::time::timeout(BOUND, client.make_video(&veo_request(), RunContext::detached()))
        .await
        .unwrap()
        .unwrap_err();

    assert_eq!(err, ProviderError::Timeout { provider: "gemini", after: Duration::from_millis(300) });
}

#[tokio::test]
async fn veo_operation_is_cancelled_when_the_caller_abandons_it() {
    let fake = FakeGemini::start().await;
    fake.push_veo_plan(VeoPlan { polls_until_done: 1, outcome: VeoOutcome::NeverFinish });
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    // The caller gives up (as a closed client connection drops the handler's future).
    let abandoned =
        tokio::time::timeout(Duration::from_millis(200), client.make_video(&veo_request(), RunContext::detached()))
            .await;
    assert!(abandoned.is_err(), "the operation never finishes");

    wait_for(|| !fake.cancelled_operations().is_empty()).await;
    assert_eq!(fake.cancelled_operations(), ["models/veo-3.1-generate-preview/operations/op-1"]);
}

#[tokio::test]
async fn veo_operation_is_cancelled_when_polling_fails() {
    let fake = FakeGemini::start().await;
    fake.push_veo_plan(VeoPlan { polls_until_done: 5, outcome: VeoOutcome::NeverFinish });
    let body = FakeGemini::error_body(403, "PERMISSION_DENIED", "The caller does not have permission");
    fake.push_veo_response(VeoRoute::Poll, Scripted::json(403, body));
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));

    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();

    assert!(matches!(err, ProviderError::Upstream { status: 403, .. }), "{err:?}");
    wait_for(|| !fake.cancelled_operations().is_empty()).await;
    assert_eq!(fake.cancelled_operations().len(), 1);
}

#[tokio::test]
async fn veo_downloads_that_are_not_videos_or_too_big_are_refused() {
    let fake = FakeGemini::start().await;
    fake.push_veo_response(
        VeoRoute::FileHost,
        Scripted::bytes(200, "<html>sign in</html>").with_header("content-type", "text/html"),
    );
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));
    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();
    // Judged by its bytes, not by the host's Content-Type.
    assert!(matches!(&err, ProviderError::Malformed { message, .. } if message.contains("<html>sign in")), "{err:?}");
    fake.push_veo_response(
        VeoRoute::FileHost,
        Scripted::bytes(200, &b"\x89PNG\r\n\x1a\n...."[..]).with_header("content-type", "video/mp4"),
    );
    let err = client.make_video(&veo_request(), RunContext::detached()).await.unwrap_err();
    assert!(matches!(&err, ProviderError::Malformed { message, .. } if message.contains("image/png")), "{err:?}");

    let mut config = test_provider_config(&fake.base_url, "http://127.0.0.1:9");
    config.max_video_bytes = 1024;
    let err = veo(&config).make_video(&veo_request(), RunContext::detached()).await.unwrap_err();
    assert_eq!(err, ProviderError::Malformed { provider: "gemini", message: "video larger than 1 KiB".into() });
}

// ---------------------------------------------------------------------------------------------
// Choosing providers

#[tokio::test]
async fn from_config_uses_real_clients_when_keys_are_set() {
    let gemini_fake = FakeGemini::start().await;
    gemini_fake.set_default_scenes(2);
    let replicate_fake = FakeReplicate::start().await;
    let providers =
        Providers::from_config(&test_provider_config(&gemini_fake.base_url, &replicate_fake.base_url)).unwrap();

    assert_eq!(
        providers.summary(),
        "providers: scenes=gemini images=replicate videos=replicate gemini_videos=gemini (no mocks)"
    );
    assert_eq!(providers.scenes.write_scenes(&scene_request(2)).await.unwrap().len(), 2);
    assert_eq!(
        providers.videos.make_video(&video_request(), RunContext::detached()).await.unwrap().content_type,
        "video/mp4"
    );
    assert_eq!(
        providers.gemini_videos.make_video(&veo_request(), RunContext::detached()).await.unwrap().content_type,
        "video/mp4"
    );
    assert_eq!(gemini_fake.received_on(VeoRoute::Start).len(), 1);
    assert_eq!(replicate_fake.received_on(Route::Create).len(), 1);
}

#[test]
fn from_config_mocks_whatever_has_no_key() {
    let only_gemini = ProviderConfig { gemini_api_key: Some("k".into()), ..ProviderConfig::default() };
    let providers = Providers::from_config(&only_gemini).unwrap();
    assert_eq!(
        providers.summary(),
        "providers: scenes=gemini images=mock videos=mock gemini_videos=gemini (mock: images, videos)"
    );

    let forced = ProviderConfig {
        force_mock: true,
        gemini_api_key: Some("k".into()),
        replicate_api_token: Some("t".into()),
        ..ProviderConfig::default()
    };
    let providers = Providers::from_config(&forced).unwrap();
    assert!(providers.scenes.is_mock() && providers.images.is_mock() && providers.videos.is_mock());
    assert!(providers.gemini_videos.is_mock());
    assert_eq!(
        providers.summary(),
        "providers: scenes=mock images=mock videos=mock gemini_videos=gemini-mock (mock: scenes, images, videos, gemini_videos)"
    );
}

// ---------------------------------------------------------------------------------------------
// Mocks

#[tokio::test]
async fn mock_scenes_are_exact_labelled_varied_and_deterministic() {
    let request = scene_request(6);

    let first = MockScenes.write_scenes(&request).await.unwrap();
    let again = MockScenes.write_scenes(&request).await.unwrap();

    assert_eq!(first.len(), 6);
    assert_eq!(first, again);
    assert!(
        first.iter().all(|s| s.description.starts_with(MOCK_LABEL) && s.negative_description.starts_with(MOCK_LABEL))
    );
    let distinct: std::collections::HashSet<_> = first.iter().map(|s| &s.description).collect();
    assert_eq!(distinct.len(), 6);
    assert!(first[0].description.contains("a night drive"));
    assert_eq!(MockScenes.write_scenes(&scene_request(1)).await.unwrap().len(), 1);
    assert!(MockScenes.is_mock());
    assert_eq!(MockScenes.backend(), "mock");
}

#[tokio::test]
async fn mock_images_are_real_pngs_sized_by_aspect_ratio_and_differ_by_prompt() {
    let mut request = image_request();
    request.aspect_ratio = "16:9".into();
    request.output_format = "jpg".into();
    request.seed = Some(7);

    let image = MockImages.make_image(&request, RunContext::detached()).await.unwrap();
    let same = MockImages.make_image(&request, RunContext::detached()).await.unwrap();
    request.prompt = "a man in a blue hat".into();
    let other = MockImages.make_image(&request, RunContext::detached()).await.unwrap();
    request.seed = None;
    let unseeded = [
        MockImages.make_image(&request, RunContext::detached()).await.unwrap(),
        MockImages.make_image(&request, RunContext::detached()).await.unwrap(),
    ];

    assert_eq!(image.content_type, "image/png", "the mock always draws PNG");
    assert_eq!(image, same, "the same seed and prompt draw the same picture");
    assert_ne!(image.bytes, other.bytes);
    assert_ne!(unseeded[0].bytes, unseeded[1].bytes, "like a model, unseeded calls differ");
    let decoder = png::Decoder::new(std::io::Cursor::new(image.bytes));
    let reader = decoder.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (384, 216));
}

#[tokio::test]
async fn mock_video_is_an_mp4() {
    let video = MockVideos.make_video(&video_request(), RunContext::detached()).await.unwrap();

    assert_eq!(video.content_type, "video/mp4");
    assert_eq!(&video.bytes[4..8], b"ftyp");
    assert!(video.bytes.len() < 100 * 1024);
}

#[tokio::test]
async fn mock_gemini_video_is_labelled_as_both() {
    let video = MockGeminiVideos.make_video(&veo_request(), RunContext::detached()).await.unwrap();

    assert_eq!(video, MockVideos.make_video(&video_request(), RunContext::detached()).await.unwrap());
    assert_eq!((MockGeminiVideos.backend(), MockGeminiVideos.is_mock()), ("gemini-mock", true));
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn gemini(config: &ProviderConfig) -> GeminiClient {
    GeminiClient::new(config, mvgen::providers::http::build_client(config).unwrap()).unwrap()
}

fn veo(config: &ProviderConfig) -> GeminiVideoClient {
    GeminiVideoClient::new(config, mvgen::providers::http::build_client(config).unwrap()).unwrap()
}

/// What the handler sends for `backend: "gemini"`: a Gemini model name and the full prompt.
fn veo_request() -> VideoRequest {
    VideoRequest {
        model: "veo-3.1-generate-preview".into(),
        prompt: "she drives\n\nRules: 16:9".into(),
        duration: 8,
        ..video_request()
    }
}

/// Waits (bounded) for something a background task does, such as a cancel sent on drop.
async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn replicate(config: &ProviderConfig) -> ReplicateClient {
    ReplicateClient::new(config, mvgen::providers::http::build_client(config).unwrap()).unwrap()
}

fn scene_request(n: u32) -> SceneRequest {
    SceneRequest {
        model: "gemini-2.5-flash".into(),
        prompt: format!("Write {n} scenes about a night drive."),
        number_of_scenes: n,
        idea: "a night drive".into(),
        character_description: "a woman in a red coat".into(),
        character_characteristics: "calm".into(),
        video_type: "cinematic".into(),
        video_characteristics: "neon".into(),
        camera_angle: "low angle".into(),
    }
}

fn image_request() -> ImageRequest {
    ImageRequest {
        model: "google/imagen-4".into(),
        prompt: "a woman in a red coat, full body, studio light".into(),
        aspect_ratio: "3:4".into(),
        safety_filter_level: "block_medium_and_above".into(),
        person_generation: "allow_adult".into(),
        output_format: "png".into(),
        negative_prompt: None,
        seed: None,
    }
}

fn video_request() -> VideoRequest {
    VideoRequest {
        model: "google/veo-3.1".into(),
        prompt: "she drives".into(),
        aspect_ratio: "16:9".into(),
        duration: 4,
        generate_audio: true,
        person_generation: "allow_all".into(),
        negative_prompt: None,
        seed: None,
        reference_image: None,
    }
}

/// A local URL nothing listens on: bind a port, then free it.
/// A URL whose port refuses connections: the socket is bound (so no other test can take the port)
/// but never listens. Keep the socket alive for as long as the URL is used.
fn closed_port_url() -> (String, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = socket.local_addr().unwrap();
    (format!("http://{address}"), socket)
}

fn assert_no_secrets(err: &ProviderError) {
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains(TEST_GEMINI_KEY), "{shown}");
    assert!(!shown.contains(TEST_REPLICATE_TOKEN), "{shown}");
}
