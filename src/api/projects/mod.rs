//! `/api/mv/projects*`: music-video projects as the Python service's project UI drives them
//! (`../shared/reference/original-projects.md` §2 and §8), over `crate::projects`.
//!
//! Every project answer carries an `ETag` (the project's version); a change sent with `If-Match`
//! is made only if the project is still at that version (412 otherwise). Their UI sends none:
//! its changes are last-writer-wins, field by field (each change sets only what it names).
//!
//! - `create`: `POST /api/mv/projects` (their multipart form with the song, or JSON);
//! - `scenes`: the scene edits (reorder, texts, delete, trim, add, upload a clip);
//! - `making`: compose, the final video, `generate` (the whole video server-side), cancel, events.

pub mod create;
pub mod making;
pub mod scenes;

pub use create::create_project;
pub use making::{cancel, compose, events, final_video, generate};
pub use scenes::{add_scene, delete_scene, patch_scene, reorder_scenes, trim_scene, upload_video};

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{ValidJson, ValidPath};
use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::projects::{Bind, Changed, Edit};
use crate::projects::answer::{ProjectDeleted, ProjectList, ProjectResponse, summary};
use crate::projects::words::{COMPOSING, SETTABLE};
use crate::projects::{self, Project, copies};
use crate::state::AppState;

/// The project's answer with its `ETag`.
pub(super) fn project_answer(project: &Project) -> Response {
    with_etag(Json(ProjectResponse::from(project)).into_response(), project.row.version)
}

/// `response` with the ETag of a project at `version`.
pub(super) fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(etag) = HeaderValue::from_str(&projects::etag(version)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The version an `If-Match` names; `None` without one (or `*`).
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/").trim_matches('"').parse().map(Some).map_err(|_| {
        ApiError::new(
            ErrorKind::PreconditionFailed,
            format!("If-Match {text:?} is not an ETag this service gave"),
            json!("if-match"),
        )
    })
}

/// 412: the project is no longer at the version an `If-Match` named.
pub(super) fn stale(project: &Project) -> ApiError {
    ApiError::new(
        ErrorKind::PreconditionFailed,
        format!("project {} changed since it was read: If-Match names another version; read it again", project.row.id),
        json!({ "etag": project.etag() }),
    )
}

/// How often a change planned from a read is planned again because the project changed between
/// the read and the write.
const REPLANS: usize = 8;

/// Reads project `id`, plans `edits` from what was read, and writes them only at the version read,
/// so a rule checked on the read (never the last scene, the next free sequence, the current
/// scenes' order) still holds when written: a change that lands in between (another editor, a job
/// settled) makes it read and plan again. With an `If-Match` (`expected`), only at that version
/// (412). The project as read and what `plan` returned.
pub(super) async fn change_as_read<T>(
    state: &AppState,
    jobs: &Jobs,
    id: &str,
    expected: Option<i64>,
    mut plan: impl FnMut(&Project) -> Result<(Vec<Edit>, T), ApiError>,
) -> Result<(Project, T), ApiError> {
    for _ in 0..REPLANS {
        let project = projects::load(state, jobs, id).await?;
        if expected.is_some_and(|v| v != project.row.version) {
            return Err(stale(&project));
        }
        let (edits, planned) = plan(&project)?;
        match jobs.store().change_project(id, Some(project.row.version), &edits).await.map_err(unavailable)? {
            Changed::Done(_) => return Ok((project, planned)),
            Changed::Missing => return Err(projects::not_found(id)),
            Changed::Stale(_) if expected.is_some() => return Err(stale(&project)),
            Changed::Stale(_) => {}
        }
    }
    Err(busy(format!("project {id} is being changed by others too often; try again")))
}

pub(super) fn busy(message: String) -> ApiError {
    ApiError::new(ErrorKind::ProjectBusy, message, Value::Null)
}

/// The error answers a project route may give, listed once for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only read by the OpenAPI derive, never constructed.
pub enum ProjectErrors {
    #[response(status = 400, description = "Invalid values: a project id that is not a UUID, a sequence below 1, …")]
    BadRequest(crate::error::ErrorBody),
    #[response(status = 401, description = "A valid API key is required")]
    Unauthorized(crate::error::UnauthorizedBody),
    #[response(status = 404, description = "No such project, or no such scene in it")]
    NotFound(crate::error::ErrorBody),
    #[response(status = 409, description = "The project's state forbids it now (`ProjectBusy`)")]
    Busy(crate::error::ErrorBody),
    #[response(status = 412, description = "`If-Match` names another version of the project")]
    Stale(crate::error::ErrorBody),
    #[response(status = 413, description = "Body larger than allowed")]
    TooLarge(crate::error::ErrorBody),
    #[response(status = 415, description = "Not JSON (or not the file type the route takes)")]
    Unsupported(crate::error::ErrorBody),
    #[response(status = 422, description = "JSON of the wrong shape (`details` names the field)")]
    WrongShape(crate::error::ErrorBody),
    #[response(status = 500, description = "A file could not be stored, or a pinned flavor restored")]
    Internal(crate::error::ErrorBody),
    #[response(
        status = 503,
        description = "The jobs database or the store is unavailable, or the queue is full; see Retry-After"
    )]
    Unavailable(crate::error::ErrorBody),
}

/// A project with its scenes, as their UI reads it; finished jobs' results are written in first.
#[utoipa::path(
    get,
    path = "/api/mv/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)")),
    responses(
        (status = 200, description = "The project", body = ProjectResponse,
            headers(("ETag" = String, description = "The project's version, for If-Match"))),
        ProjectErrors,
    )
)]
pub async fn get_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    // Unchanged since an answer was kept, and waiting for no job: that answer.
    let head = jobs.store().project_head(&id).await.map_err(unavailable)?;
    let Some((version, waiting)) = head else { return Err(projects::not_found(&id)) };
    if !waiting && let Some(body) = copies::get(&id, version) {
        return Ok(json_bytes(body, version));
    }
    let project = projects::load(&state, &jobs, &id).await?;
    let body = Bytes::from(
        serde_json::to_vec(&ProjectResponse::from(&project)).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    if project.waits_for().is_empty() {
        copies::put(&id, project.row.version, body.clone());
    }
    Ok(json_bytes(body, project.row.version))
}

/// A project's JSON answer from its bytes, with its ETag.
fn json_bytes(body: Bytes, version: i64) -> Response {
    let response = ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    with_etag(response, version)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// pending, processing, composing, completed or failed.
    status: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<i64>,
    /// 1 to 100 (default 50).
    limit: Option<i64>,
}

/// Projects newest first, without their scenes (with their counts).
#[utoipa::path(
    get,
    path = "/api/mv/projects",
    tag = "projects",
    params(ListQuery),
    responses((status = 200, description = "A page of projects", body = ProjectList), ProjectErrors)
)]
pub async fn list_projects(
    Extension(jobs): Extension<Arc<Jobs>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(super::extract::query_error)?;
    if let Some(status) = &query.status
        && !SETTABLE.contains(&status.as_str())
        && status != COMPOSING
    {
        return Err(ApiError::invalid("status", "one of pending, processing, composing, completed, failed"));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "between 1 and 100"));
    }
    let rows = jobs.store().list_projects(query.status.as_deref(), query.cursor, limit).await.map_err(unavailable)?;
    let next = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.seq)).flatten();
    let projects: Vec<ProjectResponse> = rows
        .iter()
        .map(|row| {
            let (n, completed, failed) = row.counts.unwrap_or_default();
            summary(row, (n as usize, completed as usize, failed as usize))
        })
        .collect();
    Ok(Json(ProjectList { projects, next_cursor: next }).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPatch {
    /// pending, processing, completed or failed (not composing).
    status: Option<String>,
    /// A new https webhook URL for the project (`null` removes it), checked as at create.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    webhook: Option<Value>,
    /// Which of `start`, `progress`, `completed` it is sent (kept when left out).
    #[serde(default, rename = "webhook_events_filter", alias = "webhookEventsFilter", deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    webhook_events_filter: Option<Value>,
    /// Their UI sends `characterReferenceImageId`, `scenes`, `progress`: ignored, as theirs did.
    #[serde(flatten)]
    #[schema(ignore)]
    _ignored: serde_json::Map<String, Value>,
}

/// A field that is present, even as `null` (`Some(Value::Null)`), apart from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(d).map(Some)
}

/// Sets the project's status, webhook and its events filter; other fields are ignored (their UI
/// sends some).
#[utoipa::path(
    patch,
    path = "/api/mv/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "The project id"), ("If-Match" = Option<String>, Header, description = "The ETag read")),
    request_body = ProjectPatch,
    responses((status = 200, description = "The project", body = ProjectResponse), ProjectErrors)
)]
pub async fn patch_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
    ValidJson(patch): ValidJson<ProjectPatch>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    // Checked before any change, so a refused webhook leaves the status unchanged too.
    let stored = projects::load(&state, &jobs, &id).await?;
    let hook =
        projects::hooks::at_patch(&stored.row, patch.webhook, patch.webhook_events_filter, jobs.config().webhooks)
            .await?;
    let mut expected = if_match(&headers)?;
    if let Some(sets) = hook {
        projects::change(&jobs, &id, expected, &[Edit::Project(sets)]).await?;
        // The `If-Match` was checked by that change, which bumped the version the status sees.
        expected = None;
    }
    if let Some(status) = patch.status {
        if !SETTABLE.contains(&status.as_str()) {
            return Err(ApiError::body_mismatch("status", "status: one of pending, processing, completed, failed"));
        }
        // Not over a compose in flight: its status is what keeps a second compose from starting
        // beside it (and the cut's end sets it).
        change_as_read(&state, &jobs, &id, expected, |project| {
            if project.row.status == COMPOSING && project.row.final_job_id.is_some() {
                return Err(busy(format!("Cannot set the status: project {id} is composing")));
            }
            Ok((vec![Edit::Project(vec![("status", Bind::from(status.clone()))])], ()))
        })
        .await?;
    }
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project))
}

/// Deletes the project, its scenes and its stored files (song, clips, final cut); its running
/// jobs are canceled.
#[utoipa::path(
    delete,
    path = "/api/mv/projects/{id}",
    tag = "projects",
    params(("id" = String, Path, description = "The project id"), ("If-Match" = Option<String>, Header, description = "The ETag read")),
    responses((status = 200, description = "Deleted", body = ProjectDeleted), ProjectErrors)
)]
pub async fn delete_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use crate::storage::Collection;
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    if let Some(expected) = if_match(&headers)?
        && expected != project.row.version
    {
        return Err(stale(&project));
    }
    for job in project.waits_for() {
        if let Err(e) = jobs.cancel(job).await {
            tracing::warn!(project = %id, job, error = %e, "a deleted project's job could not be canceled");
        }
    }
    copies::forget(&id);
    let Some(taken) = jobs.store().delete_project(&id).await.map_err(unavailable)? else {
        return Err(projects::not_found(&id));
    };
    // The rows are gone first: a file delete that fails leaves an unreferenced file, never a
    // project naming a missing one.
    // Every take it named (`taken`: earlier clips and cuts too, recorded since migration 18),
    // and what it names now (a take recorded by an older build is only there).
    let mut videos: Vec<&str> = taken.iter().map(String::as_str).collect();
    videos.extend(project.scenes.iter().filter_map(|s| s.video_id.as_deref()));
    videos.extend(project.row.final_video_id.as_deref());
    videos.sort_unstable();
    videos.dedup();
    let files = videos
        .into_iter()
        .map(|v| (Collection::Video, v))
        .chain(project.row.audio_id.as_deref().map(|a| (Collection::Audio, a)));
    let mut deleted = 0;
    for (kind, file) in files {
        // A song another project still names stays (projects created with its `audioId`).
        if kind == Collection::Audio {
            match jobs.store().audio_in_use(file).await {
                Ok(false) => {}
                Ok(true) => continue,
                Err(e) => {
                    tracing::warn!(project = %id, file, error = %e, "a deleted project's song was kept: its use could not be read");
                    continue;
                }
            }
        }
        match state.storage.delete(kind, file).await {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(project = %id, file, error = %e, "a deleted project's file could not be deleted"),
        }
    }
    let answer =
        ProjectDeleted { message: "Project deleted successfully".into(), project_id: id, deleted_files: deleted };
    Ok(Json(answer).into_response())
}

/// The flavor names, as their director select reads them: a project created with one pins it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DirectorConfigs {
    pub configs: Vec<String>,
}

/// Their director select's list: mvgen's flavors.
#[utoipa::path(
    get,
    path = "/api/mv/get_director_configs",
    tag = "projects",
    responses((status = 200, description = "The flavor names", body = DirectorConfigs),
        (status = 401, description = "A valid API key is required", body = crate::error::UnauthorizedBody))
)]
pub async fn get_director_configs(State(state): State<Arc<AppState>>) -> Response {
    Json(DirectorConfigs { configs: state.flavors.names() }).into_response()
}
