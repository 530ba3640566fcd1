//! The HTTP API: every route, on one screen, with its named handler. One file per endpoint area;
//! the handlers are thin, over [`crate::generation`] (the generation endpoints), the job engine
//! ([`jobs`], webhook [`deliveries`]) and storage ([`files`], songs in `audio`). `server` adds the middleware around this router.

mod audio;
pub mod deliveries;
pub mod extract;
mod files;
mod flavors;
mod generate;
pub mod health;
pub mod jobs;
pub mod openapi;
mod projects;
pub mod readiness;
pub mod replicate_webhook;
pub mod routed;
mod send_file;
mod upload;

pub use audio::AudioLimit;

use std::sync::Arc;

use axum::Extension;
use axum::routing::{get, patch, post};

use crate::jobs::Jobs;
use crate::state::AppState;
use crate::webhooks::signature::Secret;
pub use routed::Routed;

/// Every route the server answers, at its full path: nesting would wrap each route in two
/// prefix-stripping layers, a measurable share of a request as cheap as the flavor list
/// (BENCHMARKS.md). With a job engine, the job routes are served and the generation endpoints run
/// as jobs; `/metrics` only when metrics are on. The templates come with the router, for the
/// request metrics outside it ([`Routed`]).
pub fn routes(
    jobs: Option<Arc<Jobs>>,
    metrics: bool,
    songs: audio::AudioLimit,
    replicate_secret: Option<Secret>,
) -> Routed<Arc<AppState>> {
    // The routes whose handlers run jobs or read them find the engine as an extension (absent
    // without one). Only they get that layer: each `layer` wraps its routes in one more box, which
    // axum clones per request, and the flavor list, the files, health and the page never read it.
    let mut engine_routes = Routed::new()
        .route("/api/mv/create_scenes", post(generate::create_scenes))
        .route("/api/mv/generate_character_reference", post(generate::generate_character_reference))
        .route("/api/mv/generate_video", post(generate::generate_video))
        .route("/api/mv/stitch-videos", post(generate::stitch_videos))
        .route("/api/mv/get_scenes/{id}", get(files::get_scenes))
        .route("/api/mv/get_scenes/{id}/markdown", get(files::get_scenes_markdown))
        .route("/readyz", get(readiness::readyz).layer(Extension(Arc::new(readiness::Probes::default()))));
    let mut routes = Routed::new()
        .route("/api/mv/get_config_flavors", get(flavors::get_config_flavors))
        .route("/api/mv/get_character_reference/{id}", get(files::get_character_reference))
        .route("/api/mv/get_video/{id}", get(files::get_video))
        .route("/api/mv/get_video/{id}/info", get(files::get_video_info))
        .route("/api/mv/get_audio/{id}", get(audio::get_audio))
        .route("/api/mv/get_audio/{id}/info", get(audio::get_audio_info))
        .route(extract::UPLOAD_IMAGE_PATH, post(upload::upload_character_reference))
        .route("/api/openapi.json", get(openapi::openapi_json))
        // The song is streamed under its own cap (`MV_MAX_AUDIO_BYTES`), not the 1 MiB of every
        // other body: the handler reads the body as a stream, which the global limit does not
        // bound, and `extract::RefuseDeclaredOversize` leaves this path's Content-Length to it.
        .merge(
            Routed::new()
                .route(extract::UPLOAD_AUDIO_PATH, post(audio::upload_audio))
                .map(|r| r.layer(Extension(songs))),
        );
    if let Some(engine) = jobs {
        // The job routes have the engine as their own state.
        let job_routes = Routed::new()
            .route("/api/mv/jobs", post(jobs::submit_job).get(jobs::list_jobs))
            .route("/api/mv/jobs/{id}", get(jobs::get_job))
            .route("/api/mv/jobs/{id}/events", get(jobs::job_events))
            .route("/api/mv/jobs/{id}/cancel", post(jobs::cancel_job))
            .route("/api/mv/jobs/{id}/deliveries", get(deliveries::list_deliveries))
            .route("/api/mv/jobs/{id}/deliveries/{delivery_id}/retry", post(deliveries::retry_delivery))
            // Outside `/api/mv/jobs`, and outside the API key check (its signature is the check).
            .route(
                crate::providers::config::REPLICATE_WEBHOOK_PATH,
                post(replicate_webhook::receive)
                    .layer(Extension(replicate_webhook::Verifier(replicate_secret.map(Arc::new)))),
            )
            .map(|r| r.with_state(engine.clone()));
        // Projects live in the jobs database, so they are served with it.
        let project_routes = Routed::new()
            .route(extract::CREATE_PROJECT_PATH, get(projects::list_projects).post(projects::create_project))
            .route(
                "/api/mv/projects/{id}",
                get(projects::get_project).patch(projects::patch_project).delete(projects::delete_project),
            )
            .route("/api/mv/projects/{id}/scenes/reorder", patch(projects::reorder_scenes))
            .route(
                "/api/mv/projects/{id}/scenes/{sequence}",
                patch(projects::patch_scene).delete(projects::delete_scene),
            )
            .route("/api/mv/projects/{id}/scenes", post(projects::add_scene))
            .route("/api/mv/projects/{id}/scenes/{sequence}/trim", post(projects::trim_scene))
            .route("/api/mv/projects/{id}/scenes/{sequence}/upload_video", post(projects::upload_video))
            .route("/api/mv/projects/{id}/compose", post(projects::compose))
            .route("/api/mv/projects/{id}/final-video", get(projects::final_video))
            .route("/api/mv/projects/{id}/generate", post(projects::generate))
            .route("/api/mv/projects/{id}/cancel", post(projects::cancel))
            .route("/api/mv/projects/{id}/events", get(projects::events))
            .route("/api/mv/projects/{id}/deliveries", get(deliveries::list_project_deliveries))
            .route("/api/mv/projects/{id}/deliveries/{delivery_id}/retry", post(deliveries::retry_project_delivery))
            .route("/api/mv/get_director_configs", get(projects::get_director_configs))
            .route("/api/mv/generate_scene_video/{project_id}/{scene_sequence}", post(generate::generate_scene_video))
            // A project's song is streamed under the song's cap, as `upload_audio`'s is.
            .map(|r| r.layer(Extension(songs)));
        // The sync endpoints run as jobs, `/readyz` checks the engine's database.
        engine_routes = engine_routes.merge(project_routes).merge(job_routes).map(|r| r.layer(Extension(engine)));
    }
    routes = routes.merge(engine_routes);
    if metrics {
        routes = routes.route("/metrics", get(crate::telemetry::metrics_text));
    }
    routes
        .route("/health", get(health::health))
        .route("/", get(crate::page::create_page))
        .route("/create", get(crate::page::create_page))
        .route("/assets/{file}", get(crate::page::asset))
}
