//! Which providers `Providers::from_config` picks (real clients where a key is set, the offline mocks
//! elsewhere), and what the offline mocks produce.

use crate::support;

use mvgen::providers::mock::{MOCK_LABEL, MockGeminiVideos, MockImages, MockScenes, MockVideos};
use mvgen::providers::{ImageMaker, ProviderConfig, Providers, RunContext, SceneWriter, VideoMaker};
use support::fake_upstream::{FakeGemini, FakeReplicate, Route, VeoRoute, test_provider_config};

use super::*;

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
        made(providers.videos.make_video(&video_request(), RunContext::detached())).await.unwrap().content_type,
        "video/mp4"
    );
    assert_eq!(
        made(providers.gemini_videos.make_video(&veo_request(), RunContext::detached())).await.unwrap().content_type,
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

#[tokio::test]
async fn mock_scenes_are_exact_labelled_varied_and_deterministic() {
    let request = scene_request(6);

    let first = MockScenes.write_scenes_from(&request, &scene_brief()).await.unwrap();
    let again = MockScenes.write_scenes_from(&request, &scene_brief()).await.unwrap();

    assert_eq!(first.len(), 6);
    assert_eq!(first, again);
    assert!(
        first.iter().all(|s| s.description.starts_with(MOCK_LABEL) && s.negative_description.starts_with(MOCK_LABEL))
    );
    let distinct: std::collections::HashSet<_> = first.iter().map(|s| &s.description).collect();
    assert_eq!(distinct.len(), 6);
    assert!(first[0].description.contains("a night drive"));
    assert_eq!(MockScenes.write_scenes_from(&scene_request(1), &scene_brief()).await.unwrap().len(), 1);
    assert!(MockScenes.is_mock());
    assert_eq!(MockScenes.backend(), "mock");
}

#[tokio::test]
async fn mock_images_are_real_pngs_sized_by_aspect_ratio_and_differ_by_prompt() {
    let mut request = image_request();
    request.aspect_ratio = "16:9".into();
    request.output_format = "jpg".into();
    request.seed = Some(7);

    let image = made(MockImages.make_image(&request, RunContext::detached())).await.unwrap();
    let same = made(MockImages.make_image(&request, RunContext::detached())).await.unwrap();
    request.prompt = "a man in a blue hat".into();
    let other = made(MockImages.make_image(&request, RunContext::detached())).await.unwrap();
    request.seed = None;
    let unseeded = [
        made(MockImages.make_image(&request, RunContext::detached())).await.unwrap(),
        made(MockImages.make_image(&request, RunContext::detached())).await.unwrap(),
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
    let video = made(MockVideos.make_video(&video_request(), RunContext::detached())).await.unwrap();

    assert_eq!(video.content_type, "video/mp4");
    assert_eq!(&video.bytes[4..8], b"ftyp");
    assert!(video.bytes.len() < 100 * 1024);
}

#[tokio::test]
async fn mock_gemini_video_is_labelled_as_both() {
    let video = made(MockGeminiVideos.make_video(&veo_request(), RunContext::detached())).await.unwrap();

    // The same clip, as long as each request asks (`mock_clip`).
    let same_length = VideoRequest { duration: veo_request().duration, ..video_request() };
    assert_eq!(video, made(MockVideos.make_video(&same_length, RunContext::detached())).await.unwrap());
    let shorter = made(MockVideos.make_video(&video_request(), RunContext::detached())).await.unwrap();
    assert_ne!(video, shorter, "a 4 s clip is not the 8 s one");
    assert_eq!((MockGeminiVideos.backend(), MockGeminiVideos.is_mock()), ("gemini-mock", true));
}
