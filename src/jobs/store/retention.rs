//! Retention: finished jobs (succeeded, failed, canceled) past `MVGEN_JOB_RETENTION` are deleted
//! with their events, saved upstream runs, webhook deliveries and the idempotency keys bound to them,
//! a small batch per transaction. Their outputs are not touched: they live in the store, not here.
//! A job whose result a project has not yet written in is kept until it has.

use sqlx::Row;

use super::{Dialect, Store, StoreError};
use crate::jobs::state::status_text;

/// The PostgreSQL advisory lock a purge batch holds for its transaction, so one replica purges at
/// a time ("mvgen" and "purge" in ASCII; sqlx's migration lock uses another key).
const PURGE_LOCK: i64 = 0x6d76_6765_6e70_7267;

/// What one purge batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purged {
    /// Another replica is purging now (PostgreSQL): nothing done.
    Busy,
    /// This many jobs deleted (fewer than the batch asked: nothing more is due).
    Jobs(u64),
}

impl Store {
    /// Deletes up to `batch` jobs that finished before `before` (Unix ms), and their events, runs
    /// and idempotency keys, in one transaction. Small batches keep the write lock short: on SQLite
    /// the one writer is held for one batch, and on PostgreSQL only the batch's rows are locked. On
    /// PostgreSQL a transaction-scoped advisory lock lets one replica purge at a time; on SQLite
    /// the single writer serialises purges anyway, and a second process finds the rows gone.
    pub async fn purge_finished(&self, before: i64, batch: i64) -> Result<Purged, StoreError> {
        const DUE: &str = concat!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('",
            status_text!(Succeeded),
            "', '",
            status_text!(Failed),
            "', '",
            status_text!(Canceled),
            "') AND completed_at < $1",
            // A result a project has not written in yet (see migrations/jobs/0008_projects.sql)
            // is kept until it has.
            " AND NOT EXISTS (SELECT 1 FROM project_scenes s WHERE s.video_job_id = jobs.id)",
            " AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.scenes_job_id = jobs.id OR p.character_job_id = jobs.id",
            " OR p.final_job_id = jobs.id)",
            " LIMIT $2) RETURNING id"
        );
        let mut tx = self.writer.begin().await?;
        if self.dialect == Dialect::Postgres {
            let locked: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS locked")
                .bind(PURGE_LOCK)
                .fetch_one(&mut *tx)
                .await?
                .try_get("locked")?;
            if !locked {
                tx.rollback().await?;
                return Ok(Purged::Busy);
            }
        }
        let ids: Vec<String> = sqlx::query(DUE)
            .bind(before)
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(Purged::Jobs(0));
        }
        // The ids as `$1, …, $n`: the `Any` driver binds no arrays.
        let list = (1..=ids.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        // A delivery's attempts go with it, before it (they are found through its job).
        let attempts = format!(
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE job_id IN ({list}))"
        );
        ids.iter().fold(sqlx::query(&attempts), |q, id| q.bind(id)).execute(&mut *tx).await?;
        for table in ["job_events", "job_runs", "idempotency", "webhook_deliveries"] {
            let sql = format!("DELETE FROM {table} WHERE job_id IN ({list})");
            ids.iter().fold(sqlx::query(&sql), |q, id| q.bind(id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Purged::Jobs(ids.len() as u64))
    }
}
