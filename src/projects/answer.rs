//! A project and its scenes as their UI reads them (`ProjectResponse`, `SceneResponse` of the
//! service mvgen replaces: camelCase, URLs the browser loads), plus mvgen's own fields (the pinned
//! flavor, the jobs). Every `*Url` names a file by its id, so a regenerated clip has a new URL and
//! their player, which compares URL paths, reloads it.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::beat_plan::{BeatPlan, Cut};
use super::words::{COMPLETED, FAILED, PROCESSING};
use super::{Project, planning};
use crate::error::ApiError;
use crate::jobs::store::projects::{ProjectRow, SceneRow};

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectResponse {
    pub project_id: String,
    pub status: String,
    pub concept_prompt: String,
    pub character_description: Option<String>,
    pub character_image_url: Option<String>,
    pub product_description: Option<String>,
    pub product_image_url: Option<String>,
    pub audio_backing_track_url: Option<String>,
    pub final_output_url: Option<String>,
    pub director_config: Option<String>,
    pub mode: String,
    pub scene_count: usize,
    pub completed_scenes: usize,
    pub failed_scenes: usize,
    /// By `displaySequence`.
    pub scenes: Vec<SceneResponse>,
    pub created_at: String,
    pub updated_at: String,
    /// The flavor every generation of this project uses, pinned at creation.
    pub config_flavor: PinnedFlavor,
    /// The song's id (`/api/mv/get_audio/{id}`).
    pub audio_id: Option<String>,
    /// The final cut's video id, once composed.
    pub final_video_id: Option<String>,
    /// The job composing the final cut, while it runs.
    pub final_job_id: Option<String>,
    /// Why the last compose or scene writing failed.
    pub error_message: Option<String>,
    /// Bumped by every change; the `ETag`.
    pub version: i64,
    /// The scene count asked for at creation (`numberOfScenes`); null: the song's beats decide.
    pub number_of_scenes: Option<i64>,
    /// The scenes planned on the song's beats (once the scenes are written): one cut per scene
    /// in display order, the last at the song's end. Null without a song.
    pub beat_plan: Option<BeatPlan>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PinnedFlavor {
    pub name: String,
    pub hash: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SceneResponse {
    /// Immutable, never reused.
    pub sequence: i64,
    /// The order, 1..n.
    pub display_sequence: i64,
    pub status: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    /// Seconds: its place in the beat plan while it follows it (`onBeat`), else the clip's
    /// length, or its trimmed length.
    pub duration: f64,
    pub reference_image_urls: Vec<String>,
    pub audio_clip_url: Option<String>,
    pub original_video_clip_url: Option<String>,
    /// The same clip: trims are applied by the compose, never by re-encoding.
    pub working_video_clip_url: Option<String>,
    /// Deprecated alias of `workingVideoClipUrl`.
    pub video_clip_url: Option<String>,
    pub trim_points: Option<TrimPoints>,
    pub needs_lip_sync: bool,
    pub lip_synced_video_clip_url: Option<String>,
    pub retry_count: i64,
    pub error_message: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The clip's video id.
    pub video_id: Option<String>,
    /// The job rendering the clip now, or the last one that did.
    pub video_generation_job_id: Option<String>,
    /// Whether the scene follows the project's beat plan: rendered to cover its place and ended
    /// on its cut by the compose. A trim makes it false (the trim decides).
    pub on_beat: bool,
    /// Where this scene's cut falls in the song (and the final cut) while it follows the plan:
    /// the beat it ends on.
    pub cut: Option<Cut>,
}

#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct TrimPoints {
    #[serde(rename = "in")]
    pub in_: f64,
    pub out: f64,
}

impl From<&Project> for ProjectResponse {
    fn from(p: &Project) -> ProjectResponse {
        let scenes = p.scene_answers();
        let (completed, failed) = (count(&scenes, COMPLETED), count(&scenes, FAILED));
        let mut answer = summary(&p.row, (scenes.len(), completed, failed));
        answer.scenes = scenes;
        answer
    }
}

impl Project {
    /// Every scene's answer in display order, each placed in the beat plan.
    pub fn scene_answers(&self) -> Vec<SceneResponse> {
        let plan = planning::stored(self);
        self.scenes.iter().enumerate().map(|(i, s)| placed(SceneResponse::from(s), plan.as_ref(), i)).collect()
    }

    /// The answer of the scene whose `sequence` is `sequence`, or their 404.
    pub fn scene_answer(&self, sequence: i64) -> Result<SceneResponse, ApiError> {
        let scene = self.scene(sequence)?;
        let position = planning::position(self, sequence).unwrap_or(0);
        Ok(placed(SceneResponse::from(scene), planning::stored(self).as_ref(), position))
    }
}

/// `answer` at display `position`: its duration and cut from the plan while it follows it.
fn placed(mut answer: SceneResponse, plan: Option<&BeatPlan>, position: usize) -> SceneResponse {
    if let Some(plan) = plan.filter(|_| answer.on_beat)
        && let (Some(cut), Some(length)) = (plan.cuts.get(position), plan.length(position))
    {
        answer.cut = Some(*cut);
        answer.duration = length;
    }
    answer
}

/// A project's answer without its scenes (listings), with the counts given.
pub fn summary(row: &ProjectRow, (scene_count, completed, failed): (usize, usize, usize)) -> ProjectResponse {
    ProjectResponse {
        project_id: row.id.clone(),
        status: row.status.clone(),
        concept_prompt: row.concept_prompt.clone(),
        character_description: row.character_description.clone(),
        character_image_url: row.character_image_id.as_deref().map(image_url),
        product_description: row.product_description.clone(),
        product_image_url: row.product_image_id.as_deref().map(image_url),
        audio_backing_track_url: row.audio_id.as_ref().map(|id| format!("/api/mv/get_audio/{id}")),
        final_output_url: row.final_video_id.as_deref().map(video_url),
        director_config: row.director_config.clone(),
        mode: row.mode.clone(),
        scene_count,
        completed_scenes: completed,
        failed_scenes: failed,
        scenes: Vec::new(),
        created_at: iso(row.created_at),
        updated_at: iso(row.updated_at),
        config_flavor: PinnedFlavor { name: row.flavor_name.clone(), hash: row.flavor_hash.clone() },
        audio_id: row.audio_id.clone(),
        final_video_id: row.final_video_id.clone(),
        final_job_id: row.final_job_id.clone(),
        error_message: row.error_message.clone(),
        version: row.version,
        number_of_scenes: row.scenes_asked,
        beat_plan: row.beat_plan.as_deref().and_then(|p| serde_json::from_str(p).ok()),
    }
}

impl From<&SceneRow> for SceneResponse {
    fn from(s: &SceneRow) -> SceneResponse {
        let clip = s.video_id.as_deref().map(video_url);
        let trim = match (s.trim_in_ms, s.trim_out_ms) {
            (Some(i), Some(o)) => Some(TrimPoints { in_: seconds(i), out: seconds(o) }),
            _ => None,
        };
        SceneResponse {
            sequence: s.sequence,
            display_sequence: s.display_sequence,
            // A scene waiting for its job is processing, whatever it was before.
            status: if s.video_job_id.is_some() { PROCESSING.to_owned() } else { s.status.clone() },
            prompt: s.prompt.clone(),
            negative_prompt: s.negative_prompt.clone(),
            duration: seconds(s.duration_ms),
            reference_image_urls: s.reference_image_id.as_deref().map(image_url).into_iter().collect(),
            audio_clip_url: None,
            original_video_clip_url: clip.clone(),
            working_video_clip_url: clip.clone(),
            video_clip_url: clip,
            trim_points: trim,
            needs_lip_sync: false,
            lip_synced_video_clip_url: None,
            retry_count: 0,
            error_message: s.error_message.clone(),
            created_at: iso(s.created_at),
            updated_at: iso(s.updated_at),
            video_id: s.video_id.clone(),
            video_generation_job_id: s.video_job_id.clone().or_else(|| s.last_job_id.clone()),
            on_beat: s.on_beat,
            cut: None,
        }
    }
}

fn count(scenes: &[SceneResponse], status: &str) -> usize {
    scenes.iter().filter(|s| s.status == status).count()
}

fn video_url(id: &str) -> String {
    format!("/api/mv/get_video/{id}")
}

fn image_url(id: &str) -> String {
    format!("/api/mv/get_character_reference/{id}")
}

/// Milliseconds as seconds.
pub fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Unix milliseconds as ISO-8601 (UTC, milliseconds).
fn iso(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// `POST /api/mv/projects`'s answer (201).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectCreated {
    pub project_id: String,
    /// `pending`.
    pub status: String,
    pub message: String,
    pub config_flavor: PinnedFlavor,
}

/// `GET /api/mv/projects`: newest first, without scenes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectList {
    pub projects: Vec<ProjectResponse>,
    /// The `cursor` of the next page; null on the last.
    pub next_cursor: Option<i64>,
}

/// `DELETE /api/mv/projects/{id}`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDeleted {
    pub message: String,
    pub project_id: String,
    /// Stored files removed (song, clips, final cut).
    pub deleted_files: usize,
}

/// `PATCH …/scenes/reorder`'s answer: the scenes in their new order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScenesReordered {
    pub message: String,
    pub scenes: Vec<SceneResponse>,
}

/// `DELETE …/scenes/{sequence}`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SceneDeleted {
    pub message: String,
    pub deleted_sequence: i64,
    pub remaining_scene_count: usize,
}

/// `POST …/scenes`'s answer (201).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SceneAdded {
    pub scene: SceneResponse,
    pub message: String,
}

/// `POST …/compose`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComposeStarted {
    /// The `final_cut` job (`GET /api/mv/jobs/{id}`).
    pub job_id: String,
    pub project_id: String,
    /// `composing`.
    pub status: String,
    pub message: String,
}

/// `GET …/final-video`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FinalVideo {
    pub project_id: String,
    /// `/api/mv/get_video/{id}`.
    pub video_url: String,
    pub video_id: String,
}
