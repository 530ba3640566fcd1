//! `GET /api/openapi.json`: the API described from the handlers' own types and annotations, so the
//! spec can't drift from the code.

use axum::Json;
use utoipa::OpenApi;

use super::{character, error, files, flavors, scenes, video};

#[derive(OpenApi)]
#[openapi(
    info(title = "mvgen", description = "Music-video generation API with per-request config flavors"),
    paths(
        crate::server::health,
        crate::telemetry::metrics_text,
        flavors::get_config_flavors,
        scenes::create_scenes,
        character::generate_character_reference,
        video::generate_video,
        files::get_character_reference,
        files::get_video,
    ),
    components(schemas(error::ErrorBody, error::ErrorDetail, super::FlavorReport))
)]
pub struct ApiDoc;

/// The OpenAPI document.
pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(spec())
}
