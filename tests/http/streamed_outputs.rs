//! A real provider's output streamed through the server into storage (`file://`): the bytes are
//! written as they arrive (never whole in memory first), a cut, stalled or oversized download
//! fails as the provider's error and leaves no file, and a download is retried only before its
//! first byte. The real Replicate client against the fake Replicate, in process.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use mvgen::providers::ProviderConfig;
use mvgen::providers::replicate::ReplicateClient;
use serde_json::json;
use support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan, Route, ScriptedBody};
use support::test_app::TestApp;

/// An app whose videos (and images) are made by the real Replicate client against `fake`.
fn app(fake: &FakeReplicate, config: impl FnOnce(&mut ProviderConfig)) -> TestApp {
    let mut c = support::fake_upstream::test_provider_config("http://127.0.0.1:9", &fake.base_url);
    config(&mut c);
    let client = mvgen::providers::client::build_client(&c).expect("client");
    let replicate = Arc::new(ReplicateClient::new(&c, client).expect("replicate"));
    TestApp::with(
        |_| {},
        |p| {
            p.videos = replicate.clone();
            p.images = replicate;
        },
    )
}

/// An MP4 header followed by `len` bytes of a pattern.
fn mp4(len: usize) -> Vec<u8> {
    let mut bytes = b"\0\0\0\x18ftypisom\0\0\0\0".to_vec();
    bytes.extend((0..len).map(|i| (i % 251) as u8));
    bytes
}

fn file(body: ScriptedBody) -> Outcome {
    Outcome::Succeed(FakeFile { name: "out.mp4".into(), content_type: Some("video/mp4".into()), body })
}

/// Every name in the videos directory, temp files included.
fn videos(t: &TestApp) -> Vec<(String, u64)> {
    let Ok(dir) = std::fs::read_dir(t.output_dir.join("videos")) else { return Vec::new() };
    dir.map(|e| e.expect("entry"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().map_or(0, |m| m.len())))
        .collect()
}

#[tokio::test]
async fn a_download_is_written_as_it_arrives_and_a_stalled_one_times_out_leaving_nothing() {
    let fake = FakeReplicate::start().await;
    let head = mp4(1024 * 1024);
    fake.push_prediction(PredictionPlan { polls_until_done: 0, outcome: file(ScriptedBody::StalledAfter(head)) });
    let t = app(&fake, |c| c.download_timeout = Duration::from_secs(3));

    let body = json!({"prompt": "p"});
    let request = t.post("/api/mv/generate_video", &body);
    let watch = async {
        // While the upstream stalls, what it sent is already on disk, in a hidden temp file.
        let started = Instant::now();
        loop {
            let partial = videos(&t).into_iter().find(|(name, _)| name.ends_with(".partial"));
            if partial.as_ref().is_some_and(|(_, len)| *len > 1024 * 1024)
                || started.elapsed() > Duration::from_secs(10)
            {
                return partial;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let ((status, resp), partial) = tokio::join!(request, watch);

    assert!(partial.is_some(), "the first MiB was written before the download ended");
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{resp}");
    assert_eq!(resp["detail"]["error"], "UpstreamTimeout", "{resp}");
    assert_eq!(resp["detail"]["message"], "replicate did not answer within 3s", "{resp}");
    assert_eq!(videos(&t), [], "no file, final or temporary");
    assert_eq!(fake.received_on(Route::File).len(), 1, "a body once begun is not retried");
}

#[tokio::test]
async fn a_cut_or_oversized_download_fails_as_the_providers_error_and_leaves_nothing() {
    let fake = FakeReplicate::start().await;
    fake.push_prediction(PredictionPlan {
        polls_until_done: 0,
        outcome: file(ScriptedBody::BrokenAfter(mp4(256 * 1024))),
    });
    // Chunked, so the cap is met mid-stream rather than refused by its Content-Length.
    fake.push_prediction(PredictionPlan { polls_until_done: 0, outcome: file(ScriptedBody::Streamed(mp4(3 << 20))) });
    let t = app(&fake, |c| c.max_video_bytes = 1 << 20);

    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::BAD_GATEWAY, Some("UpstreamUnreachable")));
    let message = resp["detail"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("replicate could not be reached: connection lost"), "{resp}");
    assert_eq!(videos(&t), []);

    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!((status, resp["detail"]["error"].as_str()), (StatusCode::BAD_GATEWAY, Some("UpstreamError")));
    assert_eq!(resp["detail"]["message"], "replicate sent an unusable answer: output larger than 1 MiB", "{resp}");
    assert_eq!(videos(&t), []);
    assert_eq!(fake.received_on(Route::File).len(), 2, "neither download was repeated");
}

#[tokio::test]
async fn a_large_download_is_stored_whole_and_served_back_identical() {
    let fake = FakeReplicate::start().await;
    let bytes = mp4(12 << 20);
    fake.push_prediction(PredictionPlan { polls_until_done: 0, outcome: file(ScriptedBody::Streamed(bytes.clone())) });
    let t = app(&fake, |_| {});

    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let url = resp["video_url"].as_str().expect("url");
    let (status, _, served) = t.get_bytes(url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(served == bytes, "served {} bytes, stored {}", served.len(), bytes.len());
    let id = resp["video_id"].as_str().expect("id");
    assert_eq!(videos(&t), [(format!("{id}.mp4"), bytes.len() as u64)]);
}
