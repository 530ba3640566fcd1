//! `/api/mv/projects*`: music-video projects as the Python service's project UI drives them
//! (`../shared/reference/original-projects.md` §2 and §8), over `crate::projects`.
//!
//! Every project answer carries an `ETag` (the project's version); a change sent with `If-Match`
//! is made only if the project is still at that version (412 otherwise). Their UI sends none:
//! its changes are last-writer-wins, field by field (each change sets only what it names).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::audio::{AudioLimit, MULTIPART_OVERHEAD, discard, multipart_error, multipart_io_error, store_song};
use super::extract::{ValidJson, ValidPath};
use crate::api_keys::KeyScope;
use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::now_ms;
use crate::jobs::store::projects::{Bind, Edit, ProjectRow};
use crate::projects::answer::{ProjectResponse, SceneResponse, summary};
use crate::projects::words::{COMPOSING, FAILED, MODES, MUSIC_VIDEO, PENDING, PROCESSING, SETTABLE};
use crate::projects::{self, Project, drive};
use crate::state::AppState;

/// The longest text field of a project (their UI's own bounds are smaller).
const MAX_TEXT_CHARS: usize = 20_000;

/// The project's answer with its `ETag`.
fn project_answer(project: &Project, status: StatusCode) -> Response {
    let mut response = (status, Json(ProjectResponse::from(project))).into_response();
    if let Ok(etag) = HeaderValue::from_str(&project.etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// The version an `If-Match` names; `None` without one (or `*`).
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
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

/// The fields of a new project, from a multipart form or a JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewProject {
    mode: Option<String>,
    prompt: Option<String>,
    character_description: Option<String>,
    character_reference_image_id: Option<String>,
    product_description: Option<String>,
    product_reference_image_id: Option<String>,
    director_config: Option<String>,
    /// A song already uploaded (`upload_audio`), for JSON bodies.
    #[serde(alias = "audio_id")]
    audio_id: Option<String>,
    #[serde(alias = "config_flavor")]
    config_flavor: Option<String>,
}

/// `POST /api/mv/projects`: multipart (their UI, the song as the `audio` part) or JSON (with an
/// `audioId` from `upload_audio`) → 201 `{projectId, status, message}`. Nothing is generated.
pub async fn create_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    scope: Option<Extension<KeyScope>>,
    request: Request,
) -> Result<Response, ApiError> {
    let limit = request.extensions().get::<AudioLimit>().map_or(crate::limits::DEFAULT_MAX_AUDIO_BYTES, |l| l.0);
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (fields, song) = if crate::media::essence(content_type) == "multipart/form-data" {
        form(&state, request, limit).await?
    } else {
        let ValidJson(fields) = ValidJson::<NewProject>::from_request(request, &()).await?;
        (fields, None)
    };
    let song_id = song.clone();
    match create(&state, &jobs, scope.as_deref(), fields, song).await {
        Ok(response) => Ok(response),
        Err(e) => {
            // Refused after its song was stored: the song goes too.
            if let Some(id) = song_id {
                discard(&state, &id).await;
            }
            Err(e)
        }
    }
}

/// Reads their create form: text fields, and the `audio` part streamed into the store as a song.
async fn form(state: &AppState, request: Request, limit: u64) -> Result<(NewProject, Option<String>), ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::new(ErrorKind::InvalidBody, format!("multipart body: {e}"), json!("content-type")))?;
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit + MULTIPART_OVERHEAD));
    let raw = request.into_body().into_data_stream().map_err(std::io::Error::other);
    let mut multipart = multer::Multipart::with_constraints(raw, boundary, constraints);
    let mut fields = serde_json::Map::new();
    let mut song = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, limit)),
        };
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "audio" if song.is_none() => {
                let stream = field.map_err(multipart_io_error).boxed();
                song = Some(store_song(state, stream, limit).await?.audio_id);
            }
            // Their product image: not used by a music video; read past.
            "images" | "audio" => while field.chunk().await.map_err(|e| multipart_error(e, limit))?.is_some() {},
            _ => {
                let text = field.text().await.map_err(|e| multipart_error(e, limit))?;
                fields.insert(name, Value::String(text));
            }
        }
    }
    let parsed = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::new(ErrorKind::RequestValidationError, format!("project form: {e}"), Value::Null));
    match parsed {
        Ok(fields) => Ok((fields, song)),
        Err(e) => {
            if let Some(id) = &song {
                discard(state, id).await;
            }
            Err(e)
        }
    }
}

async fn create(
    state: &AppState,
    jobs: &Jobs,
    scope: Option<&KeyScope>,
    fields: NewProject,
    song: Option<String>,
) -> Result<Response, ApiError> {
    let text = |name: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
        let value = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_TEXT_CHARS) {
            return Err(ApiError::invalid(name, format!("at most {MAX_TEXT_CHARS} characters")));
        }
        Ok(value)
    };
    let mode = text("mode", fields.mode)?.ok_or_else(|| ApiError::invalid("mode", "Field required"))?;
    if !MODES.contains(&mode.as_str()) {
        return Err(ApiError::invalid("mode", format!("Invalid mode: expected one of {}", MODES.join(", "))));
    }
    let prompt = text("prompt", fields.prompt)?.ok_or_else(|| ApiError::invalid("prompt", "Field required"))?;
    let image = |name: &str, value: Option<String>| -> Result<Option<String>, ApiError> {
        text(name, value)?
            .map(|id| crate::storage::parse_id(&id).map(|id| id.to_string()))
            .transpose()
            .map_err(|_| ApiError::invalid(name, format!("Invalid {} format", name_words(name))))
    };
    let character_image_id = image("characterReferenceImageId", fields.character_reference_image_id)?;
    let product_image_id = image("productReferenceImageId", fields.product_reference_image_id)?;
    let audio_id = match (song, text("audioId", fields.audio_id)?) {
        (Some(id), _) => Some(id),
        (None, Some(id)) => {
            let id = crate::storage::parse_id(&id)?.to_string();
            if state.storage.record(crate::storage::Collection::Audio, &id).await?.is_none() {
                return Err(ApiError::not_found(
                    format!("no song {id} (upload it with upload_audio)"),
                    json!("audioId"),
                ));
            }
            Some(id)
        }
        (None, None) => None,
    };
    if mode == MUSIC_VIDEO && audio_id.is_none() {
        return Err(ApiError::invalid("audio", "Audio file required for music-video mode"));
    }
    let director = text("directorConfig", fields.director_config)?;
    // The flavor: `config_flavor`, else their director select when it names a flavor. A project
    // pins it, so an unknown name is refused rather than quietly replaced by the default.
    let requested = text("config_flavor", fields.config_flavor)?;
    let chosen = match (&requested, &director) {
        (Some(name), _) => {
            let chosen = state.flavors.choose(Some(name));
            if chosen.fell_back() {
                return Err(ApiError::new(
                    ErrorKind::UnknownFlavor,
                    chosen.fallback_reason.unwrap_or_default(),
                    json!({ "field": "config_flavor", "available": state.flavors.names() }),
                ));
            }
            chosen
        }
        (None, Some(director)) => match state.flavors.choose(Some(director)) {
            chosen if !chosen.fell_back() => chosen,
            _ => state.flavors.choose(None),
        },
        (None, None) => state.flavors.choose(None),
    };
    let flavor = &*chosen.flavor;
    let now = now_ms();
    let row = ProjectRow {
        id: uuid::Uuid::new_v4().to_string(),
        status: PENDING.to_owned(),
        mode,
        concept_prompt: prompt,
        character_description: text("characterDescription", fields.character_description)?,
        character_image_id,
        product_description: text("productDescription", fields.product_description)?,
        product_image_id,
        director_config: director,
        audio_id,
        flavor_name: flavor.name.to_string(),
        flavor_hash: flavor.hash.to_string(),
        flavor_content: Some(crate::pinned_flavor::content(flavor).to_string()),
        api_key_scope: scope.map(|s| s.as_str().to_owned()),
        created_at: now,
        updated_at: now,
        ..ProjectRow::default()
    };
    jobs.store().insert_project(&row).await.map_err(unavailable)?;
    tracing::info!(project = %row.id, flavor = %row.flavor_name, hash = %row.flavor_hash, "project created");
    let mut response = (
        StatusCode::CREATED,
        Json(json!({
            "projectId": row.id,
            "status": PENDING,
            "message": "Project created successfully",
            "configFlavor": { "name": row.flavor_name, "hash": row.flavor_hash },
        })),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/mv/projects/{}", row.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// "characterReferenceImageId" → "character reference ID", for their messages.
fn name_words(field: &str) -> &'static str {
    if field.starts_with("product") { "product reference ID" } else { "character reference ID" }
}

/// `GET /api/mv/projects/{id}`.
pub async fn get_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    /// The `nextCursor` of the previous page.
    cursor: Option<i64>,
    limit: Option<i64>,
}

/// `GET /api/mv/projects?status=&cursor=&limit=`: newest first, without scenes.
pub async fn list_projects(
    Extension(jobs): Extension<Arc<Jobs>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorKind::ValidationError, e.body_text(), json!("query")))?;
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
    Ok(Json(json!({ "projects": projects, "nextCursor": next })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectPatch {
    status: Option<String>,
    /// Their UI sends `characterReferenceImageId`, `scenes`, `progress`: ignored, as theirs did.
    #[serde(flatten)]
    _ignored: serde_json::Map<String, Value>,
}

/// `PATCH /api/mv/projects/{id}`: `{status}` (not `composing`); unknown fields ignored.
pub async fn patch_project(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
    ValidJson(patch): ValidJson<ProjectPatch>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let mut sets = Vec::new();
    if let Some(status) = patch.status {
        if !SETTABLE.contains(&status.as_str()) {
            return Err(ApiError::body_mismatch("status", "status: one of pending, processing, completed, failed"));
        }
        sets.push(("status", Bind::from(status)));
    }
    if !sets.is_empty() {
        projects::change(&jobs, &id, if_match(&headers)?, &[Edit::Project(sets)]).await?;
    }
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project, StatusCode::OK))
}

/// `DELETE /api/mv/projects/{id}`: the project, its scenes and its stored files (song, clips,
/// final cut). Jobs still running for it finish into nothing.
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
    for job in
        project.scenes.iter().filter_map(|s| s.video_job_id.as_deref()).chain(project.row.final_job_id.as_deref())
    {
        if let Err(e) = jobs.cancel(job).await {
            tracing::warn!(project = %id, job, error = %e, "a deleted project's job could not be canceled");
        }
    }
    if !jobs.store().delete_project(&id).await.map_err(unavailable)? {
        return Err(projects::not_found(&id));
    }
    // The rows are gone first: a file delete that fails leaves an unreferenced file, never a
    // project naming a missing one.
    let files = project
        .scenes
        .iter()
        .filter_map(|s| s.video_id.as_deref().map(|v| (Collection::Video, v)))
        .chain(project.row.final_video_id.as_deref().map(|v| (Collection::Video, v)))
        .chain(project.row.audio_id.as_deref().map(|a| (Collection::Audio, a)));
    let mut deleted = 0;
    for (kind, file) in files {
        match state.storage.delete(kind, file).await {
            Ok(()) => deleted += 1,
            Err(e) => tracing::warn!(project = %id, file, error = %e, "a deleted project's file could not be deleted"),
        }
    }
    Ok(Json(json!({ "message": "Project deleted successfully", "projectId": id, "deletedFiles": deleted }))
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reorder {
    scene_order: Vec<i64>,
}

/// `PATCH /api/mv/projects/{id}/scenes/reorder`: `{sceneOrder}`, the scenes' current
/// `displaySequence`s in the new order.
pub async fn reorder_scenes(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<Reorder>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let order = body.scene_order;
    if order.is_empty() || order.iter().any(|n| *n < 1) {
        return Err(ApiError::body_mismatch("sceneOrder", "sceneOrder: at least one value, every value ≥ 1"));
    }
    let mut unique = order.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != order.len() {
        return Err(ApiError::body_mismatch("sceneOrder", "sceneOrder: no value twice"));
    }
    let project = projects::load(&state, &jobs, &id).await?;
    if project.scenes.is_empty() {
        return Err(ApiError::invalid("sceneOrder", "Project has no scenes to reorder"));
    }
    let existing: Vec<i64> = project.scenes.iter().map(|s| s.display_sequence).collect();
    let missing: Vec<i64> = existing.iter().filter(|n| !order.contains(n)).copied().collect();
    let unknown: Vec<i64> = order.iter().filter(|n| !existing.contains(n)).copied().collect();
    if !missing.is_empty() || !unknown.is_empty() {
        return Err(ApiError::new(
            ErrorKind::ValidationError,
            "Scene order mismatch",
            json!({ "missing": missing, "invalid": unknown, "existingScenes": existing, "requestedScenes": order }),
        ));
    }
    let edits: Vec<Edit> = order
        .iter()
        .enumerate()
        .filter_map(|(i, display)| {
            let scene = project.scenes.iter().find(|s| s.display_sequence == *display)?;
            Some(Edit::Scene {
                sequence: scene.sequence,
                sets: vec![("display_sequence", (i as i64 + 1).into())],
                only_if_job: None,
            })
        })
        .collect();
    projects::change(&jobs, &id, if_match(&headers)?, &edits).await?;
    let project = projects::load(&state, &jobs, &id).await?;
    let scenes: Vec<SceneResponse> = project.scenes.iter().map(SceneResponse::from).collect();
    let mut response = Json(json!({ "message": "Scenes reordered successfully", "scenes": scenes })).into_response();
    if let Ok(etag) = HeaderValue::from_str(&project.etag()) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenePatch {
    prompt: Option<String>,
    negative_prompt: Option<String>,
}

/// `PATCH /api/mv/projects/{id}/scenes/{sequence}`: the scene's texts only.
pub async fn patch_scene(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath((id, sequence)): ValidPath<(String, i64)>,
    headers: HeaderMap,
    ValidJson(patch): ValidJson<ScenePatch>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let sequence = projects::parse_sequence(sequence)?;
    let mut sets = Vec::new();
    if let Some(prompt) = patch.prompt.map(|p| p.trim().to_owned()) {
        if prompt.is_empty() || prompt.chars().count() > 5000 {
            return Err(ApiError::body_mismatch("prompt", "prompt: 1 to 5000 characters"));
        }
        sets.push(("prompt", Bind::from(prompt)));
    }
    if let Some(negative) = patch.negative_prompt.map(|p| p.trim().to_owned()) {
        if negative.chars().count() > 1000 {
            return Err(ApiError::body_mismatch("negativePrompt", "negativePrompt: at most 1000 characters"));
        }
        sets.push(("negative_prompt", Bind::from(negative)));
    }
    projects::load(&state, &jobs, &id).await?.scene(sequence)?;
    if !sets.is_empty() {
        projects::change(&jobs, &id, if_match(&headers)?, &[Edit::Scene { sequence, sets, only_if_job: None }]).await?;
    }
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(Json(SceneResponse::from(project.scene(sequence)?)).into_response())
}

/// `DELETE /api/mv/projects/{id}/scenes/{sequence}`: not while pending or composing (409), not the
/// last scene; the others are renumbered 1..n. Its clip stays stored (as theirs did).
pub async fn delete_scene(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath((id, sequence)): ValidPath<(String, i64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let sequence = projects::parse_sequence(sequence)?;
    let project = projects::load(&state, &jobs, &id).await?;
    if [PENDING, COMPOSING].contains(&project.row.status.as_str()) {
        return Err(busy(format!("Cannot delete scene: project is in '{}' status", project.row.status)));
    }
    project.scene(sequence)?;
    if project.scenes.len() < 2 {
        return Err(ApiError::invalid("sequence", "Cannot delete last remaining scene"));
    }
    let mut edits = vec![Edit::DeleteScene(sequence)];
    let rest = project.scenes.iter().filter(|s| s.sequence != sequence);
    edits.extend(rest.clone().enumerate().map(|(i, s)| Edit::Scene {
        sequence: s.sequence,
        sets: vec![("display_sequence", (i as i64 + 1).into())],
        only_if_job: None,
    }));
    projects::change(&jobs, &id, if_match(&headers)?, &edits).await?;
    Ok(Json(json!({
        "message": "Scene deleted successfully",
        "deletedSequence": sequence,
        "remainingSceneCount": rest.count(),
    }))
    .into_response())
}

/// 412: the project is no longer at the version an `If-Match` named.
fn stale(project: &Project) -> ApiError {
    ApiError::new(
        ErrorKind::PreconditionFailed,
        format!("project {} changed since it was read: If-Match names another version; read it again", project.row.id),
        json!({ "etag": project.etag() }),
    )
}

fn busy(message: String) -> ApiError {
    ApiError::new(ErrorKind::ProjectBusy, message, Value::Null)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trim {
    trim_points: TrimBody,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrimBody {
    #[serde(rename = "in")]
    in_: f64,
    out: f64,
}

/// `POST /api/mv/projects/{id}/scenes/{sequence}/trim`: where the clip is cut in the final video.
/// Nothing is re-encoded: the points are stored (clamped to the clip, 0.1 s at least, whole ms)
/// and the compose applies them.
pub async fn trim_scene(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath((id, sequence)): ValidPath<(String, i64)>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<Trim>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let sequence = projects::parse_sequence(sequence)?;
    let (in_s, out_s) = (body.trim_points.in_, body.trim_points.out);
    if !in_s.is_finite() || !out_s.is_finite() || in_s < 0.0 || out_s <= in_s {
        return Err(ApiError::body_mismatch("trimPoints", "trimPoints: in ≥ 0 and out > in"));
    }
    let project = projects::load(&state, &jobs, &id).await?;
    let scene = project.scene(sequence)?;
    let (Some(_), Some(clip_ms)) = (&scene.video_id, scene.clip_ms) else {
        return Err(ApiError::invalid("sequence", "Cannot trim scene: original video clip not available"));
    };
    let in_ms = ((in_s * 1000.0).round() as i64).clamp(0, clip_ms);
    let out_ms = ((out_s * 1000.0).round() as i64).clamp(0, clip_ms).max(in_ms + 100);
    let (in_ms, out_ms) = if out_ms > clip_ms { ((clip_ms - 100).max(0), clip_ms) } else { (in_ms, out_ms) };
    let sets =
        vec![("trim_in_ms", in_ms.into()), ("trim_out_ms", out_ms.into()), ("duration_ms", (out_ms - in_ms).into())];
    projects::change(&jobs, &id, if_match(&headers)?, &[Edit::Scene { sequence, sets, only_if_job: None }]).await?;
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(Json(SceneResponse::from(project.scene(sequence)?)).into_response())
}

/// `POST /api/mv/projects/{id}/compose` (body `{}`): the final cut as a job, from every scene's
/// clip in `displaySequence` order with its trims, the song looped to the video's length and
/// replacing the clips' audio. `finalOutputUrl` is set when it is done.
pub async fn compose(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    let total = project.scenes.len();
    let with_clip = project.scenes.iter().filter(|s| s.video_id.is_some() && s.video_job_id.is_none()).count();
    if total == 0 || with_clip < total {
        return Err(ApiError::new(
            ErrorKind::ValidationError,
            "Cannot compose video: not all scenes are completed",
            json!({ "details": format!("Completed: {with_clip}/{total}") }),
        ));
    }
    if project.row.status == COMPOSING && project.row.final_job_id.is_some() {
        return Err(busy(format!(
            "project {id} is already composing (job {})",
            project.row.final_job_id.unwrap_or_default()
        )));
    }
    if let Some(expected) = if_match(&headers)?
        && expected != project.row.version
    {
        return Err(stale(&project));
    }
    let job = drive::compose(&state, &jobs, &project).await?;
    Ok(Json(json!({
        "jobId": job,
        "projectId": id,
        "status": COMPOSING,
        "message": "Video composition started",
    }))
    .into_response())
}

/// `GET /api/mv/projects/{id}/final-video`.
pub async fn final_video(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    let Some(video) = project.row.final_video_id else {
        return Err(ApiError::not_found("Final video not yet available", json!({ "project_id": id })));
    };
    Ok(Json(json!({ "projectId": id, "videoUrl": format!("/api/mv/get_video/{video}"), "videoId": video }))
        .into_response())
}

/// `GET /api/mv/get_director_configs`: their director select lists mvgen's flavors, and a
/// project created with one pins it.
pub async fn get_director_configs(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "configs": state.flavors.names() })).into_response()
}

/// `POST /api/mv/projects/{id}/generate`: makes the whole video server-side (`projects::drive`):
/// the scenes if there are none, the character reference if none, every scene without its clip
/// (failed ones again), then the final cut. Answers at once with the project, `processing`.
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    if project.row.drive {
        return Err(busy(format!("project {id} is already being generated")));
    }
    if project.row.status == COMPOSING {
        return Err(busy(format!("Project is in '{COMPOSING}' status")));
    }
    let complete = !project.scenes.is_empty() && project.scenes.iter().all(|s| s.video_id.is_some());
    if complete && project.row.final_video_id.is_some() {
        // Nothing to make: every clip and the final cut are there.
        return Ok(project_answer(&project, StatusCode::OK));
    }
    let mut edits = vec![Edit::Project(vec![
        ("drive", 1.into()),
        ("status", PROCESSING.into()),
        ("error_message", Bind::none()),
        ("final_video_id", Bind::none()),
    ])];
    // Failed scenes are rendered again; the others keep their clips.
    edits.extend(project.scenes.iter().filter(|s| s.status == FAILED && s.video_id.is_none()).map(|s| Edit::Scene {
        sequence: s.sequence,
        sets: vec![("status", PENDING.into()), ("error_message", Bind::none())],
        only_if_job: None,
    }));
    projects::change(&jobs, &id, if_match(&headers)?, &edits).await?;
    drive::poke();
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project, StatusCode::OK))
}

/// `POST /api/mv/projects/{id}/cancel`: stops making it (the drive, and every job it waits for);
/// the project ends `failed`, "canceled". Clips already made are kept.
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let project = projects::load(&state, &jobs, &id).await?;
    let sets = vec![("drive", 0.into()), ("status", FAILED.into()), ("error_message", "canceled".into())];
    projects::change(&jobs, &id, if_match(&headers)?, &[Edit::Project(sets)]).await?;
    let row = &project.row;
    let running = project.scenes.iter().filter_map(|s| s.video_job_id.as_deref());
    for job in running
        .chain(row.scenes_job_id.as_deref())
        .chain(row.character_job_id.as_deref())
        .chain(row.final_job_id.as_deref())
    {
        if let Err(e) = jobs.cancel(job).await {
            tracing::warn!(project = %id, job, error = %e, "a canceled project's job could not be canceled");
        }
    }
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(project_answer(&project, StatusCode::OK))
}

/// `GET /api/mv/projects/{id}/events`: Server-Sent Events, one `project` event (the whole project,
/// as `GET` answers it; its id is the version) whenever the project changes. A client that
/// reconnects with `Last-Event-ID` gets the current project if it changed since. Read again on
/// every job event this process hears of, and every second.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let id = projects::parse_id(&id)?;
    let after: i64 = match headers.get("last-event-id") {
        None => 0,
        Some(value) => value.to_str().ok().and_then(|v| v.trim().parse().ok()).ok_or_else(|| {
            ApiError::new(
                ErrorKind::ValidationError,
                "Last-Event-ID: expected an event id from this stream",
                json!("last-event-id"),
            )
        })?,
    };
    projects::load(&state, &jobs, &id).await?;
    let wake = jobs.subscribe();
    let stream = futures_util::stream::unfold(
        (state, jobs, id, after, wake),
        |(state, jobs, id, mut after, mut wake)| async move {
            loop {
                match projects::load(&state, &jobs, &id).await {
                    Ok(project) if project.row.version > after => {
                        after = project.row.version;
                        let data = serde_json::to_string(&ProjectResponse::from(&project)).unwrap_or_default();
                        let event = Event::default().id(after.to_string()).event("project").data(data);
                        return Some((Ok::<_, std::convert::Infallible>(event), (state, jobs, id, after, wake)));
                    }
                    Ok(_) => {}
                    // Deleted: the stream ends.
                    Err(e) if e.kind == ErrorKind::NotFound => return None,
                    Err(e) => {
                        tracing::debug!(project = %id, error = %e.message, "project events: a read failed; trying again")
                    }
                }
                // A draining replica ends its streams; the client reconnects elsewhere.
                let draining = jobs.draining().clone();
                if draining.is_cancelled() {
                    return None;
                }
                tokio::select! {
                    _ = wake.recv() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = draining.cancelled() => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}
