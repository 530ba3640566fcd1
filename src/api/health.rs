//! `GET /health`: liveness, for probes and `mvgen healthcheck`. Routed by `server` outside
//! `/api/mv` and open even when `API_KEY` is set; here so the OpenAPI document (`openapi.rs`) finds it
//! without importing the server that serves that document.

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::json;

/// Liveness, for probes and `mvgen healthcheck`; open even when `API_KEY` is set.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "The server is up")))]
pub async fn health(State(flavors): State<crate::live_configs::FlavorSource>) -> impl IntoResponse {
    axum::Json(json!({ "status": "ok", "flavors": flavors.count() }))
}
