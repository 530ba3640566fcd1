//! Claiming a job for a worker, and keeping the claim alive.
//!
//! Claiming is one `UPDATE … WHERE seq = (SELECT … LIMIT 1) RETURNING`: SQLite runs a statement
//! under its single writer lock, PostgreSQL adds `FOR UPDATE SKIP LOCKED` so replicas never wait
//! on each other. A claim writes a fresh `claim` token; every later write of the worker is guarded
//! by it, so a worker that lost its job to a takeover cannot overwrite the new owner's work.

use sqlx::Row;

use super::deliveries::HookEvent;
use super::rows::{Claimed, flavor_hash, flavor_used, json};
use super::{Dialect, Store, StoreError, now_ms};
use crate::generation::Kind;
use crate::jobs::state::{EventKind, JobStatus, UnknownWord, status_text};

/// Added to a takeover's first heartbeat (in ms), so the claim's `RETURNING` row tells a takeover
/// from a claim of a queued job: `RETURNING` gives the new values only, and neither SQLite nor
/// PostgreSQL returns a row's old status portably. A heartbeat 1 ms late changes nothing else.
const TAKEOVER_MARK: i64 = 1;

impl Store {
    /// Takes the oldest runnable job: queued and due, or processing with a heartbeat older than
    /// `stale_before` (its worker died). Only a claim that starts a try counts an attempt: a
    /// takeover counts in `takeovers` and a claim after a release continues the released attempt,
    /// so restarts never use up the retry budget meant for failures.
    pub async fn claim(&self, claim: &str, stale_before: i64) -> Result<Option<Claimed>, StoreError> {
        self.claim_where(claim, stale_before, None).await
    }

    /// Claims the job `id` if it is queued and due, or processing with a heartbeat older than
    /// `stale_before` (a sync request runs its own job at once rather than waiting for a free
    /// worker, and takes it over from a dead one); `None` when a live worker holds it or it ended.
    pub async fn claim_job(&self, claim: &str, id: &str, stale_before: i64) -> Result<Option<Claimed>, StoreError> {
        self.claim_where(claim, stale_before, Some(id)).await
    }

    async fn claim_where(
        &self,
        claim: &str,
        stale_before: i64,
        id: Option<&str>,
    ) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let sql = claim_sql(self.dialect, id.is_some());
        let mut query = sqlx::query(&sql).bind(claim).bind(now).bind(stale_before);
        if let Some(id) = id {
            query = query.bind(id);
        }
        let row = query.fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        // The flavor report, parsed once for the job's flavor and its hash.
        let report = json(row.try_get("config_flavor")?);
        let claimed = Claimed {
            id: row.try_get("id")?,
            kind: {
                let word: String = row.try_get("kind")?;
                Kind::parse(&word).ok_or(UnknownWord { what: "kind", value: word })
            },
            plan: json(row.try_get("plan")?),
            attempts: row.try_get("attempts")?,
            takeovers: row.try_get("takeovers")?,
            max_attempts: row.try_get("max_attempts")?,
            claim: claim.to_owned(),
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
            fresh: false,
            taken_over: row.try_get::<i64, _>("heartbeat_at")? == now + TAKEOVER_MARK,
            previous_claim: row.try_get("previous_claim")?,
            flavor: flavor_used(&report),
            flavor_hash: flavor_hash(&report),
            trace_context: row.try_get("trace_context")?,
            webhook: row.try_get::<Option<String>, _>("webhook")?.is_some(),
        };
        let data = serde_json::json!({
            "status": JobStatus::Processing, "attempts": claimed.attempts, "takeovers": claimed.takeovers,
        });
        self.event(&mut tx, &claimed.id, EventKind::Processing, &data).await?;
        // The job's first start (this claim set `started_at`) tells a webhook that asked for it.
        if row.try_get::<Option<i64>, _>("started_at")? == Some(now) && !claimed.taken_over {
            let events: Option<String> = row.try_get("webhook_events")?;
            self.queue_delivery(&mut tx, &claimed.id, HookEvent::Start, events.as_deref()).await?;
        }
        tx.commit().await?;
        Ok(Some(claimed))
    }

    /// Keeps a claim alive. `Ok(None)`: the claim was lost (taken over or ended elsewhere);
    /// `Ok(Some(cancel_requested))` otherwise.
    pub async fn heartbeat(&self, job_id: &str, claim: &str) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET heartbeat_at = $1 WHERE id = $2 AND claim = $3 AND status = '",
            status_text!(Processing),
            "' RETURNING cancel_requested",
        ))
        .bind(now_ms())
        .bind(job_id)
        .bind(claim)
        // `fetch_all`, not `fetch_optional`: a heartbeat whose commit failed is no heartbeat
        // (see `submit::only_row`).
        .fetch_all(&self.writer)
        .await?
        .pop();
        Ok(row.map(|r| r.try_get::<i64, _>("cancel_requested")).transpose()?.map(|c| c != 0))
    }
}

/// The claiming statement: `$1` the claim, `$2` now, `$3` the stale-before time, and with `by_id`
/// `$4` the one job it may take.
pub(super) fn claim_sql(dialect: Dialect, by_id: bool) -> String {
    let lock = if dialect == Dialect::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
    let only = if by_id { "AND id = $4" } else { "" };
    format!(
        "UPDATE jobs SET status = '{processing}', claim = $1, \
         heartbeat_at = $2 + CASE WHEN status = '{processing}' THEN {TAKEOVER_MARK} ELSE 0 END, \
         attempts = attempts + CASE WHEN status = '{queued}' AND resume = 0 THEN 1 ELSE 0 END, \
         takeovers = takeovers + CASE WHEN status = '{processing}' THEN 1 ELSE 0 END, resume = 0, \
         previous_claim = CASE WHEN status = '{processing}' THEN claim ELSE NULL END, \
         started_at = COALESCE(started_at, $2) \
         WHERE seq = (SELECT seq FROM jobs WHERE ((status = '{queued}' AND run_after <= $2) \
            OR (status = '{processing}' AND heartbeat_at < $3)) {only} ORDER BY seq LIMIT 1 {lock}) \
         RETURNING id, kind, plan, attempts, takeovers, cancel_requested, max_attempts, config_flavor, heartbeat_at, \
            started_at, webhook, webhook_events, previous_claim, trace_context",
        processing = status_text!(Processing),
        queued = status_text!(Queued),
    )
}
