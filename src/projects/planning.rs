//! A project's beat plan made and read: its song's stored analysis and its pinned flavor's video
//! model turned into a [`BeatPlan`] (`beat_plan` does the planning; this reads what it needs).

use super::beat_plan::{self, BeatPlan, SongBeats};
use super::{Project, pinned};
use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::jobs::store::projects::SceneRow;
use crate::state::AppState;
use crate::storage::Collection;

/// `project`'s song as the plan needs it: its length and beats from its stored record; `None`
/// without a song, or when its record cannot be read (then the scenes are not planned: a warning,
/// never a failed project).
pub async fn song_beats(state: &AppState, project: &Project) -> Option<SongBeats> {
    let id = project.row.audio_id.as_deref()?;
    let record = match state.storage.record(Collection::Audio, id).await {
        Ok(Some(record)) => record,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(project = %project.row.id, song = id, error = %e, "the song's beats could not be read; scenes not planned on them");
            return None;
        }
    };
    serde_json::from_slice(&record)
        .inspect_err(
            |e| tracing::warn!(project = %project.row.id, song = id, error = %e, "the song's record did not read"),
        )
        .ok()
}

/// The plan of `project`'s scenes on its song: `scenes` of them when given, else the project's
/// `numberOfScenes`, else as many as the song needs. `None` without a song.
pub async fn plan(
    state: &AppState,
    jobs: &Jobs,
    project: &Project,
    scenes: Option<usize>,
) -> Result<Option<BeatPlan>, ApiError> {
    let Some(song) = song_beats(state, project).await else { return Ok(None) };
    let flavor = pinned(state, jobs, &project.row, None).await?.flavor;
    let params = &flavor.image_params;
    let lengths = beat_plan::clip_lengths(&params.video_model.value, params.video_duration.value);
    let asked = scenes.or(project.row.scenes_asked.map(|n| n.max(1) as usize));
    Ok(Some(beat_plan::plan(&song, &lengths, asked)))
}

/// The plan stored with `project`, when its scenes were planned on its song.
pub fn stored(project: &Project) -> Option<BeatPlan> {
    serde_json::from_str(project.row.beat_plan.as_deref()?).ok()
}

/// Where the scene with `sequence` is in `project`'s display order (from 0).
pub fn position(project: &Project, sequence: i64) -> Option<usize> {
    project.scenes.iter().position(|s| s.sequence == sequence)
}

/// The clip length (seconds) to render for `scene` of `project`: the shortest allowed that covers
/// its place in the beat plan, while it follows the plan; `None` (the flavor's length) otherwise.
pub fn clip_seconds(project: &Project, scene: &SceneRow) -> Option<u32> {
    if !scene.on_beat {
        return None;
    }
    stored(project)?.clip_seconds(position(project, scene.sequence)?)
}
