//! How a job ends: a worker's claim ending in an [`Outcome`], and a client's cancel.

use std::sync::LazyLock;
use std::time::Duration;

use serde_json::Value;

use super::bind::{Bind, bind_all};
use super::deliveries::HookEvent;
use super::rows::{COLUMNS, JobRow, job_row};
use super::{Dialect, Store, StoreError, now_ms};
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
    /// The job as it now is (read back by the same statement), for a waiter in this process, but
    /// for its `output`: `None` here, as the caller holds the output it just stored (see
    /// [`ENDED_COLUMNS`]). `None` in the rare case this build cannot read the row (a word a newer
    /// build stored): the end is stored either way.
    pub row: Option<JobRow>,
}

/// The columns a finishing statement reads back: every one of [`COLUMNS`] but `output`. A
/// succeeded job's output is kilobytes of JSON its worker still holds; read back, it was copied
/// out of SQLite's pages and parsed into a tree again (some seventy allocations per sync request)
/// only to equal what was just bound. Made once, not per finish.
static ENDED_COLUMNS: LazyLock<String> = LazyLock::new(|| COLUMNS.replacen(" output,", " NULL AS output,", 1));

/// [`ENDED_COLUMNS`] for a job that has no saved upstream runs ([`Known::no_runs`]): its latest
/// run is none, so `up_provider` and `up_id` are NULL rather than two lookups in `job_runs`, for
/// each of which SQLite opens a temporary b-tree (their `ORDER BY … LIMIT 1`).
static ENDED_COLUMNS_NO_RUNS: LazyLock<String> = LazyLock::new(|| {
    let own =
        ENDED_COLUMNS.split_once(", (SELECT provider FROM job_runs").map_or(ENDED_COLUMNS.as_str(), |(own, _)| own);
    format!("{own}, NULL AS up_provider, NULL AS up_id")
});

/// What the worker ending a claim knows of its job, which spares the finishing statement work
/// ([`Store::finish_known`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    /// The job has a webhook (see [`Store::finish`]'s `webhook`).
    pub webhook: bool,
    /// The job has no saved upstream runs: none was saved before this claim and none was saved
    /// (or tried) by it, so its final row's `upstream` is `None` without reading `job_runs`.
    pub no_runs: bool,
    /// A succeeded job's output already written as JSON text by the caller, bound as it is (the
    /// caller answers a waiting request with the same text, so the output is serialised once per
    /// job, not once for the row and again for the answer). `None`: written here.
    pub output_text: Option<&'a str>,
}

/// The `UPDATE … SET` terms that store `outcome`, its values bound from `$3` on
/// ([`outcome_values`]), and how many those are; `$1` is the job's id, `$2` the claim.
fn set_terms(outcome: &Outcome<'_>) -> (String, usize) {
    match outcome {
        Outcome::Succeeded(_) => (
            format!(
                "status = '{}', output = $3, completed_at = $4, claim = NULL, error_code = NULL, \
                 error_message = NULL, error_status = NULL, error_details = NULL",
                status_text!(Succeeded)
            ),
            2,
        ),
        Outcome::Failed { .. } => (
            format!(
                "status = '{}', error_code = $3, error_message = $4, error_status = $5, completed_at = $6, \
                 claim = NULL, error_details = $7",
                status_text!(Failed)
            ),
            5,
        ),
        Outcome::Canceled => (format!("status = '{}', completed_at = $3, claim = NULL", status_text!(Canceled)), 1),
        Outcome::Retry { .. } => (
            format!(
                "status = '{}', claim = NULL, run_after = $3, error_code = $4, error_message = $5",
                status_text!(Queued)
            ),
            3,
        ),
        Outcome::Released => {
            (format!("status = '{}', claim = NULL, run_after = $3, resume = 1", status_text!(Queued)), 1)
        }
    }
}

/// `outcome`'s values, bound after the id and claim as [`set_terms`] numbers them; `output_text`:
/// a succeeded job's output already written as JSON text (see [`Known::output_text`]).
fn outcome_values(outcome: &Outcome<'_>, output_text: Option<&str>, now: i64) -> Vec<Bind> {
    match *outcome {
        Outcome::Succeeded(output) => vec![output_text.map_or_else(|| Bind::json(output), Bind::from), now.into()],
        // The error kind's wire name, as in the sync endpoints' error bodies.
        Outcome::Failed { code, message, status, details } => {
            vec![code.to_string().into(), message.into(), i64::from(status).into(), now.into(), Bind::json(details)]
        }
        Outcome::Canceled | Outcome::Released => vec![now.into()],
        Outcome::Retry { code, message, after } => {
            vec![(now + after.as_millis() as i64).into(), code.to_string().into(), message.into()]
        }
    }
}

/// The values of a finishing statement: the job's id and claim, then `outcome`'s.
fn finish_values(job_id: &str, claim: &str, outcome: &Outcome<'_>, output_text: Option<&str>, now: i64) -> Vec<Bind> {
    let mut values = vec![job_id.into(), claim.into()];
    values.extend(outcome_values(outcome, output_text, now));
    values
}

/// The event that tells of `outcome`, and its data.
fn event_of(outcome: &Outcome<'_>) -> (EventKind, Value) {
    match *outcome {
        Outcome::Succeeded(_) => (EventKind::Succeeded, serde_json::json!({ "status": JobStatus::Succeeded })),
        Outcome::Failed { code, message, .. } => (
            EventKind::Failed,
            serde_json::json!({ "status": JobStatus::Failed, "error": { "code": code, "message": message } }),
        ),
        Outcome::Canceled => (EventKind::Canceled, serde_json::json!({ "status": JobStatus::Canceled })),
        Outcome::Retry { code, message, after } => (
            EventKind::Retrying,
            serde_json::json!({
                "status": JobStatus::Queued, "retry_in_seconds": after.as_secs_f64(),
                "error": { "code": code, "message": message },
            }),
        ),
        Outcome::Released => (EventKind::Released, serde_json::json!({ "status": JobStatus::Queued })),
    }
}

/// Which claim to end: `$1` and `$2`.
const GUARD: &str = concat!("WHERE id = $1 AND claim = $2 AND status = '", status_text!(Processing), "'");

impl Store {
    /// Ends a claim; `Ok(None)` when it was no longer ours.
    ///
    /// A final outcome of a job without a webhook is one statement ([`Store::end_at_once`]): one
    /// round trip to the database instead of four, on the path every sync request takes. Any
    /// other (a retry, a release, a job whose end queues a webhook delivery, rendered here) is a
    /// transaction: the UPDATE, its event and the delivery, committed together. `webhook`: the
    /// job has one ([`Claimed::webhook`](super::rows::Claimed)), so the one statement, which
    /// would match nothing, is not tried. Only a hint: `false` for a job with a webhook costs
    /// that round trip, never its delivery (the statement's own guard refuses it).
    pub async fn finish(
        &self,
        job_id: &str,
        claim: &str,
        webhook: bool,
        outcome: Outcome<'_>,
    ) -> Result<Option<Finished>, StoreError> {
        self.finish_known(job_id, claim, outcome, Known { webhook, ..Known::default() }).await
    }

    /// [`Store::finish`] with what the worker knows of the job ([`Known`]).
    pub async fn finish_known(
        &self,
        job_id: &str,
        claim: &str,
        outcome: Outcome<'_>,
        known: Known<'_>,
    ) -> Result<Option<Finished>, StoreError> {
        let now = now_ms();
        let Known { webhook, no_runs, output_text } = known;
        let columns = if no_runs { &*ENDED_COLUMNS_NO_RUNS } else { &*ENDED_COLUMNS };
        if !webhook
            && matches!(outcome, Outcome::Succeeded(_) | Outcome::Failed { .. } | Outcome::Canceled)
            && let Some(row) = self.end_at_once(job_id, claim, &outcome, output_text, columns, now).await?
        {
            return Ok(Some(Finished { row: job_row(&row).ok() }));
        }
        let (set, _) = set_terms(&outcome);
        let mut tx = self.writer.begin().await?;
        let sql = format!("UPDATE jobs SET {set} {GUARD} RETURNING webhook_events, {columns}");
        let values = finish_values(job_id, claim, &outcome, output_text, now);
        let Some(row) = bind_all(sqlx::query(&sql), &values).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        let (kind, data) = event_of(&outcome);
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

    /// Stores a final `outcome` and its event in one autocommit statement, if the claim is ours
    /// and the job has no webhook (whose delivery this statement could not render); `Ok(None)`
    /// otherwise, for [`Store::finish`]'s transaction to settle. On SQLite the event comes from
    /// migration 15's trigger, which fires because this UPDATE (and only it) names
    /// `heartbeat_at`: the end is the claim's last beat. On PostgreSQL a data-modifying CTE
    /// inserts it and wakes the replicas, as a queued job's INSERT does (`submit.rs`).
    async fn end_at_once(
        &self,
        job_id: &str,
        claim: &str,
        outcome: &Outcome<'_>,
        output_text: Option<&str>,
        columns: &str,
        now: i64,
    ) -> Result<Option<sqlx::any::AnyRow>, StoreError> {
        let (set, bound) = set_terms(outcome);
        let beat = bound + 3;
        let update = format!("UPDATE jobs SET {set}, heartbeat_at = ${beat} {GUARD} AND webhook IS NULL");
        let mut values = finish_values(job_id, claim, outcome, output_text, now);
        values.push(now.into());
        let sql = match self.dialect {
            Dialect::Sqlite => format!("{update} RETURNING {columns}"),
            Dialect::Postgres => {
                let (kind, data) = event_of(outcome);
                values.extend([kind.as_str().into(), Bind::json(&data)]);
                format!(
                    "WITH j AS ({update} RETURNING {columns}), \
                     e AS (INSERT INTO job_events (job_id, at, kind, data) SELECT id, ${beat}, ${kind}, ${data} FROM j) \
                     SELECT j.* FROM j",
                    kind = beat + 1,
                    data = beat + 2,
                )
            }
        };
        // Run to completion, so a failed (implicit) commit is this call's error (see `only_row`);
        // on SQLite it may share its commit with other jobs' statements (`group_commit`).
        let mut rows = self.write_alone(sql, values).await?;
        if !rows.is_empty() {
            self.wake_replicas(job_id).await;
        }
        Ok(rows.pop())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A job without upstream runs ends without reading `job_runs`, and still reads back every
    /// other column of the full list, in the same order.
    #[test]
    fn the_columns_of_a_job_without_runs_skip_job_runs_alone() {
        let full = &*ENDED_COLUMNS;
        let lean = &*ENDED_COLUMNS_NO_RUNS;
        assert!(full.contains("job_runs"), "{full}");
        assert!(!lean.contains("job_runs"), "{lean}");
        let (own, _) = full.split_once(", (SELECT provider").expect("the upstream lookups");
        assert_eq!(lean.as_str(), format!("{own}, NULL AS up_provider, NULL AS up_id"));
        assert!(own.contains("NULL AS output") && own.contains("cancel_requested"), "{own}");
    }
}
