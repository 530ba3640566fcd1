//! The MV HTTP API under `/api/mv`: the route table. One file per endpoint area; the generation
//! endpoints are one line each in the table below, over [`crate::generation`].

pub mod extract;
mod files;
mod flavors;
mod generate;
pub mod health;
pub mod jobs;
pub mod openapi;
pub mod readiness;
mod send_file;

use axum::Router;
use axum::routing::get;

// The error type, the request limits and the state live below the pipeline (generation and jobs
// use them too, and must not import the HTTP edge); their `api::` paths stay valid.
pub use crate::state::AppState;
pub use crate::{error, limits};
// Public so benches and clients can build and read these bodies outside the handlers.
pub use crate::generation::FlavorReport;
use crate::generation::character::{Character, CharacterReferenceBody, CharacterReferenceResponse};
use crate::generation::scenes::Scenes;
pub use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, OutputFiles, SceneOut, ScenesMetadata};
use crate::generation::video::{GenerateVideoBody, GenerateVideoResponse, Video};

// The generation endpoints: one line per kind makes its handler, OpenAPI operation and route, and
// its entry in `KINDS`, the job engine's list of kinds (see `generate`).
generate::endpoints! {
    create_scenes: Scenes(CreateScenesBody) -> CreateScenesResponse
        at "/api/mv/create_scenes", "Scenes written";
    generate_character_reference: Character(CharacterReferenceBody) -> CharacterReferenceResponse
        at "/api/mv/generate_character_reference", "Images generated and stored";
    generate_video: Video(GenerateVideoBody) -> GenerateVideoResponse
        at "/api/mv/generate_video", "Video generated and stored";
}

/// Every `/api/mv` route, at its full path: nesting would wrap each route in two prefix-stripping
/// layers, a measurable share of a request as cheap as the flavor list (BENCHMARKS.md).
pub fn routes() -> Router<AppState> {
    generation_routes(Router::new())
        .route("/api/mv/get_config_flavors", get(flavors::get_config_flavors))
        .route("/api/mv/get_character_reference/{id}", get(files::get_character_reference))
        .route("/api/mv/get_video/{id}", get(files::get_video))
        .route("/api/mv/get_video/{id}/info", get(files::get_video_info))
        .route("/api/mv/get_scenes/{id}", get(files::get_scenes))
        .route("/api/mv/get_scenes/{id}/markdown", get(files::get_scenes_markdown))
}
