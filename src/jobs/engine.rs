//! The job engine: submit (plan, then store), workers that claim, heartbeat, run and finish jobs,
//! and the wake-ups that tell workers and event streams something changed.
//!
//! Wake-ups are only hints; the rows are the truth. On PostgreSQL every event's transaction also
//! runs `pg_notify`, and one `PgListener` per process fans the job ids out through a
//! `tokio::sync::broadcast`; on SQLite the writer broadcasts in-process and readers also poll
//! briefly, because another process may share the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pipeline::{JobPipeline, Planned};
use super::store::{Claimed, Dialect, KeyState, NewJob, Outcome, Store, StoreError};
use crate::api::error::{ApiError, ErrorKind};
use crate::providers::{BoxFuture, RunContext, RunObserver, UpstreamRun};

/// How the engine runs jobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs run at once by this process's workers (0: submit and serve only).
    pub workers: usize,
    /// A processing job whose heartbeat is older than this is taken over.
    pub stale_after: Duration,
    /// Claims per job before a retryable failure becomes final.
    pub max_attempts: u32,
    /// How often an idle worker looks for work without a wake-up (and how often an event stream
    /// polls on SQLite, where another process may write).
    pub poll: Duration,
    /// At most one progress event per job per this interval (the latest step wins).
    pub progress_every: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 4,
            stale_after: Duration::from_secs(60),
            max_attempts: 3,
            poll: Duration::from_millis(500),
            progress_every: Duration::from_millis(250),
        }
    }
}

/// A job the API accepted: new, or the one an `Idempotency-Key` already made.
pub enum Submitted {
    /// Stored now: the row as stored.
    New(Box<super::store::JobRow>),
    /// The id of the job the `Idempotency-Key` made before.
    Replayed(String),
}

/// The engine one process holds.
pub struct Jobs {
    store: Store,
    pipeline: Arc<dyn JobPipeline>,
    config: EngineConfig,
    wake: broadcast::Sender<String>,
    /// Stops the background tasks (the PostgreSQL listener).
    closed: CancellationToken,
    /// The workers' shutdown token and tracker once started: jobs run at once for a sync request
    /// stop, release and are waited for like any worker's.
    running: std::sync::OnceLock<(CancellationToken, TaskTracker)>,
    /// Ends every event stream (shutdown): clients reconnect with `Last-Event-ID` elsewhere
    /// instead of holding the connection drain open until its deadline.
    draining: CancellationToken,
}

impl Jobs {
    /// Opens the database at `url` (migrating it) and starts listening for other replicas.
    pub async fn open(url: &str, pipeline: Arc<dyn JobPipeline>, config: EngineConfig) -> Result<Arc<Jobs>, String> {
        let store = Store::open(url).await?;
        let (wake, _) = broadcast::channel(1024);
        let jobs = Arc::new(Jobs {
            store,
            pipeline,
            config,
            wake,
            closed: CancellationToken::new(),
            running: std::sync::OnceLock::new(),
            draining: CancellationToken::new(),
        });
        if jobs.store.dialect() == Dialect::Postgres {
            let listener = sqlx::postgres::PgListener::connect(url)
                .await
                .map_err(|e| format!("jobs database {}: cannot listen: {e}", super::store::redact(url)))?;
            tokio::spawn(listen(listener, jobs.wake.clone(), jobs.closed.clone()));
        }
        Ok(jobs)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The kinds a job may have: the pipeline's.
    pub fn kinds(&self) -> &[&'static str] {
        self.pipeline.kinds()
    }

    /// Wake-ups: the id of a job that has something new.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.wake.subscribe()
    }

    /// Tells this process's workers and streams (other processes learn it from the database).
    fn woke(&self, job_id: &str) {
        let _ = self.wake.send(job_id.to_owned());
    }

    /// Plans `input` and stores the job. `key` is an `Idempotency-Key` with the body's fingerprint.
    pub async fn submit(&self, kind: &str, input: Value, key: Option<(&str, &str)>) -> Result<Submitted, ApiError> {
        let kinds = self.kinds();
        if !kinds.contains(&kind) {
            return Err(ApiError::invalid("kind", format!("{kind:?} is not one of {}", kinds.join(", "))));
        }
        if let Some((key, fingerprint)) = key {
            match self.store.begin_key(key, fingerprint).await.map_err(unavailable)? {
                KeyState::New => {}
                KeyState::Same(Some(id)) => return Ok(Submitted::Replayed(id)),
                KeyState::Same(None) => {
                    return Err(ApiError::new(
                        ErrorKind::IdempotencyKeyInUse,
                        "a request with this Idempotency-Key is still being processed; retry shortly",
                        json!("idempotency-key"),
                    ));
                }
                KeyState::Other => {
                    return Err(ApiError::new(
                        ErrorKind::IdempotencyKeyReused,
                        "this Idempotency-Key was used with a different request body",
                        json!("idempotency-key"),
                    ));
                }
            }
        }
        let result = self.plan_and_store(kind, input, key.map(|(k, _)| k)).await;
        if let (Err(_), Some((key, _))) = (&result, key)
            && let Err(e) = self.store.release_key(key).await
        {
            tracing::warn!(error = %e, "could not release an idempotency key after a refused submission");
        }
        result.map(Submitted::New)
    }

    async fn plan_and_store(
        &self,
        kind: &str,
        input: Value,
        key: Option<&str>,
    ) -> Result<Box<super::store::JobRow>, ApiError> {
        let planned = self.pipeline.plan(kind, input).await?;
        self.store_planned(kind, &planned, key, None).await
    }

    /// Stores a job its caller already planned, then runs it at once in this process (unless a
    /// worker claims it first) and returns its id. For the sync endpoints: they wait on it rather
    /// than queue behind other jobs, `max_attempts` 1 so an upstream failure answers the caller as
    /// it did before jobs (a takeover after a dead worker still resumes its saved run). The run is
    /// its own task holding `guard` (the caller's generation slot) until it ends: a caller who
    /// hangs up neither cancels it nor frees the slot early.
    pub async fn submit_now(
        self: &Arc<Self>,
        kind: &str,
        planned: &Planned,
        guard: impl Send + 'static,
    ) -> Result<String, ApiError> {
        let id = self.store_planned(kind, planned, None, Some(1)).await?.id;
        let jobs = Arc::clone(self);
        let job_id = id.clone();
        let run = async move {
            let _guard = guard;
            let (shutdown, _) =
                jobs.running.get().cloned().unwrap_or_else(|| (jobs.closed.clone(), TaskTracker::new()));
            let claim = format!("{}/now", uuid::Uuid::new_v4());
            match jobs.store.claim_job(&claim, &job_id).await {
                Ok(Some(job)) => {
                    jobs.woke(&job.id);
                    jobs.run(job, &shutdown).await;
                }
                // A worker took it first; the caller waits on that worker instead.
                Ok(None) => {}
                Err(e) => tracing::warn!(job = %job_id, error = %e, "cannot claim a sync job; left to the workers"),
            }
        };
        match self.running.get() {
            Some((_, tracker)) => tracker.spawn(run),
            None => tokio::spawn(run),
        };
        Ok(id)
    }

    async fn store_planned(
        &self,
        kind: &str,
        planned: &Planned,
        key: Option<&str>,
        max_attempts: Option<i64>,
    ) -> Result<Box<super::store::JobRow>, ApiError> {
        let id = uuid::Uuid::new_v4().to_string();
        let job = NewJob {
            id: &id,
            kind,
            plan: &planned.plan,
            config_flavor: &planned.config_flavor,
            project_id: planned.project_id.as_deref(),
            sequence: planned.sequence.map(i64::from),
            max_attempts,
        };
        let row = self.store.insert(&job, key).await.map_err(unavailable)?;
        self.woke(&id);
        Ok(Box::new(row))
    }

    /// The job once it is succeeded, failed or canceled. Woken by this process's broadcast; reads
    /// the row anyway every `config.poll`, as a worker in another process tells us nothing. A
    /// database fault is retried: the job's result is kept either way. `None`: no such job. For
    /// the sync endpoints' submit-and-wait: a client that hangs up drops only this wait, never the job.
    pub async fn finished(&self, id: &str) -> Option<super::store::JobRow> {
        let mut wake = self.subscribe();
        loop {
            match self.store.get(id).await {
                Ok(Some(job)) if matches!(job.status.as_str(), "succeeded" | "failed" | "canceled") => {
                    return Some(job);
                }
                Ok(None) => return None,
                Ok(Some(_)) => {}
                Err(e) => tracing::debug!(job = %id, error = %e, "cannot read a waited-on job; retrying"),
            }
            woken(&mut wake, id, self.config.poll).await;
        }
    }

    /// Cancels a job (see [`Store::cancel`]) and wakes its worker.
    pub async fn cancel(&self, id: &str) -> Result<Option<super::store::JobRow>, StoreError> {
        let row = self.store.cancel(id).await?;
        self.woke(id);
        Ok(row)
    }

    /// Starts `config.workers` workers; they stop claiming when `shutdown` fires and release the
    /// jobs they hold to the queue (they are not failed). Wait on the tracker for them to finish.
    pub fn start_workers(self: &Arc<Self>, shutdown: CancellationToken) -> TaskTracker {
        let tracker = TaskTracker::new();
        let _ = self.running.set((shutdown.clone(), tracker.clone()));
        let process = uuid::Uuid::new_v4();
        for n in 0..self.config.workers {
            let jobs = Arc::clone(self);
            let shutdown = shutdown.clone();
            tracker.spawn(async move { jobs.work(format!("{process}/{n}"), shutdown).await });
        }
        tracker.close();
        tracker
    }

    /// Ends every open event stream now and refuses new ones to stay open (see `draining`).
    pub fn end_streams(&self) {
        self.draining.cancel();
    }

    /// Fires when event streams must end.
    pub fn draining(&self) -> &CancellationToken {
        &self.draining
    }

    /// Stops the listener and closes the pool.
    pub async fn close(&self) {
        self.closed.cancel();
        self.store.close().await;
    }

    async fn work(self: Arc<Self>, worker: String, shutdown: CancellationToken) {
        let mut wake = self.subscribe();
        let mut failures = 0u32;
        while !shutdown.is_cancelled() {
            let stale_before = super::store::now_ms() - self.config.stale_after.as_millis() as i64;
            let claim = format!("{worker}/{}", uuid::Uuid::new_v4());
            match self.store.claim(&claim, stale_before).await {
                Ok(Some(job)) => {
                    failures = 0;
                    self.woke(&job.id);
                    self.run(job, &shutdown).await;
                }
                Ok(None) => {
                    failures = 0;
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = wake.recv() => {}
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

    /// Runs one claimed job to its end, a lost claim, or shutdown.
    async fn run(&self, job: Claimed, shutdown: &CancellationToken) {
        let saved = match self.store.runs(&job.id).await {
            Ok(saved) => saved,
            // Without its saved runs the job could create upstream again: leave it to a takeover.
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "cannot read the job's saved upstream runs");
                return;
            }
        };
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
        };
        let ended = if job.cancel_requested {
            Ended::Cancel
        } else {
            let ctx = RunContext::new(&observer, &saved);
            let run = self.pipeline.run(&job.kind, &job.plan, ctx);
            tokio::select! {
                result = run => Ended::Ran(result),
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
            }
        };
        let outcome_error;
        // The stored code is the error kind's wire name, as in the sync endpoints' error bodies.
        let code = match &ended {
            Ended::Ran(Err(e)) => e.kind.to_string(),
            _ => String::new(),
        };
        let outcome = match &ended {
            Ended::Ran(Ok(output)) => Outcome::Succeeded(output),
            Ended::Ran(Err(e))
                if e.status().is_server_error()
                    && job.attempts < job.max_attempts.unwrap_or(i64::from(self.config.max_attempts)) =>
            {
                outcome_error = e.message.clone();
                Outcome::Retry {
                    code: &code,
                    message: &outcome_error,
                    after: backoff(job.attempts as u32, Duration::from_secs(60)),
                }
            }
            Ended::Ran(Err(e)) => {
                Outcome::Failed { code: &code, message: &e.message, status: e.status().as_u16(), details: &e.details }
            }
            Ended::Cancel => Outcome::Canceled,
            Ended::Shutdown => Outcome::Released,
            Ended::Lost => {
                tracing::info!(job = %job.id, "job taken over by another worker; this attempt stops");
                return;
            }
        };
        // The result is in memory only: keep trying to store it until the database is back, or
        // until shutdown (then the job is taken over, and resumes its saved upstream run).
        let mut failures = 0;
        loop {
            match self.store.finish(&job.id, &job.claim, outcome_clone(&outcome)).await {
                Ok(_) => break,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(job = %job.id, error = %e, "cannot store the job's outcome; retrying");
                    if shutdown.is_cancelled() && failures > 3 {
                        return;
                    }
                    tokio::time::sleep(backoff(failures, Duration::from_secs(5))).await;
                }
            }
        }
        self.woke(&job.id);
    }

    /// Heartbeats the claim, watches for a cancel and writes throttled progress; returns only when
    /// the run must stop.
    async fn watch(&self, job: &Claimed, mut progress: watch::Receiver<Option<(String, Option<String>)>>) -> Ended {
        let every = (self.config.stale_after / 3).max(Duration::from_millis(50));
        let mut wake = self.subscribe();
        let mut beat = tokio::time::interval(every);
        let mut progress_open = true;
        loop {
            tokio::select! {
                _ = beat.tick() => {}
                Ok(id) = wake.recv() => if id != job.id { continue },
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

/// Why a run stopped.
enum Ended {
    Ran(Result<Value, ApiError>),
    Cancel,
    Shutdown,
    Lost,
}

fn outcome_clone<'a>(outcome: &Outcome<'a>) -> Outcome<'a> {
    match outcome {
        Outcome::Succeeded(v) => Outcome::Succeeded(v),
        Outcome::Failed { code, message, status, details } => {
            Outcome::Failed { code, message, status: *status, details }
        }
        Outcome::Canceled => Outcome::Canceled,
        Outcome::Retry { code, message, after } => Outcome::Retry { code, message, after: *after },
        Outcome::Released => Outcome::Released,
    }
}

/// Returns once job `id` is woken on this process's broadcast, or after `within` at the latest
/// (another process's worker wakes nobody here; a lagging receiver may have missed it).
pub async fn woken(wake: &mut broadcast::Receiver<String>, id: &str, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        loop {
            match wake.recv().await {
                Ok(woken) if woken == id => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    })
    .await;
}

/// 0.5 s doubling per failure, up to `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.saturating_sub(1).min(16))).min(cap)
}

/// The database is unreachable: 503 with a `Retry-After`, nothing was stored.
pub fn unavailable(e: StoreError) -> ApiError {
    tracing::warn!(error = %e, "jobs database unavailable");
    ApiError::new(
        ErrorKind::DatabaseUnavailable,
        "the jobs database is unavailable; nothing was stored, retry shortly",
        json!({ "retry_after_seconds": 5 }),
    )
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
}

impl RunObserver for Observer<'_> {
    fn started<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            // Saved before Ok: a provider waits only on an id the next attempt can resume.
            let mut failures = 0;
            loop {
                match self.store.save_run(&self.job.id, &self.job.claim, run).await {
                    Ok(true) => {
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
}

/// Relays PostgreSQL notifications (job ids) to this process's broadcast, reconnecting as needed.
async fn listen(mut listener: sqlx::postgres::PgListener, wake: broadcast::Sender<String>, closed: CancellationToken) {
    let mut listening = false;
    let mut failures = 0;
    while !closed.is_cancelled() {
        if !listening {
            match listener.listen(super::store::NOTIFY_CHANNEL).await {
                Ok(()) => listening = true,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "jobs listener cannot LISTEN; retrying");
                    tokio::time::sleep(backoff(failures, Duration::from_secs(10))).await;
                    continue;
                }
            }
        }
        tokio::select! {
            _ = closed.cancelled() => return,
            received = listener.recv() => match received {
                Ok(note) => {
                    failures = 0;
                    let _ = wake.send(note.payload().to_owned());
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "jobs listener lost its connection; reconnecting");
                    tokio::time::sleep(backoff(failures, Duration::from_secs(10))).await;
                }
            },
        }
    }
}
