//! Music-video projects: the whole video as one durable resource (the Python service's
//! `/api/mv/projects*`, `../shared/reference/original-projects.md`), with its flavor pinned.
//!
//! A project's rows live in the jobs database (`jobs::store::projects`), its files (song, clips,
//! the final cut) in the store. Its generations are ordinary jobs: a project names the job whose
//! result it is waiting for (`scenes_job_id`, a scene's `video_job_id`, `final_job_id`), and
//! whoever reads the project next writes the finished job's result in (`settle`). So a result is
//! never lost to a caller who hung up or a replica that died: it is in the job's row until the
//! project has it.
//!
//! - `answer`: the project and scene as their UI reads them (camelCase); `copies`: answers kept by
//!   version;
//! - `beat_plan`: the scenes planned on the song's beats (their count and cuts);
//!   `planning` reads what a plan needs (the song's beats, the pinned video model);
//! - `settle`: finished jobs' results written into the project;
//! - `drive`: the whole video made server-side, one step at a time, by any process;
//! - `hooks`: its outbound webhook's fields (create, PATCH) and deliveries' body;
//! - `words`: statuses and modes.

pub mod answer;
pub mod beat_plan;
pub mod copies;
pub mod drive;
pub mod hooks;
pub mod planning;
pub mod settle;
pub mod words;

use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::generation::driver::Pinned;
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::projects::{Bind, Changed, Edit, ProjectRow, SceneRow};
use crate::state::AppState;

/// A project as read (and settled): its row and its scenes in display order.
#[derive(Debug, Clone)]
pub struct Project {
    pub row: ProjectRow,
    pub scenes: Vec<SceneRow>,
}

impl Project {
    /// The scene whose immutable `sequence` is `sequence`, or their 404.
    pub fn scene(&self, sequence: i64) -> Result<&SceneRow, ApiError> {
        self.scenes.iter().find(|s| s.sequence == sequence).ok_or_else(|| {
            ApiError::not_found(
                format!("Scene {sequence} not found in project {}", self.row.id),
                json!({ "sequence": sequence, "available": self.scenes.iter().map(|s| s.sequence).collect::<Vec<_>>() }),
            )
        })
    }

    /// Every job the project waits for: its scenes' renders, and its scenes, character or cut job.
    pub fn waits_for(&self) -> Vec<&str> {
        let row = &self.row;
        let project_jobs = [&row.scenes_job_id, &row.character_job_id, &row.final_job_id];
        let renders = self.scenes.iter().filter_map(|s| s.video_job_id.as_deref());
        renders.chain(project_jobs.into_iter().flatten().map(String::as_str)).collect()
    }

    /// The ETag of this state of the project.
    pub fn etag(&self) -> String {
        etag(self.row.version)
    }
}

/// The edit that cancels a project: it ends `failed`, "canceled", and the drive stops. It also
/// forgets the project-level jobs it was waiting for (scenes, character, final cut): a job that
/// finished while the cancel ran (after the cancel read the project, before it canceled the job)
/// would otherwise be written in later by a settle guarded only by that link, which sets the
/// project back to `pending` (scenes) or `completed` (a cut). Scene renders stay linked: a clip
/// that lands is kept, as cancel promises, and a clip changes no project status.
pub fn canceled() -> Edit {
    Edit::Project(vec![
        ("drive", 0.into()),
        ("status", words::FAILED.into()),
        ("error_message", "canceled".into()),
        ("scenes_job_id", Bind::none()),
        ("character_job_id", Bind::none()),
        ("final_job_id", Bind::none()),
    ])
}

/// The ETag of a project at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// `id` as a project id: a UUID, in canonical form, else their 400.
pub fn parse_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id.trim()).map(|u| u.to_string()).map_err(|_| {
        ApiError::new(ErrorKind::InvalidId, "Invalid project ID format", json!({ "field": "project_id", "value": id }))
    })
}

/// `sequence` as a scene number: ≥ 1, else their 400.
pub fn parse_sequence(sequence: i64) -> Result<i64, ApiError> {
    if sequence < 1 {
        return Err(ApiError::invalid("sequence", "Invalid sequence number"));
    }
    Ok(sequence)
}

/// `value` of `field` as a project stores it: PostgreSQL cannot store a NUL byte in text (a 503
/// for the caller's mistake), so one is refused on both engines.
pub fn no_nul(field: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(ApiError::invalid(field, "must not contain a NUL byte"));
    }
    Ok(())
}

/// Text from upstream (a scene writer's) as a project stores it: without NUL bytes.
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "")
}

/// Project `id`, read and settled (finished jobs' results written in), or their 404.
pub async fn load(state: &AppState, jobs: &Jobs, id: &str) -> Result<Project, ApiError> {
    let project = read(jobs, id).await?;
    let edits = settle::edits(state, jobs, &project).await?;
    if edits.is_empty() {
        return Ok(project);
    }
    change(jobs, id, None, &edits).await?;
    read(jobs, id).await
}

async fn read(jobs: &Jobs, id: &str) -> Result<Project, ApiError> {
    match jobs.store().project(id).await.map_err(unavailable)? {
        Some((row, scenes)) => Ok(Project { row, scenes }),
        None => Err(not_found(id)),
    }
}

/// Their 404 for a project.
pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Project {id} not found"), json!({ "project_id": id }))
}

/// Applies `edits` to project `id`; with `expected` (an `If-Match`), only if the project is still
/// at that version (412 otherwise). The new version.
pub async fn change(jobs: &Jobs, id: &str, expected: Option<i64>, edits: &[Edit]) -> Result<i64, ApiError> {
    match jobs.store().change_project(id, expected, edits).await.map_err(unavailable)? {
        Changed::Done(version) => Ok(version),
        Changed::Missing => Err(not_found(id)),
        Changed::Stale(current) => Err(ApiError::new(
            ErrorKind::PreconditionFailed,
            format!("project {id} changed since it was read: If-Match names another version; read it again"),
            json!({ "etag": format!("\"{current}\"") }),
        )),
    }
}

/// The flavor project `row` pinned, for one of its generations; `requested` is the flavor the
/// request's body named (their UI always sends `"default"`), kept only for a warning. The stored
/// content is read only when the served flavor is no longer the pinned one.
pub async fn pinned(
    state: &AppState,
    jobs: &Jobs,
    row: &ProjectRow,
    requested: Option<&str>,
) -> Result<Pinned, ApiError> {
    let source = &state.flavors;
    let flavor = match crate::pinned_flavor::at_hand(source, &row.flavor_name, &row.flavor_hash) {
        Some(flavor) => flavor,
        None => {
            let content = jobs.store().project_flavor(&row.id).await.map_err(unavailable)?.unwrap_or_default();
            crate::pinned_flavor::restore(source, &row.flavor_name, &row.flavor_hash, &content)
                .map_err(|e| ApiError::internal(format!("project {}: {e}", row.id)))?
        }
    };
    let warning = requested.map(str::trim).filter(|r| !r.is_empty() && *r != row.flavor_name).map(|r| {
        format!(
            "project {} pins flavor {:?} ({}); the requested {r:?} was not used",
            row.id, row.flavor_name, row.flavor_hash
        )
    });
    Ok(Pinned { flavor, warning })
}
