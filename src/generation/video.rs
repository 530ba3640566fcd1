//! A scene video: one scene rendered by the video model, with the flavor's rules appended to the
//! prompt and the picked character reference attached, stored with a record for `info`.

use std::time::Instant;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::backend::VideoBackend;
use super::inputs::{self, choice, in_range, optional, required, seed};
use super::{Generation, Kind, Plan, Run};
use crate::error::ApiError;
use crate::limits::MAX_REFERENCE_BYTES;
use crate::model::template::Template;
use crate::model::{Flavor, VIDEO_DURATION};
use crate::prompts::{self, Consumed, VideoInputs};
use crate::providers::{BoxFuture, Media, VideoRequest};
use crate::state::AppState;
use crate::storage::{self, Collection, StorageError};

/// The scene to render. Optional values default to the flavor's. Strings are stripped of
/// surrounding whitespace (a request's `video_rules_template` too); an optional string that is null,
/// empty or blank is not given (an empty `negative_prompt` is then not sent upstream).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateVideoBody {
    /// The scene description (required, not blank).
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub prompt: String,
    #[schema(max_length = 20000)]
    pub negative_prompt: Option<String>,
    /// `16:9`, `9:16`, `1:1`.
    #[schema(max_length = 20000)]
    pub aspect_ratio: Option<String>,
    /// Seconds, 1..=60.
    #[schema(minimum = 1, maximum = 60)]
    pub duration: Option<i64>,
    pub generate_audio: Option<bool>,
    /// 0..=4294967295.
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub seed: Option<i64>,
    /// An id from `generate_character_reference`; its image guides the video.
    #[schema(max_length = 20000)]
    pub character_reference_id: Option<String>,
    /// Replaces the flavor's video rules for this request; may use `{aspect_ratio}`.
    #[schema(max_length = 20000)]
    pub video_rules_template: Option<String>,
    #[schema(max_length = 20000)]
    pub config_flavor: Option<String>,
    /// Where the video is rendered: `replicate` (the default, also for null, `""` or blank) or
    /// `gemini` (Veo through the Gemini API, with the flavor's Gemini video model). Anything else
    /// is a 400.
    #[schema(nullable, pattern = r"^\s*(replicate|gemini)?\s*$", example = "gemini")]
    pub backend: Option<String>,
    /// A project UUID; must come with `sequence`. Echoed in `metadata` and kept with the video.
    pub project_id: Option<String>,
    /// The scene's place in the project, 1 or more; must come with `project_id`.
    #[schema(minimum = 1, maximum = 4294967295_i64)]
    pub sequence: Option<i64>,
    /// Deprecated: a PNG, JPEG or WebP image in base64 (or a `data:image/...;base64,` URI), used as
    /// the reference when no `character_reference_id` is given.
    pub reference_image_base64: Option<String>,
}

// `reference_image_base64` is bounded by its decoded size instead (`inputs::reference_image`).
body!(
    GenerateVideoBody: prompt,
    negative_prompt,
    aspect_ratio,
    character_reference_id,
    video_rules_template,
    config_flavor,
    backend,
    project_id,
);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GenerateVideoResponse {
    pub video_id: String,
    /// Where to fetch it: `/api/mv/get_video/{id}` (supports Range).
    pub video_url: String,
    /// Set when the character reference could not be used; the video was made without it.
    pub character_reference_warning: Option<String>,
    pub metadata: VideoMetadata,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoMetadata {
    /// The request's prompt (stripped), without the rules.
    pub prompt: String,
    /// The full prompt sent to the video model: the prompt, a blank line, the rendered rules.
    pub full_prompt: String,
    pub video_id: String,
    #[schema(value_type = Object)]
    pub parameters_used: serde_json::Value,
    pub config_flavor: super::FlavorReport,
    /// The provider that rendered: `replicate`, `gemini`, or `mock` / `gemini-mock` (then
    /// `is_mock` is true).
    pub backend_used: String,
    /// The model the backend was asked for (Replicate `owner/name`, or a Gemini Veo model).
    pub model_used: String,
    pub is_mock: bool,
    pub processing_time_seconds: f64,
    /// When the video was made, RFC 3339 in UTC.
    pub generation_timestamp: String,
    /// The request's `character_reference_id`, or null.
    pub character_reference_id: Option<String>,
    /// Whether a reference image went to the video model (from the id or from
    /// `reference_image_base64`).
    pub has_reference_image: bool,
    pub project_id: Option<String>,
    pub sequence: Option<u32>,
}

/// What is kept with a stored video, for `get_video/{id}/info` (and a later job store).
#[derive(Debug, Serialize, Deserialize)]
pub struct VideoRecord {
    pub created: String,
    pub backend: String,
    pub model: String,
    pub is_mock: bool,
    pub config_flavor: String,
    /// The content hash of that flavor as it was when the video was made.
    #[serde(default)]
    pub config_flavor_hash: String,
    pub project_id: Option<String>,
    pub sequence: Option<u32>,
    pub character_reference_id: Option<String>,
    pub has_reference_image: bool,
    /// A final cut's length, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// A final cut's clips, as cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_from: Option<Vec<CutClip>>,
}

/// A clip as it went into a cut.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CutClip {
    pub video_id: String,
    pub in_seconds: f64,
    pub out_seconds: f64,
    /// Where it starts in the cut, in seconds.
    pub starts_at: f64,
}

/// A valid video request: what the prompt is rendered from, and what the plan keeps as it is.
#[derive(Debug, Clone, Default)]
pub struct Video {
    pub inputs: VideoInputs,
    pub kept: VideoKept,
}

/// What the video model is sent, and what the answer reports of it. Reference images are kept as
/// ids and read when the plan runs: a stored character reference by the caller's id, an uploaded
/// one by the id it was stored under at submit ([`Generation::store_uploads`]).
pub type VideoPlan = Plan<VideoRequest, VideoKept>;

/// What a video run needs besides the request (which is sent without its reference image: the
/// run adds it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VideoKept {
    pub backend: VideoBackend,
    /// The request's prompt, without the rules.
    pub prompt: String,
    pub character_reference_id: Option<String>,
    /// The request's `reference_image_base64`, stored at submit as a character reference file
    /// (`get_character_reference/{id}` serves it): a stored plan, and so the jobs database and
    /// every answer that shows the plan, carries this id, never the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_reference_id: Option<String>,
    /// The upload inline, as builds up to 3db7cdb stored it. Still read, so a job such a build
    /// queued runs with its image; never written. (A plan this build stores, run by such a build,
    /// has no inline image: that build ignores `uploaded_reference_id` and renders without it,
    /// reporting `has_reference_image: false`.)
    #[serde(default, skip_serializing)]
    pub uploaded_reference: Option<UploadedImage>,
    /// The decoded upload, from `validate` until `store_uploads` stores it (or a run that is not a
    /// job uses it as it is). Never serialised.
    #[serde(skip)]
    pub upload: Option<Media>,
    pub project_id: Option<String>,
    pub sequence: Option<u32>,
}

/// An uploaded image inline in a plan (base64, as it arrived), as builds up to 3db7cdb stored it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadedImage {
    pub content_type: String,
    pub base64: String,
}

impl Generation for Video {
    const KIND: Kind = Kind::Video;
    type Input = GenerateVideoBody;
    type Request = VideoRequest;
    type Kept = VideoKept;
    type Parameters = serde_json::Value;
    type Answer = GenerateVideoResponse;

    fn validate(body: GenerateVideoBody) -> Result<Self, ApiError> {
        let prompt = required("prompt", body.prompt)?;
        let backend = VideoBackend::parse(body.backend.as_deref())?;
        let video_rules_template = optional(body.video_rules_template)
            .as_deref()
            .map(|src| Template::parse(src, prompts::VIDEO_RULES_VARS, &[]))
            .transpose()
            .map_err(|e| ApiError::invalid("video_rules_template", e.to_string()))?;
        let inputs = VideoInputs {
            prompt: prompt.clone(),
            negative_prompt: optional(body.negative_prompt),
            aspect_ratio: choice("aspect_ratio", body.aspect_ratio)?,
            duration: in_range("duration", body.duration, VIDEO_DURATION)?,
            generate_audio: body.generate_audio,
            seed: seed(body.seed)?,
            video_rules_template,
        };
        let (project_id, sequence) = inputs::project_and_sequence(body.project_id, body.sequence)?;
        let upload = inputs::reference_image(body.reference_image_base64)?;
        let character_reference_id = reference_id(optional(body.character_reference_id))?;
        let kept =
            VideoKept { backend, prompt, character_reference_id, upload, project_id, sequence, ..VideoKept::default() };
        Ok(Video { inputs, kept })
    }

    fn plan<'f>(self, flavor: &'f Flavor) -> (VideoPlan, Vec<Consumed<'f>>) {
        let mut rendered = prompts::video_plan(flavor, &self.inputs);
        self.kept.backend.retarget(flavor, &mut rendered);
        (Plan { request: rendered.request, kept: self.kept }, rendered.consumed)
    }

    fn parameters(plan: &VideoPlan) -> serde_json::Value {
        prompts::request_parameters(&plan.request)
    }

    fn prompt(request: &VideoRequest) -> &str {
        &request.prompt
    }

    fn project(plan: &VideoPlan) -> (Option<String>, Option<u32>) {
        (plan.kept.project_id.clone(), plan.kept.sequence)
    }

    /// Stored even when a `character_reference_id` is given too: whether that id names a stored
    /// image is known only when the plan runs, and the upload stands in when it does not.
    fn store_uploads<'a>(plan: &'a mut VideoPlan, state: &'a AppState) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            if let Some(image) = plan.kept.upload.take() {
                let id = state.storage.put(Collection::CharacterReference, &image.content_type, &image.bytes).await?;
                plan.kept.uploaded_reference_id = Some(id);
            }
            Ok(())
        })
    }

    fn run<'a>(plan: &'a VideoPlan, run: Run<'a>) -> BoxFuture<'a, Result<GenerateVideoResponse, ApiError>> {
        Box::pin(async move {
            let started = Instant::now();
            let (reference_image, character_reference_warning) = reference(run, plan).await?;
            let has_reference_image = reference_image.is_some();
            let request = VideoRequest { reference_image, ..plan.request.clone() };
            let maker = plan.kept.backend.maker(&run.state.providers);
            let video_id =
                run.store::<Self>(maker.backend(), Collection::Video, maker.make_video(&request, run.ctx)).await?.id;
            let generation_timestamp = inputs::timestamp();
            let record = VideoRecord {
                created: generation_timestamp.clone(),
                backend: maker.backend().to_string(),
                model: request.model.to_string(),
                is_mock: maker.is_mock(),
                config_flavor: run.flavor.used.clone(),
                config_flavor_hash: run.flavor.hash.clone(),
                project_id: plan.kept.project_id.clone(),
                sequence: plan.kept.sequence,
                character_reference_id: plan.kept.character_reference_id.clone(),
                has_reference_image,
                duration_seconds: None,
                cut_from: None,
            };
            // The video is stored and paid for: a record that fails to write costs only `info` its
            // details, so it is logged rather than failing the request.
            let written = match serde_json::to_vec(&record) {
                Ok(bytes) => {
                    run.state.storage.put_record(Collection::Video, &video_id, &bytes).await.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = written {
                tracing::warn!(video_id = %video_id, "the video's record was not kept: {e}");
            }
            Ok(GenerateVideoResponse {
                video_url: format!("/api/mv/get_video/{video_id}"),
                video_id: video_id.clone(),
                character_reference_warning,
                metadata: VideoMetadata {
                    prompt: plan.kept.prompt.clone(),
                    full_prompt: request.prompt,
                    video_id,
                    parameters_used: Self::parameters(plan),
                    config_flavor: run.flavor.clone(),
                    backend_used: record.backend,
                    model_used: request.model.into_owned(),
                    is_mock: record.is_mock,
                    processing_time_seconds: started.elapsed().as_secs_f64(),
                    generation_timestamp,
                    character_reference_id: plan.kept.character_reference_id.clone(),
                    has_reference_image,
                    project_id: plan.kept.project_id.clone(),
                    sequence: plan.kept.sequence,
                },
            })
        })
    }
}

/// The reference image the video gets, and a warning when the one asked for is not used. An id
/// that names a stored image wins; the uploaded image stands in otherwise, and then the warning
/// must not say the video was made without a reference.
async fn reference(run: Run<'_>, plan: &VideoPlan) -> Result<(Option<Media>, Option<String>), ApiError> {
    let (stored, warning) = load_reference(run, plan.kept.character_reference_id.as_deref()).await?;
    if stored.is_some() {
        return Ok((stored, warning));
    }
    let (uploaded, upload_warning) = uploaded(run, &plan.kept).await?;
    Ok(match uploaded {
        Some(uploaded) => (
            Some(uploaded),
            plan.kept.character_reference_id.as_ref().map(|id| {
                format!("character reference {id} was not found; the uploaded reference_image_base64 was used instead")
            }),
        ),
        None => (None, warning.or(upload_warning)),
    })
}

/// The request's uploaded image: from the store by the id it was kept under at submit, inline in a
/// plan an older build stored, or as decoded when the plan was never stored (a run that is not a
/// job). An upload no longer in the store (removed by hand) only costs the video its reference.
async fn uploaded(run: Run<'_>, kept: &VideoKept) -> Result<(Option<Media>, Option<String>), ApiError> {
    if let Some(id) = &kept.uploaded_reference_id {
        let not_ours = || ApiError::internal(format!("the plan's uploaded reference id {id:?} is not an id"));
        return Ok(match stored_image(run, "reference_image_base64", id, not_ours).await? {
            Some(image) => (Some(image), None),
            None => (
                None,
                Some(format!(
                    "the uploaded reference image (stored as {id}) is no longer stored; the video was generated without it"
                )),
            ),
        });
    }
    if let Some(image) = &kept.uploaded_reference {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&image.base64)
            .map_err(|e| ApiError::internal(format!("the plan's reference image is not base64: {e}")))?;
        return Ok((Some(Media { bytes, content_type: image.content_type.clone() }), None));
    }
    Ok((kept.upload.clone(), None))
}

/// A `character_reference_id` that cannot be an id is refused when the request is validated, so a
/// job is never queued (nor a sync request's job stored) only to fail when it runs. An id that is
/// well formed but unknown only costs the video its reference, when it runs.
fn reference_id(id: Option<String>) -> Result<Option<String>, ApiError> {
    match id {
        Some(id) if storage::parse_id(&id).is_err() => Err(bad_reference_id()),
        id => Ok(id),
    }
}

fn bad_reference_id() -> ApiError {
    ApiError::invalid("character_reference_id", "must be an id returned by generate_character_reference")
}

/// The stored character reference, or a warning saying why there is none. A malformed id is the
/// caller's mistake (400); an unknown one only costs the video its reference.
async fn load_reference(run: Run<'_>, id: Option<&str>) -> Result<(Option<Media>, Option<String>), ApiError> {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return Ok((None, None));
    };
    // A malformed id here is a plan stored before ids were checked at submit.
    Ok(match stored_image(run, "character_reference_id", id, bad_reference_id).await? {
        Some(image) => (Some(image), None),
        None => (None, Some(format!("character reference {id} was not found; the video was generated without it"))),
    })
}

/// The stored image `id` (a character reference file), read whole, or `None` when there is none.
/// `field` is the request field an oversized image is blamed on; `bad_id` the error for an id that
/// cannot be one.
async fn stored_image(
    run: Run<'_>,
    field: &'static str,
    id: &str,
    bad_id: impl FnOnce() -> ApiError,
) -> Result<Option<Media>, ApiError> {
    match run.state.storage.open(Collection::CharacterReference, id).await {
        Ok(opened) => {
            let too_big = || {
                ApiError::invalid(
                    field,
                    format!("the image is larger than the {} MiB a video request may carry", MAX_REFERENCE_BYTES >> 20),
                )
            };
            if opened.len > MAX_REFERENCE_BYTES {
                return Err(too_big());
            }
            let content_type = opened.content_type.to_string();
            let read = storage::read_capped(opened.file, opened.len, MAX_REFERENCE_BYTES).await;
            let bytes = read.map_err(StorageError::from)?.ok_or_else(too_big)?;
            Ok(Some(Media { bytes, content_type }))
        }
        Err(StorageError::NotFound(_)) => Ok(None),
        Err(StorageError::BadId(_)) => Err(bad_id()),
        Err(e) => Err(e.into()),
    }
}
