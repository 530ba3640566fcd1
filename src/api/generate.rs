//! The generation endpoints (`POST create_scenes`, `generate_character_reference`,
//! `generate_video`): one named handler each over [`respond`], which plans the request through
//! [`crate::generation::driver`], runs it as a job (submit, then wait) and answers with the
//! `X-Config-Flavor`, `X-Config-Flavor-Hash` and `X-Job-Id` headers.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::HookedJson;
use crate::api_keys::KeyScope;
use crate::error::{self, ApiError, ErrorKind};
use crate::generation::character::{Character, CharacterReferenceBody, CharacterReferenceResponse};
use crate::generation::driver;
use crate::generation::final_cut::{FinalCut, StitchVideosBody, StitchVideosResponse};
use crate::generation::inputs;
use crate::generation::scenes::{CreateScenesBody, CreateScenesResponse, Scenes};
use crate::generation::stored;
use crate::generation::video::{GenerateVideoBody, GenerateVideoResponse, Video};
use crate::generation::{FlavorReport, Generation};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::state::JobStatus;
use crate::jobs::store::StoreError;
use crate::jobs::store::projects::{Bind, Edit};
use crate::jobs::store::rows::JobRow;
use crate::projects;
use crate::projects::words::PROCESSING;
use crate::providers::RunContext;
use crate::state::AppState;
use crate::webhooks::target::{self, Requested};

/// A generation endpoint's OpenAPI operation around its handler: the endpoints differ only in
/// their path, body, answer, what a 200 means, and any answer of their own.
macro_rules! generation_endpoint {
    ($path:literal, $body:ty => $answer:ty, $done:literal $(, $extra:tt)*; $handler:item) => {
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
                $($extra,)*
                error::GenerationErrors,
            )
        )]
        $handler
    };
}

generation_endpoint! { "/api/mv/create_scenes", CreateScenesBody => CreateScenesResponse, "Scenes written";
pub async fn create_scenes(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<CreateScenesBody>,
) -> Result<Response, ApiError> {
    // Checked as the body's own field (blank is none; not a UUID is a 400 naming it).
    let named = inputs::project_id(body.project_id.clone())?;
    if let (Some(project), Some(jobs)) = (named, jobs.as_deref()) {
        // Their edit page: the scenes are written into the project before the answer.
        let project = projects::load(&state, jobs, &project).await?;
        let pinned = projects::pinned(&state, jobs, &project.row, body.config_flavor.as_deref()).await?;
        let link = ProjectLink::Scenes { project: project.row.id };
        return respond_for_project::<Scenes>(&state, jobs, scope.as_deref(), body, pinned, link, webhook).await;
    }
    respond::<Scenes>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

generation_endpoint! { "/api/mv/generate_character_reference", CharacterReferenceBody => CharacterReferenceResponse,
    "Images generated and stored";
pub async fn generate_character_reference(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<CharacterReferenceBody>,
) -> Result<Response, ApiError> {
    respond::<Character>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

generation_endpoint! { "/api/mv/generate_video", GenerateVideoBody => GenerateVideoResponse, "Video generated and stored";
pub async fn generate_video(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(mut body, webhook): HookedJson<GenerateVideoBody>,
) -> Result<Response, ApiError> {
    let named = inputs::project_and_sequence(body.project_id.clone(), body.sequence)?;
    if let ((Some(project), Some(sequence)), Some(jobs)) = (named, jobs.as_deref()) {
        // A project's scene: rendered with the project's flavor and reference image, and written
        // into the scene before the answer (their UI reads the scene's clip next).
        let project = projects::load(&state, jobs, &project).await?;
        let scene = project.scene(i64::from(sequence))?;
        if body.character_reference_id.is_none() && body.reference_image_base64.is_none() {
            body.character_reference_id =
                scene.reference_image_id.clone().or_else(|| project.row.character_image_id.clone());
        }
        let pinned = projects::pinned(&state, jobs, &project.row, body.config_flavor.as_deref()).await?;
        let link = ProjectLink::Video { project: project.row.id.clone(), sequence: scene.sequence };
        return respond_for_project::<Video>(&state, jobs, scope.as_deref(), body, pinned, link, webhook).await;
    }
    respond::<Video>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

/// The query of `generate_scene_video`.
#[derive(Debug, Deserialize)]
pub struct SceneVideoQuery {
    /// Write the clip into the scene (default true, as theirs).
    write_to_db: Option<bool>,
    /// `replicate` (default) or `gemini`.
    backend: Option<String>,
}

/// `POST /api/mv/generate_scene_video/{project_id}/{scene_sequence}?write_to_db=&backend=` (no
/// body): their edit dialog's regenerate. The scene's own prompt, rendered with the project's
/// pinned flavor and reference image, synchronously; with `write_to_db` (the default) the new
/// clip (a new id, so a new URL their player reloads) replaces the scene's, trims reset. The
/// answer is `generate_video`'s plus their `videoUrl`, `s3Key` (the video id) and `metadata`
/// fields `project_id`, `scene_sequence`, `backend`, `write_to_db`, `reference_image_used`.
#[utoipa::path(
    post, path = "/api/mv/generate_scene_video/{project_id}/{scene_sequence}", tag = "projects",
    params(("project_id" = String, Path, description = "The project id"), ("scene_sequence" = i64, Path, description = "The scene's sequence"),
        ("write_to_db" = Option<bool>, Query, description = "Write the clip into the scene (default true)"),
        ("backend" = Option<String>, Query, description = "replicate (default) or gemini")),
    responses(
        (status = 200, description = "Rendered (and written into the scene)", body = GenerateVideoResponse),
        (status = 404, description = "No such project or scene", body = crate::error::ErrorBody),
        (status = 409, description = "The project is busy", body = crate::error::ErrorBody),
        error::GenerationErrors,
    )
)]
pub async fn generate_scene_video(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    scope: Option<Extension<KeyScope>>,
    super::extract::ValidPath((project, sequence)): super::extract::ValidPath<(String, i64)>,
    query: Result<axum::extract::Query<SceneVideoQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) = query.map_err(super::extract::query_error)?;
    let project = projects::load(&state, &jobs, &projects::parse_id(&project)?).await?;
    let scene = project.scene(projects::parse_sequence(sequence)?)?;
    let reference = scene.reference_image_id.clone().or_else(|| project.row.character_image_id.clone());
    let body: GenerateVideoBody = serde_json::from_value(json!({
        "prompt": scene.prompt,
        "negative_prompt": scene.negative_prompt,
        "character_reference_id": reference,
        "backend": query.backend,
        "project_id": project.row.id,
        "sequence": scene.sequence,
        // Long enough for its place in the beat plan, while it follows one.
        "duration": projects::planning::clip_seconds(&project, scene),
    }))
    .map_err(|e| ApiError::internal(format!("scene {sequence}: {e}")))?;
    let write = query.write_to_db.unwrap_or(true);
    let response = if write {
        let pinned = projects::pinned(&state, &jobs, &project.row, None).await?;
        let link = ProjectLink::Video { project: project.row.id.clone(), sequence: scene.sequence };
        respond_for_project::<Video>(&state, &jobs, scope.as_deref(), body, pinned, link, None).await?
    } else {
        let pinned = projects::pinned(&state, &jobs, &project.row, None).await?;
        let output = output_for_project::<Video>(
            &state,
            &jobs,
            scope.as_deref().map(KeyScope::as_str),
            body,
            pinned,
            &project.row.id,
        )
        .await?;
        axum::Json(output).into_response()
    };
    if response.status() != StatusCode::OK {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let mut answer: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    answer["videoUrl"] = answer["video_url"].clone();
    answer["s3Key"] = answer["video_id"].clone();
    answer["metadata"]["project_id"] = json!(project.row.id);
    answer["metadata"]["scene_sequence"] = json!(scene.sequence);
    answer["metadata"]["write_to_db"] = json!(write);
    answer["metadata"]["reference_image_used"] = json!(reference.is_some());
    let mut rewritten = axum::Json(answer).into_response();
    for name in ["x-config-flavor", "x-config-flavor-hash", "x-job-id"] {
        if let Some(value) = parts.headers.get(name) {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    Ok(rewritten)
}

generation_endpoint! { "/api/mv/stitch-videos", StitchVideosBody => StitchVideosResponse,
    "The clips (and the song) cut into one stored video",
    (status = 404, description = "A clip named is not stored (`details.field` names it)", body = crate::error::ErrorBody);
pub async fn stitch_videos(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    scope: Option<Extension<KeyScope>>,
    HookedJson(body, webhook): HookedJson<StitchVideosBody>,
) -> Result<Response, ApiError> {
    respond::<FinalCut>(&state, jobs.as_deref(), scope.as_deref(), body, webhook).await
}
}

/// A sync endpoint of kind `G`: plan (validate, choose the flavor, take a generation slot), run,
/// answer. With a job engine the run is a job (submit and wait, `X-Job-Id` on the answer): a
/// caller who hangs up no longer stops it, and its result is kept. Without one (the in-process
/// test app) the request runs the plan itself, the same steps.
async fn respond<G: Generation>(
    state: &AppState,
    jobs: Option<&Arc<Jobs>>,
    scope: Option<&KeyScope>,
    input: G::Input,
    webhook: Option<Requested>,
) -> Result<Response, ApiError> {
    let webhook = checked_webhook(webhook, jobs).await?;
    let (planned, slot) = driver::plan_now::<G>(state, input)?;
    let Some(jobs) = jobs else {
        let answer = driver::run(state, &planned, RunContext::detached()).await?;
        return Ok(with_flavor(&planned.flavor, answer));
    };
    let stored = stored::to_store(state, planned).await?;
    // The slot moves to the job's run: it is held while the generation runs, not while we wait.
    let id = jobs.submit_now(G::KIND, stored, slot, scope.map(KeyScope::as_str), webhook.as_ref()).await?;
    wait_and_answer(jobs, id).await
}

/// A body's `webhook`, checked before any slot is taken or anything stored: a refused webhook
/// costs nothing.
async fn checked_webhook(
    webhook: Option<Requested>,
    jobs: Option<&Arc<Jobs>>,
) -> Result<Option<crate::jobs::store::deliveries::WebhookTarget>, ApiError> {
    match (webhook, jobs) {
        (None, _) => Ok(None),
        (Some(requested), Some(jobs)) => Ok(Some(target::check(requested, jobs.config().webhooks).await?)),
        (Some(_), None) => Err(ApiError::new(
            ErrorKind::ValidationError,
            "webhook: this server runs generations without the job engine, which sends webhooks",
            json!("webhook"),
        )),
    }
}

/// Where a project's generation writes its result: the project's scenes, or one scene's clip.
enum ProjectLink {
    Scenes { project: String },
    Video { project: String, sequence: i64 },
}

/// [`respond`] for a project: planned with the project's pinned flavor; once stored, the project
/// names the job (so whoever reads the project next writes its result in, even if this caller
/// hangs up), and after the wait the result is written in before the answer.
async fn respond_for_project<G: Generation>(
    state: &AppState,
    jobs: &Arc<Jobs>,
    scope: Option<&KeyScope>,
    input: G::Input,
    pinned: driver::Pinned,
    link: ProjectLink,
    webhook: Option<Requested>,
) -> Result<Response, ApiError> {
    let webhook = checked_webhook(webhook, Some(jobs)).await?;
    let (planned, slot) = driver::plan_now_pinned::<G>(state, input, pinned)?;
    let mut stored = stored::to_store(state, planned).await?;
    if let ProjectLink::Scenes { project } = &link {
        stored.project_id = Some(project.clone());
    }
    let id = jobs.submit_now(G::KIND, stored, slot, scope.map(KeyScope::as_str), webhook.as_ref()).await?;
    let (project, edit) = match link {
        ProjectLink::Scenes { project } => (project, Edit::Project(vec![("scenes_job_id", id.clone().into())])),
        ProjectLink::Video { project, sequence } => {
            let sets = vec![
                ("video_job_id", id.clone().into()),
                ("status", PROCESSING.into()),
                ("error_message", Bind::none()),
            ];
            (project, Edit::Scene { sequence, sets, only_if_job: None })
        }
    };
    // A failure here leaves the job running unlinked: its result is kept in the job, and the
    // scene stays as it was for the caller to render again.
    if let Err(e) = projects::change(jobs, &project, None, &[edit]).await {
        tracing::warn!(project = %project, job = %id, error = %e.message, "a project's job could not be linked to it");
    }
    let response = wait_and_answer(jobs, id).await;
    if let Err(e) = projects::load(state, jobs, &project).await {
        tracing::warn!(project = %project, error = %e.message, "a project's finished job could not be written into it yet");
    }
    response
}

/// A generation of kind `G` for project `project`, with its pinned flavor, run as a sync job; its
/// output (or the error the sync route would answer).
pub(super) async fn output_for_project<G: Generation>(
    state: &AppState,
    jobs: &Arc<Jobs>,
    scope: Option<&str>,
    input: G::Input,
    pinned: driver::Pinned,
    project: &str,
) -> Result<serde_json::Value, ApiError> {
    let (planned, slot) = driver::plan_now_pinned::<G>(state, input, pinned)?;
    let mut stored = stored::to_store(state, planned).await?;
    stored.project_id = Some(project.to_owned());
    let id = jobs.submit_now(G::KIND, stored, slot, scope, None).await?;
    let job = jobs
        .finished(&id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::internal(format!("job {id} is gone")))?;
    match job.status {
        JobStatus::Succeeded => {
            job.output.ok_or_else(|| ApiError::internal(format!("job {id} succeeded with no output")))
        }
        JobStatus::Failed => Err(job.api_error().unwrap_or_else(|| ApiError::internal(format!("job {id} failed")))),
        status => Err(ApiError::new(
            ErrorKind::JobStillRunning,
            format!("job {id} is {status}; follow it at /api/mv/jobs/{id}"),
            json!({ "job_id": id, "status": status, "retry_after_seconds": 10 }),
        )),
    }
}

/// Waits for sync job `id` and answers with its result (or where to follow it).
async fn wait_and_answer(jobs: &Arc<Jobs>, id: String) -> Result<Response, ApiError> {
    let mut response = match jobs.finished_with_text(&id).await {
        Ok(Some((job, _))) if !job.status.is_final() && jobs.sync_waits_cut() => {
            // Shutdown's drain is about to cut this request: the job goes on (released to the
            // queue at exit, then on any replica) and the caller follows it by its id. 503, not
            // the sync wait's 504: this replica is going away, the job is not slow.
            let mut response = ApiError::new(
                ErrorKind::JobStillRunning,
                format!(
                    "this replica is shutting down and job {id} is still {}; it goes on: follow it at \
                     /api/mv/jobs/{id}",
                    job.status
                ),
                json!({ "job_id": id, "status": job.status, "retry_after_seconds": 5 }),
            )
            .into_response();
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
        Ok(Some((job, output_text))) => answer(&id, job, output_text)?,
        Ok(None) => return Err(ApiError::internal(format!("job {id} is gone"))),
        Err(e @ StoreError::Unreadable { .. }) => return Err(unavailable(e)),
        // Stored, but the database was unreadable for the whole wait: the job is kept, and the
        // caller may retry or follow it by its id.
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "jobs database unreadable for the whole sync wait");
            ApiError::new(
                ErrorKind::DatabaseUnavailable,
                format!(
                    "the jobs database was unreachable for the whole sync wait; job {id} is kept: \
                     follow it at /api/mv/jobs/{id}"
                ),
                json!({ "job_id": id, "retry_after_seconds": 5 }),
            )
            .into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-job-id", value);
    }
    Ok(response)
}

/// The sync answer for job `id` as the wait left it: its output, its stored error, or where to
/// follow it. `output_text`: the output as the JSON text the run here stored, answered as it is
/// (the same bytes `Json` would write from `job.output`, without serialising it again).
fn answer(id: &str, job: JobRow, output_text: Option<String>) -> Result<Response, ApiError> {
    Ok(match job.status {
        JobStatus::Succeeded => {
            let report = FlavorReport::deserialize(&job.config_flavor)
                .map_err(|e| ApiError::internal(format!("job {id}: its flavor report: {e}")))?;
            match output_text {
                Some(text) => flavored(&report, json_text_response(text)),
                None => {
                    let output =
                        job.output.ok_or_else(|| ApiError::internal(format!("job {id} succeeded with no output")))?;
                    with_flavor(&report, output)
                }
            }
        }
        // Waited `MVGEN_SYNC_WAIT`: the job goes on; the caller follows it by its id.
        JobStatus::Queued | JobStatus::Processing => ApiError::new(
            ErrorKind::JobStillRunning,
            format!("job {id} is still {} after the sync wait; follow it at /api/mv/jobs/{id}", job.status),
            json!({ "job_id": id, "status": job.status, "retry_after_seconds": 10 }),
        )
        .into_response(),
        // The stored kind, message and details: the answer the run itself would have given.
        JobStatus::Failed => {
            job.api_error().unwrap_or_else(|| ApiError::internal(format!("job {id} failed"))).into_response()
        }
        JobStatus::Canceled => ApiError::new(
            ErrorKind::JobCanceled,
            format!("job {id} was canceled before it finished"),
            json!({ "job_id": id }),
        )
        .into_response(),
    })
}

/// A JSON answer carrying `X-Config-Flavor: <used>` and `X-Config-Flavor-Hash: <its hash>`.
fn with_flavor<T: Serialize>(report: &FlavorReport, body: T) -> Response {
    flavored(report, axum::Json(body).into_response())
}

/// `text`, JSON already written, answered as `Json` answers: 200, `Content-Type: application/json`.
fn json_text_response(text: String) -> Response {
    ([(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], text).into_response()
}

/// `response` with `X-Config-Flavor` and `X-Config-Flavor-Hash` set from `report`.
fn flavored(report: &FlavorReport, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&report.used) {
        response.headers_mut().insert("x-config-flavor", value);
    }
    if let Ok(value) = HeaderValue::from_str(&report.hash) {
        response.headers_mut().insert("x-config-flavor-hash", value);
    }
    response
}
