//! `POST /api/mv/generate_video` (the kind itself is `generation::video`).

use axum::extract::State;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::ValidJson;
use crate::generation::video::{GenerateVideoBody, GenerateVideoResponse, Video};

#[utoipa::path(
    post,
    path = "/api/mv/generate_video",
    tag = "generation",
    request_body = GenerateVideoBody,
    responses(
        (status = 200, description = "Video generated and stored", body = GenerateVideoResponse,
            headers(
                ("X-Config-Flavor" = String, description = "The flavor used"),
                ("X-Config-Flavor-Hash" = String, description = "The content hash of the flavor used"),
            )),
        super::error::GenerationErrors,
    )
)]
pub async fn generate_video(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<GenerateVideoBody>,
) -> Result<Response, ApiError> {
    crate::generation::respond::<Video>(&state, body).await
}
