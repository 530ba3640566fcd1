//! The real Replicate client (images and videos) against the fake Replicate: create, poll and
//! download, what it refuses to fetch or keep, retries and their bounds, deadlines and cancellation.

use crate::support;

use std::time::Duration;

use mvgen::providers::{ImageMaker, Media, ProviderError, RunContext, VideoMaker, VideoRequest};
use serde_json::{Value, json};
use support::fake_upstream::{
    FakeFile, FakeReplicate, Outcome, PredictionPlan, Route, Scripted, TEST_REPLICATE_TOKEN, test_provider_config,
};

use super::*;

#[tokio::test]
async fn replicate_image_creates_polls_and_downloads_without_the_token() {
    let fake = FakeReplicate::start().await;
    let file = FakeFile::png();
    fake.push_prediction(PredictionPlan { polls_until_done: 2, outcome: Outcome::Succeed(file.clone()) });
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));
    let mut request = image_request();
    request.seed = Some(42);

    let media = made(client.make_image(&request, RunContext::detached())).await.unwrap();

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

    let media = made(client.make_video(&request, RunContext::detached())).await.unwrap();

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

    let media = made(client.make_image(&image_request(), RunContext::detached())).await.unwrap();
    assert_eq!((media.content_type.as_str(), media.bytes.as_slice()), ("image/webp", &b"RIFF....WEBPVP8 "[..]));
    let media = made(client.make_video(&video_request(), RunContext::detached())).await.unwrap();
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

    let media = made(client.make_image(&image_request(), RunContext::detached())).await.unwrap();

    assert_eq!(media.content_type, "image/png");
    assert_eq!(fake.received_on(Route::Create).len(), 2);
}

#[tokio::test]
async fn replicate_retries_5xx_on_polls_and_downloads() {
    let fake = FakeReplicate::start().await;
    fake.push_response(Route::Poll, Scripted::status(502));
    fake.push_response(Route::File, Scripted::status(503));
    let client = replicate(&test_provider_config("http://127.0.0.1:9", &fake.base_url));

    made(client.make_image(&image_request(), RunContext::detached())).await.unwrap();

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
        let err = tokio::time::timeout(BOUND, made(client.make_image(&image_request(), RunContext::detached())))
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
    let answer = crate::support::http_client().post(url).json(&json!({"input": {}})).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["title"], "Unauthenticated");
}
