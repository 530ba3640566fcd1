//! The generation endpoints (`POST create_scenes`, `generate_character_reference`,
//! `generate_video`, ...), written from one table in the route table (`api/mod.rs`): each line
//! makes a kind's handler (one line over [`crate::generation::respond`]) with its OpenAPI
//! operation, its route, and its place in [`crate::generation::driver::Kind`]'s list, which the
//! job engine takes its kinds from. The kinds themselves live in `generation/`.

/// The generation endpoints from `handler: Kind(Body) -> Answer at "path", "what a 200 means";`
/// lines: the handlers with their OpenAPI descriptions (which differ only in these), `KINDS` (the
/// kinds a job may have, in this order), `generation_routes` and the `GenerationApi` document.
macro_rules! endpoints {
    ($($handler:ident: $kind:ident($body:ident) -> $answer:ident at $path:literal, $done:literal;)+) => {
        /// Every generation kind, in the order the route table lists them.
        pub const KINDS: &[crate::generation::driver::Kind] = &[$(crate::generation::driver::Kind::of::<$kind>()),+];

        $(
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
                    error::GenerationErrors,
                )
            )]
            pub async fn $handler(
                axum::extract::State(state): axum::extract::State<AppState>,
                jobs: Option<axum::Extension<std::sync::Arc<crate::jobs::Jobs>>>,
                extract::ValidJson(body): extract::ValidJson<$body>,
            ) -> Result<axum::response::Response, error::ApiError> {
                crate::generation::respond::<$kind>(&state, jobs.as_deref(), body).await
            }
        )+

        /// `router` with a `POST` route for every generation endpoint.
        fn generation_routes(router: Router<AppState>) -> Router<AppState> {
            router$(.route($path, axum::routing::post($handler)))+
        }

        /// The generation endpoints' part of the OpenAPI document (merged in `openapi::spec`).
        #[derive(utoipa::OpenApi)]
        #[openapi(paths($($handler),+))]
        pub struct GenerationApi;
    };
}

pub(crate) use endpoints;
