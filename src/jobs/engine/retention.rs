//! The purge of finished jobs past `MVGEN_JOB_RETENTION` (see `Store::purge_finished`), run by every
//! `mvgen serve` and `mvgen worker` process: a batch at a time, one replica at a time; then the
//! deliveries of projects' webhooks that ended before the retention.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Jobs, backoff};
use crate::jobs::store::retention::Purged;
use crate::jobs::store::{StoreError, now_ms};

/// Jobs deleted per transaction: the SQLite writer is held for one batch, then submissions waiting
/// on it go first. 100 jobs with 8 events each took a median 10 ms on the loaded two-core machine,
/// 200 took 34 ms (`bench/retention_sql.py`, BENCHMARKS.md).
const PURGE_BATCH: i64 = 100;

/// The pause between two full batches, so a backlog (the first purge after an upgrade, say) is
/// worked off without holding the writer most of the time: about 6000 jobs a minute at most.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);

impl Jobs {
    /// How often the purge looks for due jobs: a tenth of the retention, at least a second (a
    /// test's 1 s retention) and at most a minute, so a job outlives its retention by little.
    fn purge_every(&self) -> Duration {
        (self.config.retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// One batch: what each due job's row alone holds of its answer is written to the store first
    /// (`JobPipeline::keep_output`: scenes), then the jobs go. A job whose copy fails (the store
    /// down) is not purged this time; the next round tries again, so a crash or a fault at any
    /// point leaves either the row or the copy, never neither.
    async fn purge_batch(&self, before: i64) -> Result<Purged, StoreError> {
        let due = self.store.due_for_purge(before, PURGE_BATCH).await?;
        let mut ids = Vec::with_capacity(due.len());
        for job in due {
            if let (Some(kind), Some(output)) = (job.kind, &job.output)
                && let Err(e) = self.pipeline.keep_output(kind, &job.id, output).await
            {
                tracing::warn!(job = %job.id, error = %e, "cannot keep a finished job's output before purging it; it stays until it can");
                continue;
            }
            ids.push(job.id);
        }
        self.store.purge_finished(&ids, before).await
    }

    /// Purges due jobs, then ended project deliveries, until `shutdown`. A database fault is logged
    /// and retried with backoff: the purge only keeps the tables from growing, nothing waits on it.
    pub(super) async fn purge_finished(self: Arc<Self>, shutdown: CancellationToken) {
        let mut failures = 0u32;
        let (mut jobs, mut deliveries) = (0u64, 0u64);
        while !shutdown.is_cancelled() {
            let before = now_ms() - self.config.retention.as_millis() as i64;
            let round = match self.purge_batch(before).await {
                // Another replica purges jobs now; its batches cover ours (deliveries too).
                Ok(Purged::Busy) => Ok(None),
                Ok(Purged::Jobs(n)) => {
                    self.store.purge_project_deliveries(before, PURGE_BATCH).await.map(|d| Some((n, d)))
                }
                Err(e) => Err(e),
            };
            let pause = match round {
                Ok(None) => self.purge_every(),
                Ok(Some((n, d))) => {
                    failures = 0;
                    (jobs, deliveries) = (jobs + n, deliveries + d);
                    if n == PURGE_BATCH as u64 || d == PURGE_BATCH as u64 {
                        BETWEEN_BATCHES
                    } else {
                        if jobs + deliveries > 0 {
                            tracing::info!(jobs, project_deliveries = deliveries, retention = ?self.config.retention, "purged what finished before the retention");
                            (jobs, deliveries) = (0, 0);
                        }
                        self.purge_every()
                    }
                }
                Err(e) => {
                    failures += 1;
                    let pause = backoff(failures, self.purge_every());
                    tracing::warn!(error = %e, retry_in = ?pause, "cannot purge finished jobs");
                    pause
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
