//! Projects and their scenes (migrations/jobs/0008_projects.sql): rows in the jobs database, so a
//! project and the jobs that make it are stored, backed up and replicated together. Only rows and
//! statements here; what a project means (statuses, the pinned flavor, settling job results) is
//! `crate::projects`.
//!
//! Every change to a project or its scenes is one transaction that first bumps the project's
//! `version` (its ETag), optionally only if the version is still the one the caller read: two
//! clients editing one project see 412 rather than overwrite each other.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::bind::AnyQuery;
pub use super::bind::Bind;
use super::{Store, StoreError, now_ms};
use crate::jobs::state::status_text;

/// A project's row.
#[derive(Debug, Clone, Default)]
pub struct ProjectRow {
    pub seq: i64,
    pub id: String,
    pub status: String,
    pub mode: String,
    pub concept_prompt: String,
    pub character_description: Option<String>,
    pub character_image_id: Option<String>,
    pub product_description: Option<String>,
    pub product_image_id: Option<String>,
    pub director_config: Option<String>,
    pub audio_id: Option<String>,
    pub flavor_name: String,
    pub flavor_hash: String,
    /// The pinned flavor's resolved content (JSON text): written at creation, read only by
    /// `project_flavor` (never with the project).
    pub flavor_content: Option<String>,
    pub scenes_job_id: Option<String>,
    pub character_job_id: Option<String>,
    pub final_job_id: Option<String>,
    pub final_video_id: Option<String>,
    pub error_message: Option<String>,
    pub version: i64,
    pub api_key_scope: Option<String>,
    /// The project's webhook URL (checked at create or PATCH) and the events it asked for, as
    /// stored (`HookEvents::stored`); both `None` without one (migration 14).
    pub webhook: Option<String>,
    pub webhook_events: Option<String>,
    /// Being made server-side: 0 no, 1 the whole video (`POST /projects/{id}/generate`), 2 only
    /// the scenes' clips (a scene added).
    pub drive: i64,
    /// The scene count its creator asked for (`numberOfScenes`); without it a song decides.
    pub scenes_asked: Option<i64>,
    /// The scenes planned on the song's beats (`projects::beat_plan::BeatPlan` as JSON).
    pub beat_plan: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Scenes, and how many are completed and failed (listings only; a full read counts its
    /// scenes itself).
    pub counts: Option<(i64, i64, i64)>,
}

/// A scene's row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneRow {
    pub sequence: i64,
    pub display_sequence: i64,
    pub status: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub duration_ms: i64,
    pub reference_image_id: Option<String>,
    /// The video job whose result is not yet written into the scene.
    pub video_job_id: Option<String>,
    /// The last video job written in (their `videoGenerationJobId`).
    pub last_job_id: Option<String>,
    /// The scene's clip as generated or uploaded (a stored video id).
    pub video_id: Option<String>,
    /// The clip's own length.
    pub clip_ms: Option<i64>,
    pub trim_in_ms: Option<i64>,
    pub trim_out_ms: Option<i64>,
    pub error_message: Option<String>,
    /// Follows the project's beat plan: rendered to cover its place, ended on its cut.
    pub on_beat: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A job a project names, as far as settling it needs.
#[derive(Debug, Clone)]
pub struct LinkedJob {
    pub id: String,
    pub status: String,
    pub output: Option<String>,
    pub error_message: Option<String>,
}

/// Columns set to values. Column names are always this crate's constants, never input.
pub type Sets = Vec<(&'static str, Bind)>;

/// One change inside a project's transaction.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Sets project columns.
    Project(Sets),
    /// Sets scene columns; with `only_if_job`, only while the scene still names that job (a
    /// settle that lost a race to a newer change does nothing).
    Scene { sequence: i64, sets: Sets, only_if_job: Option<String> },
    /// Clears the project's `column` (a job link) only while it still names `job`.
    SettleProject { column: &'static str, job: String, sets: Sets },
    /// Adds a scene.
    InsertScene(Box<SceneRow>),
    /// Removes one scene.
    DeleteScene(i64),
    /// Removes every scene.
    DeleteScenes,
}

/// A project's state as a change found it, before its edits (read by the statement that bumps its
/// version, so it costs no statement of its own): what its webhook is told is judged from it
/// (`project_deliveries`).
#[derive(Debug, Clone, Default)]
pub struct Before {
    pub status: String,
    pub drive: i64,
    /// The project's `webhook` and `webhook_events` columns; `None` without a webhook.
    pub webhook: Option<String>,
    pub events: Option<String>,
}

/// Whether `edit` writes a finished job's result in, guarded by that job (so it does nothing when
/// the result was already written).
fn settles(edit: &Edit) -> bool {
    matches!(edit, Edit::SettleProject { .. } | Edit::Scene { only_if_job: Some(_), .. })
}

/// What a change to a project found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// Done; the project's new version.
    Done(i64),
    /// No such project.
    Missing,
    /// The project's version is no longer the one expected; its current version.
    Stale(i64),
}

const PROJECT_COLUMNS: &str = "seq, id, status, mode, concept_prompt, character_description, character_image_id, \
     product_description, product_image_id, director_config, audio_id, flavor_name, flavor_hash, scenes_job_id, \
     character_job_id, final_job_id, final_video_id, error_message, version, api_key_scope, drive, scenes_asked, \
     beat_plan, created_at, updated_at, webhook, webhook_events";

const SCENE_COLUMNS: &str = "sequence, display_sequence, status, prompt, negative_prompt, duration_ms, \
     reference_image_id, video_job_id, last_job_id, video_id, clip_ms, trim_in_ms, trim_out_ms, error_message, \
     on_beat, created_at, updated_at";

impl Store {
    /// Stores a new project (and no scenes).
    pub async fn insert_project(&self, p: &ProjectRow) -> Result<(), StoreError> {
        let sql = "INSERT INTO projects (id, status, mode, concept_prompt, character_description, \
            character_image_id, product_description, product_image_id, director_config, audio_id, flavor_name, \
            flavor_hash, flavor_content, version, api_key_scope, scenes_asked, created_at, updated_at, webhook, \
            webhook_events) \
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $15, $16, $16, $17, $18)";
        sqlx::query(sql)
            .bind(&p.id)
            .bind(&p.status)
            .bind(&p.mode)
            .bind(&p.concept_prompt)
            .bind(&p.character_description)
            .bind(&p.character_image_id)
            .bind(&p.product_description)
            .bind(&p.product_image_id)
            .bind(&p.director_config)
            .bind(&p.audio_id)
            .bind(&p.flavor_name)
            .bind(&p.flavor_hash)
            .bind(&p.flavor_content)
            .bind(&p.api_key_scope)
            .bind(p.scenes_asked)
            .bind(p.created_at)
            .bind(&p.webhook)
            .bind(&p.webhook_events)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The project `id` and its scenes by display order, in one query (a project is read on
    /// every poll of their UI): the project's columns repeat on each scene's row.
    pub async fn project(&self, id: &str) -> Result<Option<(ProjectRow, Vec<SceneRow>)>, StoreError> {
        self.project_in(&self.pool, id).await
    }

    /// [`Store::project`] through `executor` (a transaction's connection, to render a webhook's
    /// body from the state the transaction wrote).
    pub(super) async fn project_in<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
        id: &str,
    ) -> Result<Option<(ProjectRow, Vec<SceneRow>)>, StoreError> {
        let project = PROJECT_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ");
        let scene = SCENE_COLUMNS.split(", ").map(|c| format!("s.{c} AS s_{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {project}, {scene} FROM projects p LEFT JOIN project_scenes s ON s.project_id = p.id \
             WHERE p.id = $1 ORDER BY s.display_sequence, s.sequence"
        );
        let rows = sqlx::query(&sql).bind(id).fetch_all(executor).await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let project = project_row(first)?;
        let mut scenes = Vec::with_capacity(rows.len());
        for row in &rows {
            // A project without scenes is one row whose scene columns are all NULL.
            if row.try_get::<Option<i64>, _>("s_sequence")?.is_some() {
                scenes.push(scene_row(row, "s_")?);
            }
        }
        Ok(Some((project, scenes)))
    }

    /// Project `id`'s version, and whether it names a job whose result may still have to be
    /// written in (then a reader must read it whole and settle it): the cheap read a GET starts
    /// with, to answer from a copy of the same version when nothing can have changed.
    pub async fn project_head(&self, id: &str) -> Result<Option<(i64, bool)>, StoreError> {
        let sql = "SELECT version, CAST(CASE WHEN scenes_job_id IS NOT NULL OR character_job_id IS NOT NULL \
             OR final_job_id IS NOT NULL OR EXISTS (SELECT 1 FROM project_scenes s WHERE s.project_id = p.id \
             AND s.video_job_id IS NOT NULL) THEN 1 ELSE 0 END AS BIGINT) AS waiting FROM projects p WHERE id = $1";
        let Some(row) = sqlx::query(sql).bind(id).fetch_optional(&self.pool).await? else { return Ok(None) };
        Ok(Some((row.try_get("version")?, row.try_get::<i64, _>("waiting")? != 0)))
    }

    /// The resolved content of the flavor project `id` pinned (JSON), read only when it must be
    /// compiled back.
    pub async fn project_flavor(&self, id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT flavor_content FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| row.try_get("flavor_content")).transpose().map_err(Into::into)
    }

    /// Projects newest first, with their scene counts, without their flavors' content.
    pub async fn list_projects(
        &self,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ProjectRow>, StoreError> {
        let mut clauses = Vec::new();
        if status.is_some() {
            clauses.push("p.status = $1");
        }
        if before.is_some() {
            clauses.push(if status.is_some() { "p.seq < $2" } else { "p.seq < $1" });
        }
        let clause = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let columns = PROJECT_COLUMNS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, \
             (SELECT count(*) FROM project_scenes s WHERE s.project_id = p.id) AS scene_count, \
             (SELECT count(*) FROM project_scenes s WHERE s.project_id = p.id AND s.status = 'completed') AS completed, \
             (SELECT count(*) FROM project_scenes s WHERE s.project_id = p.id AND s.status = 'failed') AS failed \
             FROM projects p {clause} ORDER BY p.seq DESC LIMIT {limit}"
        );
        let mut query = sqlx::query(&sql);
        if let Some(status) = status {
            query = query.bind(status);
        }
        if let Some(before) = before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let mut project = project_row(row)?;
                project.counts = Some((row.try_get("scene_count")?, row.try_get("completed")?, row.try_get("failed")?));
                Ok(project)
            })
            .collect()
    }

    /// The jobs `ids` as settling needs them (those that exist).
    pub async fn linked_jobs(&self, ids: &[&str]) -> Result<Vec<LinkedJob>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // The ids as `$1, …, $n`: the `Any` driver binds no arrays.
        let list = (1..=ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT id, status, output, error_message FROM jobs WHERE id IN ({list})");
        let rows = ids.iter().fold(sqlx::query(&sql), |q, id| q.bind(*id)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(LinkedJob {
                    id: row.try_get("id")?,
                    status: row.try_get("status")?,
                    output: row.try_get("output")?,
                    error_message: row.try_get("error_message")?,
                })
            })
            .collect()
    }

    /// Applies `edits` to project `id` in one transaction, after bumping its version; with
    /// `expected`, only if the version is still that one.
    pub async fn change_project(&self, id: &str, expected: Option<i64>, edits: &[Edit]) -> Result<Changed, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let bumped = match expected {
            Some(version) => {
                sqlx::query(
                    "UPDATE projects SET version = version + 1, updated_at = $1 WHERE id = $2 AND version = $3 \
                     RETURNING version, status, drive, webhook, webhook_events",
                )
                .bind(now)
                .bind(id)
                .bind(version)
                .fetch_all(&mut *tx)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE projects SET version = version + 1, updated_at = $1 WHERE id = $2 \
                     RETURNING version, status, drive, webhook, webhook_events",
                )
                .bind(now)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
            }
        };
        let Some(row) = bumped.first() else {
            let current =
                sqlx::query("SELECT version FROM projects WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            tx.rollback().await?;
            return Ok(match current {
                Some(row) => Changed::Stale(row.try_get("version")?),
                None => Changed::Missing,
            });
        };
        let version: i64 = row.try_get("version")?;
        // The bump changed only the version: the state before the edits, for the webhook.
        let before = Before {
            status: row.try_get("status")?,
            drive: row.try_get("drive")?,
            webhook: row.try_get("webhook")?,
            events: row.try_get("webhook_events")?,
        };
        let mut settled = false;
        for edit in edits {
            let sql = edit_sql(edit);
            let done = bind_edit(sqlx::query(&sql), id, now, edit).execute(&mut *tx).await?;
            // A finished job's result written in (not a settle that lost its race and did nothing).
            settled |= settles(edit) && done.rows_affected() > 0;
            if done.rows_affected() > 0 {
                for video in named_videos(edit) {
                    sqlx::query(KEEP_FILE).bind(id).bind(video).execute(&mut *tx).await?;
                }
            }
        }
        if !settled && !edits.is_empty() && edits.iter().all(settles) {
            // Only settles, and each lost its race (another reader or replica settled first): the
            // project did not change, so neither do its version and ETag. Bumped, its GET would
            // differ from the body its webhook was told for that very state.
            tx.rollback().await?;
            return Ok(Changed::Done(version - 1));
        }
        self.queue_project_deliveries(&mut tx, id, &before, settled).await?;
        tx.commit().await?;
        Ok(Changed::Done(version))
    }

    /// Projects being made server-side whose lease is free (none, or expired at `now`), oldest
    /// first, that have a step to take: one of the jobs they wait for has ended (or was never
    /// stored), or they wait for none at the project level and have room for another render
    /// (fewer than `parallel` in flight) or nothing in flight. A project only waiting for running
    /// jobs is not read at all, so a look over a hundred rendering projects is one query.
    pub async fn projects_to_drive(&self, now: i64, limit: i64, parallel: i64) -> Result<Vec<String>, StoreError> {
        const ENDED: &str =
            concat!("('", status_text!(Succeeded), "', '", status_text!(Failed), "', '", status_text!(Canceled), "')");
        // The job in `column` has ended or was never stored: the project has a result to settle.
        let ended_or_missing = |column: &str| {
            format!(
                "({column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = {column} \
                 AND j.status NOT IN {ENDED}))"
            )
        };
        let sql = format!(
            "SELECT id FROM (SELECT p.id, p.seq, \
             (SELECT count(*) FROM project_scenes s WHERE s.project_id = p.id AND s.video_job_id IS NOT NULL) AS in_flight, \
             (SELECT count(*) FROM project_scenes s WHERE s.project_id = p.id AND s.video_id IS NULL \
                 AND s.video_job_id IS NULL AND s.status <> 'failed') AS todo, \
             CASE WHEN EXISTS (SELECT 1 FROM project_scenes s LEFT JOIN jobs j ON j.id = s.video_job_id \
                 WHERE s.project_id = p.id AND s.video_job_id IS NOT NULL AND (j.id IS NULL OR j.status IN {ENDED})) \
               OR {} OR {} OR {} THEN 1 ELSE 0 END AS ready, \
             CASE WHEN p.scenes_job_id IS NULL AND p.character_job_id IS NULL AND p.final_job_id IS NULL \
               THEN 0 ELSE 1 END AS waits_project \
             FROM projects p WHERE p.drive > 0 AND (p.drive_until IS NULL OR p.drive_until < $1)) due \
             WHERE ready = 1 OR (waits_project = 0 AND (in_flight = 0 OR (todo > 0 AND in_flight < $2))) \
             ORDER BY seq LIMIT {limit}",
            ended_or_missing("p.scenes_job_id"),
            ended_or_missing("p.character_job_id"),
            ended_or_missing("p.final_job_id"),
        );
        let rows = sqlx::query(&sql).bind(now).bind(parallel).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    /// Takes project `id`'s drive lease for `lease` until `until`, if it is free at `now`.
    pub async fn lease_project(&self, id: &str, lease: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE projects SET drive_lease = $1, drive_until = $2 WHERE id = $3 AND drive > 0 \
             AND (drive_until IS NULL OR drive_until < $4)",
        )
        .bind(lease)
        .bind(until)
        .bind(id)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives project `id`'s drive lease back (if `lease` still holds it).
    pub async fn release_project(&self, id: &str, lease: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET drive_until = NULL WHERE id = $1 AND drive_lease = $2")
            .bind(id)
            .bind(lease)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Whether any project names song `audio_id` (one song may back several projects: a JSON
    /// create names an uploaded song by id).
    pub async fn audio_in_use(&self, audio_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT id FROM projects WHERE audio_id = $1 LIMIT 1")
            .bind(audio_id)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.is_some())
    }

    /// Deletes project `id` with its scenes; every video it has named (`project_files`), for the
    /// caller to delete from the store, or `None` when there was no such project.
    pub async fn delete_project(&self, id: &str) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let videos: Vec<String> =
            sqlx::query_scalar("DELETE FROM project_files WHERE project_id = $1 RETURNING video_id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        sqlx::query("DELETE FROM project_scenes WHERE project_id = $1").bind(id).execute(&mut *tx).await?;
        let deleted = sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((deleted.rows_affected() > 0).then_some(videos))
    }
}

/// Records that a project named a video (once: a take named again is not a second row).
const KEEP_FILE: &str = "INSERT INTO project_files (project_id, video_id) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// The stored videos `edit` names: a scene's clip or the project's final cut.
fn named_videos(edit: &Edit) -> Vec<&str> {
    let sets = match edit {
        Edit::Project(sets) | Edit::SettleProject { sets, .. } | Edit::Scene { sets, .. } => sets,
        Edit::InsertScene(scene) => return scene.video_id.as_deref().into_iter().collect(),
        Edit::DeleteScene(_) | Edit::DeleteScenes => return Vec::new(),
    };
    sets.iter()
        .filter(|(column, _)| matches!(*column, "video_id" | "final_video_id"))
        .filter_map(|(_, value)| match value {
            Bind::Text(Some(video)) => Some(video.as_str()),
            _ => None,
        })
        .collect()
}

/// The SQL of `edit`; [`bind_edit`] binds its values in the same order.
fn edit_sql(edit: &Edit) -> String {
    match edit {
        Edit::Project(sets) => {
            let (assign, next) = assignments(sets);
            format!("UPDATE projects SET {assign} WHERE id = ${next}")
        }
        Edit::SettleProject { column, sets, .. } => {
            let (assign, next) = assignments(sets);
            let comma = if sets.is_empty() { "" } else { ", " };
            format!("UPDATE projects SET {assign}{comma}{column} = NULL WHERE id = ${next} AND {column} = ${}", next + 1)
        }
        Edit::Scene { sets, only_if_job, .. } => {
            let (assign, next) = assignments(sets);
            let comma = if sets.is_empty() { "" } else { ", " };
            let guard = if only_if_job.is_some() { format!(" AND video_job_id = ${}", next + 3) } else { String::new() };
            format!(
                "UPDATE project_scenes SET {assign}{comma}updated_at = ${next} WHERE project_id = ${} AND sequence = ${}{guard}",
                next + 1,
                next + 2
            )
        }
        Edit::InsertScene(_) => "INSERT INTO project_scenes (project_id, sequence, display_sequence, status, prompt, \
             negative_prompt, duration_ms, reference_image_id, video_job_id, last_job_id, video_id, clip_ms, trim_in_ms, \
             trim_out_ms, error_message, on_beat, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)"
            .to_owned(),
        Edit::DeleteScene(_) => "DELETE FROM project_scenes WHERE project_id = $1 AND sequence = $2".to_owned(),
        Edit::DeleteScenes => "DELETE FROM project_scenes WHERE project_id = $1".to_owned(),
    }
}

/// Binds the values of `edit` on project `id` into its [`edit_sql`].
fn bind_edit<'q>(query: AnyQuery<'q>, id: &'q str, now: i64, edit: &'q Edit) -> AnyQuery<'q> {
    match edit {
        Edit::Project(sets) => bind_all(query, sets).bind(id),
        Edit::SettleProject { job, sets, .. } => bind_all(query, sets).bind(id).bind(job.as_str()),
        Edit::Scene { sequence, sets, only_if_job } => {
            let query = bind_all(query, sets).bind(now).bind(id).bind(*sequence);
            match only_if_job {
                Some(job) => query.bind(job.as_str()),
                None => query,
            }
        }
        Edit::InsertScene(s) => query
            .bind(id)
            .bind(s.sequence)
            .bind(s.display_sequence)
            .bind(s.status.as_str())
            .bind(s.prompt.as_str())
            .bind(s.negative_prompt.as_deref())
            .bind(s.duration_ms)
            .bind(s.reference_image_id.as_deref())
            .bind(s.video_job_id.as_deref())
            .bind(s.last_job_id.as_deref())
            .bind(s.video_id.as_deref())
            .bind(s.clip_ms)
            .bind(s.trim_in_ms)
            .bind(s.trim_out_ms)
            .bind(s.error_message.as_deref())
            .bind(i64::from(s.on_beat))
            .bind(now),
        Edit::DeleteScene(sequence) => query.bind(id).bind(*sequence),
        Edit::DeleteScenes => query.bind(id),
    }
}

/// `a = $1, b = $2, …` for `sets`, and the next free placeholder.
fn assignments(sets: &Sets) -> (String, usize) {
    let assign = sets.iter().enumerate().map(|(i, (column, _))| format!("{column} = ${}", i + 1)).collect::<Vec<_>>();
    (assign.join(", "), sets.len() + 1)
}

fn bind_all<'q>(query: AnyQuery<'q>, sets: &'q Sets) -> AnyQuery<'q> {
    sets.iter().fold(query, |query, (_, value)| value.bind_to(query))
}

fn project_row(row: &AnyRow) -> Result<ProjectRow, StoreError> {
    Ok(ProjectRow {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        status: row.try_get("status")?,
        mode: row.try_get("mode")?,
        concept_prompt: row.try_get("concept_prompt")?,
        character_description: row.try_get("character_description")?,
        character_image_id: row.try_get("character_image_id")?,
        product_description: row.try_get("product_description")?,
        product_image_id: row.try_get("product_image_id")?,
        director_config: row.try_get("director_config")?,
        audio_id: row.try_get("audio_id")?,
        flavor_name: row.try_get("flavor_name")?,
        flavor_hash: row.try_get("flavor_hash")?,
        flavor_content: None,
        scenes_job_id: row.try_get("scenes_job_id")?,
        character_job_id: row.try_get("character_job_id")?,
        final_job_id: row.try_get("final_job_id")?,
        final_video_id: row.try_get("final_video_id")?,
        error_message: row.try_get("error_message")?,
        version: row.try_get("version")?,
        api_key_scope: row.try_get("api_key_scope")?,
        webhook: row.try_get("webhook")?,
        webhook_events: row.try_get("webhook_events")?,
        drive: row.try_get("drive")?,
        scenes_asked: row.try_get("scenes_asked")?,
        beat_plan: row.try_get("beat_plan")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        counts: None,
    })
}

/// A scene from `row`, its columns named with `prefix` (`s_` in a join).
fn scene_row(row: &AnyRow, prefix: &str) -> Result<SceneRow, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(SceneRow {
        sequence: row.try_get(col("sequence").as_str())?,
        display_sequence: row.try_get(col("display_sequence").as_str())?,
        status: row.try_get(col("status").as_str())?,
        prompt: row.try_get(col("prompt").as_str())?,
        negative_prompt: row.try_get(col("negative_prompt").as_str())?,
        duration_ms: row.try_get(col("duration_ms").as_str())?,
        reference_image_id: row.try_get(col("reference_image_id").as_str())?,
        video_job_id: row.try_get(col("video_job_id").as_str())?,
        last_job_id: row.try_get(col("last_job_id").as_str())?,
        video_id: row.try_get(col("video_id").as_str())?,
        clip_ms: row.try_get(col("clip_ms").as_str())?,
        trim_in_ms: row.try_get(col("trim_in_ms").as_str())?,
        trim_out_ms: row.try_get(col("trim_out_ms").as_str())?,
        error_message: row.try_get(col("error_message").as_str())?,
        on_beat: row.try_get::<i64, _>(col("on_beat").as_str())? != 0,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    })
}
