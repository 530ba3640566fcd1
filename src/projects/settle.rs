//! Settling: the results of a project's finished jobs written into the project. Each edit is
//! guarded by the job it settles (`only_if_job`, `SettleProject`), so settling twice, or after a
//! newer job replaced the one read, changes nothing: two replicas reading one project at once
//! settle it once.

use serde_json::Value;

use super::words::{COMPLETED, FAILED, PENDING};
use super::{Project, planning};
use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::state::JobStatus;
use crate::jobs::store::projects::{Bind, Edit, LinkedJob, SceneRow};
use crate::state::AppState;

/// The longest `errorMessage` a scene keeps (as theirs did).
const MAX_ERROR_CHARS: usize = 500;

/// The edits that write `project`'s finished jobs' results in; empty when none has finished.
pub async fn edits(state: &AppState, jobs: &Jobs, project: &Project) -> Result<Vec<Edit>, ApiError> {
    let row = &project.row;
    let ids = project.waits_for();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let finished: Vec<LinkedJob> = jobs
        .store()
        .linked_jobs(&ids)
        .await
        .map_err(unavailable)?
        .into_iter()
        .filter(|j| JobStatus::ALL.iter().any(|s| s.is_final() && s.as_str() == j.status))
        .collect();
    let job = |id: Option<&str>| id.and_then(|id| finished.iter().find(|j| j.id == id));
    let mut edits = Vec::new();
    if let Some(done) = job(row.scenes_job_id.as_deref()) {
        edits.extend(scenes_written(state, jobs, project, done).await);
    }
    if let Some(done) = job(row.character_job_id.as_deref()) {
        edits.push(character_written(done));
    }
    for scene in &project.scenes {
        if let Some(done) = job(scene.video_job_id.as_deref()) {
            edits.push(clip_written(state, project, scene, done).await);
        }
    }
    if let Some(done) = job(row.final_job_id.as_deref()) {
        edits.push(cut_written(done));
    }
    Ok(edits)
}

/// A finished `create_scenes` job: its scenes replace the project's (as theirs did), pending, each
/// with the project's character image as its reference; the project goes back to pending. With a
/// song, the scenes are planned on its beats: each follows the plan, its duration its place's.
async fn scenes_written(state: &AppState, jobs: &Jobs, project: &Project, done: &LinkedJob) -> Vec<Edit> {
    let settle = |sets| Edit::SettleProject { column: "scenes_job_id", job: done.id.clone(), sets };
    let Some(scenes) = succeeded(done).and_then(|out| out.get("scenes")?.as_array().cloned()) else {
        let why = format!("Scene writing failed: {}", why(done));
        return vec![settle(vec![("status", FAILED.into()), ("error_message", why.into()), ("drive", 0.into())])];
    };
    // A plan that cannot be made (the pinned flavor unreadable) leaves the scenes unplanned,
    // never the project unreadable.
    let plan = match scenes.len() {
        0 => None,
        n => planning::plan(state, jobs, project, Some(n)).await.unwrap_or_else(|e| {
            tracing::warn!(project = %project.row.id, error = %e.message, "the scenes are not planned on the song's beats");
            None
        }),
    };
    let reference = project.row.character_image_id.clone().or_else(|| project.row.product_image_id.clone());
    let mut edits = vec![Edit::DeleteScenes];
    for (i, scene) in scenes.iter().enumerate() {
        let text = |field: &str| scene.get(field).and_then(Value::as_str).map(super::without_nul);
        let n = i as i64 + 1;
        let planned = plan.as_ref().and_then(|p| p.length(i));
        edits.push(Edit::InsertScene(Box::new(SceneRow {
            sequence: n,
            display_sequence: n,
            status: PENDING.to_owned(),
            prompt: text("description").unwrap_or_default(),
            negative_prompt: text("negative_description"),
            duration_ms: planned.map_or(8_000, |s| (s * 1000.0).round() as i64),
            reference_image_id: reference.clone(),
            on_beat: planned.is_some(),
            ..SceneRow::default()
        })));
    }
    let plan = plan.and_then(|p| serde_json::to_string(&p).ok());
    edits.push(settle(vec![("status", PENDING.into()), ("error_message", Bind::none()), ("beat_plan", plan.into())]));
    edits
}

/// A finished character reference job: its first image becomes the project's character image
/// (the scenes' reference); failed, the project fails with why (as theirs did).
fn character_written(done: &LinkedJob) -> Edit {
    let image = succeeded(done).and_then(|out| Some(out.get("images")?.get(0)?.get("id")?.as_str()?.to_owned()));
    let sets = match image {
        Some(id) => vec![("character_image_id", id.into())],
        None => vec![
            ("status", FAILED.into()),
            ("error_message", format!("Character reference failed: {}", why(done)).into()),
            ("drive", 0.into()),
        ],
    };
    Edit::SettleProject { column: "character_job_id", job: done.id.clone(), sets }
}

/// A finished video job: the scene's clip (its length read from the stored file), trims reset to
/// the whole clip, or to its place in the beat plan while it follows one; or the failure.
async fn clip_written(state: &AppState, project: &Project, scene: &SceneRow, done: &LinkedJob) -> Edit {
    let video_id = succeeded(done).and_then(|out| Some(out.get("video_id")?.as_str()?.to_owned()));
    let sets = match video_id {
        Some(video_id) => {
            let clip_ms = clip_ms(state, &video_id).await;
            let plan = if scene.on_beat { planning::stored(project) } else { None };
            let planned = plan.and_then(|p| p.length(planning::position(project, scene.sequence)?));
            let shown_ms = planned.map_or(clip_ms, |s| ((s * 1000.0).round() as i64).min(clip_ms));
            vec![
                ("status", COMPLETED.into()),
                ("video_id", video_id.into()),
                ("clip_ms", clip_ms.into()),
                ("duration_ms", shown_ms.into()),
                ("trim_in_ms", 0.into()),
                ("trim_out_ms", shown_ms.into()),
                ("error_message", Bind::none()),
                ("last_job_id", done.id.clone().into()),
                ("video_job_id", Bind::none()),
            ]
        }
        None => vec![
            ("status", FAILED.into()),
            ("error_message", failure(done).into()),
            ("last_job_id", done.id.clone().into()),
            ("video_job_id", Bind::none()),
        ],
    };
    Edit::Scene { sequence: scene.sequence, sets, only_if_job: Some(done.id.clone()) }
}

/// A finished compose: the final cut, the project completed; or failed, with why.
fn cut_written(done: &LinkedJob) -> Edit {
    let video_id = succeeded(done).and_then(|out| Some(out.get("video_id")?.as_str()?.to_owned()));
    let sets = match video_id {
        Some(id) => vec![
            ("status", COMPLETED.into()),
            ("final_video_id", id.into()),
            ("error_message", Bind::none()),
            ("drive", 0.into()),
        ],
        None => vec![
            ("status", FAILED.into()),
            ("error_message", format!("Composing the final video failed: {}", why(done)).into()),
            ("drive", 0.into()),
        ],
    };
    Edit::SettleProject { column: "final_job_id", job: done.id.clone(), sets }
}

/// A succeeded job's output.
fn succeeded(done: &LinkedJob) -> Option<Value> {
    if done.status != JobStatus::Succeeded.as_str() {
        return None;
    }
    serde_json::from_str(done.output.as_deref()?).ok()
}

/// Why a scene's video job did not succeed, as the scene shows it.
fn failure(done: &LinkedJob) -> String {
    format!("Video generation failed: {}", why(done)).chars().take(MAX_ERROR_CHARS).collect()
}

/// Why a job did not succeed.
fn why(done: &LinkedJob) -> String {
    match (done.status.as_str(), &done.error_message) {
        (s, _) if s == JobStatus::Canceled.as_str() => "canceled".to_owned(),
        (_, Some(message)) => message.chars().take(MAX_ERROR_CHARS).collect(),
        _ => "the job ended without a result".to_owned(),
    }
}

/// A stored clip's length in milliseconds, from its header; 8 s (what was asked) when unreadable.
async fn clip_ms(state: &AppState, video_id: &str) -> i64 {
    match crate::generation::final_cut::clip_length(&*state.storage, video_id).await {
        Ok(length) => length.as_millis() as i64,
        Err(e) => {
            tracing::warn!(video = video_id, error = %e, "a project clip's length could not be read");
            8_000
        }
    }
}
