//! The provider clients on their own: each real client against the fake upstreams in
//! `tests/support/fake_upstream.rs`, asserting what the fakes received as much as what the clients
//! returned; and the offline mocks. One test binary, one module per provider (`gemini`,
//! `replicate`, `veo`) plus `mocks` (the mocks, and when they are chosen).
//!
//! Belongs here: a client's wire behaviour (requests, retries, polling, deadlines, cancellation,
//! resuming a saved upstream run) tested without the HTTP server. Through the server or the binary,
//! see `tests/e2e/`. The clients and requests the modules share are at the bottom of this file.
//!
//! Timeouts, poll intervals and backoff are configured tiny, so every test takes milliseconds; the
//! few that wait for a timeout are bounded by an outer `tokio::time::timeout`, never by a sleep.

#[path = "../support/mod.rs"]
mod support;

mod gemini;
mod mocks;
mod replicate;
mod upstream_runs;
mod veo;

use std::time::Duration;

use mvgen::providers::gemini::GeminiClient;
use mvgen::providers::gemini_video::GeminiVideoClient;
use mvgen::providers::replicate::ReplicateClient;
use mvgen::providers::{
    ImageRequest, Media, Output, ProviderConfig, ProviderError, SceneBrief, SceneRequest, VideoRequest,
};
use support::fake_upstream::{TEST_GEMINI_KEY, TEST_REPLICATE_TOKEN};

/// Outer bound for calls expected to time out: far above the configured timeouts, far below
/// anything that would hang CI.
const BOUND: Duration = Duration::from_secs(10);

fn gemini(config: &ProviderConfig) -> GeminiClient {
    GeminiClient::new(config, mvgen::providers::client::build_client(config).unwrap()).unwrap()
}

fn veo(config: &ProviderConfig) -> GeminiVideoClient {
    GeminiVideoClient::new(config, mvgen::providers::client::build_client(config).unwrap()).unwrap()
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

/// A provider call with its output read whole, as the generation would stream it into storage
/// (the fakes' files are small): a fault mid-body fails here like one before it.
async fn made(call: impl Future<Output = Result<Output, ProviderError>>) -> Result<Media, ProviderError> {
    call.await?.read_all().await
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
    ReplicateClient::new(config, mvgen::providers::client::build_client(config).unwrap()).unwrap()
}

fn scene_request(n: u32) -> SceneRequest {
    SceneRequest {
        model: "gemini-2.5-flash".into(),
        prompt: format!("Write {n} scenes about a night drive."),
        number_of_scenes: n,
    }
}

/// What `scene_request`'s prompt stands for, as the mock writer reads it.
fn scene_brief() -> SceneBrief {
    SceneBrief {
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
