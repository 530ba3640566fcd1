//! Veo on the Gemini API (`backend: "gemini"`) against the fake Gemini's long-running operations:
//! start, poll, download, failures, the safety filter, retries, deadlines and cancellation.

use crate::support;

use std::time::Duration;

use mvgen::providers::{Media, ProviderError, RunContext, VideoMaker};
use serde_json::json;
use support::fake_upstream::{
    FakeFile, FakeGemini, Scripted, TEST_GEMINI_KEY, VeoOutcome, VeoPlan, VeoRoute, test_provider_config,
};

use super::*;

#[tokio::test]
async fn veo_starts_polls_and_downloads_with_the_key_only_where_it_belongs() {
    let fake = FakeGemini::start().await;
    fake.push_veo_plan(VeoPlan { polls_until_done: 3, outcome: VeoOutcome::Succeed(FakeFile::mp4()) });
    let client = veo(&test_provider_config(&fake.base_url, "http://127.0.0.1:9"));
    let mut request = veo_request();
    request.negative_prompt = Some("blurry".into());
    request.seed = Some(42);
    request.reference_image = Some(Media { bytes: vec![0x89, b'P', b'N', b'G'], content_type: "image/png".into() });

    let video = made(client.make_video(&request, RunContext::detached())).await.unwrap();

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

    made(client.make_video(&veo_request(), RunContext::detached())).await.unwrap();

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

    let video = made(client.make_video(&veo_request(), RunContext::detached())).await.unwrap();

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
    let err = made(veo(&config).make_video(&veo_request(), RunContext::detached())).await.unwrap_err();
    assert_eq!(err, ProviderError::Malformed { provider: "gemini", message: "video larger than 1 KiB".into() });
}
