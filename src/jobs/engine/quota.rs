//! The queue limits a submission is checked against: `MVGEN_MAX_QUEUED_JOBS` in all, and
//! `MVGEN_MAX_QUEUED_PER_KEY` per API key. A full queue is a 503 `QueueFull` with `Retry-After`:
//! a backlog that grows without bound only turns into timeouts later, for everyone.
//!
//! Counting is not free: the bounded count (`Store::queued`) walks one index entry per queued job
//! up to the limit, about 0.1 µs each on SQLite, so a 1 ms read at a queue of 10 000, on a path
//! that must stay well under a millisecond. So each process reads the counts at most once per
//! [`COUNT_FRESH_FOR`] per API key scope and, in between, adds the submissions it accepted itself:
//! the check is a map lookup for every other submission, refusals included (a flood against a
//! full queue costs the database nothing).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::{Jobs, unavailable};
use crate::error::{ApiError, ErrorKind};
use crate::jobs::store::quota::Queued;

/// `Retry-After` on a full queue: queued jobs take a video's minutes to leave it, so asking again
/// within seconds would only add load.
const QUEUE_FULL_RETRY_AFTER_SECS: u64 = 30;

/// How long a count read from the database is used before it is read again. The limits are
/// therefore exact within one process up to this staleness: a job that left the queue makes room
/// within it, and other processes' submissions of that window are not seen (the queue can exceed
/// a limit by what they accepted in it).
pub const COUNT_FRESH_FOR: Duration = Duration::from_millis(100);

/// The counts a process read last, per API key scope (`None`: keyless), and what it accepted since.
#[derive(Default)]
pub(super) struct QueueCounts(Mutex<HashMap<Option<String>, Seen>>);

struct Seen {
    queued: Queued,
    read_at: Instant,
    /// Submissions this process let through since the read.
    accepted: i64,
}

impl QueueCounts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<String>, Seen>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Jobs {
    /// Refuses a submission while the queue, or the share of `scope` (an API key's), is full.
    pub(super) async fn check_queue_room(&self, scope: Option<&str>) -> Result<(), ApiError> {
        let total = i64::try_from(self.config.max_queued).unwrap_or(i64::MAX);
        let per_key = i64::try_from(self.config.max_queued_per_key).unwrap_or(i64::MAX);
        let key = scope.map(str::to_owned);
        let cached =
            self.queue_counts.lock().get(&key).filter(|seen| seen.read_at.elapsed() < COUNT_FRESH_FOR).map(|seen| {
                Queued { total: seen.queued.total + seen.accepted, scope: seen.queued.scope + seen.accepted }
            });
        let queued = match cached {
            Some(queued) => queued,
            None => {
                let queued = self.store.queued(scope, total, per_key).await.map_err(unavailable)?;
                self.queue_counts.lock().insert(key.clone(), Seen { queued, read_at: Instant::now(), accepted: 0 });
                queued
            }
        };
        let (limit, which, whose) = if queued.total >= total {
            (total, "total", "the job queue")
        } else if scope.is_some() && queued.scope >= per_key {
            (per_key, "api_key", "this API key's share of the job queue")
        } else {
            if let Some(seen) = self.queue_counts.lock().get_mut(&key) {
                seen.accepted += 1;
            }
            return Ok(());
        };
        Err(ApiError::new(
            ErrorKind::QueueFull,
            format!("{whose} is full ({limit} queued jobs); nothing was stored, retry later"),
            json!({ "limit": limit, "scope": which, "retry_after_seconds": QUEUE_FULL_RETRY_AFTER_SECS }),
        ))
    }
}
