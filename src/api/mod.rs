//! The MV HTTP API under `/api/mv`: the route table. One file per endpoint area; the generation
//! endpoints are one line each over [`crate::generation`].

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
use axum::routing::{get, post};

// The error type, the request limits and the state live below the pipeline (generation and jobs
// use them too, and must not import the HTTP edge); their `api::` paths stay valid.
pub use crate::state::AppState;
pub use crate::{error, limits};
// Public so benches and clients can build and read these bodies outside the handlers.
pub use crate::generation::FlavorReport;
pub use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, OutputFiles, SceneOut, ScenesMetadata};

/// Every `/api/mv` route, at its full path: nesting would wrap each route in two prefix-stripping
/// layers, a measurable share of a request as cheap as the flavor list (BENCHMARKS.md).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/mv/get_config_flavors", get(flavors::get_config_flavors))
        .route("/api/mv/create_scenes", post(generate::create_scenes))
        .route("/api/mv/generate_character_reference", post(generate::generate_character_reference))
        .route("/api/mv/generate_video", post(generate::generate_video))
        .route("/api/mv/get_character_reference/{id}", get(files::get_character_reference))
        .route("/api/mv/get_video/{id}", get(files::get_video))
        .route("/api/mv/get_video/{id}/info", get(files::get_video_info))
        .route("/api/mv/get_scenes/{id}", get(files::get_scenes))
        .route("/api/mv/get_scenes/{id}/markdown", get(files::get_scenes_markdown))
}
