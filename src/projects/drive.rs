//! The whole video, server-side (`POST /api/mv/projects/{id}/generate`): every process running
//! job workers also advances the projects being made, one step at a time, each as ordinary jobs
//! any worker runs: the scenes (if none), the character reference (if none and a description is
//! given), one video per scene with at most `MVGEN_PROJECT_PARALLEL` at once, then the compose.
//!
//! One process advances a project at a time, holding its lease (`drive_lease`, `drive_until`) for
//! one step; a process that dies with it leaves it to another once [`LEASE`] has passed. Each job
//! is recorded in the project under an id chosen first and only then stored with that id, so a
//! crash between the two is repaired by storing it again under the same id: a scene is never
//! rendered twice. A scene whose job fails (after the job's own retries) waits: the others go on,
//! and the project ends `failed` saying which scene to regenerate.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::words::{COMPOSING, DRIVE_CLIPS, DRIVE_OFF, FAILED, PROCESSING};
use super::{Project, change, load, pinned, planning};
use crate::error::{ApiError, ErrorKind};
use crate::generation::character::Character;
use crate::generation::final_cut::FinalCut;
use crate::generation::scenes::Scenes;
use crate::generation::video::Video;
use crate::generation::{Generation, Kind, driver, stored};
use crate::jobs::Jobs;
use crate::jobs::engine::unavailable;
use crate::jobs::store::projects::{Bind, Edit};
use crate::jobs::store::{new_job_id, now_ms};
use crate::state::AppState;

/// How long one process holds a project between steps before another may take it: a step is a
/// few database statements and job submissions, so this only matters after a crash.
pub const LEASE: Duration = Duration::from_secs(10);

/// How often the projects being made are looked at without a poke (another replica's changes,
/// jobs ending elsewhere).
const TICK: Duration = Duration::from_millis(500);

/// The shortest time between two looks.
const GAP: Duration = Duration::from_millis(100);

/// Projects advanced per look.
const BATCH: i64 = 32;

/// How many times a look reads a project again that changed under its step.
const STALE_TRIES: usize = 3;

/// Wakes this process's driver at once (a `generate` just asked for a project, a job ended).
static POKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Asks this process's driver to look now rather than at its next tick.
pub fn poke() {
    POKE.notify_one();
}

/// Advances the projects being made until `shutdown`: `parallel` videos at once per project.
pub fn start(
    state: AppState,
    jobs: Arc<Jobs>,
    parallel: usize,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let lease = uuid::Uuid::new_v4().to_string();
    let mut ended = jobs.subscribe();
    crate::background::spawn_task(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(TICK) => {}
                () = POKE.notified() => {}
                // Any job's event may be a project's job ending.
                _ = ended.recv() => {}
            }
            if let Err(e) = look(&state, &jobs, &lease, parallel).await {
                tracing::warn!(error = %e.message, "projects: could not advance the projects being made");
            }
            // Many jobs ending at once are one look, not one each: every look reads every
            // project being made.
            tokio::time::sleep(GAP).await;
            Jobs::skip_queued(&mut ended);
        }
    })
}

/// One look: every project being made whose lease is free, advanced one step.
async fn look(state: &AppState, jobs: &Jobs, lease: &str, parallel: usize) -> Result<(), ApiError> {
    let store = jobs.store();
    for id in store.projects_to_drive(now_ms(), BATCH, parallel as i64).await.map_err(unavailable)? {
        let now = now_ms();
        if !store.lease_project(&id, lease, now, now + LEASE.as_millis() as i64).await.map_err(unavailable)? {
            continue;
        }
        // A step writes only at the version it read, so a project changed meanwhile (a cancel, an
        // edit, a job's result settled by a read) is read again and the step taken afresh.
        for attempt in 1..=STALE_TRIES {
            match advance(state, jobs, &id, parallel).await {
                Err(e) if e.kind == ErrorKind::PreconditionFailed && attempt < STALE_TRIES => continue,
                Err(e) => {
                    tracing::warn!(project = %id, error = %e.message, "projects: a step failed; it is tried again")
                }
                Ok(()) => {}
            }
            break;
        }
        store.release_project(&id, lease).await.map_err(unavailable)?;
    }
    Ok(())
}

/// One step of project `id`: what is finished is written in, then the next jobs are submitted.
pub async fn advance(state: &AppState, jobs: &Jobs, id: &str, parallel: usize) -> Result<(), ApiError> {
    step(state, jobs, load(state, jobs, id).await?, parallel).await
}

/// The next step of `project` as it was read. Every write is made only while the project is
/// still at the version read (412 otherwise): a cancel or an edit that lands during the step wins,
/// and no job is started after it.
pub async fn step(state: &AppState, jobs: &Jobs, project: Project, parallel: usize) -> Result<(), ApiError> {
    let id = project.row.id.as_str();
    let row = &project.row;
    if row.drive == DRIVE_OFF {
        return Ok(());
    }
    let mut version = row.version;
    let missing = never_stored(jobs, &project).await?;
    let resubmit = |job: &Option<String>| job.as_ref().filter(|j| missing.contains(j)).cloned();

    if project.scenes.is_empty() {
        let mut body = json!({
            "idea": row.concept_prompt,
            // Their scene writer needs a performer; a project without one is described by its idea.
            "character_description": row.character_description.as_ref().or(row.product_description.as_ref())
                .unwrap_or(&row.concept_prompt),
            "project_id": row.id,
        });
        // As many scenes as asked, else as the song's beats plan (else the flavor's count). The
        // plan is the same every time, so a job stored again after a crash asks the same.
        let count = match row.scenes_asked {
            Some(n) => Some(n),
            None => planning::plan(state, jobs, &project, None).await?.map(|p| p.cuts.len() as i64),
        };
        if let Some(n) = count {
            body["number_of_scenes"] = json!(n);
        }
        return match (&row.scenes_job_id, resubmit(&row.scenes_job_id)) {
            (None, _) => {
                start_job::<Scenes>(state, jobs, &project, body, JobSlot::Scenes, Some(version)).await.map(drop)
            }
            (Some(_), Some(job)) => submit::<Scenes>(state, jobs, &project, body, &job).await,
            _ => Ok(()),
        };
    }

    if row.character_image_id.is_none()
        && let Some(description) = &row.character_description
    {
        let body = json!({ "character_description": description, "num_images": 1 });
        return match (&row.character_job_id, resubmit(&row.character_job_id)) {
            (None, _) => {
                start_job::<Character>(state, jobs, &project, body, JobSlot::Character, Some(version)).await.map(drop)
            }
            (Some(_), Some(job)) => submit::<Character>(state, jobs, &project, body, &job).await,
            _ => Ok(()),
        };
    }

    let in_flight: Vec<_> = project.scenes.iter().filter(|s| s.video_job_id.is_some()).collect();
    for scene in &in_flight {
        if let Some(job) = resubmit(&scene.video_job_id) {
            submit::<Video>(state, jobs, &project, video_body(&project, scene), &job).await?;
        }
    }
    let waiting = project.scenes.iter().filter(|s| s.video_id.is_none() && s.video_job_id.is_none());
    let (failed, todo): (Vec<_>, Vec<_>) = waiting.partition(|s| s.status == FAILED);
    for scene in todo.iter().take(parallel.saturating_sub(in_flight.len())) {
        let slot = JobSlot::Video(scene.sequence);
        version = start_job::<Video>(state, jobs, &project, video_body(&project, scene), slot, Some(version)).await?.1;
    }
    if !in_flight.is_empty() || !todo.is_empty() {
        return Ok(());
    }
    if row.drive == DRIVE_CLIPS {
        // Only the clips were asked for: done, whether or not some failed (the scene says so).
        change(jobs, id, Some(version), &[Edit::Project(vec![("drive", DRIVE_OFF.into())])]).await?;
        return Ok(());
    }
    if !failed.is_empty() {
        let which: Vec<String> = failed
            .iter()
            .map(|s| format!("scene {} ({})", s.sequence, s.error_message.as_deref().unwrap_or("failed")))
            .collect();
        let why = format!("{} failed; regenerate it and generate again", which.join(", "));
        let sets = vec![("status", FAILED.into()), ("error_message", why.into()), ("drive", 0.into())];
        change(jobs, id, Some(version), &[Edit::Project(sets)]).await?;
        return Ok(());
    }
    match (&row.final_job_id, resubmit(&row.final_job_id), &row.final_video_id) {
        (None, _, None) => match compose(state, jobs, &project, Some(version)).await {
            Ok(_) => Ok(()),
            // A cut that can never be made (more scenes than a cut takes): the project fails
            // saying why, rather than being tried again at every step.
            Err(e) if e.status().is_client_error() && e.kind != ErrorKind::PreconditionFailed => {
                // At any version: the refused compose recorded and forgot its job (two versions on).
                let sets = vec![("status", FAILED.into()), ("error_message", e.message.into()), ("drive", 0.into())];
                change(jobs, id, None, &[Edit::Project(sets)]).await.map(drop)
            }
            Err(e) => Err(e),
        },
        (Some(_), Some(job), _) => submit::<FinalCut>(state, jobs, &project, compose_body(&project)?, &job).await,
        // Composed (settling ended the drive), or composing.
        _ => Ok(()),
    }
}

/// The body of a scene's video job: its texts, its reference image (else the project's), and the
/// clip length covering its place in the beat plan (else the flavor's).
fn video_body(project: &Project, scene: &crate::jobs::store::projects::SceneRow) -> Value {
    json!({
        "prompt": scene.prompt,
        "negative_prompt": scene.negative_prompt,
        "character_reference_id": scene.reference_image_id.as_ref().or(project.row.character_image_id.as_ref()),
        "project_id": project.row.id,
        "sequence": scene.sequence,
        "duration": planning::clip_seconds(project, scene),
    })
}

/// The final cut of `project`: every scene's clip in display order with its trims, the song looped
/// under the whole video, replacing the clips' audio (without a song the clips keep theirs). A
/// scene following the beat plan ends on its place's cut instead (`end_at_seconds`), so every cut
/// lands on its beat, and the last on the song's end, however the clips before it came out.
pub fn compose_body(project: &Project) -> Result<Value, ApiError> {
    let plan = planning::stored(project);
    let max = crate::generation::final_cut::MAX_CLIPS;
    if project.scenes.len() > max {
        return Err(ApiError::invalid(
            "scenes",
            format!(
                "Cannot compose video: the project has {} scenes and a final cut takes at most {max}; delete some",
                project.scenes.len()
            ),
        ));
    }
    let clips: Vec<Value> = project
        .scenes
        .iter()
        .enumerate()
        .map(|(position, s)| {
            let video = s.video_id.as_ref().ok_or_else(|| {
                ApiError::invalid("scenes", format!("Cannot compose video: scene {} has no clip", s.sequence))
            })?;
            let cut = plan.as_ref().filter(|_| s.on_beat).and_then(|p| p.cuts.get(position));
            Ok(match cut {
                Some(cut) => json!({
                    "video_id": video,
                    "in_seconds": s.trim_in_ms.map(super::answer::seconds),
                    "end_at_seconds": cut.at,
                }),
                None => json!({
                    "video_id": video,
                    "in_seconds": s.trim_in_ms.map(super::answer::seconds),
                    "out_seconds": s.trim_out_ms.map(super::answer::seconds),
                }),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(json!({
        "clips": clips,
        "audio_overlay_id": project.row.audio_id,
        "suppress_video_audio": project.row.audio_id.is_some(),
        "loop_audio": true,
    }))
}

/// Where a project records the job it waits for.
enum JobSlot {
    Scenes,
    Character,
    Video(i64),
    Final,
}

/// Starts composing `project`'s final cut (every scene must have its clip); the job's id.
/// With `expected`, recorded only while the project is still at that version (412 otherwise), so
/// two composes asked at once start one cut.
pub async fn compose(
    state: &AppState,
    jobs: &Jobs,
    project: &Project,
    expected: Option<i64>,
) -> Result<String, ApiError> {
    let body = compose_body(project)?;
    Ok(start_job::<FinalCut>(state, jobs, project, body, JobSlot::Final, expected).await?.0)
}

/// Records a new job id in `slot` (with `expected`, only while the project is at that version),
/// then stores the job under it; the id, and the project's version that recorded it.
async fn start_job<G: Generation>(
    state: &AppState,
    jobs: &Jobs,
    project: &Project,
    body: Value,
    slot: JobSlot,
    expected: Option<i64>,
) -> Result<(String, i64), ApiError> {
    let job = new_job_id();
    let edit = match slot {
        JobSlot::Scenes => Edit::Project(vec![("scenes_job_id", job.clone().into())]),
        JobSlot::Character => Edit::Project(vec![("character_job_id", job.clone().into())]),
        // The last cut stops being the answer: their export waits for `finalOutputUrl`, and must
        // get the cut being made, not the one from before the edits.
        JobSlot::Final => Edit::Project(vec![
            ("final_job_id", job.clone().into()),
            ("status", COMPOSING.into()),
            ("final_video_id", Bind::none()),
        ]),
        JobSlot::Video(sequence) => Edit::Scene {
            sequence,
            sets: vec![
                ("video_job_id", job.clone().into()),
                ("status", PROCESSING.into()),
                ("error_message", Bind::none()),
            ],
            only_if_job: None,
        },
    };
    let version = change(jobs, &project.row.id, expected, &[edit]).await?;
    if let Err(e) = submit::<G>(state, jobs, project, body, &job).await {
        // Refused by its plan (a caller's mistake, nothing stored): the project no longer names
        // it, else it would wait for a job that never comes (composing for ever). Any other
        // failure keeps the link: the drive stores the job again under it.
        if e.status().is_client_error() {
            let undo = unlink(project, &slot, &job);
            if let Err(undo) = change(jobs, &project.row.id, None, &[undo]).await {
                tracing::warn!(project = %project.row.id, job, error = %undo.message, "a refused job stays named by its project");
            }
        }
        return Err(e);
    }
    Ok((job, version))
}

/// The edit that forgets job `job` recorded in `slot`, putting back what recording it changed.
fn unlink(project: &Project, slot: &JobSlot, job: &str) -> Edit {
    let settle = |column, sets| Edit::SettleProject { column, job: job.to_owned(), sets };
    match slot {
        JobSlot::Scenes => settle("scenes_job_id", vec![]),
        JobSlot::Character => settle("character_job_id", vec![]),
        JobSlot::Final => settle(
            "final_job_id",
            vec![
                ("status", project.row.status.clone().into()),
                ("final_video_id", project.row.final_video_id.clone().into()),
            ],
        ),
        JobSlot::Video(sequence) => {
            let scene = project.scenes.iter().find(|s| s.sequence == *sequence);
            Edit::Scene {
                sequence: *sequence,
                sets: vec![
                    ("video_job_id", Bind::none()),
                    ("status", scene.map(|s| s.status.clone()).into()),
                    ("error_message", scene.and_then(|s| s.error_message.clone()).into()),
                ],
                only_if_job: Some(job.to_owned()),
            }
        }
    }
}

/// Plans `body` as kind `G` with the project's pinned flavor and stores it as job `job`.
pub async fn submit<G: Generation>(
    state: &AppState,
    jobs: &Jobs,
    project: &Project,
    body: Value,
    job: &str,
) -> Result<(), ApiError> {
    // Through bytes and the sync endpoints' parser, as a job's stored input is planned
    // (`generation::stored`): each kind's body has one deserializer in the binary, not a second
    // one from `serde_json::Value` (BENCHMARKS.md, "Issue 22: the binary under 10 MB").
    let input: G::Input = input_of(project, G::KIND, &body)?;
    let planned = driver::plan_later_pinned::<G>(state, input, pinned(state, jobs, &project.row, None).await?)?;
    let mut stored = stored::to_store(state, planned).await?;
    stored.project_id = Some(project.row.id.clone());
    if jobs.submit_planned_as(job, G::KIND, &stored, project.row.api_key_scope.as_deref()).await? {
        tracing::info!(project = %project.row.id, job, kind = G::KIND.as_str(), "project job submitted");
    }
    Ok(())
}

/// A project job's `body` (built by the drive itself) parsed as kind `kind`'s input; a body that
/// does not parse is the drive's bug, an internal error, not the caller's.
fn input_of<T: serde::de::DeserializeOwned>(project: &Project, kind: Kind, body: &Value) -> Result<T, ApiError> {
    let not_a_body = |message: String| {
        ApiError::internal(format!("project {}: a {} body: {message}", project.row.id, kind.as_str()))
    };
    let bytes = serde_json::to_vec(body).map_err(|e| not_a_body(e.to_string()))?;
    crate::json_body::parse(&bytes).map_err(|e| not_a_body(e.message))
}

/// The jobs `project` names that were never stored (a crash between recording and storing).
async fn never_stored(jobs: &Jobs, project: &Project) -> Result<Vec<String>, ApiError> {
    let named = project.waits_for();
    let found = jobs.store().linked_jobs(&named).await.map_err(unavailable)?;
    Ok(named.into_iter().filter(|id| !found.iter().any(|j| j.id == *id)).map(str::to_owned).collect())
}
