//! A project's scene edits, as their edit page sends them: reorder, texts, delete, trim, add a
//! scene, upload a scene's clip.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::super::extract::{ValidJson, ValidPath};
use super::super::upload::{MAX_VIDEO_BYTES, store_file_part};
use crate::api_keys::KeyScope;
use crate::error::{ApiError, ErrorKind};
use crate::generation::scenes::{CreateScenesBody, Scenes};
use crate::jobs::Jobs;
use crate::jobs::store::projects::{Bind, Edit, SceneRow};
use crate::projects::answer::{SceneAdded, SceneDeleted, SceneResponse, ScenesReordered};
use crate::projects::words::{COMPLETED, COMPOSING, DRIVE_CLIPS, DRIVE_WHOLE, PENDING, PROCESSING};
use crate::projects::{self};
use crate::state::AppState;
use crate::storage::Collection;

use super::{busy, if_match, with_etag};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reorder {
    /// The scenes' current `displaySequence`s, in the new order.
    scene_order: Vec<i64>,
}

/// `PATCH /api/mv/projects/{id}/scenes/reorder`: `{sceneOrder}`, the scenes' current
/// `displaySequence`s in the new order.
#[utoipa::path(
    patch, path = "/api/mv/projects/{id}/scenes/reorder", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")), request_body = Reorder,
    responses((status = 200, description = "The scenes in their new order", body = ScenesReordered), super::ProjectErrors)
)]
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
    // Checked against the scenes as they are when written (a scene deleted meanwhile is a mismatch).
    super::change_as_read(&state, &jobs, &id, if_match(&headers)?, |project| {
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
        Ok((edits, ()))
    })
    .await?;
    let project = projects::load(&state, &jobs, &id).await?;
    let scenes: Vec<SceneResponse> = project.scene_answers();
    let answer = ScenesReordered { message: "Scenes reordered successfully".into(), scenes };
    Ok(with_etag(Json(answer).into_response(), project.row.version))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScenePatch {
    prompt: Option<String>,
    negative_prompt: Option<String>,
}

/// `PATCH /api/mv/projects/{id}/scenes/{sequence}`: the scene's texts only.
#[utoipa::path(
    patch, path = "/api/mv/projects/{id}/scenes/{sequence}", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("sequence" = i64, Path, description = "The scene's sequence (immutable, from 1)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")), request_body = ScenePatch,
    responses((status = 200, description = "The scene", body = SceneResponse), super::ProjectErrors)
)]
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
        projects::no_nul("prompt", &prompt)?;
        if prompt.is_empty() || prompt.chars().count() > 5000 {
            return Err(ApiError::body_mismatch("prompt", "prompt: 1 to 5000 characters"));
        }
        sets.push(("prompt", Bind::from(prompt)));
    }
    if let Some(negative) = patch.negative_prompt.map(|p| p.trim().to_owned()) {
        projects::no_nul("negativePrompt", &negative)?;
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
    Ok(Json(project.scene_answer(sequence)?).into_response())
}

/// `DELETE /api/mv/projects/{id}/scenes/{sequence}`: not while pending or composing (409), not the
/// last scene; the others are renumbered 1..n. Its clip stays stored (as theirs did).
#[utoipa::path(
    delete, path = "/api/mv/projects/{id}/scenes/{sequence}", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("sequence" = i64, Path, description = "The scene's sequence (immutable, from 1)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")),
    responses((status = 200, description = "Deleted", body = SceneDeleted), super::ProjectErrors)
)]
pub async fn delete_scene(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath((id, sequence)): ValidPath<(String, i64)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let sequence = projects::parse_sequence(sequence)?;
    // Checked and written at one version: two deletes at once never remove the last scene.
    let (_, remaining) = super::change_as_read(&state, &jobs, &id, if_match(&headers)?, |project| {
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
        Ok((edits, rest.count()))
    })
    .await?;
    let answer = SceneDeleted {
        message: "Scene deleted successfully".into(),
        deleted_sequence: sequence,
        remaining_scene_count: remaining,
    };
    Ok(Json(answer).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Trim {
    trim_points: TrimBody,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrimBody {
    #[serde(rename = "in")]
    in_: f64,
    out: f64,
}

/// `POST /api/mv/projects/{id}/scenes/{sequence}/trim`: where the clip is cut in the final video.
/// Nothing is re-encoded: the points are stored (clamped to the clip, 0.1 s at least, whole ms)
/// and the compose applies them.
#[utoipa::path(
    post, path = "/api/mv/projects/{id}/scenes/{sequence}/trim", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("sequence" = i64, Path, description = "The scene's sequence (immutable, from 1)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")), request_body = Trim,
    responses((status = 200, description = "The scene, its trim points and trimmed duration", body = SceneResponse), super::ProjectErrors)
)]
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
    // A trim is the user's word on this scene's cut: it no longer follows the beat plan.
    let sets = vec![
        ("trim_in_ms", in_ms.into()),
        ("trim_out_ms", out_ms.into()),
        ("duration_ms", (out_ms - in_ms).into()),
        ("on_beat", 0.into()),
    ];
    projects::change(&jobs, &id, if_match(&headers)?, &[Edit::Scene { sequence, sets, only_if_job: None }]).await?;
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(Json(project.scene_answer(sequence)?).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewScene {
    /// 10 to 1000 characters.
    scene_concept: String,
}

/// `POST /api/mv/projects/{id}/scenes` (`{sceneConcept}`, 10..1000 characters): one scene written
/// from the concept with the project's pinned flavor, added last (`sequence` max + 1, never
/// reused), its clip then rendered in the background → 201 `{scene, message}`. Only while the
/// project is completed or processing (their rule).
#[utoipa::path(
    post, path = "/api/mv/projects/{id}/scenes", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")), request_body = NewScene,
    responses(
        (status = 201, description = "Written and added; its clip renders in the background", body = SceneAdded),
        (status = 404, description = "No such project", body = crate::error::ErrorBody),
        (status = 409, description = "The project's state forbids it now (`ProjectBusy`)", body = crate::error::ErrorBody),
        (status = 412, description = "`If-Match` names another version of the project", body = crate::error::ErrorBody),
        crate::error::GenerationErrors,
    )
)]
pub async fn add_scene(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    scope: Option<Extension<KeyScope>>,
    ValidPath(id): ValidPath<String>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<NewScene>,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let concept = body.scene_concept.trim().to_owned();
    projects::no_nul("sceneConcept", &concept)?;
    if !(10..=1000).contains(&concept.chars().count()) {
        return Err(ApiError::body_mismatch("sceneConcept", "sceneConcept: 10 to 1000 characters"));
    }
    let project = projects::load(&state, &jobs, &id).await?;
    let row = &project.row;
    if ![COMPLETED, PROCESSING].contains(&row.status.as_str()) {
        return Err(ApiError::invalid("status", format!("Cannot add scene: project is in '{}' status", row.status)));
    }
    let input = CreateScenesBody {
        idea: concept,
        character_description: row
            .character_description
            .clone()
            .or_else(|| row.product_description.clone())
            .unwrap_or_else(|| row.concept_prompt.clone()),
        character_characteristics: None,
        number_of_scenes: Some(1),
        video_type: None,
        video_characteristics: None,
        camera_angle: None,
        config_flavor: None,
        project_id: None,
    };
    let pinned = projects::pinned(&state, &jobs, row, None).await?;
    let scope = scope.as_deref().map(KeyScope::as_str);
    let output = super::super::generate::output_for_project::<Scenes>(&state, &jobs, scope, input, pinned, &id).await?;
    let written = output["scenes"].get(0).ok_or_else(|| {
        ApiError::new(ErrorKind::UpstreamError, "the scene writer returned no scene", json!({ "project_id": id }))
    })?;
    let text = |field: &str| written.get(field).and_then(|v| v.as_str()).map(projects::without_nul);
    let reference = |project: &projects::Project| {
        project.row.character_image_id.clone().or_else(|| project.row.product_image_id.clone())
    };
    let scene = SceneRow {
        status: PENDING.to_owned(),
        prompt: text("description").unwrap_or_default(),
        negative_prompt: text("negative_description"),
        duration_ms: 8_000,
        ..SceneRow::default()
    };
    // Numbered from the project as it is when written (read again: it may have changed while the
    // scene was written), so two scenes added at once get two sequences.
    let (_, sequence) = super::change_as_read(&state, &jobs, &id, if_match(&headers)?, |project| {
        let sequence = project.scenes.iter().map(|s| s.sequence).max().unwrap_or(0) + 1;
        let scene = SceneRow {
            sequence,
            display_sequence: project.scenes.len() as i64 + 1,
            reference_image_id: reference(project),
            ..scene.clone()
        };
        // Its clip is rendered by the drive (`projects::drive`), as their add rendered it in the
        // background; a drive already making the whole video takes it on.
        let drive = if project.row.drive == DRIVE_WHOLE { DRIVE_WHOLE } else { DRIVE_CLIPS };
        Ok((vec![Edit::InsertScene(Box::new(scene)), Edit::Project(vec![("drive", drive.into())])], sequence))
    })
    .await?;
    projects::drive::poke();
    let project = projects::load(&state, &jobs, &id).await?;
    let scene = project.scene_answer(sequence)?;
    let answer = SceneAdded { scene, message: "Scene added successfully".into() };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `POST /api/mv/projects/{id}/scenes/{sequence}/upload_video`: the scene's clip replaced by an
/// uploaded one (`file`, `video/*`, at most 100 MB, an MP4 whose length can be read), `completed`,
/// trims reset to the whole clip. A render in flight for the scene is canceled. The compose needs
/// it to match the other clips' codec, size and rate (else its 422 names both).
#[utoipa::path(
    post, path = "/api/mv/projects/{id}/scenes/{sequence}/upload_video", tag = "projects",
    params(("id" = String, Path, description = "The project id (a UUID)"), ("sequence" = i64, Path, description = "The scene's sequence (immutable, from 1)"), ("If-Match" = Option<String>, Header, description = "The ETag read; 412 when the project changed since")),
    request_body(description = "multipart/form-data with the clip as the `file` part (video/*, an MP4, at most 100 MB)",
        content((String = "multipart/form-data"))),
    responses((status = 200, description = "The scene with its new clip", body = SceneResponse), super::ProjectErrors)
)]
pub async fn upload_video(
    State(state): State<Arc<AppState>>,
    Extension(jobs): Extension<Arc<Jobs>>,
    ValidPath((id, sequence)): ValidPath<(String, i64)>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = projects::parse_id(&id)?;
    let sequence = projects::parse_sequence(sequence)?;
    let expected = if_match(request.headers())?;
    // 404 and 412 before anything is stored.
    let project = projects::load(&state, &jobs, &id).await?;
    let running = project.scene(sequence)?.video_job_id.clone();
    if expected.is_some_and(|v| v != project.row.version) {
        return Err(super::stale(&project));
    }
    let (put, _) = store_file_part(&state, request, Collection::Video, MAX_VIDEO_BYTES, "video/").await?;
    let clip_ms = match crate::generation::final_cut::clip_length(&*state.storage, &put.id).await {
        Ok(length) => length.as_millis() as i64,
        Err(why) => {
            if let Err(e) = state.storage.delete(Collection::Video, &put.id).await {
                tracing::warn!(video = %put.id, error = %e, "a refused scene upload could not be deleted");
            }
            // The store failing while the clip is read back is no fault of the clip: retryable.
            return Err(match why {
                crate::generation::final_cut::ReadError::Storage(e) => e.into(),
                crate::generation::final_cut::ReadError::Cut(why) => {
                    ApiError::invalid("file", format!("Invalid video file: {why}"))
                }
            });
        }
    };
    let sets = vec![
        ("video_id", put.id.clone().into()),
        ("clip_ms", clip_ms.into()),
        ("duration_ms", clip_ms.into()),
        ("trim_in_ms", 0.into()),
        ("trim_out_ms", clip_ms.into()),
        ("status", COMPLETED.into()),
        ("error_message", Bind::none()),
        ("video_job_id", Bind::none()),
    ];
    // Refused after the clip was stored (the project changed or went meanwhile, the database
    // failed): the clip goes again, as a refused upload keeps nothing.
    let refused =
        match projects::change(&jobs, &id, expected, &[Edit::Scene { sequence, sets, only_if_job: None }]).await {
            // Not written for sure (a database failure may have committed it: the clip stays).
            Err(e) if [ErrorKind::PreconditionFailed, ErrorKind::NotFound].contains(&e.kind) => Some(e),
            Err(e) => return Err(e),
            Ok(_) => match projects::load(&state, &jobs, &id).await {
                // The scene was deleted while its clip was uploaded: nothing names the clip.
                Ok(project) => project.scene(sequence).err(),
                Err(e) if e.kind == ErrorKind::NotFound => Some(e),
                _ => None,
            },
        };
    if let Some(e) = refused {
        if let Err(delete) = state.storage.delete(Collection::Video, &put.id).await {
            tracing::warn!(video = %put.id, error = %delete, "a refused scene upload could not be deleted");
        }
        return Err(e);
    }
    if let Some(job) = running
        && let Err(e) = jobs.cancel(&job).await
    {
        tracing::warn!(project = %id, job, error = %e, "a replaced scene's render could not be canceled");
    }
    let project = projects::load(&state, &jobs, &id).await?;
    Ok(Json(project.scene_answer(sequence)?).into_response())
}
