//! `POST /api/mv/create_scenes`: an idea in, scene descriptions out, written by the scene model
//! with the chosen flavor's prompt and parameters.

use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::ValidJson;
use super::inputs::{self, optional, text};
use super::limits::bounded_texts;
use super::{AppState, FlavorReport, choose_flavor, debug_log, in_range, required, with_flavor};
use crate::compiler::NUMBER_OF_SCENES;
use crate::prompts::{self, SceneInputs};
use crate::providers::{Scene, SceneRequest};
use crate::storage::Kind;
use crate::telemetry;

/// What to write scenes for. Optional values default to the flavor's. Strings are stripped of
/// surrounding whitespace; an optional string that is null, empty or blank is not given.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScenesBody {
    /// The video idea (required, not blank).
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub idea: String,
    /// Who the main character is (required, not blank).
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub character_description: String,
    #[schema(max_length = 20000)]
    pub character_characteristics: Option<String>,
    /// 1..=32.
    #[schema(minimum = 1, maximum = 32)]
    pub number_of_scenes: Option<i64>,
    #[schema(max_length = 20000)]
    pub video_type: Option<String>,
    #[schema(max_length = 20000)]
    pub video_characteristics: Option<String>,
    #[schema(max_length = 20000)]
    pub camera_angle: Option<String>,
    /// The config flavor to use; unknown names fall back to default.
    #[schema(max_length = 20000)]
    pub config_flavor: Option<String>,
    /// A project UUID; echoed in `metadata.project_id` (mvgen keeps no project store).
    pub project_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreateScenesResponse {
    pub scenes: Vec<SceneOut>,
    /// The same scenes, stored for this request only (fresh ids every time).
    pub output_files: OutputFiles,
    pub metadata: ScenesMetadata,
}

/// Where the stored scenes can be fetched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OutputFiles {
    /// `/api/mv/get_scenes/{id}`: `{"scenes": [...], "metadata": {...}}`.
    pub json: String,
    /// `/api/mv/get_scenes/{id}/markdown`: the same scenes as Markdown.
    pub markdown: String,
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
    /// When the scenes were written, RFC 3339 in UTC.
    pub generation_timestamp: String,
    /// The request's `project_id`, canonical UUID form, or null.
    pub project_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/mv/create_scenes",
    tag = "generation",
    request_body = CreateScenesBody,
    responses(
        (status = 200, description = "Scenes written", body = CreateScenesResponse,
            headers(
                ("X-Config-Flavor" = String, description = "The flavor used"),
                ("X-Config-Flavor-Hash" = String, description = "The content hash of the flavor used"),
            )),
        super::error::GenerationErrors,
    )
)]
pub async fn create_scenes(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<CreateScenesBody>,
) -> Result<Response, ApiError> {
    bounded_texts(&[
        ("idea", Some(&body.idea)),
        ("character_description", Some(&body.character_description)),
        ("character_characteristics", body.character_characteristics.as_deref()),
        ("video_type", body.video_type.as_deref()),
        ("video_characteristics", body.video_characteristics.as_deref()),
        ("camera_angle", body.camera_angle.as_deref()),
        ("config_flavor", body.config_flavor.as_deref()),
    ])?;
    let idea = text(body.idea);
    let character_description = text(body.character_description);
    required("idea", &idea)?;
    required("character_description", &character_description)?;
    let (min, max) = NUMBER_OF_SCENES;
    let number_of_scenes = in_range("number_of_scenes", body.number_of_scenes, min.into(), max.into())?;
    let project_id = inputs::project_id(body.project_id)?;
    let chosen = choose_flavor(&state, optional(body.config_flavor).as_deref())?;
    // Taken once the request is known to be valid: at the cap a bad request still gets its 4xx.
    let _slot = state.generations.take()?;

    let inputs = SceneInputs {
        idea,
        character_description,
        character_characteristics: optional(body.character_characteristics),
        number_of_scenes,
        video_type: optional(body.video_type),
        video_characteristics: optional(body.video_characteristics),
        camera_angle: optional(body.camera_angle),
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

    let metadata = ScenesMetadata {
        idea: inputs.idea,
        number_of_scenes: plan.number_of_scenes,
        parameters_used: plan.parameters(),
        config_flavor: FlavorReport::from(&chosen),
        backend_used: writer.backend().to_string(),
        model_used: request.model,
        is_mock: writer.is_mock(),
        generation_timestamp: inputs::timestamp(),
        project_id,
    };
    let output_files = store_scenes(&state, &scenes, &metadata).await?;
    let response = CreateScenesResponse {
        scenes: scenes
            .into_iter()
            .map(|s| SceneOut { description: s.description, negative_description: s.negative_description })
            .collect(),
        output_files,
        metadata,
    };
    Ok(with_flavor(&chosen, response))
}

/// Stores this request's scenes under a fresh id (the service mvgen replaces wrote fixed file
/// names, so concurrent requests overwrote each other's). One JSON file; the Markdown view is
/// rendered from it when asked for, so a request pays for one write.
async fn store_scenes(state: &AppState, scenes: &[Scene], metadata: &ScenesMetadata) -> Result<OutputFiles, ApiError> {
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "scenes": scenes, "metadata": metadata }))
        .map_err(|e| ApiError::internal(format!("the scenes could not be serialized: {e}")))?;
    let id = state.storage.put(Kind::Scenes, "application/json", &json).await?;
    Ok(OutputFiles { json: format!("/api/mv/get_scenes/{id}"), markdown: format!("/api/mv/get_scenes/{id}/markdown") })
}

/// The parts of a stored scenes file the Markdown view shows.
#[derive(serde::Deserialize)]
struct StoredScenes {
    scenes: Vec<Scene>,
    metadata: StoredMetadata,
}

#[derive(serde::Deserialize)]
struct StoredMetadata {
    idea: String,
    model_used: String,
    generation_timestamp: String,
    config_flavor: StoredFlavor,
}

#[derive(serde::Deserialize)]
struct StoredFlavor {
    used: String,
}

/// A stored scenes file as a Markdown document for people: the idea as the title, one section per
/// scene. `None` when the file is not one create_scenes wrote.
pub(super) fn markdown(stored: &[u8]) -> Option<String> {
    let StoredScenes { scenes, metadata } = serde_json::from_slice(stored).ok()?;
    let mut out = format!(
        "# Scenes: {}\n\n{} scenes, flavor `{}`, written by {} at {}.\n",
        metadata.idea,
        scenes.len(),
        metadata.config_flavor.used,
        metadata.model_used,
        metadata.generation_timestamp
    );
    for (i, scene) in scenes.iter().enumerate() {
        out.push_str(&format!(
            "\n## Scene {}\n\n{}\n\n**Avoid:** {}\n",
            i + 1,
            scene.description,
            scene.negative_description
        ));
    }
    Some(out)
}
