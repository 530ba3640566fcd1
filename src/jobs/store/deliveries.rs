//! Outbound webhook deliveries (issue 26): the messages a job's webhook is owed, as rows.
//!
//! A delivery is written in the same transaction as the job state it tells of (a claim that
//! starts the job, a progress step, the final state), so a crash between the two loses nothing:
//! whichever process sends it later finds the row. Any process's sender (`crate::webhooks`)
//! claims a due row for one attempt at a time, as workers claim jobs, so two replicas never send
//! the same attempt; every attempt is kept in `webhook_attempts` for `GET …/deliveries`.

use std::fmt;
use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::rows::{COLUMNS, with_plan};
use super::{Dialect, Store, StoreError, now_ms};

/// What a webhook may be told of a job, in Replicate's words for the same moments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEvent {
    /// A worker started the job (its first claim).
    Start,
    /// A progress step while it runs (at most one per `progress_every`, as the event stream).
    Progress,
    /// It ended: succeeded, failed or canceled.
    Completed,
}

impl HookEvent {
    /// Every event, in the order a job reaches them.
    pub const ALL: [HookEvent; 3] = [HookEvent::Start, HookEvent::Progress, HookEvent::Completed];

    /// The stored and wire word.
    pub const fn as_str(self) -> &'static str {
        match self {
            HookEvent::Start => "start",
            HookEvent::Progress => "progress",
            HookEvent::Completed => "completed",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl FromStr for HookEvent {
    type Err = ();

    fn from_str(word: &str) -> Result<Self, ()> {
        HookEvent::ALL.into_iter().find(|e| e.as_str() == word).ok_or(())
    }
}

/// The events a job's webhook asked for (`webhook_events_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HookEvents(u8);

impl HookEvents {
    /// The default filter: only the end, as Replicate's `completed`.
    pub const COMPLETED: HookEvents = HookEvents(HookEvent::Completed.bit());

    pub fn with(self, event: HookEvent) -> HookEvents {
        HookEvents(self.0 | event.bit())
    }

    pub fn contains(self, event: HookEvent) -> bool {
        self.0 & event.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// As stored in `jobs.webhook_events`: the words, comma-separated.
    pub fn stored(self) -> String {
        HookEvent::ALL.into_iter().filter(|e| self.contains(*e)).map(HookEvent::as_str).collect::<Vec<_>>().join(",")
    }

    /// The stored form read back; a word this build does not know (a newer build's) is skipped:
    /// this build cannot produce that event anyway.
    pub fn from_stored(text: &str) -> HookEvents {
        text.split(',').filter_map(|w| w.parse().ok()).fold(HookEvents::default(), HookEvents::with)
    }
}

/// What a delivery tells of (`webhook_deliveries.subject`, migration 14): a job, or a project
/// (whose id the row's `job_id` column then holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    Job,
    Project,
}

impl Subject {
    pub const fn as_str(self) -> &'static str {
        match self {
            Subject::Job => "job",
            Subject::Project => "project",
        }
    }
}

/// A job's webhook: where to send, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// Checked at submit (`crate::webhooks::target`): https (or http where allowed), a host that
    /// resolves to addresses the sender may reach.
    pub url: String,
    pub events: HookEvents,
}

/// What the server allows of webhooks, as the submit path checks them (`crate::webhooks::target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebhookPolicy {
    /// A signing secret is set (`MVGEN_WEBHOOK_SECRET`): without one nothing could be signed, so a
    /// `webhook` is refused at submit.
    pub enabled: bool,
    /// `MVGEN_WEBHOOK_ALLOW_PRIVATE=true`: loopback, private and link-local targets, and http.
    pub allow_private: bool,
}

/// Where a delivery is. `pending` moves on; the other three are final (a manual retry makes one
/// pending again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Due at `next_at` (or being attempted, while claimed).
    Pending,
    /// A 2xx answer.
    Delivered,
    /// The retry schedule ran out without a 2xx.
    Failed,
    /// The receiver answered 410 Gone: never sent again unless retried by hand.
    Gone,
}

impl DeliveryStatus {
    const ALL: [DeliveryStatus; 4] =
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed, DeliveryStatus::Gone];

    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Gone => "gone",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for DeliveryStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// The `webhook-id`: the same on every attempt.
    pub id: String,
    pub job_id: String,
    pub event: String,
    pub url: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub claim: String,
}

/// One attempt, as kept.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRow {
    pub attempt: i64,
    /// Unix ms.
    pub at: i64,
    pub duration_ms: i64,
    /// The receiver's HTTP status; `None` when there was no answer (refused, timed out, …).
    pub code: Option<i64>,
    pub error: Option<String>,
}

/// A delivery as `GET /api/mv/jobs/{id}/deliveries` lists it.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub job_id: String,
    pub event: String,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// When the next attempt is due (Unix ms), while pending.
    pub next_at: Option<i64>,
    /// Being attempted now (claimed, its lease not run out).
    pub in_flight: bool,
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
    pub attempt_log: Vec<AttemptRow>,
}

/// How an attempt ended, and so what the delivery does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    Gone,
    /// Another attempt at this time (Unix ms).
    RetryAt(i64),
    /// No attempt left in the schedule.
    GaveUp,
}

/// An attempt's result, to record.
#[derive(Debug, Clone)]
pub struct Attempted<'a> {
    pub at: i64,
    pub duration_ms: i64,
    pub code: Option<u16>,
    pub error: Option<&'a str>,
    pub next: Next,
}

/// What a manual retry found.
#[derive(Debug)]
pub enum Retried {
    /// No such delivery of that job.
    Unknown,
    /// An attempt is being made now: it answers for itself.
    InFlight,
    /// Due now.
    Queued(Box<DeliveryRow>),
}

/// The condition that a delivery `d` is not behind an earlier message of its job (or project)
/// that is due or being sent at `now` (a placeholder; a claim leaves `next_at` alone). So a
/// receiver gets `start` before `completed` even when a fast job made both before the sender
/// woke, though the sender sends up to 16 at once. One waiting for its retry holds nothing back:
/// a message may overtake an earlier one that failed, as Replicate's may. Index:
/// `webhook_deliveries_subject` (migration 14).
fn not_behind(now: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.subject = d.subject AND e.job_id = d.job_id \
         AND e.seq < d.seq AND e.status = 'pending' AND e.next_at <= {now})"
    )
}

const DELIVERY_COLUMNS: &str = "id, job_id, event, url, status, attempts, next_at, claimed_until, last_code, \
     last_error, created_at, completed_at";

fn delivery_row(row: &AnyRow, now: i64) -> Result<DeliveryRow, StoreError> {
    let id: String = row.try_get("id")?;
    let job_id: String = row.try_get("job_id")?;
    let word: String = row.try_get("status")?;
    let status =
        DeliveryStatus::ALL.into_iter().find(|s| s.as_str() == word).ok_or_else(|| StoreError::Unreadable {
            job_id: job_id.clone(),
            word: crate::jobs::state::UnknownWord { what: "delivery status", value: word },
        })?;
    let claimed_until: Option<i64> = row.try_get("claimed_until")?;
    Ok(DeliveryRow {
        id,
        job_id,
        event: row.try_get("event")?,
        url: row.try_get("url")?,
        status,
        attempts: row.try_get("attempts")?,
        next_at: if status == DeliveryStatus::Pending { row.try_get("next_at")? } else { None },
        in_flight: status == DeliveryStatus::Pending && claimed_until.is_some_and(|until| until > now),
        last_code: row.try_get("last_code")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        attempt_log: Vec::new(),
    })
}

impl Store {
    /// Writes the delivery of `event` for job `job_id` in `tx`, if its webhook asked for it.
    /// `events` is the job's stored `webhook_events`, as the caller's own statement returned it
    /// (`None`: no webhook), so a job without a webhook costs no statement at all. The body is the
    /// job as `GET /api/mv/jobs/{id}` shows it now, read inside the transaction.
    pub(super) async fn queue_delivery(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        job_id: &str,
        event: HookEvent,
        events: Option<&str>,
    ) -> Result<(), StoreError> {
        if !events.is_some_and(|e| HookEvents::from_stored(e).contains(event)) {
            return Ok(());
        }
        let row = sqlx::query(&format!("SELECT webhook, plan, {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(job_id)
            .fetch_one(&mut **tx)
            .await?;
        let Some(url) = row.try_get::<Option<String>, _>("webhook")? else {
            return Ok(());
        };
        let body = (self.render)(&with_plan(&row)?);
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, job_id, event, url, body, status, attempts, next_at, created_at, \
             subject) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, 'job')",
        )
        .bind(format!("msg_{}", uuid::Uuid::new_v4().simple()))
        .bind(job_id)
        .bind(event.as_str())
        .bind(url)
        .bind(body)
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// When a pending delivery can next be claimed (Unix ms), if any: when it is due, or for one
    /// being attempted now, when its claim's lease runs out. A read, so an idle sender polls (and
    /// a sender woken by every job's news checks) without taking the writer.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT min(CASE WHEN claimed_until > $2 THEN claimed_until ELSE next_at END) AS due \
             FROM webhook_deliveries d WHERE status = $1 AND {}",
            not_behind("$2")
        ))
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("due")?)
    }

    /// Claims the most overdue pending delivery for one attempt, until `now + lease_ms`: one
    /// statement, as a job claim (`FOR UPDATE SKIP LOCKED` on PostgreSQL). A claim whose lease ran
    /// out (its sender died mid-attempt) is claimed again.
    pub async fn claim_delivery(&self, claim: &str, lease_ms: i64) -> Result<Option<DueDelivery>, StoreError> {
        let now = now_ms();
        let lock = if self.dialect == Dialect::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        let not_behind = not_behind("$4");
        let sql = format!(
            "UPDATE webhook_deliveries SET claim = $1, claimed_until = $2 \
             WHERE seq = (SELECT seq FROM webhook_deliveries d WHERE status = $3 AND next_at <= $4 \
                AND (claimed_until IS NULL OR claimed_until < $4) AND {not_behind} \
                ORDER BY next_at, seq LIMIT 1 {lock}) \
             RETURNING id, job_id, event, url, body, attempts"
        );
        let rows = sqlx::query(&sql)
            .bind(claim)
            .bind(now + lease_ms)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(now)
            // Run to completion: on SQLite a failed commit must be this call's error (see
            // `submit::only_row`), or an attempt would be sent on a claim never stored.
            .fetch_all(&self.writer)
            .await?;
        let Some(row) = rows.first() else { return Ok(None) };
        Ok(Some(DueDelivery {
            id: row.try_get("id")?,
            job_id: row.try_get("job_id")?,
            event: row.try_get("event")?,
            url: row.try_get("url")?,
            body: row.try_get("body")?,
            attempts: row.try_get("attempts")?,
            claim: claim.to_owned(),
        }))
    }

    /// Records an attempt of a claimed delivery and what follows it, and lets the claim go.
    /// `Ok(false)`: the claim was no longer ours (its lease ran out and another sender took it),
    /// and nothing is recorded.
    pub async fn record_attempt(&self, delivery: &DueDelivery, attempted: &Attempted<'_>) -> Result<bool, StoreError> {
        let (status, next_at, completed_at) = match attempted.next {
            Next::Delivered => (DeliveryStatus::Delivered, None, Some(attempted.at)),
            Next::Gone => (DeliveryStatus::Gone, None, Some(attempted.at)),
            Next::GaveUp => (DeliveryStatus::Failed, None, Some(attempted.at)),
            Next::RetryAt(at) => (DeliveryStatus::Pending, Some(at), None),
        };
        let code = attempted.code.map(i64::from);
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, next_at = $2, completed_at = $3, \
             last_code = $4, last_error = $5, claim = NULL, claimed_until = NULL WHERE id = $6 AND claim = $7",
        )
        .bind(status.as_str())
        .bind(next_at)
        .bind(completed_at)
        .bind(code)
        .bind(attempted.error)
        .bind(&delivery.id)
        .bind(&delivery.claim)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at, duration_ms, code, error) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&delivery.id)
        .bind(delivery.attempts + 1)
        .bind(attempted.at)
        .bind(attempted.duration_ms)
        .bind(code)
        .bind(attempted.error)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The deliveries of `subject` `id` (a job or a project), oldest first, each with its attempts.
    pub async fn deliveries_of(&self, subject: Subject, id: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE subject = $1 AND job_id = $2 ORDER BY seq"
        ))
        .bind(subject.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut deliveries = rows.iter().map(|r| delivery_row(r, now)).collect::<Result<Vec<_>, _>>()?;
        let attempts = sqlx::query(
            "SELECT a.delivery_id, a.attempt, a.at, a.duration_ms, a.code, a.error FROM webhook_attempts a \
             JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.subject = $1 AND d.job_id = $2 \
             ORDER BY a.attempt",
        )
        .bind(subject.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for row in &attempts {
            let id: String = row.try_get("delivery_id")?;
            if let Some(delivery) = deliveries.iter_mut().find(|d| d.id == id) {
                delivery.attempt_log.push(AttemptRow {
                    attempt: row.try_get("attempt")?,
                    at: row.try_get("at")?,
                    duration_ms: row.try_get("duration_ms")?,
                    code: row.try_get("code")?,
                    error: row.try_get("error")?,
                });
            }
        }
        Ok(deliveries)
    }

    /// Makes delivery `delivery_id` of job `job_id` due now, whatever its status (a delivery
    /// that failed, was gone or was delivered is sent once more, with the same `webhook-id`).
    pub async fn retry_delivery(&self, job_id: &str, delivery_id: &str) -> Result<Retried, StoreError> {
        self.retry_delivery_of(Subject::Job, job_id, delivery_id).await
    }

    /// [`Store::retry_delivery`] for a delivery of `subject` `id` (a job or a project).
    pub async fn retry_delivery_of(
        &self,
        subject: Subject,
        id: &str,
        delivery_id: &str,
    ) -> Result<Retried, StoreError> {
        let now = now_ms();
        let updated = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, next_at = $2, completed_at = NULL \
             WHERE id = $3 AND subject = $4 AND job_id = $5 AND (claimed_until IS NULL OR claimed_until < $2)",
        )
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now)
        .bind(delivery_id)
        .bind(subject.as_str())
        .bind(id)
        .execute(&self.writer)
        .await?;
        let found = self.deliveries_of(subject, id).await?.into_iter().find(|d| d.id == delivery_id);
        Ok(match found {
            None => Retried::Unknown,
            Some(_) if updated.rows_affected() == 0 => Retried::InFlight,
            Some(delivery) => Retried::Queued(Box::new(delivery)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_filters_round_trip_through_their_stored_form() {
        let all = HookEvent::ALL.into_iter().fold(HookEvents::default(), HookEvents::with);
        assert_eq!(all.stored(), "start,progress,completed");
        assert_eq!(HookEvents::from_stored(&all.stored()), all);
        assert_eq!(HookEvents::COMPLETED.stored(), "completed");
        let read = HookEvents::from_stored("start,logs,completed");
        assert!(read.contains(HookEvent::Start) && read.contains(HookEvent::Completed));
        assert!(!read.contains(HookEvent::Progress), "an unknown word is skipped, never guessed");
    }
}
