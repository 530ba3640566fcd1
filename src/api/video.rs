//! `POST /api/mv/generate_video`: one scene rendered by the video model, with the chosen flavor's
//! rules appended to the prompt and the picked character reference attached.

use std::time::Instant;

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ValidJson;
use super::{AppState, FlavorReport, choice, choose_flavor, debug_log, in_range, required, seed, with_flavor};
use crate::compiler::template::Template;
use crate::compiler::{Choice, VIDEO_DURATION};
use crate::prompts::{self, VideoInputs};
use crate::providers::{Media, VideoRequest};
use crate::storage::{Kind, StorageError};
use crate::telemetry;

/// The scene to render. Optional values default to the flavor's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateVideoBody {
    /// The scene description (required, not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub prompt: String,
    pub negative_prompt: Option<String>,
    /// `16:9`, `9:16`, `1:1`.
    pub aspect_ratio: Option<String>,
    /// Seconds, 1..=60.
    #[schema(minimum = 1, maximum = 60)]
    pub duration: Option<i64>,
    pub generate_audio: Option<bool>,
    /// 0..=4294967295.
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub seed: Option<i64>,
    /// An id from `generate_character_reference`; its image guides the video.
    pub character_reference_id: Option<String>,
    /// Replaces the flavor's video rules for this request; may use `{aspect_ratio}`.
    pub video_rules_template: Option<String>,
    pub config_flavor: Option<String>,
}

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
    /// The full prompt sent to the video model.
    pub prompt: String,
    #[schema(value_type = Object)]
    pub parameters_used: serde_json::Value,
    pub config_flavor: FlavorReport,
    pub backend_used: String,
    pub model_used: String,
    pub is_mock: bool,
    pub processing_time_seconds: f64,
}

#[utoipa::path(
    post,
    path = "/api/mv/generate_video",
    tag = "generation",
    request_body = GenerateVideoBody,
    responses(
        (status = 200, description = "Video generated and stored", body = GenerateVideoResponse,
            headers(("X-Config-Flavor" = String, description = "The flavor used"))),
        super::error::GenerationErrors,
    )
)]
pub async fn generate_video(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<GenerateVideoBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    required("prompt", &body.prompt)?;
    let video_rules_template = body
        .video_rules_template
        .as_deref()
        .map(|src| Template::parse(src, prompts::VIDEO_RULES_VARS, &[]))
        .transpose()
        .map_err(|e| ApiError::invalid("video_rules_template", e.to_string()))?;
    let inputs = VideoInputs {
        prompt: body.prompt,
        negative_prompt: body.negative_prompt,
        aspect_ratio: choice("aspect_ratio", body.aspect_ratio.as_deref())?,
        duration: in_range("duration", body.duration, VIDEO_DURATION.0.into(), VIDEO_DURATION.1.into())?,
        generate_audio: body.generate_audio,
        seed: seed(body.seed)?,
        video_rules_template,
    };
    // Cheap checks (strict flavor mode) before reading the reference image from disk.
    let chosen = choose_flavor(&state, body.config_flavor.as_deref())?;
    let (reference_image, character_reference_warning) =
        load_reference(&state, body.character_reference_id.as_deref()).await?;
    let plan = prompts::video_plan(&chosen.flavor, &inputs);
    if state.debug {
        debug_log::plan(&chosen, "video", &plan.consumed, &plan.prompt);
    }
    let request = VideoRequest {
        model: plan.model.to_string(),
        prompt: plan.prompt.clone(),
        aspect_ratio: plan.aspect_ratio.as_str().to_string(),
        duration: plan.duration,
        generate_audio: plan.generate_audio,
        person_generation: plan.person_generation.to_string(),
        negative_prompt: plan.negative_prompt.clone(),
        seed: plan.seed,
        reference_image,
    };
    let maker = &state.providers.videos;
    let media =
        telemetry::generation("video", &chosen.flavor.name, maker.backend(), maker.make_video(&request)).await?;
    let video_id = state.storage.put(Kind::Video, &media.content_type, &media.bytes).await?;

    let response = GenerateVideoResponse {
        video_url: format!("/api/mv/get_video/{video_id}"),
        video_id,
        character_reference_warning,
        metadata: VideoMetadata {
            prompt: plan.prompt.clone(),
            parameters_used: plan.parameters(),
            config_flavor: FlavorReport::from(&chosen),
            backend_used: maker.backend().to_string(),
            model_used: request.model,
            is_mock: maker.is_mock(),
            processing_time_seconds: started.elapsed().as_secs_f64(),
        },
    };
    Ok(with_flavor(&chosen, response))
}

/// The stored character reference, or a warning saying why there is none. A malformed id is the
/// caller's mistake (400); an unknown one only costs the video its reference.
async fn load_reference(state: &AppState, id: Option<&str>) -> Result<(Option<Media>, Option<String>), ApiError> {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
        return Ok((None, None));
    };
    match state.storage.find(Kind::CharacterReference, id).await {
        Ok(stored) => {
            let bytes = tokio::fs::read(&stored.path).await.map_err(StorageError::from)?;
            Ok((Some(Media { bytes, content_type: stored.content_type.to_string() }), None))
        }
        Err(StorageError::NotFound(_)) => {
            Ok((None, Some(format!("character reference {id} was not found; the video was generated without it"))))
        }
        Err(StorageError::BadId(_)) => {
            Err(ApiError::invalid("character_reference_id", "must be an id returned by generate_character_reference"))
        }
        Err(e) => Err(e.into()),
    }
}
