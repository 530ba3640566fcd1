//! What a claimed job records while it runs: the upstream runs it started (saved before anyone
//! waits on them, so the next attempt resumes rather than pays twice) and its progress; and an
//! upstream's word (a signed webhook) that a saved run ended.

use sqlx::Row;

use super::deliveries::HookEvent;
use super::events::NOTIFY_CHANNEL;
use super::{Dialect, Store, StoreError, now_ms};
use crate::jobs::state::{EventKind, JobStatus, status_text};
use crate::providers::UpstreamRun;

/// A wake-up on the jobs channel that names an upstream run, not a job: `upstream:{id}` (a job id
/// is a UUID, so the two never meet; an older build's listener passes it on as a job id nobody has).
pub const UPSTREAM_WAKE_PREFIX: &str = "upstream:";

impl Store {
    /// The upstream runs a job saved, for the next attempt to resume.
    pub async fn runs(&self, job_id: &str) -> Result<Vec<UpstreamRun>, StoreError> {
        let rows = sqlx::query("SELECT provider, upstream_id, slot FROM job_runs WHERE job_id = $1 ORDER BY slot")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UpstreamRun {
                    provider: row.try_get("provider")?,
                    id: row.try_get("upstream_id")?,
                    slot: row.try_get::<i64, _>("slot")? as u32,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Database)
    }

    /// Saves an upstream run of a claimed job; `Ok(false)` when the claim was lost.
    pub async fn save_run(&self, job_id: &str, claim: &str, run: &UpstreamRun) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let owned = sqlx::query(concat!(
            "UPDATE jobs SET heartbeat_at = $1 WHERE id = $2 AND claim = $3 AND status = '",
            status_text!(Processing),
            "'"
        ))
        .bind(now_ms())
        .bind(job_id)
        .bind(claim)
        .execute(&mut *tx)
        .await?;
        if owned.rows_affected() == 0 {
            return Ok(false);
        }
        let upsert = "INSERT INTO job_runs (job_id, provider, slot, upstream_id, at) VALUES ($1, $2, $3, $4, $5) \
                      ON CONFLICT (job_id, provider, slot) DO UPDATE SET upstream_id = excluded.upstream_id, at = excluded.at";
        sqlx::query(upsert)
            .bind(job_id)
            .bind(&run.provider)
            .bind(i64::from(run.slot))
            .bind(&run.id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let data = serde_json::json!({ "provider": run.provider, "id": run.id, "slot": run.slot });
        self.event(&mut tx, job_id, EventKind::Upstream, &data).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Marks the saved run `upstream_id` on `provider` as ended upstream (a webhook said so) and,
    /// on PostgreSQL, wakes every replica with `upstream:{id}` on the jobs channel, where the
    /// worker waiting on it listens. Returns the jobs that saved it (none: not a run of ours).
    pub async fn mark_upstream_ended(&self, provider: &str, upstream_id: &str) -> Result<Vec<String>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "UPDATE job_runs SET ended_at = $1 WHERE provider = $2 AND upstream_id = $3 AND ended_at IS NULL \
             RETURNING job_id",
        )
        .bind(now_ms())
        .bind(provider)
        .bind(upstream_id)
        .fetch_all(&mut *tx)
        .await?;
        if self.dialect == Dialect::Postgres && !rows.is_empty() {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(format!("{UPSTREAM_WAKE_PREFIX}{upstream_id}"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        rows.iter().map(|row| row.try_get("job_id").map_err(StoreError::Database)).collect()
    }

    /// Whether a webhook said the saved run `upstream_id` on `provider` ended.
    pub async fn upstream_ended(&self, provider: &str, upstream_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS ended FROM job_runs WHERE provider = $1 AND upstream_id = $2 AND ended_at IS NOT NULL",
        )
        .bind(provider)
        .bind(upstream_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("ended")? > 0)
    }

    /// Records a progress step of a claimed job (row and event).
    pub async fn progress(
        &self,
        job_id: &str,
        claim: &str,
        stage: &str,
        upstream_status: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let owned = sqlx::query(concat!(
            "UPDATE jobs SET progress_stage = $1, progress_upstream_status = $2 \
             WHERE id = $3 AND claim = $4 AND status = '",
            status_text!(Processing),
            "' RETURNING webhook_events",
        ))
        .bind(stage)
        .bind(upstream_status)
        .bind(job_id)
        .bind(claim)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(owned) = owned {
            let data = serde_json::json!({
                "status": JobStatus::Processing, "stage": stage, "upstream_status": upstream_status,
            });
            self.event(&mut tx, job_id, EventKind::Progress, &data).await?;
            let events: Option<String> = sqlx::Row::try_get(&owned, "webhook_events")?;
            self.queue_delivery(&mut tx, job_id, HookEvent::Progress, events.as_deref()).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
