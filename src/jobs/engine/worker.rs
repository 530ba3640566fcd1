//! Workers: claim a job, run it through the pipeline with a heartbeat, save its upstream runs
//! before waiting on them, write throttled progress, and store how it ended (or release it to the
//! queue on shutdown, or leave it to a takeover).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::{Jobs, backoff};
use crate::error::{ApiError, ErrorKind};
use crate::generation::Kind;
use crate::jobs::store::finish::{Known, Outcome};
use crate::jobs::store::rows::Claimed;
use crate::jobs::store::runs::UPSTREAM_WAKE_PREFIX;
use crate::jobs::store::{Dialect, Store};
use crate::providers::{BoxFuture, RunContext, RunObserver, UpstreamRun};

impl Jobs {
    /// Starts `config.workers` workers; they stop claiming when `shutdown` fires and release the
    /// jobs they hold to the queue (they are not failed). Wait on the tracker for them to finish.
    pub fn start_workers(self: &Arc<Self>, shutdown: CancellationToken) -> TaskTracker {
        let tracker = TaskTracker::new();
        let _ = self.running.set((shutdown.clone(), tracker.clone()));
        let process = uuid::Uuid::new_v4();
        for n in 0..self.config.workers {
            let jobs = Arc::clone(self);
            let shutdown = shutdown.clone();
            tracker.spawn(crate::background::task(async move { jobs.work(format!("{process}/{n}"), shutdown).await }));
        }
        // Every process purges, workers or not (an API-only replica too): whichever runs keeps
        // the tables bounded, and on PostgreSQL they take turns.
        tracker.spawn(crate::background::task(Arc::clone(self).purge_finished(shutdown.clone())));
        tracker.spawn(crate::background::task(Arc::clone(self).count_queue(shutdown.clone())));
        tracing::info!(process = %process, workers = self.config.workers, "job workers started (claims name this process)");
        tracker.close();
        tracker
    }

    async fn work(self: Arc<Self>, worker: String, shutdown: CancellationToken) {
        // Only news that may make a job claimable: a bump during the claim below is seen by the
        // wait after it, so a job queued meanwhile is not left to the poll.
        let mut claimable = self.claimable.subscribe();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let claim = format!("{worker}/{}", uuid::Uuid::new_v4());
            match self.store.claim(&claim, self.stale_before()).await {
                Ok(Some(job)) => {
                    failures = 0;
                    self.woke(&job.id);
                    self.run(job, &shutdown, &mut None).await;
                }
                Ok(None) => {
                    failures = 0;
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = claimable.changed() => {}
                        _ = tokio::time::sleep(self.config.poll) => {}
                    }
                }
                Err(e) => {
                    failures += 1;
                    let pause = backoff(failures, Duration::from_secs(10));
                    tracing::warn!(error = %e, retry_in = ?pause, "jobs worker cannot claim");
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }

    /// Runs one claimed job to its end, a lost claim, or shutdown. `slot` is dropped once the
    /// job's end (succeeded, failed, canceled) is stored, before anyone is woken.
    ///
    /// When traces are exported the run is the span `job.run`, a child of the context the job was
    /// submitted under (stored with it): a takeover on another replica continues the same trace.
    pub(super) async fn run(&self, job: Claimed, shutdown: &CancellationToken, slot: &mut Option<Box<dyn Send>>) {
        let span = crate::trace_context::span(|| {
            tracing::info_span!(
                "job.run",
                job.id = %job.id,
                job.kind = job.kind.as_ref().map_or("unknown", |k| k.as_str()),
                config_flavor = %job.flavor,
                config_flavor.hash = %job.flavor_hash,
                job.attempt = job.attempts,
                job.takeovers = job.takeovers,
                job.taken_over = job.taken_over,
                upstream.provider = tracing::field::Empty,
                upstream.id = tracing::field::Empty,
            )
        });
        crate::trace_context::adopt_stored(&span, job.trace_context.as_deref());
        self.run_claimed(job, shutdown, slot).instrument(span).await
    }

    async fn run_claimed(&self, job: Claimed, shutdown: &CancellationToken, slot: &mut Option<Box<dyn Send>>) {
        // The claim's own span: what the claim found (its saved upstream runs, a takeover).
        let claim_span = crate::trace_context::span(
            || tracing::info_span!("job.claim", job.id = %job.id, job.taken_over = job.taken_over, job.claim = %job.claim),
        );
        let saved = match if job.fresh { Ok(Vec::new()) } else { self.store.runs(&job.id).instrument(claim_span).await }
        {
            Ok(saved) => saved,
            // Without its saved runs the job could create upstream again: leave it to a takeover.
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "cannot read the job's saved upstream runs");
                return;
            }
        };
        let kind = job.kind.as_ref().map_or("unknown", |k| k.as_str());
        let upstream: Vec<&str> = saved.iter().map(|run| run.id.as_str()).collect();
        crate::telemetry::job_claimed(job.taken_over);
        if job.taken_over {
            tracing::info!(
                job = %job.id, kind, flavor = %job.flavor, attempt = job.attempts, takeovers = job.takeovers,
                upstream = ?upstream, claim = %job.claim, previous_owner = %job.previous_claim.as_deref().unwrap_or("unknown"),
                "job taken over: its worker's heartbeat stopped (MVGEN_JOB_STALE_AFTER); resuming its saved upstream runs"
            );
        } else {
            tracing::info!(
                job = %job.id, kind, flavor = %job.flavor, attempt = job.attempts, upstream = ?upstream, claim = %job.claim,
                "job claimed"
            );
        }
        let (progress_tx, progress_rx) = watch::channel(None);
        let max_attempts = job.max_attempts.unwrap_or(i64::from(self.config.max_attempts));
        let observer = Observer {
            store: &self.store,
            wake: &self.wake,
            job: &job,
            progress: progress_tx,
            canceled: AtomicBool::new(false),
            final_attempt: job.attempts >= max_attempts,
            stopping: AtomicBool::new(false),
            resumed: Mutex::new(Vec::new()),
            creating: watch::Sender::new(0),
            started: Mutex::new(Vec::new()),
            saving: AtomicBool::new(false),
            span: tracing::Span::current(),
        };
        let ended = if job.cancel_requested {
            Ended::Cancel
        } else if job.takeovers > i64::from(self.config.max_takeovers) {
            Ended::GaveUp(ApiError::new(
                ErrorKind::InternalError,
                format!(
                    "the job's worker stopped {} times before it finished (crashed or killed); \
                     given up after MVGEN_JOB_MAX_TAKEOVERS={}",
                    job.takeovers, self.config.max_takeovers
                ),
                json!({ "takeovers": job.takeovers }),
            ))
        } else {
            let ctx = RunContext::new(&observer, &saved).for_job(&job.id);
            let run = async {
                match &job.kind {
                    Ok(kind) => self.pipeline.run(*kind, &job.plan, ctx).await,
                    // As when the pipeline looked kinds up by name: a 400 naming the field, final.
                    Err(unknown) => Err(ApiError::invalid(
                        "kind",
                        format!("expected one of {}, got {:?}", Kind::names(), unknown.value),
                    )),
                }
            };
            let mut run = std::pin::pin!(run);
            let ended = tokio::select! {
                result = &mut run => Ended::Ran(result),
                ended = async {
                    let ended = self.watch(&job, progress_rx).await;
                    // Set before select! drops the run, whose drop guard reads it: a canceled job
                    // cancels its upstream run; a job cut by shutdown keeps it for a takeover.
                    match ended {
                        Ended::Cancel => observer.canceled.store(true, Ordering::Relaxed),
                        Ended::Lost => observer.stopping.store(true, Ordering::Relaxed),
                        _ => {}
                    }
                    ended
                } => ended,
                _ = async {
                    shutdown.cancelled().await;
                    observer.stopping.store(true, Ordering::Relaxed);
                } => Ended::Shutdown,
            };
            // A create already sent must get its answer and its id saved before the run is
            // dropped, or nobody could cancel or resume the run it started: the drop then cancels
            // it (a canceled job) or leaves it to the next owner (shutdown, takeover).
            if !matches!(ended, Ended::Ran(_)) {
                let mut creating = observer.creating.subscribe();
                tokio::select! {
                    _ = &mut run => {}
                    _ = creating.wait_for(|open| *open == 0) => {}
                    // Still ours meanwhile: no takeover while the id is on its way to the store.
                    () = self.keep_claim(&job) => {}
                }
            }
            ended
        };
        // The saved runs no call of this attempt took up are nobody's to cancel but ours: all of
        // them when the job was canceled before this claim (released, or its worker died), those
        // a live call never reached otherwise (a call that holds its run cancels it when dropped).
        // A job given up is never run again, so its saved runs would only go on being billed.
        let orphaned: Vec<UpstreamRun> = match ended {
            Ended::Cancel => {
                let resumed = observer.resumed.lock().map(|r| r.clone()).unwrap_or_default();
                saved.iter().filter(|run| !resumed.contains(run)).cloned().collect()
            }
            Ended::GaveUp(_) => saved.clone(),
            _ => Vec::new(),
        };
        let outcome_error;
        let outcome = match &ended {
            Ended::Ran(Ok(output)) => Outcome::Succeeded(output),
            Ended::Ran(Err(e))
                if e.status().is_server_error()
                    && job.attempts < job.max_attempts.unwrap_or(i64::from(self.config.max_attempts)) =>
            {
                outcome_error = e.message.clone();
                Outcome::Retry {
                    code: e.kind,
                    message: &outcome_error,
                    after: backoff(job.attempts as u32, Duration::from_secs(60)),
                }
            }
            Ended::Ran(Err(e)) | Ended::GaveUp(e) => {
                Outcome::Failed { code: e.kind, message: &e.message, status: e.status().as_u16(), details: &e.details }
            }
            Ended::Cancel => Outcome::Canceled,
            Ended::Shutdown => Outcome::Released,
            Ended::Lost => {
                tracing::info!(job = %job.id, "job taken over by another worker; this attempt stops");
                return;
            }
        };
        // A succeeded job's output as JSON text, written once: bound into the row, and the very
        // bytes a sync request waiting here answers with (it was serialised a second time there).
        let output_text = match &ended {
            Ended::Ran(Ok(output)) => Some(crate::jobs::store::json_text(output)),
            _ => None,
        };
        let known = Known {
            webhook: job.webhook,
            // No run saved before this claim, and none saved (or tried) by it.
            no_runs: saved.is_empty() && !observer.saving.load(Ordering::Relaxed),
            output_text: output_text.as_deref(),
        };
        // The result is in memory only: keep trying to store it until the database is back, or
        // until shutdown (then the job is taken over, and resumes its saved upstream run).
        let mut failures = 0;
        let store_span = crate::trace_context::span(|| tracing::info_span!("job.store", job.id = %job.id));
        // The job's final row once its end is stored here (`Some(None)`: stored, but unreadable).
        let final_row = loop {
            match self
                .store
                .finish_known(&job.id, &job.claim, outcome_clone(&outcome), known)
                .instrument(store_span.clone())
                .await
            {
                Ok(stored) => {
                    if stored.is_some() {
                        let started = observer.started.lock().map(|s| s.clone()).unwrap_or_default();
                        let upstream: Vec<&str> =
                            saved.iter().map(|run| run.id.as_str()).chain(started.iter().map(String::as_str)).collect();
                        log_outcome(&job, kind, &outcome, &upstream);
                    }
                    let ended = matches!(outcome, Outcome::Succeeded(_) | Outcome::Failed { .. } | Outcome::Canceled);
                    break stored.filter(|_| ended).map(|finished| finished.row);
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(job = %job.id, error = %e, "cannot store the job's outcome; retrying");
                    if shutdown.is_cancelled() && failures > 3 {
                        return;
                    }
                    tokio::time::sleep(backoff(failures, Duration::from_secs(5))).await;
                }
            }
        };
        let requeued = matches!(outcome, Outcome::Retry { .. } | Outcome::Released);
        if let Some(row) = final_row {
            // The waiting sync request (if it waits here) gets the row before the slot's drop
            // wakes it, with the output moved in: the finish did not read it back.
            if let Some(mut row) = row {
                if let Ended::Ran(Ok(output)) = ended {
                    row.output = Some(output);
                }
                self.hand_over(row, output_text);
            }
            slot.take();
        }
        // After the canceled or failed outcome is stored, so no takeover of this job cancels them
        // again.
        self.cancel_runs(&job.id, &orphaned).await;
        self.woke(&job.id);
        if requeued {
            self.may_claim();
        }
    }

    /// Heartbeats the claim until dropped, and nothing else.
    async fn keep_claim(&self, job: &Claimed) {
        let every = self.heartbeat_every();
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.store.heartbeat(&job.id, &job.claim).await {
                tracing::warn!(job = %job.id, error = %e, "heartbeat failed");
            }
        }
    }

    /// Heartbeats the claim, watches for a cancel and writes throttled progress; returns only when
    /// the run must stop.
    async fn watch(&self, job: &Claimed, mut progress: watch::Receiver<Option<(String, Option<String>)>>) -> Ended {
        let every = self.heartbeat_every();
        let news = Watching::register(self, &job.id);
        // The first beat one period on: the claim (or the sync job's INSERT) just wrote the
        // heartbeat and read `cancel_requested`, so a beat at once was a write per job for nothing.
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut progress_open = true;
        loop {
            tokio::select! {
                _ = beat.tick() => {}
                () = news.notify.notified() => {}
                changed = progress.changed(), if progress_open => {
                    if changed.is_err() {
                        progress_open = false;
                        continue;
                    }
                    let step = progress.borrow_and_update().clone();
                    if let Some((stage, status)) = step {
                        match self.store.progress(&job.id, &job.claim, &stage, status.as_deref()).await {
                            Ok(()) => self.woke(&job.id),
                            Err(e) => tracing::debug!(job = %job.id, error = %e, "progress not recorded"),
                        }
                    }
                    tokio::time::sleep(self.config.progress_every).await;
                    continue;
                }
            }
            match self.store.heartbeat(&job.id, &job.claim).await {
                Ok(None) => return Ended::Lost,
                Ok(Some(true)) => return Ended::Cancel,
                Ok(Some(false)) => {}
                // The database is away: keep running; the outcome is stored once it is back.
                Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
            }
        }
    }
}

/// A running job's entry in `Jobs::watches` (its news wakes its watch alone), removed when the
/// watch ends.
struct Watching<'a> {
    jobs: &'a Jobs,
    id: &'a str,
    notify: Arc<tokio::sync::Notify>,
}

impl<'a> Watching<'a> {
    fn register(jobs: &'a Jobs, id: &'a str) -> Self {
        let notify = Arc::new(tokio::sync::Notify::new());
        jobs.watches().insert(id.to_owned(), Arc::clone(&notify));
        Watching { jobs, id, notify }
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        // Only its own entry: the same job may be watched again here meanwhile (a takeover of a
        // claim this process lost).
        let mut watches = self.jobs.watches();
        if watches.get(self.id).is_some_and(|n| Arc::ptr_eq(n, &self.notify)) {
            watches.remove(self.id);
        }
    }
}

/// The job's line for how this try ended, and its count in the metrics.
fn log_outcome(job: &Claimed, kind: &str, outcome: &Outcome<'_>, upstream: &[&str]) {
    let (id, flavor, attempt) = (&job.id, &job.flavor, job.attempts);
    match outcome {
        Outcome::Succeeded(_) => {
            crate::telemetry::job_try_ended("succeeded", None);
            tracing::info!(job = %id, kind, flavor = %flavor, attempt, upstream = ?upstream, "job succeeded");
        }
        Outcome::Failed { code, message, .. } => {
            crate::telemetry::job_try_ended("failed", Some(code.to_string()));
            tracing::info!(job = %id, kind, flavor = %flavor, attempt, upstream = ?upstream, code = %code, message, "job failed");
        }
        Outcome::Canceled => {
            crate::telemetry::job_try_ended("canceled", None);
            tracing::info!(job = %id, kind, flavor = %flavor, attempt, upstream = ?upstream, "job canceled");
        }
        Outcome::Retry { code, message, after } => {
            crate::telemetry::job_try_ended("retry", Some(code.to_string()));
            tracing::info!(
                job = %id, kind, flavor = %flavor, attempt, upstream = ?upstream, code = %code, message, retry_in = ?after,
                "job try failed; queued for a retry"
            );
        }
        Outcome::Released => {
            crate::telemetry::job_try_ended("released", None);
            tracing::info!(
                job = %id, kind, flavor = %flavor, attempt, upstream = ?upstream,
                "job released to the queue at shutdown; the next worker resumes its upstream runs"
            );
        }
    }
}

/// Why a run stopped.
enum Ended {
    Ran(Result<Value, ApiError>),
    /// Never run again: taken over more than `max_takeovers` times (final, not retried).
    GaveUp(ApiError),
    Cancel,
    Shutdown,
    Lost,
}

fn outcome_clone<'a>(outcome: &Outcome<'a>) -> Outcome<'a> {
    match outcome {
        Outcome::Succeeded(v) => Outcome::Succeeded(v),
        Outcome::Failed { code, message, status, details } => {
            Outcome::Failed { code: *code, message, status: *status, details }
        }
        Outcome::Canceled => Outcome::Canceled,
        Outcome::Retry { code, message, after } => Outcome::Retry { code: *code, message, after: *after },
        Outcome::Released => Outcome::Released,
    }
}

/// Saves upstream runs before the provider waits on them, and hands progress to the watcher.
struct Observer<'a> {
    store: &'a Store,
    wake: &'a broadcast::Sender<String>,
    job: &'a Claimed,
    progress: watch::Sender<Option<(String, Option<String>)>>,
    /// The user canceled the job: its upstream run is to be canceled when the run is dropped.
    canceled: AtomicBool,
    /// No retry follows a failure of this attempt (always so for a sync request's job): a run
    /// that fails mid-wait (a poll error, say) cancels its upstream run rather than leave it
    /// billing with nobody to collect it.
    final_attempt: bool,
    /// Shutdown or a takeover stops this attempt: the upstream run is kept for the next owner.
    stopping: AtomicBool,
    /// The saved runs a call of this attempt resumed (and so cancels itself when dropped).
    resumed: Mutex<Vec<UpstreamRun>>,
    /// Creates sent whose id is not saved yet (see `RunObserver::creating`).
    creating: watch::Sender<usize>,
    /// The upstream runs this attempt started (their ids), for the job's log lines.
    started: Mutex<Vec<String>>,
    /// This attempt tried to save an upstream run (whether or not the save was answered).
    saving: AtomicBool,
    /// The job's `job.run` span (disabled unless traces are exported): it names the upstream run.
    span: tracing::Span,
}

impl Observer<'_> {
    fn name_upstream(&self, run: &UpstreamRun) {
        self.span.record("upstream.provider", run.provider.as_str());
        self.span.record("upstream.id", run.id.as_str());
    }
}

impl RunObserver for Observer<'_> {
    fn started<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.saving.store(true, Ordering::Relaxed);
            // Saved before Ok: a provider waits only on an id the next attempt can resume.
            let mut failures = 0;
            loop {
                match self.store.save_run(&self.job.id, &self.job.claim, run).await {
                    Ok(true) => {
                        self.name_upstream(run);
                        tracing::info!(
                            job = %self.job.id, provider = %run.provider, upstream = %run.id, slot = run.slot,
                            "job started an upstream run (saved before waiting on it)"
                        );
                        if let Ok(mut started) = self.started.lock() {
                            started.push(run.id.clone());
                        }
                        let _ = self.wake.send(self.job.id.clone());
                        return Ok(());
                    }
                    Ok(false) => return Err("the job was taken over by another worker".into()),
                    Err(e) if failures < 5 => {
                        failures += 1;
                        tracing::warn!(job = %self.job.id, error = %e, "cannot save the upstream run; retrying");
                        tokio::time::sleep(backoff(failures, Duration::from_secs(4))).await;
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
    }

    fn progress(&self, stage: &str, upstream_status: Option<&str>) {
        self.progress.send_replace(Some((stage.to_owned(), upstream_status.map(str::to_owned))));
    }

    fn cancel_on_drop(&self) -> bool {
        self.canceled.load(Ordering::Relaxed) || (self.final_attempt && !self.stopping.load(Ordering::Relaxed))
    }

    fn resumed(&self, run: &UpstreamRun) {
        self.name_upstream(run);
        if let Ok(mut resumed) = self.resumed.lock() {
            resumed.push(run.clone());
        }
    }

    fn creating(&self, open: bool) {
        self.creating.send_modify(|n| *n = if open { *n + 1 } else { n.saturating_sub(1) });
    }

    /// A webhook for the run reaches whichever replica the upstream calls: that one marks the run
    /// ended in the database and wakes every process (`upstream:{id}` on the wake-ups: in process,
    /// and through `pg_notify` on PostgreSQL). The database is also read now and then, since
    /// another process on an SQLite file, or a notification lost with a connection, wakes nobody.
    fn upstream_ended<'a>(&'a self, provider: &'a str, id: &'a str) -> BoxFuture<'a, ()> {
        let mut wake = self.wake.subscribe();
        let named = format!("{UPSTREAM_WAKE_PREFIX}{id}");
        let every = match self.store.dialect() {
            Dialect::Sqlite => Duration::from_secs(1),
            Dialect::Postgres => Duration::from_secs(10),
        };
        Box::pin(async move {
            loop {
                if self.store.upstream_ended(provider, id).await.unwrap_or(false) {
                    return;
                }
                super::woken(&mut wake, &named, every).await;
            }
        })
    }
}
