//! The generation endpoints: `POST create_scenes`, `generate_character_reference` and
//! `generate_video`. Each is one line over [`crate::generation::respond`]; the kinds themselves
//! live in `generation/`.

use axum::extract::State;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::ValidJson;
use crate::generation::character::{Character, CharacterReferenceBody, CharacterReferenceResponse};
use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, Scenes};
use crate::generation::video::{GenerateVideoBody, GenerateVideoResponse, Video};

/// A generation endpoint: its handler and its OpenAPI description, which differ only in these.
macro_rules! endpoint {
    ($handler:ident, $path:literal, $kind:ident, $body:ident, $answer:ident, $done:literal) => {
        #[utoipa::path(
                    post,
                    path = $path,
                    tag = "generation",
                    request_body = $body,
                    responses(
                        (status = 200, description = $done, body = $answer,
                            headers(
                                ("X-Config-Flavor" = String, description = "The flavor used"),
                                ("X-Config-Flavor-Hash" = String, description = "The content hash of the flavor used"),
                            )),
                        super::error::GenerationErrors,
                    )
                )]
        pub async fn $handler(
            State(state): State<AppState>,
            ValidJson(body): ValidJson<$body>,
        ) -> Result<Response, ApiError> {
            crate::generation::respond::<$kind>(&state, body).await
        }
    };
}

endpoint!(create_scenes, "/api/mv/create_scenes", Scenes, CreateScenesBody, CreateScenesResponse, "Scenes written");
endpoint!(
    generate_character_reference,
    "/api/mv/generate_character_reference",
    Character,
    CharacterReferenceBody,
    CharacterReferenceResponse,
    "Images generated and stored"
);
endpoint!(
    generate_video,
    "/api/mv/generate_video",
    Video,
    GenerateVideoBody,
    GenerateVideoResponse,
    "Video generated and stored"
);
