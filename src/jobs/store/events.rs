//! A job's events: writing one (and, on PostgreSQL, waking every replica) and reading them back.
//!
//! Every event is inserted in a transaction that first updates its job's row: that row lock orders
//! one job's events, so their ids increase in commit order and `id > Last-Event-ID` misses nothing.

use serde_json::Value;

use super::rows::{EventRow, event_row};
use super::{Dialect, Store, StoreError, now_ms};
use crate::jobs::state::EventKind;

/// The channel `pg_notify` wakes listeners on; the payload is the job id.
pub const NOTIFY_CHANNEL: &str = "mvgen_jobs";

impl Store {
    /// Inserts an event and on PostgreSQL wakes every replica, in `tx`. Every caller has already
    /// written the job's row in `tx`: that row lock orders one job's events (see the module doc).
    pub(super) async fn event(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        job_id: &str,
        kind: EventKind,
        data: &Value,
    ) -> Result<(), sqlx::Error> {
        const INSERT: &str = "INSERT INTO job_events (job_id, at, kind, data) VALUES ($1, $2, $3, $4)";
        // On PostgreSQL the wake-up rides in the same statement: one round trip per event, not two.
        const INSERT_AND_NOTIFY: &str = "WITH e AS (INSERT INTO job_events (job_id, at, kind, data) \
             VALUES ($1, $2, $3, $4) RETURNING job_id) SELECT pg_notify($5, job_id) FROM e";
        let sql = if self.dialect == Dialect::Postgres { INSERT_AND_NOTIFY } else { INSERT };
        let mut query =
            sqlx::query(sql).bind(job_id).bind(now_ms()).bind(kind.as_str()).bind(super::bind::json_text(data));
        if self.dialect == Dialect::Postgres {
            query = query.bind(NOTIFY_CHANNEL);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// On PostgreSQL, wakes every replica about `job_id` after a write that committed without
    /// waking them: in a statement of its own, outside the write's transaction. Why not inside it:
    /// a transaction that notifies takes one database-wide lock at commit and holds it until its
    /// commit is flushed to disk (PostgreSQL orders the notification queue by commit that way), so
    /// every notifying write waited for the previous one's fsync in turn: under load nearly every
    /// backend sat in `Lock: object` (`pg_stat_activity`, BENCHMARKS.md), and no two jobs' commits
    /// ever shared a WAL flush. A transaction that only notifies writes nothing to wait for.
    /// The wake-up is a hint (listeners also poll): a failure here is logged, not the write's.
    pub(super) async fn wake_replicas(&self, job_id: &str) {
        if self.dialect != Dialect::Postgres {
            return;
        }
        let woken = sqlx::query("SELECT pg_notify($1, $2)").bind(NOTIFY_CHANNEL).bind(job_id).execute(&self.pool).await;
        if let Err(e) = woken {
            tracing::debug!(job = job_id, error = %e, "cannot wake the replicas; they find the job at their poll");
        }
    }

    /// The job's events after `after`, oldest first.
    pub async fn events_after(&self, job_id: &str, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, job_id, at, kind, data FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(job_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_row).collect()
    }
}
