//! A project's scene edits, as their edit page sends them: reorder, texts, delete, trim.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::super::extract::{ValidJson, ValidPath};
use crate::error::{ApiError, ErrorKind};
use crate::jobs::Jobs;
use crate::jobs::store::projects::{Bind, Edit};
use crate::projects::answer::SceneResponse;
use crate::projects::words::{COMPOSING, PENDING};
use crate::projects::{self};
use crate::state::AppState;

use super::{busy, if_match};

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
