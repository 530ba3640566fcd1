//! The queue's depth for `/metrics`: one grouped count of the unfinished jobs every few seconds,
//! not one per scrape (scrapes may come from several collectors, and the count walks the queue).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Jobs;
use crate::jobs::store::now_ms;

/// How often the queue is counted: a scrape every 15–60 s sees a figure at most this old.
const EVERY: Duration = Duration::from_secs(5);

impl Jobs {
    /// Sets the queue gauges every [`EVERY`] until `shutdown`. A failed read keeps the last
    /// figures (the database's own failures are logged by whoever needs it to work).
    pub(super) async fn count_queue(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            // Checked each time: `serve` installs the recorder after starting its workers, and
            // with MVGEN_METRICS=false (or a worker without --metrics-addr) nobody reads these.
            if !crate::telemetry::recording() {
                continue;
            }
            match self.store.queue_depth().await {
                Ok(depth) => {
                    let oldest = depth.oldest_queued_at.map_or(0.0, |at| (now_ms() - at).max(0) as f64 / 1000.0);
                    crate::telemetry::queue_depth(depth.queued, depth.processing, oldest);
                }
                Err(e) => tracing::debug!(error = %e, "cannot count the queue for the metrics"),
            }
        }
    }
}
