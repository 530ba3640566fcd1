//! The generation endpoints: `POST create_scenes`, `generate_character_reference` and
//! `generate_video`. Each is one line over [`crate::generation::respond`]; the kinds themselves
//! live in `generation/`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::ValidJson;
use crate::generation::character::{Character, CharacterReferenceBody, CharacterReferenceResponse};
use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, Scenes};
use crate::generation::video::{GenerateVideoBody, GenerateVideoResponse, Video};
use crate::jobs::Jobs;

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
                                ("X-Job-Id" = String, description = "The job that ran the generation (`GET /api/mv/jobs/{id}`); \
                                    also on its error answers. A caller who hangs up does not stop it: its result is kept"),
                            )),
                        super::error::GenerationErrors,
                    )
                )]
        pub async fn $handler(
            State(state): State<AppState>,
            jobs: Option<Extension<Arc<Jobs>>>,
            ValidJson(body): ValidJson<$body>,
        ) -> Result<Response, ApiError> {
            crate::generation::respond::<$kind>(&state, jobs.as_deref(), body).await
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
