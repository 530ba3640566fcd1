//! The sync endpoints' side of the engine: a job stored and run at once for a request that waits
//! on it, and the wait itself. The request holds a generation slot; the job's run holds it until
//! the job ends, whoever runs it, and the wait answers only once it is free.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Jobs, backoff, woken};
use crate::error::ApiError;
use crate::generation::Kind;
use crate::generation::stored::StoredPlan;
use crate::jobs::state::JobStatus;
use crate::jobs::store::StoreError;
use crate::jobs::store::deliveries::WebhookTarget;
use crate::jobs::store::rows::{Claimed, JobRow};

impl Jobs {
    /// Stores a job its caller already planned, claimed by this process, then runs it at once
    /// here and returns its id. For the sync endpoints: they wait on it rather than queue behind
    /// other jobs, `max_attempts` 1 so an upstream failure answers the caller as it did before
    /// jobs (a takeover after a dead worker still resumes its saved run). The run is its own task
    /// holding `guard` (the caller's generation slot) until the job ends, whoever runs it: a
    /// caller who hangs up neither cancels it nor frees the slot early, and a worker that takes
    /// the job over does not let the cap be bypassed (see [`Jobs::run_to_end`]). `scope`: as for
    /// [`Jobs::submit`]. `webhook`: as for [`Jobs::submit_with`]. `planned` is taken, so its plan
    /// moves into the run rather than being copied.
    pub async fn submit_now(
        self: &Arc<Self>,
        kind: Kind,
        planned: StoredPlan,
        guard: impl Send + 'static,
        scope: Option<&str>,
        webhook: Option<&WebhookTarget>,
    ) -> Result<String, ApiError> {
        // Stored already claimed by this process (see `Store::insert`), and refused like any
        // other submission while the queue (or the caller's share) is full.
        let claim = format!("{}/now", uuid::Uuid::new_v4());
        let row = self.store_planned(kind, &planned, None, scope, Some(&claim), webhook).await?;
        // The run below is its own task, outside the request's span: it continues the request's
        // trace through this context, as a takeover elsewhere would through the stored one.
        let trace_context = crate::trace_context::of(&tracing::Span::current());
        let claimed = Claimed::stored(&row, planned.plan, claim, Some(1), trace_context, webhook.is_some());
        let id = row.id.clone();
        self.holding().insert(id.clone());
        let slot = HeldSlot { guard: Some(Box::new(guard)), jobs: Arc::clone(self), id: id.clone() };
        let jobs = Arc::clone(self);
        let run = async move {
            let (shutdown, _) =
                jobs.running.get().cloned().unwrap_or_else(|| (jobs.closed.clone(), TaskTracker::new()));
            let mut slot = Some(Box::new(slot) as Box<dyn Send>);
            let job_id = claimed.id.clone();
            jobs.run(claimed, &shutdown, &mut slot).await;
            // Not ended here (the claim was lost, or a retry was queued): follow it to its end.
            if slot.is_some() {
                jobs.run_to_end(&job_id, &shutdown, slot).await;
            }
        };
        match self.running.get() {
            Some((_, tracker)) => tracker.spawn(run),
            None => tokio::spawn(run),
        };
        Ok(id)
    }

    /// Runs job `id` here, or follows it while another worker runs it, until it is finished (or
    /// shutdown), holding `slot` (the generation slot) until then: dropped as soon as the end is
    /// stored, before the waiting caller is woken, so its next request finds the slot free.
    /// Following, it takes the job over once that worker's heartbeat is stale, like any worker
    /// would: a sync request's job ends even on a serve with `MVGEN_WORKERS=0` or when its first
    /// claim failed, rather than wait for a worker that may never come.
    async fn run_to_end(&self, id: &str, shutdown: &CancellationToken, mut slot: Option<Box<dyn Send>>) {
        let mut wake = self.subscribe();
        let mut failures = 0u32;
        // Claiming is a write (the one writer on SQLite): a job another worker runs is only read,
        // and tried for a takeover every half stale limit.
        let takeover_every = (self.config.stale_after / 2).max(self.config.poll);
        let mut claim_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() && slot.is_some() {
            let pause = match self.store.get(id).await {
                Ok(Some(job)) if job.status.is_final() => return,
                Ok(None) => return,
                Ok(Some(job)) if job.status == JobStatus::Queued || tokio::time::Instant::now() >= claim_at => {
                    claim_at = tokio::time::Instant::now() + takeover_every;
                    let claim = format!("{}/now", uuid::Uuid::new_v4());
                    match self.store.claim_job(&claim, id, self.stale_before()).await {
                        Ok(Some(job)) => {
                            failures = 0;
                            self.woke(&job.id);
                            self.run(job, shutdown, &mut slot).await;
                            continue;
                        }
                        Ok(None) => {
                            failures = 0;
                            self.config.poll
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::warn!(job = %id, error = %e, "cannot claim a sync job; retrying");
                            backoff(failures, Duration::from_secs(5))
                        }
                    }
                }
                Ok(Some(_)) => {
                    failures = 0;
                    self.config.poll
                }
                // Unreadable stays unreadable: give the slot back rather than hold it forever.
                Err(e @ StoreError::Unreadable { .. }) => {
                    tracing::warn!(job = %id, error = %e, "a sync job's row cannot be read; no longer waiting on it");
                    return;
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(job = %id, error = %e, "cannot read a sync job; retrying");
                    backoff(failures, Duration::from_secs(5))
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = woken(&mut wake, id, pause) => {}
            }
        }
    }

    /// The job once it is succeeded, failed or canceled, or as it is last read (still `queued` or
    /// `processing`) once `config.sync_wait` has passed or shutdown asked for an answer now: the
    /// caller answers with the job's id instead of hanging forever when nobody can run it (the
    /// database keeps refusing claims, say).
    /// Woken by this process's broadcast; reads the row anyway every `config.poll`, as a worker in
    /// another process tells us nothing. A database fault is retried: the job's result is kept
    /// either way. `Ok(None)`: no such job; `Err`: the database could not be read once before the
    /// bound. For the sync endpoints' submit-and-wait: a client that hangs up drops only this
    /// wait, never the job.
    pub async fn finished(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(self.finished_with_text(id).await?.map(|(row, _)| row))
    }

    /// [`Jobs::finished`], with a succeeded job's output as the JSON text its run here stored
    /// (`None` when the row was read back instead): the bytes to answer with, not serialised again.
    pub async fn finished_with_text(&self, id: &str) -> Result<Option<(JobRow, Option<String>)>, StoreError> {
        let waiting = SyncWait::register(self, id);
        let deadline = tokio::time::Instant::now() + self.config.sync_wait;
        // A job run in this process hands its final row over as it ends (`hand_over`): no read
        // while it runs. Its slot is freed right after, so the row is there once it is free. The
        // slot's drop wakes this wait alone (`freed`), not every task on the broadcast: with N
        // sync requests in flight, a broadcast here was N wake-ups (and N copies of the id) per job.
        let freed = &waiting.freed;
        while self.holding().contains(id) && !self.answer_now.is_cancelled() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::select! {
                () = freed.notified() => {}
                () = tokio::time::sleep(self.config.poll.min(left)) => {}
                () = self.answer_now.cancelled() => {}
            }
        }
        if let Some(handed) = waiting.take() {
            return Ok(Some(handed));
        }
        // Not run to its end here (taken over, or run by another process): read the row, woken by
        // the job's news on the broadcast (or polling, as another process tells us nothing).
        let mut wake = self.subscribe();
        let mut last = None;
        let mut fault = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.store.get(id).await {
                // Its slot is freed a moment after the end is stored (see `run_to_end`).
                Ok(Some(job)) if job.status.is_final() => {
                    if left.is_zero() || !self.holding().contains(id) {
                        return Ok(Some((job, None)));
                    }
                    last = Some((job, None));
                }
                Ok(None) => return Ok(None),
                Ok(Some(job)) => last = Some((job, None)),
                Err(e @ StoreError::Unreadable { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(job = %id, error = %e, "cannot read a waited-on job; retrying");
                    fault = Some(e);
                }
            }
            if left.is_zero() || self.answer_now.is_cancelled() {
                return match (last, fault) {
                    (None, Some(e)) => Err(e),
                    (last, _) => Ok(last),
                };
            }
            tokio::select! {
                () = woken(&mut wake, id, self.config.poll.min(left)) => {}
                () = freed.notified() => {}
                // Shutdown's drain ends soon: one last read, then the answer as it stands.
                () = self.answer_now.cancelled() => {}
            }
        }
    }

    fn holding(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.holding.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Jobs {
    /// Gives a waiting sync request the final row of its job, which this process just stored
    /// (before the job's slot is freed and the waiter woken), and its output as the JSON text
    /// stored. No-op when nobody here waits.
    pub(super) fn hand_over(&self, row: JobRow, output_text: Option<String>) {
        if let Some(entry) = self.sync_waits().get_mut(&row.id) {
            entry.row = Some((row, output_text));
        }
    }

    /// Wakes the sync wait on job `id` (if one is here): its slot is free. A wake-up before the
    /// wait sleeps is kept (`Notify::notify_one` stores it), so none is lost.
    fn slot_freed(&self, id: &str) {
        if let Some(entry) = self.sync_waits().get(id) {
            entry.freed.notify_one();
        }
    }

    fn sync_waits(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Waiting>> {
        self.sync_waits.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What `Jobs::sync_waits` holds for one wait.
pub(super) struct Waiting {
    /// Notified when the job's slot is freed (`HeldSlot`'s drop).
    freed: Arc<tokio::sync::Notify>,
    /// The job's final row, once the run here stored it, and its output as the JSON text stored.
    row: Option<(JobRow, Option<String>)>,
}

/// One sync wait's entry in `Jobs::sync_waits`, removed when the wait ends or is dropped (the
/// caller hung up), so a row handed over is never kept for nobody.
struct SyncWait<'a> {
    jobs: &'a Jobs,
    id: &'a str,
    freed: Arc<tokio::sync::Notify>,
}

impl<'a> SyncWait<'a> {
    fn register(jobs: &'a Jobs, id: &'a str) -> Self {
        let freed = Arc::new(tokio::sync::Notify::new());
        jobs.sync_waits().insert(id.to_owned(), Waiting { freed: Arc::clone(&freed), row: None });
        SyncWait { jobs, id, freed }
    }

    /// The row handed over (and its output's text), if any yet.
    fn take(&self) -> Option<(JobRow, Option<String>)> {
        self.jobs.sync_waits().get_mut(self.id).and_then(|entry| entry.row.take())
    }
}

impl Drop for SyncWait<'_> {
    fn drop(&mut self) {
        self.jobs.sync_waits().remove(self.id);
    }
}

/// A sync job's generation slot: dropped, it tells the job's waiter the slot is free.
struct HeldSlot {
    guard: Option<Box<dyn Send>>,
    jobs: Arc<Jobs>,
    id: String,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        // Freed first: whoever the wake-up answers may send its next request at once.
        drop(self.guard.take());
        self.jobs.holding().remove(&self.id);
        // The waiter alone: the job's news (its end, for event streams) was already broadcast
        // when it was stored.
        self.jobs.slot_freed(&self.id);
    }
}
