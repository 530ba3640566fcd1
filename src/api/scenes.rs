//! `POST /api/mv/create_scenes`: an idea in, scene descriptions out, written by the scene model
//! with the chosen flavor's prompt and parameters.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ValidJson;
use super::{AppState, FlavorReport, choose_flavor, debug_log, in_range, required, with_flavor};
use crate::compiler::NUMBER_OF_SCENES;
use crate::prompts::{self, SceneInputs};
use crate::providers::SceneRequest;
use crate::telemetry;

/// What to write scenes for. Optional values default to the flavor's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScenesBody {
    /// The video idea (required, not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub idea: String,
    /// Who the main character is (required, not blank).
    #[schema(min_length = 1, pattern = r"\S")]
    pub character_description: String,
    pub character_characteristics: Option<String>,
    /// 1..=32.
    #[schema(minimum = 1, maximum = 32)]
    pub number_of_scenes: Option<i64>,
    pub video_type: Option<String>,
    pub video_characteristics: Option<String>,
    pub camera_angle: Option<String>,
    /// The config flavor to use; unknown names fall back to default.
    pub config_flavor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreateScenesResponse {
    pub scenes: Vec<SceneOut>,
    pub metadata: ScenesMetadata,
}

/// One scene.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SceneOut {
    pub description: String,
    pub negative_description: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScenesMetadata {
    pub idea: String,
    pub number_of_scenes: u32,
    /// The values actually used, after flavor defaults and request overrides.
    #[schema(value_type = Object)]
    pub parameters_used: serde_json::Value,
    pub config_flavor: FlavorReport,
    pub backend_used: String,
    pub model_used: String,
    pub is_mock: bool,
}

#[utoipa::path(
    post,
    path = "/api/mv/create_scenes",
    tag = "generation",
    request_body = CreateScenesBody,
    responses(
        (status = 200, description = "Scenes written", body = CreateScenesResponse,
            headers(("X-Config-Flavor" = String, description = "The flavor used"))),
        super::error::GenerationErrors,
    )
)]
pub async fn create_scenes(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<CreateScenesBody>,
) -> Result<Response, ApiError> {
    required("idea", &body.idea)?;
    required("character_description", &body.character_description)?;
    let (min, max) = NUMBER_OF_SCENES;
    let number_of_scenes = in_range("number_of_scenes", body.number_of_scenes, min.into(), max.into())?;
    let chosen = choose_flavor(&state, body.config_flavor.as_deref())?;

    let inputs = SceneInputs {
        idea: body.idea,
        character_description: body.character_description,
        character_characteristics: body.character_characteristics,
        number_of_scenes,
        video_type: body.video_type,
        video_characteristics: body.video_characteristics,
        camera_angle: body.camera_angle,
    };
    let plan = prompts::scene_plan(&chosen.flavor, &inputs);
    if state.debug {
        debug_log::plan(&chosen, "scenes", &plan.consumed, &plan.prompt);
    }
    let request = SceneRequest {
        model: plan.model.to_string(),
        prompt: plan.prompt.clone(),
        number_of_scenes: plan.number_of_scenes,
        idea: inputs.idea.clone(),
        character_description: inputs.character_description.clone(),
        character_characteristics: plan.character_characteristics.clone(),
        video_type: plan.video_type.clone(),
        video_characteristics: plan.video_characteristics.clone(),
        camera_angle: plan.camera_angle.clone(),
    };
    let writer = &state.providers.scenes;
    let scenes =
        telemetry::generation("scenes", &chosen.flavor.name, writer.backend(), writer.write_scenes(&request)).await?;

    let response = CreateScenesResponse {
        scenes: scenes
            .into_iter()
            .map(|s| SceneOut { description: s.description, negative_description: s.negative_description })
            .collect(),
        metadata: ScenesMetadata {
            idea: inputs.idea,
            number_of_scenes: plan.number_of_scenes,
            parameters_used: plan.parameters(),
            config_flavor: FlavorReport::from(&chosen),
            backend_used: writer.backend().to_string(),
            model_used: request.model,
            is_mock: writer.is_mock(),
        },
    };
    Ok(with_flavor(&chosen, response))
}
