//! Retention: finished jobs (succeeded, failed, canceled) past `MVGEN_JOB_RETENTION` are deleted
//! with their events, saved upstream runs, webhook deliveries and the idempotency keys bound to them,
//! a small batch per transaction. Their outputs in the store are not touched; what an answer kept in
//! the row itself (scenes) is written to the store by the engine first ([`Due`]). A job whose result
//! a project has not yet written in is kept until it has. A project is never purged, but the
//! deliveries its webhook finished before the retention are ([`Store::purge_project_deliveries`]).

use serde_json::Value;
use sqlx::Row;

use super::deliveries::DeliveryStatus;
use super::rows::json;
use super::{Dialect, Store, StoreError};
use crate::generation::Kind;
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

/// Which finished jobs are due: succeeded, failed or canceled before `$1` (Unix ms).
macro_rules! due {
    () => {
        concat!(
            "status IN ('",
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
            " OR p.final_job_id = jobs.id)"
        )
    };
}

/// Up to `$2` jobs due for the purge (`$1`: finished before).
pub(super) const DUE: &str = concat!("SELECT id, kind, output FROM jobs WHERE ", due!(), " LIMIT $2");

/// A job due for the purge, with what it answered (a succeeded job's output): what the row holds
/// that must be kept elsewhere before it goes (see `JobPipeline::keep_output`).
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    /// `None` for a kind this build does not know: it keeps nothing of it.
    pub kind: Option<Kind>,
    pub output: Option<Value>,
}

impl Store {
    /// Up to `batch` jobs that finished before `before` (Unix ms) and may be purged, read without
    /// any lock: the purge keeps what they hold ([`Due`]) before [`Store::purge_finished`] deletes
    /// them.
    pub async fn due_for_purge(&self, before: i64, batch: i64) -> Result<Vec<Due>, StoreError> {
        let rows = sqlx::query(DUE).bind(before).bind(batch).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let output: Option<String> = row.try_get("output")?;
                Ok(Due { id: row.try_get("id")?, kind: Kind::parse(&kind), output: output.map(|t| json(Some(t))) })
            })
            .collect()
    }

    /// Deletes the jobs `ids` that are still due (finished before `before`, Unix ms, and not held
    /// by a project), and their events, runs and idempotency keys, in one transaction. Small
    /// batches keep the write lock short: on SQLite the one writer is held for one batch, and on
    /// PostgreSQL only the batch's rows are locked. On PostgreSQL a transaction-scoped advisory
    /// lock lets one replica purge at a time; on SQLite the single writer serialises purges
    /// anyway, and a second process finds the rows gone.
    pub async fn purge_finished(&self, ids: &[String], before: i64) -> Result<Purged, StoreError> {
        if ids.is_empty() {
            return Ok(Purged::Jobs(0));
        }
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
        // The ids as `$2, …, $n+1` (`$1` is `before`): the `Any` driver binds no arrays.
        let list = (2..=ids.len() + 1).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
        let due = format!(concat!("DELETE FROM jobs WHERE ", due!(), " AND id IN ({list}) RETURNING id"), list = list);
        let ids: Vec<String> = ids
            .iter()
            .fold(sqlx::query(&due).bind(before), |q, id| q.bind(id))
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

    /// Deletes up to `batch` project deliveries that ended (delivered, failed for good, or stopped
    /// by a 410) before `before` (Unix ms), with their attempts: a project outlives the retention,
    /// what its webhook was told does not. A pending one (waiting for a retry) stays until it ends;
    /// a delivered one sent again by hand is pending again, so it stays too. Returns how many went.
    pub async fn purge_project_deliveries(&self, before: i64, batch: i64) -> Result<u64, StoreError> {
        // The write first, so SQLite takes its write lock at once rather than upgrading a read.
        // `subject = 'project'` is written out so both engines use migration 16's partial index.
        const GONE: &str = "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
                            WHERE subject = 'project' AND completed_at < $1 AND status <> $2 LIMIT $3) RETURNING id";
        let mut tx = self.writer.begin().await?;
        let gone: Vec<String> = sqlx::query(GONE)
            .bind(before)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<Result<_, _>>()?;
        if !gone.is_empty() {
            // The ids as `$1, …, $n`: the `Any` driver binds no arrays.
            let list = (1..=gone.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ");
            let attempts = format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({list})");
            gone.iter().fold(sqlx::query(&attempts), |q, id| q.bind(id)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(gone.len() as u64)
    }
}
