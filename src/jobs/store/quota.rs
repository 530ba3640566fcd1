//! How many jobs wait in the queue, counted only as far as the limits they are checked against
//! (`MVGEN_MAX_QUEUED_JOBS`, `MVGEN_MAX_QUEUED_PER_KEY`), so the check a submission pays for is
//! bounded by the limit, not by the size of the table.

use sqlx::Row;

use super::{Store, StoreError};
use crate::jobs::state::status_text;

/// Queued jobs, each count capped at the limit it was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// All queued jobs, at most the `total` limit asked.
    pub total: i64,
    /// Queued jobs of the scope asked (0 without one), at most the `per_scope` limit asked.
    pub scope: i64,
}

impl Store {
    /// Counts queued jobs, in all and of `scope` (an API key's scope), each up to its limit: one
    /// statement on the read pool, walking at most `total + per_scope` index entries
    /// (`jobs_runnable` and `jobs_scope_queued`), so it never waits on the writer. Read before the
    /// insert rather than inside it: concurrent submitters that read the same count may all pass,
    /// so the queue can go past a limit by the number of submissions racing at that moment.
    pub async fn queued(&self, scope: Option<&str>, total: i64, per_scope: i64) -> Result<Queued, StoreError> {
        let row = sqlx::query(QUEUED).bind(total).bind(scope).bind(per_scope).fetch_one(&self.pool).await?;
        Ok(Queued { total: row.try_get("total")?, scope: row.try_get("scope")? })
    }
}

/// `$1` the total limit, `$2` the scope, `$3` the scope's limit.
pub(super) const QUEUED: &str = concat!(
    "SELECT (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE status = '",
    status_text!(Queued),
    "' LIMIT $1) q) AS total, \
     (SELECT count(*) FROM (SELECT 1 FROM jobs WHERE api_key_scope = $2 AND status = '",
    status_text!(Queued),
    "' LIMIT $3) s) AS scope"
);
