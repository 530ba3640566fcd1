//! How a job ends: a worker's claim ending in an [`Outcome`], and a client's cancel.

use std::time::Duration;

use serde_json::Value;

use super::deliveries::HookEvent;
use super::rows::{COLUMNS, JobRow, job_row};
use super::{Store, StoreError, now_ms};
use crate::error::ErrorKind;
use crate::jobs::state::{EventKind, JobStatus, status_text};

/// How a worker ends its claim.
pub enum Outcome<'a> {
    Succeeded(&'a Value),
    Failed {
        code: ErrorKind,
        message: &'a str,
        status: u16,
        details: &'a Value,
    },
    Canceled,
    /// A retryable failure: queued again after `after`, its saved upstream runs kept, so the next
    /// attempt resumes a run that is still going or already done (a poll or a download failed)
    /// instead of paying for a second one; a run that failed upstream fails that attempt again.
    Retry {
        code: ErrorKind,
        message: &'a str,
        after: Duration,
    },
    /// Shutdown: back to the queue at once, runs kept, so the next worker resumes them; its next
    /// claim continues this attempt (a restart is not a failure).
    Released,
}

/// A claim's end, stored.
pub struct Finished {
    /// The job as it now is (read back by the same statement), for a waiter in this process;
    /// `None` in the rare case this build cannot read it (a word a newer build stored): the end
    /// is stored either way.
    pub row: Option<JobRow>,
}

impl Store {
    /// Ends a claim; `Ok(None)` when it was no longer ours.
    pub async fn finish(
        &self,
        job_id: &str,
        claim: &str,
        outcome: Outcome<'_>,
    ) -> Result<Option<Finished>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let guard = concat!("WHERE id = $1 AND claim = $2 AND status = '", status_text!(Processing), "'");
        let (result, kind, data) = match outcome {
            Outcome::Succeeded(output) => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = '{succeeded}', output = $3, completed_at = $4, claim = NULL, \
                     error_code = NULL, error_message = NULL, error_status = NULL, error_details = NULL {guard} RETURNING webhook_events, {COLUMNS}",
                    succeeded = status_text!(Succeeded),
                ))
                .bind(job_id)
                .bind(claim)
                .bind(output.to_string())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?,
                EventKind::Succeeded,
                serde_json::json!({ "status": JobStatus::Succeeded }),
            ),
            Outcome::Failed { code, message, status, details } => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = '{failed}', error_code = $3, error_message = $4, error_status = $5, \
                     completed_at = $6, claim = NULL, error_details = $7 {guard} RETURNING webhook_events, {COLUMNS}",
                    failed = status_text!(Failed),
                ))
                .bind(job_id)
                .bind(claim)
                // The error kind's wire name, as in the sync endpoints' error bodies.
                .bind(code.to_string())
                .bind(message)
                .bind(i64::from(status))
                .bind(now)
                .bind(details.to_string())
                .fetch_optional(&mut *tx)
                .await?,
                EventKind::Failed,
                serde_json::json!({ "status": JobStatus::Failed, "error": { "code": code, "message": message } }),
            ),
            Outcome::Canceled => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = '{canceled}', completed_at = $3, claim = NULL {guard} RETURNING webhook_events, {COLUMNS}",
                    canceled = status_text!(Canceled),
                ))
                .bind(job_id)
                .bind(claim)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?,
                EventKind::Canceled,
                serde_json::json!({ "status": JobStatus::Canceled }),
            ),
            Outcome::Retry { code, message, after } => {
                let result = sqlx::query(&format!(
                    "UPDATE jobs SET status = '{queued}', claim = NULL, run_after = $3, error_code = $4, \
                     error_message = $5 {guard} RETURNING webhook_events, {COLUMNS}",
                    queued = status_text!(Queued),
                ))
                .bind(job_id)
                .bind(claim)
                .bind(now + after.as_millis() as i64)
                .bind(code.to_string())
                .bind(message)
                .fetch_optional(&mut *tx)
                .await?;
                let data = serde_json::json!({
                    "status": JobStatus::Queued, "retry_in_seconds": after.as_secs_f64(),
                    "error": { "code": code, "message": message },
                });
                (result, EventKind::Retrying, data)
            }
            Outcome::Released => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = '{queued}', claim = NULL, run_after = $3, resume = 1 {guard} RETURNING webhook_events, {COLUMNS}",
                    queued = status_text!(Queued),
                ))
                .bind(job_id)
                .bind(claim)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?,
                EventKind::Released,
                serde_json::json!({ "status": JobStatus::Queued }),
            ),
        };
        let Some(row) = result else {
            return Ok(None);
        };
        self.event(&mut tx, job_id, kind, &data).await?;
        // The end and its webhook delivery in one transaction: a crash cannot keep one without
        // the other.
        if kind.is_final() {
            let events: Option<String> = sqlx::Row::try_get(&row, "webhook_events")?;
            self.queue_delivery(&mut tx, job_id, HookEvent::Completed, events.as_deref()).await?;
        }
        tx.commit().await?;
        Ok(Some(Finished { row: job_row(&row).ok() }))
    }

    /// Cancels a queued job at once, or asks the worker of a processing one to stop. Returns the
    /// job as it is afterwards (`None` when unknown) and whether this call canceled a queued job:
    /// no worker holds that one, so nobody else will cancel the upstream runs it saved.
    pub async fn cancel(&self, job_id: &str) -> Result<(Option<JobRow>, bool), StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let queued = sqlx::query(concat!(
            "UPDATE jobs SET status = '",
            status_text!(Canceled),
            "', completed_at = $1, cancel_requested = 1 WHERE id = $2 AND status = '",
            status_text!(Queued),
            "' RETURNING webhook_events",
        ))
        .bind(now)
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let canceled_queued = queued.is_some();
        if let Some(queued) = queued {
            let data = serde_json::json!({ "status": JobStatus::Canceled });
            self.event(&mut tx, job_id, EventKind::Canceled, &data).await?;
            let events: Option<String> = sqlx::Row::try_get(&queued, "webhook_events")?;
            self.queue_delivery(&mut tx, job_id, HookEvent::Completed, events.as_deref()).await?;
        } else {
            let running = sqlx::query(concat!(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = '",
                status_text!(Processing),
                "' AND cancel_requested = 0",
            ))
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            if running.rows_affected() == 1 {
                let data = serde_json::json!({ "status": JobStatus::Processing, "cancel_requested": true });
                self.event(&mut tx, job_id, EventKind::CancelRequested, &data).await?;
            }
        }
        tx.commit().await?;
        Ok((self.get(job_id).await?, canceled_queued))
    }
}
