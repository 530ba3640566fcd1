//! `Idempotency-Key`s: claiming one for a submission (or finding what it answered), releasing it
//! after a refused submission, and purging the expired ones. Binding a key to its job happens in
//! the job's own transaction (`submit`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::Row;

use super::rows::JobRow;
use super::{Store, StoreError, now_ms};

/// What an `Idempotency-Key` found.
#[derive(Debug, PartialEq)]
pub enum KeyState {
    /// Ours now: go on and submit.
    New,
    /// Seen before with this body; what it answered, or `None` while the first is still submitting.
    Same(Option<Replay>),
    /// Seen before with another body.
    Other,
}

/// The first answer to an `Idempotency-Key`, to send again.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub job_id: String,
    /// Status and body as first sent, the body as its exact bytes (a `Value` would re-sort its
    /// keys); `None` for a key stored before answers were kept.
    pub answer: Option<(u16, String)>,
}

/// An `Idempotency-Key` a submission holds: bound to its job, with the answer to replay, in the
/// job's own transaction.
pub struct KeyBinding<'a> {
    pub key: &'a str,
    /// The token `begin_key` claimed the key with.
    pub owner: &'a str,
    /// The answer the submission sends (status, body), rendered from the stored row.
    pub answer: &'a (dyn Fn(&JobRow) -> (u16, String) + Sync),
}

/// How long keys live and when a pending one counts as abandoned.
#[derive(Debug, Clone, Copy)]
pub struct KeyTimes {
    /// Keys created before this (Unix ms) are expired: forgotten, and purged.
    pub expired_before: i64,
    /// A pending key (no job yet) created before this was left by a submission that crashed.
    pub abandoned_before: i64,
}

/// How often a process purges expired idempotency keys. A key past its TTL is forgotten the moment
/// it is used again whatever this says; the purge only keeps the table from growing.
pub const KEY_PURGE_EVERY: Duration = Duration::from_secs(60);

impl Store {
    /// Claims an `Idempotency-Key` for a body's fingerprint as `owner`, or says what it was used
    /// for. This key is forgotten when expired, and taken over when pending but abandoned by a
    /// crashed submission, so no key stays "in flight" forever. A new key is one statement (an
    /// upsert that takes over only an expired or abandoned row); the other expired keys are purged
    /// through the `created_at` index at most once per [`KEY_PURGE_EVERY`] per process.
    pub async fn begin_key(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        times: KeyTimes,
    ) -> Result<KeyState, StoreError> {
        let now = now_ms();
        if self.purge_due(now) {
            sqlx::query("DELETE FROM idempotency WHERE created_at < $1")
                .bind(times.expired_before)
                .execute(&self.writer)
                .await?;
        }
        let claimed = sqlx::query(
            "INSERT INTO idempotency (key, fingerprint, job_id, created_at, owner, answer_status, answer_body) \
             VALUES ($1, $2, NULL, $3, $4, NULL, NULL) \
             ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint, job_id = NULL, \
             created_at = excluded.created_at, owner = excluded.owner, answer_status = NULL, answer_body = NULL \
             WHERE idempotency.created_at < $5 OR (idempotency.job_id IS NULL AND idempotency.created_at < $6)",
        )
        .bind(key)
        .bind(fingerprint)
        .bind(now)
        .bind(owner)
        .bind(times.expired_before)
        .bind(times.abandoned_before)
        .execute(&self.writer)
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(KeyState::New);
        }
        let row = sqlx::query("SELECT fingerprint, job_id, answer_status, answer_body FROM idempotency WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.writer)
            .await?;
        let Some(row) = row else {
            // Released between our insert and this read: the caller may simply try again.
            return Ok(KeyState::Same(None));
        };
        if row.try_get::<String, _>("fingerprint")? != fingerprint {
            return Ok(KeyState::Other);
        }
        let Some(job_id) = row.try_get::<Option<String>, _>("job_id")? else {
            return Ok(KeyState::Same(None));
        };
        let status: Option<i64> = row.try_get("answer_status")?;
        let body: Option<String> = row.try_get("answer_body")?;
        // Kept as stored: a body that is not JSON was not written by us, so it is not replayed.
        let answer = status.zip(body).and_then(|(status, body)| {
            serde_json::from_str::<serde::de::IgnoredAny>(&body).ok()?;
            Some((u16::try_from(status).ok()?, body))
        });
        Ok(KeyState::Same(Some(Replay { job_id, answer })))
    }

    /// Whether this process should purge the expired keys now (and, if so, notes that it does).
    fn purge_due(&self, now: i64) -> bool {
        let last = self.keys_purged_at.load(Ordering::Relaxed);
        now - last >= KEY_PURGE_EVERY.as_millis() as i64
            && self.keys_purged_at.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// Frees a key whose submission failed (a refused input is not an answer to replay), unless
    /// another submission has taken it over since.
    pub async fn release_key(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency WHERE key = $1 AND owner = $2 AND job_id IS NULL")
            .bind(key)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
