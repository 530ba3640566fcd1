//! The MV HTTP API under `/api/mv`: the route table, the state handlers share, and the pieces every
//! generation endpoint uses (flavor choice, the `X-Config-Flavor` and `X-Config-Flavor-Hash` headers). One file per endpoint area.

mod backend;
mod character;
mod debug_log;
pub mod error;
pub mod extract;
mod files;
mod flavors;
pub(crate) mod inputs;
pub mod jobs;
pub mod limits;
pub mod openapi;
mod scenes;
mod send_file;
mod video;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use crate::flavor::Chosen;
use crate::live_configs::FlavorSource;
use crate::providers::Providers;
use crate::storage::Storage;
use error::ApiError;

// Public so benches and clients can build and read these bodies outside the handlers.
pub use scenes::{CreateScenesBody, CreateScenesResponse, OutputFiles, SceneOut, ScenesMetadata};

/// What handlers share. Embedded flavors are `static` data and live ones immutable snapshots, so
/// requests with different flavors share no mutable config state at all.
#[derive(Clone)]
pub struct AppState {
    pub providers: Providers,
    pub storage: Arc<dyn Storage>,
    /// `MV_DEBUG_MODE`: log every config value a request consumes and the final prompt.
    pub debug: bool,
    /// `MV_STRICT_FLAVORS`: answer 400 for an unknown flavor instead of falling back to default.
    pub strict_flavors: bool,
    /// `MV_MAX_CONCURRENT_GENERATIONS`: generation requests running at once.
    pub generations: limits::GenerationSlots,
    /// Where flavors come from: the embedded table, or a watched directory (`serve --configs`).
    pub flavors: FlavorSource,
}

impl axum::extract::FromRef<AppState> for FlavorSource {
    fn from_ref(state: &AppState) -> FlavorSource {
        state.flavors.clone()
    }
}

/// Every `/api/mv` route, at its full path: nesting would wrap each route in two prefix-stripping
/// layers, a measurable share of a request as cheap as the flavor list (BENCHMARKS.md).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/mv/get_config_flavors", get(flavors::get_config_flavors))
        .route("/api/mv/create_scenes", post(scenes::create_scenes))
        .route("/api/mv/generate_character_reference", post(character::generate_character_reference))
        .route("/api/mv/generate_video", post(video::generate_video))
        .route("/api/mv/get_character_reference/{id}", get(files::get_character_reference))
        .route("/api/mv/get_video/{id}", get(files::get_video))
        .route("/api/mv/get_video/{id}/info", get(files::get_video_info))
        .route("/api/mv/get_scenes/{id}", get(files::get_scenes))
        .route("/api/mv/get_scenes/{id}/markdown", get(files::get_scenes_markdown))
}

/// Which flavor served a request, as reported in `metadata.config_flavor`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FlavorReport {
    /// The flavor the request named, or null.
    pub requested: Option<String>,
    /// The flavor actually used.
    pub used: String,
    /// The content hash of the flavor used (12 hex digits): equal hashes, equal settings.
    pub hash: String,
    /// True when the requested flavor does not exist and the default was used.
    pub fallback: bool,
    /// Why it fell back.
    pub reason: Option<String>,
}

/// Chooses the request's flavor: logs a fallback, refuses it in strict mode.
fn choose_flavor(state: &AppState, requested: Option<&str>) -> Result<Chosen, ApiError> {
    let chosen = state.flavors.choose(requested);
    if let Some(reason) = &chosen.fallback_reason {
        crate::telemetry::flavor_fallback(state.strict_flavors);
        if state.strict_flavors {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "UnknownFlavor",
                reason.clone(),
                json!({ "field": "config_flavor", "available": state.flavors.names() }),
            ));
        }
        tracing::warn!(used = %chosen.flavor.name, "unknown config flavor: {reason}");
    }
    if state.debug {
        debug_log::chosen(&chosen);
    }
    Ok(chosen)
}

impl From<&Chosen> for FlavorReport {
    fn from(c: &Chosen) -> Self {
        FlavorReport {
            requested: c.requested.clone(),
            used: c.flavor.name.to_string(),
            hash: c.flavor.hash.to_string(),
            fallback: c.fell_back(),
            reason: c.fallback_reason.clone(),
        }
    }
}

/// A JSON answer carrying `X-Config-Flavor: <used>` and `X-Config-Flavor-Hash: <its hash>`.
fn with_flavor<T: Serialize>(chosen: &Chosen, body: T) -> Response {
    let mut response = axum::Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&chosen.flavor.name) {
        response.headers_mut().insert("x-config-flavor", value);
    }
    if let Ok(value) = HeaderValue::from_str(&chosen.flavor.hash) {
        response.headers_mut().insert("x-config-flavor-hash", value);
    }
    response
}

/// A required text field: present and not blank.
fn required(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() { Err(ApiError::invalid(field, "must not be empty")) } else { Ok(()) }
}

/// An optional integer field within `min..=max`.
fn in_range(field: &str, value: Option<i64>, min: i64, max: i64) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => {
            u32::try_from(v).map(Some).map_err(|_| ApiError::invalid(field, format!("must be in {min}..={max}")))
        }
        Some(v) => Err(ApiError::invalid(field, format!("must be in {min}..={max}, got {v}"))),
    }
}

/// An optional enum field given as its wire spelling.
fn choice<T: crate::compiler::Choice>(field: &str, value: Option<&str>) -> Result<Option<T>, ApiError> {
    match value {
        None => Ok(None),
        Some(s) => T::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, format!("expected one of {}, got {s:?}", T::spellings()))),
    }
}

/// Seeds are passed to the models as unsigned 32-bit integers.
fn seed(value: Option<i64>) -> Result<Option<i64>, ApiError> {
    in_range("seed", value, 0, i64::from(u32::MAX)).map(|s| s.map(i64::from))
}
