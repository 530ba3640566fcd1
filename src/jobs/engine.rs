//! The job engine: submit (plan, then store), workers that claim, heartbeat, run and finish jobs,
//! and the wake-ups that tell workers and event streams something changed.
//!
//! Wake-ups are only hints; the rows are the truth. On PostgreSQL every event's transaction also
//! runs `pg_notify`, and one `PgListener` per process fans the job ids out through a
//! `tokio::sync::broadcast`; on SQLite the writer broadcasts in-process and readers also poll
//! briefly, because another process may share the file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pipeline::{JobPipeline, Planned};
use super::store::{
    Claimed, Dialect, JobRow, KeyBinding, KeyState, KeyTimes, NewJob, Outcome, Replay, Store, StoreError,
};
use crate::error::{ApiError, ErrorKind};
use crate::providers::{BoxFuture, RunContext, RunObserver, UpstreamRun};

/// How the engine runs jobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs run at once by this process's workers (0: submit and serve only).
    pub workers: usize,
    /// A processing job whose heartbeat is older than this is taken over.
    pub stale_after: Duration,
    /// Tries per job before a retryable failure becomes final (a takeover or a release does not
    /// start a try).
    pub max_attempts: u32,
    /// Takeovers after which a job is failed instead of run again: a job that keeps crashing its
    /// worker still ends (`MVGEN_JOB_MAX_TAKEOVERS`).
    pub max_takeovers: u32,
    /// How often an idle worker looks for work without a wake-up (and how often an event stream
    /// polls on SQLite, where another process may write).
    pub poll: Duration,
    /// At most one progress event per job per this interval (the latest step wins).
    pub progress_every: Duration,
    /// How long an `Idempotency-Key` is remembered (`MVGEN_IDEMPOTENCY_TTL`); then it is forgotten
    /// and the same key makes a new job.
    pub idempotency_ttl: Duration,
    /// A key still pending (no job stored) after this was left by a submission that crashed
    /// between storing the key and storing its job: the next request with it takes it over.
    /// Planning is local and quick, so a live submission never takes this long.
    pub idempotency_lease: Duration,
    /// How long a sync request waits for its job (`MVGEN_SYNC_WAIT`); then it answers 504 with
    /// the job's id and the job goes on (see [`Jobs::finished`]).
    pub sync_wait: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 4,
            stale_after: Duration::from_secs(60),
            max_attempts: 3,
            max_takeovers: 10,
            poll: Duration::from_millis(500),
            progress_every: Duration::from_millis(250),
            // Above the slowest kind's own upstream bounds (video: a 900 s deadline, then a
            // download of up to 300 s), so only a job nobody can run hits it.
            sync_wait: Duration::from_secs(1200),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            idempotency_lease: Duration::from_secs(60),
        }
    }
}

/// A job the API accepted: new, or the one an `Idempotency-Key` already made.
pub enum Submitted {
    /// Stored now: the row as stored.
    New(Box<super::store::JobRow>),
    /// The job the `Idempotency-Key` made before, and the answer it was first given.
    Replayed(Replay),
}

/// An `Idempotency-Key` on a submission: the key, the request's fingerprint, and how the API
/// renders its answer (status, body) from the stored job, kept with the key for replays.
pub struct SubmitKey<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub answer: &'a (dyn Fn(&JobRow) -> (u16, Value) + Sync),
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
    /// Sync jobs whose generation slot this process still holds: their waiter answers only once
    /// the slot is free, so the caller's next request is not refused by its own finished one.
    holding: std::sync::Mutex<std::collections::HashSet<String>>,
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
            holding: Default::default(),
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

    /// Plans `input` and stores the job. `key`: an `Idempotency-Key` (IETF draft): the same key
    /// and body replay the first answer until the key expires.
    pub async fn submit(&self, kind: &str, input: Value, key: Option<SubmitKey<'_>>) -> Result<Submitted, ApiError> {
        let kinds = self.kinds();
        if !kinds.contains(&kind) {
            return Err(ApiError::invalid("kind", format!("{kind:?} is not one of {}", kinds.join(", "))));
        }
        let owner = uuid::Uuid::new_v4().to_string();
        if let Some(key) = &key {
            let now = super::store::now_ms();
            let times = KeyTimes {
                expired_before: now - self.config.idempotency_ttl.as_millis() as i64,
                abandoned_before: now - self.config.idempotency_lease.as_millis() as i64,
            };
            match self.store.begin_key(key.key, key.fingerprint, &owner, times).await.map_err(unavailable)? {
                KeyState::New => {}
                KeyState::Same(Some(replay)) => return Ok(Submitted::Replayed(replay)),
                KeyState::Same(None) => return Err(key_in_use()),
                KeyState::Other => {
                    return Err(ApiError::new(
                        ErrorKind::IdempotencyKeyReused,
                        "this Idempotency-Key was used with a different request body",
                        json!("idempotency-key"),
                    ));
                }
            }
        }
        let binding = key.as_ref().map(|k| KeyBinding { key: k.key, owner: &owner, answer: k.answer });
        let result = self.plan_and_store(kind, input, binding.as_ref()).await;
        if let (Err(_), Some(key)) = (&result, &key)
            && let Err(e) = self.store.release_key(key.key, &owner).await
        {
            tracing::warn!(error = %e, "could not release an idempotency key after a refused submission");
        }
        result.map(Submitted::New)
    }

    async fn plan_and_store(
        &self,
        kind: &str,
        input: Value,
        key: Option<&KeyBinding<'_>>,
    ) -> Result<Box<super::store::JobRow>, ApiError> {
        let planned = self.pipeline.plan(kind, input).await?;
        self.store_planned(kind, &planned, key, None).await
    }

    /// Stores a job its caller already planned, then runs it at once in this process (unless a
    /// worker claims it first) and returns its id. For the sync endpoints: they wait on it rather
    /// than queue behind other jobs, `max_attempts` 1 so an upstream failure answers the caller as
    /// it did before jobs (a takeover after a dead worker still resumes its saved run). The run is
    /// its own task holding `guard` (the caller's generation slot) until the job ends, whoever runs
    /// it: a caller who hangs up neither cancels it nor frees the slot early, and a worker that
    /// wins the claim does not let the cap be bypassed (see [`Jobs::run_to_end`]).
    pub async fn submit_now(
        self: &Arc<Self>,
        kind: &str,
        planned: &Planned,
        guard: impl Send + 'static,
    ) -> Result<String, ApiError> {
        let id = self.store_planned(kind, planned, None, Some(1)).await?.id;
        self.holding().insert(id.clone());
        let slot = HeldSlot { guard: Some(Box::new(guard)), jobs: Arc::clone(self), id: id.clone() };
        let jobs = Arc::clone(self);
        let job_id = id.clone();
        let run = async move {
            let (shutdown, _) =
                jobs.running.get().cloned().unwrap_or_else(|| (jobs.closed.clone(), TaskTracker::new()));
            jobs.run_to_end(&job_id, &shutdown, Box::new(slot)).await;
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
    async fn run_to_end(&self, id: &str, shutdown: &CancellationToken, slot: Box<dyn Send>) {
        let mut slot = Some(slot);
        let mut wake = self.subscribe();
        let mut failures = 0u32;
        // Claiming is a write (the one writer on SQLite): a job another worker runs is only read,
        // and tried for a takeover every half stale limit.
        let takeover_every = (self.config.stale_after / 2).max(self.config.poll);
        let mut claim_at = tokio::time::Instant::now();
        while !shutdown.is_cancelled() && slot.is_some() {
            let pause = match self.store.get(id).await {
                Ok(Some(job)) if !matches!(job.status.as_str(), "queued" | "processing") => return,
                Ok(None) => return,
                Ok(Some(job)) if job.status == "queued" || tokio::time::Instant::now() >= claim_at => {
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

    /// Claims whose heartbeat is older than this (Unix ms) belong to a dead worker.
    fn stale_before(&self) -> i64 {
        super::store::now_ms() - self.config.stale_after.as_millis() as i64
    }

    /// How often a claim is kept alive: three beats per stale limit, so one late beat is no takeover.
    fn heartbeat_every(&self) -> Duration {
        (self.config.stale_after / 3).max(Duration::from_millis(50))
    }

    fn holding(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.holding.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn store_planned(
        &self,
        kind: &str,
        planned: &Planned,
        key: Option<&KeyBinding<'_>>,
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
        // `None`: the key was taken over as abandoned while this submission was planning.
        let row = self.store.insert(&job, key).await.map_err(unavailable)?.ok_or_else(key_in_use)?;
        self.woke(&id);
        Ok(Box::new(row))
    }

    /// The job once it is succeeded, failed or canceled, or as it is last read (still `queued` or
    /// `processing`) once `config.sync_wait` has passed: the caller answers with the job's id
    /// instead of hanging forever when nobody can run it (the database keeps refusing claims, say).
    /// Woken by this process's broadcast; reads the row anyway every `config.poll`, as a worker in
    /// another process tells us nothing. A database fault is retried: the job's result is kept
    /// either way. `Ok(None)`: no such job; `Err`: the database could not be read once before the
    /// bound. For the sync endpoints' submit-and-wait: a client that hangs up drops only this
    /// wait, never the job.
    pub async fn finished(&self, id: &str) -> Result<Option<super::store::JobRow>, StoreError> {
        let mut wake = self.subscribe();
        let deadline = tokio::time::Instant::now() + self.config.sync_wait;
        let mut last = None;
        let mut fault = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.store.get(id).await {
                // Its slot is freed a moment after the end is stored (see `run_to_end`).
                Ok(Some(job)) if matches!(job.status.as_str(), "succeeded" | "failed" | "canceled") => {
                    if left.is_zero() || !self.holding().contains(id) {
                        return Ok(Some(job));
                    }
                    last = Some(job);
                }
                Ok(None) => return Ok(None),
                Ok(Some(job)) => last = Some(job),
                Err(e) => {
                    tracing::debug!(job = %id, error = %e, "cannot read a waited-on job; retrying");
                    fault = Some(e);
                }
            }
            if left.is_zero() {
                return match (last, fault) {
                    (None, Some(e)) => Err(e),
                    (last, _) => Ok(last),
                };
            }
            woken(&mut wake, id, self.config.poll.min(left)).await;
        }
    }

    /// Cancels a job (see [`Store::cancel`]) and wakes its worker. A job canceled while queued
    /// (released by a shutdown, or waiting for a retry) has no worker whose dropped call would
    /// cancel its saved upstream runs, so they are cancelled here.
    pub async fn cancel(&self, id: &str) -> Result<Option<super::store::JobRow>, StoreError> {
        let (row, unowned) = self.store.cancel(id).await?;
        self.woke(id);
        if unowned {
            match self.store.runs(id).await {
                Ok(runs) => self.cancel_runs(id, &runs).await,
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "cannot read a canceled job's upstream runs to cancel them")
                }
            }
        }
        Ok(row)
    }

    /// Cancels upstream runs a job saved that no live call holds (best effort: logged).
    async fn cancel_runs(&self, job_id: &str, runs: &[UpstreamRun]) {
        for run in runs {
            match self.pipeline.cancel_run(run).await {
                Ok(()) => {
                    tracing::info!(job = %job_id, provider = %run.provider, run = %run.id, "cancelled a saved upstream run")
                }
                Err(e) => {
                    tracing::warn!(job = %job_id, provider = %run.provider, run = %run.id, error = %e, "cannot cancel a saved upstream run")
                }
            }
        }
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

    /// Runs one claimed job to its end, a lost claim, or shutdown. `slot` is dropped once the
    /// job's end (succeeded, failed, canceled) is stored, before anyone is woken.
    async fn run(&self, job: Claimed, shutdown: &CancellationToken, slot: &mut Option<Box<dyn Send>>) {
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
            resumed: Mutex::new(Vec::new()),
            creating: watch::Sender::new(0),
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
            let ctx = RunContext::new(&observer, &saved);
            let mut run = std::pin::pin!(self.pipeline.run(&job.kind, &job.plan, ctx));
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
        // The stored code is the error kind's wire name, as in the sync endpoints' error bodies.
        let code = match &ended {
            Ended::Ran(Err(e)) | Ended::GaveUp(e) => e.kind.to_string(),
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
            Ended::Ran(Err(e)) | Ended::GaveUp(e) => {
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
                Ok(stored) => {
                    if stored && matches!(outcome, Outcome::Succeeded(_) | Outcome::Failed { .. } | Outcome::Canceled) {
                        slot.take();
                    }
                    break;
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
        }
        // After the canceled or failed outcome is stored, so no takeover of this job cancels them
        // again.
        self.cancel_runs(&job.id, &orphaned).await;
        self.woke(&job.id);
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
        self.jobs.woke(&self.id);
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

/// The same `Idempotency-Key` while its first request is still submitting: 409.
fn key_in_use() -> ApiError {
    ApiError::new(
        ErrorKind::IdempotencyKeyInUse,
        "a request with this Idempotency-Key is still being processed; retry shortly",
        json!("idempotency-key"),
    )
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
    /// The saved runs a call of this attempt resumed (and so cancels itself when dropped).
    resumed: Mutex<Vec<UpstreamRun>>,
    /// Creates sent whose id is not saved yet (see `RunObserver::creating`).
    creating: watch::Sender<usize>,
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

    fn resumed(&self, run: &UpstreamRun) {
        if let Ok(mut resumed) = self.resumed.lock() {
            resumed.push(run.clone());
        }
    }

    fn creating(&self, open: bool) {
        self.creating.send_modify(|n| *n = if open { *n + 1 } else { n.saturating_sub(1) });
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
