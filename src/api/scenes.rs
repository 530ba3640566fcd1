//! `POST /api/mv/create_scenes` (the kind itself is `generation::scenes`), and the Markdown view of
//! the scenes it stores.

use axum::extract::State;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::ValidJson;
use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, Scenes};
use crate::providers::Scene;

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
    crate::generation::respond::<Scenes>(&state, body).await
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
