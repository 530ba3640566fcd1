//! A project's outbound webhook deliveries (issue 26): what a change to a project tells its
//! webhook, written as delivery rows in the same transaction as the change (`change_project`), so
//! a crash between the project's new state and its delivery loses nothing. The rows are the jobs'
//! (`deliveries`), with `subject = 'project'`; the same sender sends them.
//!
//! The events, in Replicate's words as a job's:
//! - `start`: its server-side generation (`POST …/generate`) began: `drive` became "the whole video";
//! - `progress`: one of its steps' jobs finished and was written in (scenes written, character
//!   drawn, a scene rendered, the cut made): a settle edit that changed a row;
//! - `completed`: the project ended: its status became `completed` (with its `finalOutputUrl`) or
//!   `failed` (a failed step, or a cancel).

use sqlx::Row;

use super::deliveries::{DeliveryStatus, HookEvent, HookEvents, Subject};
use super::projects::{Before, ProjectRow, SceneRow};
use super::{Store, StoreError, now_ms};

/// Renders a project (its row and scenes by display order) as `GET /api/mv/projects/{id}` shows
/// it, for a delivery's body: the answer lives above the store (`crate::projects`).
pub type RenderProject = fn(&ProjectRow, &[SceneRow]) -> String;

/// `projects.drive` while the whole video is being made (`crate::projects::drive`).
const DRIVE_WHOLE: i64 = 1;

/// The project's statuses that end it (`crate::projects::words`).
const ENDED: [&str; 2] = ["completed", "failed"];

/// The events one change tells of, in the order a project reaches them: `before` and `after` its
/// edits (status, drive), and whether one of them wrote a finished job's result in.
pub fn events_of(before: (&str, i64), after: (&str, i64), settled: bool) -> Vec<HookEvent> {
    let mut events = Vec::new();
    if after.1 == DRIVE_WHOLE && before.1 != DRIVE_WHOLE {
        events.push(HookEvent::Start);
    }
    if settled {
        events.push(HookEvent::Progress);
    }
    if ENDED.contains(&after.0) && before.0 != after.0 {
        events.push(HookEvent::Completed);
    }
    events
}

impl Store {
    /// After a change's edits, inside its transaction: writes a delivery for each event the change
    /// tells of that the project's webhook asked for. A project without a webhook (or whose
    /// filter wants none of them) costs no statement.
    pub(super) async fn queue_project_deliveries(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        before: &Before,
        settled: bool,
    ) -> Result<(), StoreError> {
        let (Some(url), Some(events)) = (&before.webhook, &before.events) else { return Ok(()) };
        let (Some(render), wanted) = (self.render_project, HookEvents::from_stored(events)) else { return Ok(()) };
        let row = sqlx::query("SELECT status, drive FROM projects WHERE id = $1").bind(id).fetch_one(&mut **tx).await?;
        let after: (String, i64) = (row.try_get("status")?, row.try_get("drive")?);
        let due: Vec<HookEvent> = events_of((&before.status, before.drive), (&after.0, after.1), settled)
            .into_iter()
            .filter(|e| wanted.contains(*e))
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        // The project as it is now, inside the transaction: the body of every event of this change.
        let Some((project, scenes)) = self.project_in(&mut **tx, id).await? else { return Ok(()) };
        let body = render(&project, &scenes);
        let now = now_ms();
        for event in due {
            sqlx::query(
                "INSERT INTO webhook_deliveries (id, job_id, subject, event, url, body, status, attempts, next_at, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
            )
            .bind(format!("msg_{}", uuid::Uuid::new_v4().simple()))
            .bind(id)
            .bind(Subject::Project.as_str())
            .bind(event.as_str())
            .bind(url)
            .bind(&body)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_tells_of_what_it_did() {
        use HookEvent::*;
        assert_eq!(events_of(("pending", 0), ("processing", 1), false), vec![Start], "generate began");
        assert_eq!(events_of(("completed", 0), ("processing", 1), false), vec![Start], "generate again");
        assert_eq!(events_of(("processing", 1), ("processing", 1), true), vec![Progress], "a scene rendered");
        assert_eq!(events_of(("processing", 1), ("processing", 1), false), Vec::<HookEvent>::new(), "a trim");
        assert_eq!(events_of(("composing", 1), ("completed", 0), true), vec![Progress, Completed], "the cut made");
        assert_eq!(events_of(("processing", 1), ("failed", 0), false), vec![Completed], "failed or canceled");
        assert_eq!(events_of(("failed", 0), ("failed", 0), false), Vec::<HookEvent>::new(), "no second end");
    }
}
