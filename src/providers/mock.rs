//! Offline stand-ins for every provider, used whenever a key is unset (or `MV_PROVIDER=mock`):
//! scenes built from the values their prompt was rendered from, a PNG drawn in process, an MP4
//! embedded in the binary and repeated to the length asked (`mock_clip`).
//!
//! Everything here is deterministic (same input, same bytes) and needs no network, so the whole
//! API can be developed and tested without accounts. Every result says it is a mock: `is_mock()` is
//! true, scene texts start with [`MOCK_LABEL`] and `backend()` is `"mock"` (`"gemini-mock"` for
//! the stand-in of Veo on the Gemini API).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    BoxFuture, ImageMaker, ImageRequest, Output, ProviderError, RunContext, Scene, SceneBrief, SceneRequest,
    SceneWriter, VideoMaker, VideoRequest, upstream_run,
};

const BACKEND: &str = "mock";

/// The start of every mock scene text.
pub const MOCK_LABEL: &str = "[mock] ";

/// The longer side of a mock image, in pixels: enough to see, small enough to stay instant.
pub const MOCK_IMAGE_LONG_SIDE: u32 = 384;

pub use super::mock_clip::MOCK_CLIP;

/// Writes scenes from the values their prompt was rendered from (`backend() == "mock"`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MockScenes;

/// Draws a placeholder figure whose colours depend on the prompt and seed.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockImages;

/// Returns the embedded clip, made as long as the request's `duration` (`mock_clip`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MockVideos;

/// Stands in for Veo on the Gemini API (`backend: "gemini"`) with the same clip, labelled
/// `backend() == "gemini-mock"` so an answer says which backend was asked for and that it is a mock.
#[derive(Debug, Clone, Copy, Default)]
pub struct MockGeminiVideos;

impl SceneWriter for MockScenes {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn is_mock(&self) -> bool {
        true
    }

    /// Without a brief the scenes read generically ("the main character", "the song").
    fn write_scenes<'a>(&'a self, request: &'a SceneRequest) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>> {
        Box::pin(async move { Ok(mock_scenes(request, &SceneBrief::default())) })
    }

    fn write_scenes_from<'a>(
        &'a self,
        request: &'a SceneRequest,
        brief: &'a SceneBrief,
    ) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>> {
        Box::pin(async move { Ok(mock_scenes(request, brief)) })
    }
}

impl ImageMaker for MockImages {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn is_mock(&self) -> bool {
        true
    }

    fn make_image<'a>(
        &'a self,
        request: &'a ImageRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        // Always PNG, even when jpg or webp is asked for: the png crate is already here and the
        // content type says honestly what the bytes are, so callers store it under the right
        // extension. Pulling in JPEG/WebP encoders for a placeholder isn't worth it.
        Box::pin(async move {
            let (width, height) = mock_dimensions(&request.aspect_ratio);
            // The run id carries the seed, so a resumed run draws exactly the picture the first
            // attempt would have.
            let id = mock_run(ctx, BACKEND, || {
                // Like a real model, an unseeded call draws a new picture each time.
                let seed =
                    request.seed.unwrap_or_else(|| UNSEEDED_CALLS.fetch_add(1, Ordering::Relaxed) as i64 + (1 << 40));
                format!("{IMAGE_RUN}{seed}")
            })
            .await?;
            let seed = id.strip_prefix(IMAGE_RUN).and_then(|s| s.parse::<i64>().ok());
            let seed = seed.ok_or_else(|| upstream_run::gone(BACKEND, &id))?;
            let bytes = mock_png(&request.prompt, Some(seed), width, height).map_err(|e| ProviderError::Malformed {
                provider: BACKEND,
                message: format!("cannot draw the mock image: {e}"),
            })?;
            Ok(Output::from_bytes(BACKEND, "image/png", bytes))
        })
    }

    fn cancel_run<'a>(&'a self, run: &'a super::UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        record_cancel(run)
    }
}

/// The prefixes of mock run ids: `mock-image-{seed}`, `mock-video-{hash}`.
const IMAGE_RUN: &str = "mock-image-";
const VIDEO_RUN: &str = "mock-video-";

/// A mock run through `ctx` as a real provider runs one: resume the id saved for `provider`, or
/// make one with `new_id` and save it; then the progress a finished prediction reports. Returns
/// the id in use.
async fn mock_run(
    ctx: RunContext<'_>,
    provider: &'static str,
    new_id: impl FnOnce() -> String,
) -> Result<String, ProviderError> {
    // Nothing runs anywhere, so there is nothing to cancel.
    let start = async { Ok(new_id()) };
    let (id, _) = upstream_run::resume_or_start(ctx, provider, start, String::as_str, |_| async {}).await?;
    ctx.progress(upstream_run::WAITING, Some("processing"));
    ctx.progress(upstream_run::DOWNLOADING, Some("succeeded"));
    Ok(id)
}

/// The embedded clip, as a mock run on `provider` (`mock` or `gemini-mock`) through `ctx`.
async fn mock_video(
    request: &VideoRequest,
    ctx: RunContext<'_>,
    provider: &'static str,
) -> Result<Output, ProviderError> {
    let id = mock_run(ctx, provider, || format!("{VIDEO_RUN}{:016x}", fnv1a(request.prompt.as_bytes(), request.seed)))
        .await?;
    if !id.starts_with(VIDEO_RUN) {
        return Err(upstream_run::gone(provider, &id));
    }
    Ok(Output::from_bytes(provider, "video/mp4", super::mock_clip::mock_clip(request.duration)))
}

/// Every saved run a mock was asked to cancel, oldest first (see [`cancelled_runs`]).
static CANCELLED: Mutex<Vec<super::UpstreamRun>> = Mutex::new(Vec::new());

/// The saved mock runs cancelled so far in this process. Nothing runs anywhere, so a cancel is
/// only recorded (and logged), for tests and for `mvgen` run offline to show what a real provider
/// would have been asked.
pub fn cancelled_runs() -> Vec<super::UpstreamRun> {
    CANCELLED.lock().map(|runs| runs.clone()).unwrap_or_default()
}

fn record_cancel(run: &super::UpstreamRun) -> BoxFuture<'_, Result<(), ProviderError>> {
    tracing::info!(provider = %run.provider, run = %run.id, "mock run cancelled");
    if let Ok(mut runs) = CANCELLED.lock() {
        runs.push(run.clone());
    }
    Box::pin(async { Ok(()) })
}

/// Counts unseeded mock images, so each one differs (seeds from the API never reach 2^40).
static UNSEEDED_CALLS: AtomicU64 = AtomicU64::new(0);

impl VideoMaker for MockVideos {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn is_mock(&self) -> bool {
        true
    }

    fn make_video<'a>(
        &'a self,
        request: &'a VideoRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(mock_video(request, ctx, BACKEND))
    }

    fn cancel_run<'a>(&'a self, run: &'a super::UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        record_cancel(run)
    }
}

impl VideoMaker for MockGeminiVideos {
    fn backend(&self) -> &'static str {
        "gemini-mock"
    }

    fn is_mock(&self) -> bool {
        true
    }

    fn make_video<'a>(
        &'a self,
        request: &'a VideoRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(mock_video(request, ctx, self.backend()))
    }

    fn cancel_run<'a>(&'a self, run: &'a super::UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        record_cancel(run)
    }
}

/// Exactly `request.number_of_scenes` scenes that read like a small story: an opening, build-up,
/// a climax and an ending, each with its own shot type.
pub fn mock_scenes(request: &SceneRequest, brief: &SceneBrief) -> Vec<Scene> {
    let n = request.number_of_scenes as usize;
    (0..n).map(|i| mock_scene(brief, i, n)).collect()
}

const SHOTS: &[&str] = &[
    "wide establishing shot",
    "medium shot",
    "close-up",
    "tracking shot",
    "low-angle shot",
    "over-the-shoulder shot",
    "aerial shot",
    "slow push-in",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beat {
    Opening,
    BuildUp,
    Climax,
    Ending,
}

/// Where scene `i` of `n` sits in the story. The climax comes about three quarters in, as it does
/// in most songs' structure (last chorus before the outro).
fn beat(i: usize, n: usize) -> Beat {
    let climax = if n >= 3 { (n * 3 / 4).clamp(1, n - 2) } else { usize::MAX };
    match i {
        0 => Beat::Opening,
        _ if i + 1 == n => Beat::Ending,
        _ if i == climax => Beat::Climax,
        _ => Beat::BuildUp,
    }
}

fn mock_scene(brief: &SceneBrief, i: usize, n: usize) -> Scene {
    let or = |value: &str, fallback: &str| {
        let value = value.trim();
        if value.is_empty() { fallback.to_owned() } else { value.to_owned() }
    };
    let idea = or(&brief.idea, "the song");
    let character = or(&brief.character_description, "the main character");
    let camera = or(&brief.camera_angle, "eye-level camera");
    let beat = beat(i, n);
    let (label, action, negative) = match beat {
        Beat::Opening => ("opening", format!("introduces {character} in the world of {idea}"), "cluttered background"),
        Beat::BuildUp => ("build-up", format!("follows {character} as {idea} gathers pace"), "static pose"),
        Beat::Climax => ("climax", format!("catches {character} at the peak of {idea}"), "calm or muted mood"),
        Beat::Ending => ("ending", format!("leaves {character} as {idea} comes to rest"), "abrupt cut"),
    };
    let shot = SHOTS[i % SHOTS.len()];

    let mut description =
        format!("{MOCK_LABEL}Scene {} of {n} ({label}), {shot}, {camera}: the scene {action}.", i + 1);
    if !brief.character_characteristics.trim().is_empty() {
        description.push_str(&format!(" Character: {}.", brief.character_characteristics.trim()));
    }
    let style: Vec<&str> =
        [brief.video_type.trim(), brief.video_characteristics.trim()].into_iter().filter(|s| !s.is_empty()).collect();
    if !style.is_empty() {
        description.push_str(&format!(" Style: {}.", style.join(", ")));
    }
    let negative_description = format!("{MOCK_LABEL}blurry, distorted anatomy, text, watermark, {negative}");
    Scene { description, negative_description }
}

/// Width and height for an aspect ratio like `16:9`, with the longer side [`MOCK_IMAGE_LONG_SIDE`];
/// anything unparsable is drawn square.
pub fn mock_dimensions(aspect_ratio: &str) -> (u32, u32) {
    let long = MOCK_IMAGE_LONG_SIDE;
    let parsed = aspect_ratio
        .split_once(':')
        .and_then(|(w, h)| Some((w.trim().parse::<u32>().ok()?, h.trim().parse::<u32>().ok()?)));
    let Some((w, h)) = parsed.filter(|&(w, h)| w > 0 && h > 0) else { return (long, long) };
    let short = |small: u32, big: u32| {
        ((u64::from(long) * u64::from(small) + u64::from(big) / 2) / u64::from(big)).max(1) as u32
    };
    if w >= h { (long, short(h, w)) } else { (short(w, h), long) }
}

/// A PNG of a figure silhouette on a vertical gradient. Colours and the figure's position come from
/// a hash of `prompt` and `seed`, so different prompts look different and equal ones are identical.
pub fn mock_png(prompt: &str, seed: Option<i64>, width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let hash = fnv1a(prompt.as_bytes(), seed);
    let pixels = draw_figure(hash, width, height);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// FNV-1a, chosen over `DefaultHasher` because its output is fixed forever, so mock images stay
/// byte-identical across Rust releases.
fn fnv1a(bytes: &[u8], seed: Option<i64>) -> u64 {
    let seed_bytes = seed.map(i64::to_le_bytes);
    let tail: &[u8] = match &seed_bytes {
        Some(b) => b,
        None => b"no-seed",
    };
    bytes
        .iter()
        .chain([0u8].iter())
        .chain(tail)
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// RGB rows: gradient background, a round head and a widening body.
fn draw_figure(hash: u64, width: u32, height: u32) -> Vec<u8> {
    let byte = |k: u32| ((hash >> (8 * k)) & 0xff) as u8;
    // Light background colours (upper half of the range) so the dark figure always stands out.
    let top = [128 + byte(0) / 2, 128 + byte(1) / 2, 128 + byte(2) / 2];
    let bottom = [64 + byte(3) / 2, 64 + byte(4) / 2, 64 + byte(5) / 2];
    let figure = [byte(6) / 5, byte(7) / 5, byte(0) / 5];

    let (w, h) = (width as f32, height as f32);
    let scale = w.min(h);
    let cx = w * (0.35 + 0.3 * f32::from(byte(5)) / 255.0);
    let head_y = h * 0.32;
    let head_r = scale * 0.11;
    let (body_top, body_bottom) = (head_y + head_r * 1.2, h * 0.95);

    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        let t = y as f32 / (h - 1.0).max(1.0);
        let background = [0, 1, 2].map(|c| (f32::from(top[c]) * (1.0 - t) + f32::from(bottom[c]) * t) as u8);
        let fy = y as f32 + 0.5;
        for x in 0..width {
            let fx = x as f32 + 0.5;
            let in_head = (fx - cx).powi(2) + (fy - head_y).powi(2) <= head_r * head_r;
            let in_body = fy >= body_top && fy <= body_bottom && {
                let along = (fy - body_top) / (body_bottom - body_top);
                (fx - cx).abs() <= head_r * (0.9 + 1.3 * along)
            };
            pixels.extend_from_slice(if in_head || in_body { &figure } else { &background });
        }
    }
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_run_opening_to_ending() {
        let beats: Vec<Beat> = (0..6).map(|i| beat(i, 6)).collect();
        assert_eq!(beats, [Beat::Opening, Beat::BuildUp, Beat::BuildUp, Beat::BuildUp, Beat::Climax, Beat::Ending]);
        assert_eq!((0..3).map(|i| beat(i, 3)).collect::<Vec<_>>(), [Beat::Opening, Beat::Climax, Beat::Ending]);
        assert_eq!((0..2).map(|i| beat(i, 2)).collect::<Vec<_>>(), [Beat::Opening, Beat::Ending]);
        assert_eq!(beat(0, 1), Beat::Opening);
    }

    #[test]
    fn scenes_use_every_structured_field() {
        let brief = SceneBrief {
            idea: "a night drive".into(),
            character_description: "a woman in a red coat".into(),
            character_characteristics: "calm, determined".into(),
            video_type: "cinematic".into(),
            video_characteristics: "neon, rain".into(),
            camera_angle: "low angle".into(),
        };
        let scenes = mock_scenes(&SceneRequest { number_of_scenes: 2, ..Default::default() }, &brief);
        let first = &scenes[0].description;
        for needle in [
            "[mock] ",
            "Scene 1 of 2",
            "opening",
            "a night drive",
            "a woman in a red coat",
            "calm, determined",
            "cinematic, neon, rain",
            "low angle",
        ] {
            assert!(first.contains(needle), "{first:?} lacks {needle:?}");
        }
        assert!(scenes[1].description.contains("ending"));
        assert_ne!(scenes[0].description, scenes[1].description);
    }

    #[test]
    fn empty_fields_still_read_well() {
        let scenes = mock_scenes(&SceneRequest { number_of_scenes: 1, ..Default::default() }, &SceneBrief::default());
        assert!(scenes[0].description.contains("the main character"), "{}", scenes[0].description);
        assert!(!scenes[0].description.contains("Style:"));
    }

    #[test]
    fn dimensions_follow_the_aspect_ratio() {
        assert_eq!(mock_dimensions("16:9"), (384, 216));
        assert_eq!(mock_dimensions("9:16"), (216, 384));
        assert_eq!(mock_dimensions("4:3"), (384, 288));
        assert_eq!(mock_dimensions("3:4"), (288, 384));
        assert_eq!(mock_dimensions("1:1"), (384, 384));
        assert_eq!(mock_dimensions("wide"), (384, 384));
        assert_eq!(mock_dimensions("0:5"), (384, 384));
        assert_eq!(mock_dimensions("1000000:1"), (384, 1));
    }

    #[test]
    fn hash_depends_on_prompt_and_seed() {
        assert_eq!(fnv1a(b"a", None), fnv1a(b"a", None));
        assert_ne!(fnv1a(b"a", None), fnv1a(b"b", None));
        assert_ne!(fnv1a(b"a", Some(1)), fnv1a(b"a", Some(2)));
        assert_ne!(fnv1a(b"a", None), fnv1a(b"a", Some(0)));
    }

    #[test]
    fn figure_is_darker_than_its_background() {
        let (w, h) = (40, 40);
        let pixels = draw_figure(fnv1a(b"x", None), w, h);
        let at = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            u32::from(pixels[i]) + u32::from(pixels[i + 1]) + u32::from(pixels[i + 2])
        };
        assert_eq!(pixels.len(), (w * h * 3) as usize);
        let middle_of_body =
            at((w as f32 * (0.35 + 0.3 * ((fnv1a(b"x", None) >> 40) & 0xff) as f32 / 255.0)) as u32, h * 3 / 4);
        assert!(middle_of_body < at(0, 0), "figure {middle_of_body} vs background {}", at(0, 0));
    }
}
