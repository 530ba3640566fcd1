//! Storing a new job: its row and its first event, and the `Idempotency-Key` it holds bound to
//! it, in one transaction (one statement without a key); or a sync request's job, stored already
//! claimed by the process that runs it.

use serde_json::Value;
use sqlx::Row;

use super::bind::{Bind, bind_all};
use super::deliveries::{HookEvent, WebhookTarget};
use super::idempotency::KeyBinding;
use super::rows::JobRow;
use super::{Dialect, Store, StoreError, now_ms};
use crate::generation::Kind;
use crate::jobs::state::{EventKind, JobStatus, status_text};

/// What a new job is stored with.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub plan: &'a Value,
    pub config_flavor: &'a Value,
    pub project_id: Option<&'a str>,
    pub sequence: Option<i64>,
    /// Claims before a retryable failure is final; `None`: the engine's default.
    pub max_attempts: Option<i64>,
    /// The submitting API key's scope (`api_keys::KeyScope`), for its queued count; `None`
    /// without API keys.
    pub api_key_scope: Option<&'a str>,
    /// Stored already claimed with this claim, by the process that runs it at once (a sync
    /// request's job); `None`: queued for any worker.
    pub claim: Option<&'a str>,
    /// Where to tell of the job, and what (`webhook`, `webhook_events_filter`).
    pub webhook: Option<&'a WebhookTarget>,
    /// The W3C `traceparent` it was submitted under (`crate::trace_context`); `None` when traces
    /// are not exported.
    pub trace_context: Option<&'a str>,
}

/// A new job's twelve values, for `$1`..`$12`.
fn job_values(job: &NewJob<'_>, now: i64) -> Vec<Bind> {
    vec![
        job.id.into(),
        job.kind.as_str().into(),
        Bind::json(job.plan),
        Bind::json(job.config_flavor),
        job.project_id.into(),
        job.sequence.into(),
        now.into(),
        job.max_attempts.into(),
        job.api_key_scope.into(),
        job.webhook.map(|w| w.url.as_str()).into(),
        job.webhook.map(|w| w.events.stored()).into(),
        job.trace_context.into(),
    ]
}

/// A job's row as [`Store::insert`] just stored it, with `plan` (a copy of the stored one, or
/// `None` where the caller keeps its own).
fn queued_row(job: &NewJob<'_>, seq: i64, now: i64, plan: Option<Value>) -> JobRow {
    JobRow {
        seq,
        id: job.id.to_owned(),
        kind: job.kind,
        status: JobStatus::Queued,
        plan,
        config_flavor: job.config_flavor.clone(),
        project_id: job.project_id.map(str::to_owned),
        sequence: job.sequence,
        output: None,
        error_code: None,
        error_message: None,
        error_status: None,
        error_details: Value::Null,
        attempts: 0,
        takeovers: 0,
        progress_stage: None,
        progress_upstream_status: None,
        created_at: now,
        started_at: None,
        completed_at: None,
        cancel_requested: false,
        upstream: None,
    }
}

/// The one row of an autocommit `… RETURNING` statement, read with `fetch_all`.
///
/// Why not `fetch_one`: on SQLite the row comes back from the statement's first step, and the
/// implicit COMMIT happens at its last; `fetch_one` stops after the row and the statement's reset
/// drops the commit's error (a full disk, a read-only file), so a job was acknowledged that was
/// never stored. Running the statement to completion makes a failed commit this call's error.
pub(super) fn only_row(mut rows: Vec<sqlx::any::AnyRow>) -> Result<sqlx::any::AnyRow, StoreError> {
    match rows.pop() {
        Some(row) if rows.is_empty() => Ok(row),
        _ => Err(StoreError::Database(sqlx::Error::RowNotFound)),
    }
}

/// A new job's `queued` event's data.
fn queued_data() -> Value {
    serde_json::json!({ "status": JobStatus::Queued })
}

/// A job stored claimed: its `processing` event's data (as migration 7's trigger writes it).
fn claimed_data() -> Value {
    serde_json::json!({ "status": JobStatus::Processing, "attempts": 1, "takeovers": 0 })
}

/// The INSERT of a job stored already claimed: `processing`, its first attempt, its heartbeat
/// and start now; `$13` is the claim.
const INSERT_CLAIMED: &str = concat!(
    "INSERT INTO jobs (id, kind, status, plan, config_flavor, project_id, sequence, attempts, created_at, \
     run_after, cancel_requested, max_attempts, api_key_scope, webhook, webhook_events, trace_context, claim, \
     heartbeat_at, started_at) VALUES ($1, $2, '",
    status_text!(Processing),
    "', $3, $4, $5, $6, 1, $7, $7, 0, $8, $9, $10, $11, $12, $13, $7, $7) RETURNING seq"
);

impl Store {
    /// Stores a job already claimed by `claim` and returns its row (without its plan, which the
    /// caller has): `processing`, attempt 1, its
    /// `queued` and `processing` events written with it. A sync request's job is run at once by
    /// the process that stored it, so claiming it through the queue (an `UPDATE` and an event
    /// more on the one writer, and every idle worker woken to race for it) bought nothing. A
    /// crash leaves it as any claimed job: taken over once its heartbeat is stale. One statement
    /// (on SQLite migration 7's trigger writes both events); a transaction when a webhook asked
    /// for `start`, whose delivery is rendered here.
    async fn insert_claimed(&self, job: &NewJob<'_>, claim: &str) -> Result<JobRow, StoreError> {
        let now = now_ms();
        let mut values = job_values(job, now);
        values.push(claim.into());
        // A webhook told of the start gets its delivery in the same transaction.
        let start = job.webhook.filter(|w| w.events.contains(HookEvent::Start)).map(|w| w.events.stored());
        let seq = match self.dialect {
            // One statement, which may share its commit with other jobs' (`group_commit`).
            Dialect::Sqlite if start.is_none() => {
                only_row(self.write_alone(INSERT_CLAIMED, values).await?)?.try_get("seq")?
            }
            // One statement too, as a queued job's INSERT (see `insert`): the row and both events
            // in order (`UNION ALL` inserts its branches in turn, so `queued` gets the lower id);
            // the replicas woken once it is committed (`wake_replicas`).
            Dialect::Postgres if start.is_none() => {
                let sql = format!(
                    "WITH j AS ({INSERT_CLAIMED}), e AS (INSERT INTO job_events (job_id, at, kind, data) \
                     SELECT $1, $7, '{queued}', $14 FROM j UNION ALL SELECT $1, $7, '{processing}', $15 FROM j) \
                     SELECT seq FROM j",
                    queued = EventKind::Queued.as_str(),
                    processing = EventKind::Processing.as_str(),
                );
                values.extend([Bind::json(&queued_data()), Bind::json(&claimed_data())]);
                let seq = only_row(self.write_alone(sql, values).await?)?.try_get("seq")?;
                self.wake_replicas(job.id).await;
                seq
            }
            Dialect::Sqlite => {
                let mut tx = self.writer.begin().await?;
                let seq = bind_all(sqlx::query(INSERT_CLAIMED), &values).fetch_one(&mut *tx).await?.try_get("seq")?;
                self.queue_delivery(&mut tx, job.id, HookEvent::Start, start.as_deref()).await?;
                tx.commit().await?;
                seq
            }
            Dialect::Postgres => {
                let mut tx = self.writer.begin().await?;
                let seq = bind_all(sqlx::query(INSERT_CLAIMED), &values).fetch_one(&mut *tx).await?.try_get("seq")?;
                self.event(&mut tx, job.id, EventKind::Queued, &queued_data()).await?;
                self.event(&mut tx, job.id, EventKind::Processing, &claimed_data()).await?;
                self.queue_delivery(&mut tx, job.id, HookEvent::Start, start.as_deref()).await?;
                tx.commit().await?;
                seq
            }
        };
        // No copy of the plan: the process that runs the job at once has it (a deep copy of a
        // few kB of JSON, some fifty allocations, per sync request).
        let mut row = queued_row(job, seq, now, None);
        (row.status, row.attempts, row.started_at) = (JobStatus::Processing, 1, Some(now));
        Ok(row)
    }

    /// Stores a queued job and its first event (and binds `key` to it with the answer to replay)
    /// in one transaction. Returns the stored row, so the submit answer needs no second read;
    /// `Ok(None)` (nothing stored) when `key` was taken over by another submission meanwhile.
    /// With `job.claim`, the job is stored claimed instead (see `insert_claimed`; never with a key).
    pub async fn insert(&self, job: &NewJob<'_>, key: Option<&KeyBinding<'_>>) -> Result<Option<JobRow>, StoreError> {
        if let Some(claim) = job.claim {
            return self.insert_claimed(job, claim).await.map(Some);
        }
        const INSERT: &str = concat!(
            "INSERT INTO jobs (id, kind, status, plan, config_flavor, project_id, sequence, attempts, \
             created_at, run_after, cancel_requested, max_attempts, api_key_scope, webhook, webhook_events, \
             trace_context) VALUES ($1, $2, '",
            status_text!(Queued),
            "', $3, $4, $5, $6, 0, $7, $7, 0, $8, $9, $10, $11, $12) RETURNING seq"
        );
        // The row and its first event in one statement, so a submission without a key is one round
        // trip: on SQLite the `jobs_queued_event` trigger (migration 5) writes the event; on
        // PostgreSQL the statement does (a data-modifying CTE always runs), and the replicas are
        // woken once it is committed (`wake_replicas`).
        let now = now_ms();
        let mut values = job_values(job, now);
        let sql = match self.dialect {
            Dialect::Sqlite => std::borrow::Cow::Borrowed(INSERT),
            Dialect::Postgres => {
                values.push(Bind::json(&queued_data()));
                std::borrow::Cow::Owned(format!(
                    "WITH j AS ({INSERT}), e AS (INSERT INTO job_events (job_id, at, kind, data) \
                     SELECT $1, $7, '{queued}', $13 FROM j) SELECT seq FROM j",
                    queued = EventKind::Queued.as_str(),
                ))
            }
        };
        let Some(key) = key else {
            // One statement, which on SQLite may share its commit with other jobs' (`group_commit`).
            let inserted = only_row(self.write_alone(sql, values).await?)?;
            self.wake_replicas(job.id).await;
            return Ok(Some(queued_row(job, inserted.try_get("seq")?, now, Some(job.plan.clone()))));
        };
        let mut tx = self.writer.begin().await?;
        let inserted = bind_all(sqlx::query(&sql), &values).fetch_one(&mut *tx).await?;
        let row = queued_row(job, inserted.try_get("seq")?, now, Some(job.plan.clone()));
        let (status, body) = (key.answer)(&row);
        let bound = sqlx::query(
            "UPDATE idempotency SET job_id = $1, answer_status = $2, answer_body = $3 \
             WHERE key = $4 AND owner = $5 AND job_id IS NULL",
        )
        .bind(job.id)
        .bind(i64::from(status))
        .bind(body)
        .bind(key.key)
        .bind(key.owner)
        .execute(&mut *tx)
        .await?;
        if bound.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        self.wake_replicas(job.id).await;
        Ok(Some(row))
    }
}
