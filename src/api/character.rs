//! `POST /api/mv/generate_character_reference` (the kind itself is `generation::character`).

use axum::extract::State;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::ValidJson;
use crate::generation::character::{Character, CharacterReferenceBody, CharacterReferenceResponse};

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
    crate::generation::respond::<Character>(&state, body).await
}
