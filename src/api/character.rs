//! `POST /api/mv/generate_character_reference`: full-body reference images of the main character,
//! drawn by the image model with the chosen flavor's prompt and parameters, stored for later use.

use axum::extract::State;
use axum::response::Response;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ValidJson;
use super::inputs::{self, optional, text};
use super::limits::bounded_texts;
use super::{AppState, FlavorReport, choice, choose_flavor, debug_log, in_range, required, seed, with_flavor};
use crate::compiler::Choice;
use crate::prompts::{self, CharacterInputs};
use crate::providers::ImageRequest;
use crate::providers::RunContext;
use crate::storage::Kind;
use crate::telemetry;

/// Who to draw. Optional values default to the flavor's. Strings are stripped of surrounding
/// whitespace; an optional string that is null, empty or blank is not given.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterReferenceBody {
    /// Required, not blank.
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub character_description: String,
    /// 1..=4, default 4.
    #[schema(minimum = 1, maximum = 4)]
    pub num_images: Option<i64>,
    /// `1:1`, `16:9`, `9:16`, `4:3`, `3:4`.
    #[schema(max_length = 20000)]
    pub aspect_ratio: Option<String>,
    #[schema(max_length = 20000)]
    pub safety_filter_level: Option<String>,
    #[schema(max_length = 20000)]
    pub person_generation: Option<String>,
    /// `png`, `jpg`, `webp`.
    #[schema(max_length = 20000)]
    pub output_format: Option<String>,
    #[schema(max_length = 20000)]
    pub negative_prompt: Option<String>,
    /// 0..=4294967295.
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub seed: Option<i64>,
    #[schema(max_length = 20000)]
    pub config_flavor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CharacterReferenceResponse {
    pub images: Vec<ImageOut>,
    pub metadata: CharacterMetadata,
}

/// A stored image.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageOut {
    pub id: String,
    /// Where to fetch it: `/api/mv/get_character_reference/{id}`.
    pub url: String,
    pub content_type: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CharacterMetadata {
    pub character_description: String,
    pub model_used: String,
    pub num_images_requested: u32,
    pub num_images_generated: u32,
    /// Why some images are missing, when fewer were generated than requested.
    pub errors: Vec<String>,
    #[schema(value_type = Object)]
    pub parameters_used: serde_json::Value,
    pub config_flavor: FlavorReport,
    pub backend_used: String,
    pub is_mock: bool,
    /// When the images were made, RFC 3339 in UTC.
    pub generation_timestamp: String,
}

#[utoipa::path(
    post,
    path = "/api/mv/generate_character_reference",
    tag = "generation",
    request_body = CharacterReferenceBody,
    responses(
        (status = 200, description = "Images generated and stored", body = CharacterReferenceResponse,
            headers(
                ("X-Config-Flavor" = String, description = "The flavor used"),
                ("X-Config-Flavor-Hash" = String, description = "The content hash of the flavor used"),
            )),
        super::error::GenerationErrors,
    )
)]
pub async fn generate_character_reference(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<CharacterReferenceBody>,
) -> Result<Response, ApiError> {
    bounded_texts(&[
        ("character_description", Some(&body.character_description)),
        ("aspect_ratio", body.aspect_ratio.as_deref()),
        ("safety_filter_level", body.safety_filter_level.as_deref()),
        ("person_generation", body.person_generation.as_deref()),
        ("output_format", body.output_format.as_deref()),
        ("negative_prompt", body.negative_prompt.as_deref()),
        ("config_flavor", body.config_flavor.as_deref()),
    ])?;
    let character_description = text(body.character_description);
    required("character_description", &character_description)?;
    let num_images = in_range("num_images", body.num_images, 1, 4)?.unwrap_or(4);
    let inputs = CharacterInputs {
        character_description,
        aspect_ratio: choice("aspect_ratio", optional(body.aspect_ratio).as_deref())?,
        safety_filter_level: choice("safety_filter_level", optional(body.safety_filter_level).as_deref())?,
        person_generation: choice("person_generation", optional(body.person_generation).as_deref())?,
        output_format: choice("output_format", optional(body.output_format).as_deref())?,
        negative_prompt: optional(body.negative_prompt),
        seed: seed(body.seed)?,
    };
    let chosen = choose_flavor(&state, optional(body.config_flavor).as_deref())?;
    // Taken once the request is known to be valid: at the cap a bad request still gets its 4xx.
    let _slot = state.generations.take()?;
    let plan = prompts::image_plan(&chosen.flavor, &inputs);
    if state.debug {
        debug_log::plan(&chosen, "character_reference", &plan.consumed, &plan.prompt);
    }
    let request = ImageRequest {
        model: plan.model.to_string(),
        prompt: plan.prompt.clone(),
        aspect_ratio: plan.aspect_ratio.as_str().to_string(),
        safety_filter_level: plan.safety_filter_level.as_str().to_string(),
        person_generation: plan.person_generation.as_str().to_string(),
        output_format: plan.output_format.as_str().to_string(),
        negative_prompt: plan.negative_prompt.clone(),
        seed: plan.seed,
    };

    // One prediction per image, all at once; each is stored as soon as it arrives.
    let maker = &state.providers.images;
    // With a seed, image i gets seed + i: the same seed for all would draw one picture N times.
    let requests: Vec<ImageRequest> = (0..num_images)
        .map(|i| ImageRequest {
            seed: request.seed.map(|s| (s + i64::from(i)) % (i64::from(u32::MAX) + 1)),
            ..request.clone()
        })
        .collect();
    let attempts = join_all(requests.iter().map(|request| async {
        let image = maker.make_image(request, RunContext::detached());
        let media = telemetry::generation("character_reference", &chosen.flavor.name, maker.backend(), image)
            .await
            .map_err(ApiError::from)?;
        let id = state.storage.put(Kind::CharacterReference, &media.content_type, &media.bytes).await?;
        Ok::<_, ApiError>(ImageOut {
            url: format!("/api/mv/get_character_reference/{id}"),
            id,
            content_type: media.content_type,
        })
    }))
    .await;
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for attempt in attempts {
        match attempt {
            Ok(image) => images.push(image),
            Err(e) => failures.push(e),
        }
    }
    if images.is_empty() {
        // Every attempt failed: the first failure is as good an explanation as any.
        return Err(failures.into_iter().next().unwrap_or_else(|| ApiError::internal("no image was generated")));
    }
    let response = CharacterReferenceResponse {
        metadata: CharacterMetadata {
            character_description: inputs.character_description,
            model_used: request.model,
            num_images_requested: num_images,
            num_images_generated: u32::try_from(images.len()).unwrap_or(u32::MAX),
            errors: failures.into_iter().map(|e| e.message).collect(),
            parameters_used: plan.parameters(),
            config_flavor: FlavorReport::from(&chosen),
            backend_used: maker.backend().to_string(),
            is_mock: maker.is_mock(),
            generation_timestamp: inputs::timestamp(),
        },
        images,
    };
    Ok(with_flavor(&chosen, response))
}
