//! The job engine: submit (plan, then store), cancel, and the wake-ups that tell workers and event
//! streams something changed. Its workers (claim, heartbeat, run, finish) are in [`worker`], the
//! sync endpoints' run-now-and-wait in [`sync`].
//!
//! Wake-ups are only hints; the rows are the truth. On PostgreSQL every event's transaction also
//! runs `pg_notify`, and one `PgListener` per process fans the job ids out through a
//! `tokio::sync::broadcast`; on SQLite the writer broadcasts in-process and readers also poll
//! briefly, because another process may share the file.

mod queue_metrics;
mod quota;
mod retention;
mod sync;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::pipeline::JobPipeline;
use super::store::deliveries::{WebhookPolicy, WebhookTarget};
use super::store::idempotency::{KeyBinding, KeyState, KeyTimes, Replay};
use super::store::rows::JobRow;
use super::store::submit::NewJob;
use super::store::{Dialect, Schema, Store, StoreError, new_job_id};
use crate::error::{ApiError, ErrorKind};
use crate::generation::Kind;
use crate::generation::stored::StoredPlan;
use crate::providers::UpstreamRun;

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
    /// Finished jobs older than this are purged, with their events and idempotency keys
    /// (`MVGEN_JOB_RETENTION`); their outputs stay in the store.
    pub retention: Duration,
    /// Queued jobs past which a submission is refused with 503 `QueueFull` (`MVGEN_MAX_QUEUED_JOBS`).
    pub max_queued: u64,
    /// The same, per API key (`MVGEN_MAX_QUEUED_PER_KEY`).
    pub max_queued_per_key: u64,
    /// Whether opening applies missing migrations or refuses a schema older than this build
    /// needs (`MVGEN_MIGRATE_ON_START`).
    pub schema: Schema,
    /// How PostgreSQL's `pg_stat_activity` names this process's connections (`mvgen serve@host:port`).
    pub application_name: Option<String>,
    /// What a submission's `webhook` may be (`crate::webhooks`); off by default.
    pub webhooks: WebhookPolicy,
    /// A project as its webhook deliveries' bodies show it (`crate::projects::hooks`, above the
    /// engine); `None`: projects' webhooks are not told.
    pub render_project: Option<crate::jobs::store::project_deliveries::RenderProject>,
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
            retention: Duration::from_secs(7 * 24 * 3600),
            max_queued: 10_000,
            max_queued_per_key: 1_000,
            schema: Schema::Migrate,
            application_name: None,
            webhooks: WebhookPolicy::default(),
            render_project: None,
        }
    }
}

/// A job the API accepted: new, or the one an `Idempotency-Key` already made.
pub enum Submitted {
    /// Stored now: the row as stored.
    New(Box<JobRow>),
    /// The job the `Idempotency-Key` made before, and the answer it was first given.
    Replayed(Replay),
}

/// An `Idempotency-Key` on a submission: the key, the request's fingerprint, and how the API
/// renders its answer (status, body) from the stored job, kept with the key for replays.
pub struct SubmitKey<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub answer: &'a (dyn Fn(&JobRow) -> (u16, String) + Sync),
}

/// The engine one process holds.
pub struct Jobs {
    store: Store,
    pipeline: Arc<dyn JobPipeline>,
    config: EngineConfig,
    wake: broadcast::Sender<String>,
    /// Bumped when a job may have become claimable (one queued here, a retry or a release, or any
    /// news from another replica): what idle workers wait on. Not `wake`, which carries every
    /// job's news: a sync job's end woke every idle worker into a claim that found nothing, a
    /// write transaction each on SQLite's one writer, several per `create_scenes` (BENCHMARKS.md).
    claimable: watch::Sender<()>,
    /// Stops the background tasks (the PostgreSQL listener).
    closed: CancellationToken,
    /// The workers' shutdown token and tracker once started: jobs run at once for a sync request
    /// stop, release and are waited for like any worker's.
    running: std::sync::OnceLock<(CancellationToken, TaskTracker)>,
    /// Ends every event stream (shutdown): clients reconnect with `Last-Event-ID` elsewhere
    /// instead of holding the connection drain open until its deadline.
    draining: CancellationToken,
    /// Fired near the shutdown drain's deadline: sync waiters answer with their job's id now
    /// rather than be cut without an answer (see `sync::finished`).
    answer_now: CancellationToken,
    /// Sync waits in progress (`sync::finished`), by job id: how to wake the waiter when its
    /// job's slot is freed, and the job's final row once the run in this process stored it (the
    /// waiter answers from it without reading the database). An entry lives as long as its wait,
    /// so a row is never kept for a caller who left.
    sync_waits: std::sync::Mutex<std::collections::HashMap<String, sync::Waiting>>,
    /// Sync jobs whose generation slot this process still holds: their waiter answers only once
    /// the slot is free, so the caller's next request is not refused by its own finished one.
    holding: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The jobs this process runs, by id: how to wake the one job's watch (`worker::watch`, which
    /// heartbeats to learn of a cancel) when its news comes, without waking every running job's.
    /// A watch that listened on `wake` was woken by every job's news: with N jobs running, each
    /// job's end was N wake-ups and N copies of its id, N-1 of them for nothing.
    /// Shared with the PostgreSQL listener, so another replica's news (a cancel asked there)
    /// wakes the watch here too.
    watches: Watches,
    /// The queued counts the submit path last read, per API key scope (see `quota`).
    queue_counts: quota::QueueCounts,
}

impl Jobs {
    /// Opens the database at `url` (migrating it) and starts listening for other replicas.
    pub async fn open(url: &str, pipeline: Arc<dyn JobPipeline>, config: EngineConfig) -> Result<Arc<Jobs>, String> {
        let name = config.application_name.clone();
        let store = Store::open(url, config.schema, name.as_deref(), super::view::webhook_body)
            .await?
            .rendering_projects(config.render_project);
        let (wake, _) = broadcast::channel(1024);
        let jobs = Arc::new(Jobs {
            store,
            pipeline,
            config,
            wake,
            claimable: watch::Sender::new(()),
            closed: CancellationToken::new(),
            running: std::sync::OnceLock::new(),
            draining: CancellationToken::new(),
            answer_now: CancellationToken::new(),
            sync_waits: Default::default(),
            holding: Default::default(),
            watches: Default::default(),
            queue_counts: Default::default(),
        });
        if jobs.store.dialect() == Dialect::Postgres {
            let named = name.map_or_else(|| url.to_owned(), |name| super::store::with_application_name(url, &name));
            let listener = sqlx::postgres::PgListener::connect(&named)
                .await
                .map_err(|e| format!("jobs database {}: cannot listen: {e}", super::store::redact(url)))?;
            let relay = Relay { wake: jobs.wake.clone(), watches: Arc::clone(&jobs.watches) };
            crate::background::spawn_task(listen(listener, relay, jobs.claimable.clone(), jobs.closed.clone()));
        }
        Ok(jobs)
    }

    /// The jobs database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How this engine runs jobs.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Wake-ups: the id of a job that has something new.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.wake.subscribe()
    }

    /// Drops the wake-ups `news` holds now: a task that reads the database after a wake-up has
    /// seen what they announce, and a burst of them is one read, not one each.
    pub fn skip_queued(news: &mut broadcast::Receiver<String>) {
        while !matches!(
            news.try_recv(),
            Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
        ) {}
    }

    /// Tells this process's workers, streams and webhook sender (other processes learn it from
    /// the database).
    pub fn woke(&self, job_id: &str) {
        tell(&self.wake, &self.watches, job_id);
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<tokio::sync::Notify>>> {
        lock_watches(&self.watches)
    }

    /// Tells idle workers here to claim: a job may be claimable now.
    pub(super) fn may_claim(&self) {
        self.claimable.send_replace(());
    }

    /// Plans `input` and stores the job. `key`: an `Idempotency-Key` (IETF draft): the same key
    /// and body replay the first answer until the key expires. `scope`: the caller's API key scope
    /// (`api_keys::KeyScope`) when keys are configured: idempotency keys and the per-key queue
    /// limit are per scope, so two API keys sending the same `Idempotency-Key` make two jobs.
    pub async fn submit(
        &self,
        kind: Kind,
        input: Value,
        key: Option<SubmitKey<'_>>,
        scope: Option<&str>,
    ) -> Result<Submitted, ApiError> {
        self.submit_with(kind, input, key, scope, None).await
    }

    /// [`Jobs::submit`], with a webhook told of the job (already checked by the caller:
    /// `crate::webhooks::target`). Its deliveries are written with the job's states they tell of.
    pub async fn submit_with(
        &self,
        kind: Kind,
        input: Value,
        key: Option<SubmitKey<'_>>,
        scope: Option<&str>,
        webhook: Option<&WebhookTarget>,
    ) -> Result<Submitted, ApiError> {
        let owner = uuid::Uuid::new_v4().to_string();
        // The key as stored: prefixed by the scope and a unit separator (0x1f), which no
        // Idempotency-Key holds (it is visible ASCII), so no caller's key can name another's.
        let scoped = scope.zip(key.as_ref()).map(|(scope, key)| format!("{scope}\u{1f}{}", key.key));
        let key = key.map(|k| SubmitKey { key: scoped.as_deref().unwrap_or(k.key), ..k });
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
        let result = self.plan_and_store(kind, input, binding.as_ref(), scope, webhook).await;
        if let (Err(_), Some(key)) = (&result, &key)
            && let Err(e) = self.store.release_key(key.key, &owner).await
        {
            tracing::warn!(error = %e, "could not release an idempotency key after a refused submission");
        }
        result.map(Submitted::New)
    }

    /// Stores a job its caller already planned (a project's, with its pinned flavor), queued for
    /// any worker, under an id the caller chose and recorded first (a project links
    /// its job before storing it, so a crash between the two is repaired by submitting again
    /// under the same id). `false` when a job with that id is already stored.
    pub async fn submit_planned_as(
        &self,
        id: &str,
        kind: Kind,
        planned: &StoredPlan,
        scope: Option<&str>,
    ) -> Result<bool, ApiError> {
        if self.store.get(id).await.map_err(unavailable)?.is_some() {
            return Ok(false);
        }
        match self.store_planned_as(id, kind, planned, None, scope, None, None).await {
            Ok(_) => Ok(true),
            // Stored by another process between the check and the insert (the id is unique).
            Err(e) if self.store.get(id).await.ok().flatten().is_some() => {
                tracing::debug!(job = id, error = %e.message, "job already stored under this id");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn plan_and_store(
        &self,
        kind: Kind,
        input: Value,
        key: Option<&KeyBinding<'_>>,
        scope: Option<&str>,
        webhook: Option<&WebhookTarget>,
    ) -> Result<Box<JobRow>, ApiError> {
        let planned = self.pipeline.plan(kind, input).await?;
        self.store_planned(kind, &planned, key, scope, None, webhook).await
    }

    /// Claims whose heartbeat is older than this (Unix ms) belong to a dead worker.
    fn stale_before(&self) -> i64 {
        super::store::now_ms() - self.config.stale_after.as_millis() as i64
    }

    /// How often a claim is kept alive: three beats per stale limit, so one late beat is no takeover.
    fn heartbeat_every(&self) -> Duration {
        (self.config.stale_after / 3).max(Duration::from_millis(50))
    }

    /// Stores a planned job: queued, or with `claim` stored claimed by this process to run at
    /// once for a sync request, with one attempt (an upstream failure answers its caller as it
    /// did before jobs).
    async fn store_planned(
        &self,
        kind: Kind,
        planned: &StoredPlan,
        key: Option<&KeyBinding<'_>>,
        scope: Option<&str>,
        claim: Option<&str>,
        webhook: Option<&WebhookTarget>,
    ) -> Result<Box<JobRow>, ApiError> {
        let id = new_job_id();
        self.store_planned_as(&id, kind, planned, key, scope, claim, webhook).await
    }

    /// [`Jobs::store_planned`] under the id `id`.
    #[allow(clippy::too_many_arguments)]
    async fn store_planned_as(
        &self,
        id: &str,
        kind: Kind,
        planned: &StoredPlan,
        key: Option<&KeyBinding<'_>>,
        scope: Option<&str>,
        claim: Option<&str>,
        webhook: Option<&WebhookTarget>,
    ) -> Result<Box<JobRow>, ApiError> {
        // The submit's span (a child of the request's); its context is stored with the job, so
        // the job's run continues this trace on whichever replica claims it.
        let span = crate::trace_context::span(|| {
            tracing::info_span!(
                "job.submit",
                job.id = id,
                job.kind = kind.as_str(),
                config_flavor = %planned_flavor(planned),
                config_flavor.hash = %flavor_hash(planned),
            )
        });
        let trace_context = crate::trace_context::of(&span);
        self.store_new(id, kind, planned, key, scope, claim, webhook, trace_context.as_deref()).instrument(span).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_new(
        &self,
        id: &str,
        kind: Kind,
        planned: &StoredPlan,
        key: Option<&KeyBinding<'_>>,
        scope: Option<&str>,
        claim: Option<&str>,
        webhook: Option<&WebhookTarget>,
        trace_context: Option<&str>,
    ) -> Result<Box<JobRow>, ApiError> {
        self.check_queue_room(scope).await?;
        let job = NewJob {
            id,
            kind,
            plan: &planned.plan,
            config_flavor: &planned.config_flavor,
            project_id: planned.project_id.as_deref(),
            sequence: planned.sequence.map(i64::from),
            max_attempts: claim.map(|_| 1),
            api_key_scope: scope,
            claim,
            webhook,
            trace_context,
        };
        // `None`: the key was taken over as abandoned while this submission was planning.
        let row = self.store.insert(&job, key).await.map_err(unavailable)?.ok_or_else(key_in_use)?;
        // A queued job wakes the workers; a claimed one is already being run, by the caller.
        if claim.is_none() {
            self.woke(id);
            self.may_claim();
        }
        tracing::info!(job = %id, kind = kind.as_str(), flavor = %planned_flavor(planned), sync = claim.is_some(), "job submitted");
        Ok(Box::new(row))
    }

    /// The upstream says its run `upstream_id` on `provider` ended (a signed webhook): marks the
    /// saved run and wakes the worker waiting on it, here or (through the database) on any
    /// replica, which then fetches it at once. Returns the jobs that saved the run.
    pub async fn upstream_ended(&self, provider: &str, upstream_id: &str) -> Result<Vec<String>, StoreError> {
        let jobs = self.store.mark_upstream_ended(provider, upstream_id).await?;
        if !jobs.is_empty() {
            self.woke(&format!("{}{upstream_id}", super::store::runs::UPSTREAM_WAKE_PREFIX));
        }
        Ok(jobs)
    }

    /// Cancels a job (see [`Store::cancel`]) and wakes its worker. A job canceled while queued
    /// (released by a shutdown, or waiting for a retry) has no worker whose dropped call would
    /// cancel its saved upstream runs, so they are cancelled here.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
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

    /// Ends every open event stream now and refuses new ones to stay open (see `draining`).
    pub fn end_streams(&self) {
        self.draining.cancel();
    }

    /// Makes every sync request still waiting for its job answer now, with the job's id to follow
    /// (shutdown, just before the drain's deadline would cut them).
    pub fn answer_sync_waiters(&self) {
        self.answer_now.cancel();
    }

    /// Whether sync waits were cut short by [`Jobs::answer_sync_waiters`].
    pub fn sync_waits_cut(&self) -> bool {
        self.answer_now.is_cancelled()
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
    // Not an outage: a row this build cannot read (a newer build's word) stays unreadable however
    // often it is retried, so it is a fault naming the job, not "retry shortly".
    if let StoreError::Unreadable { .. } = e {
        return ApiError::internal(e.to_string());
    }
    tracing::warn!(error = %e, "jobs database unavailable");
    ApiError::new(
        ErrorKind::DatabaseUnavailable,
        "the jobs database is unavailable; nothing was stored, retry shortly",
        json!({ "retry_after_seconds": 5 }),
    )
}

/// The running jobs' watches by id (see `Jobs::watches`).
type Watches = Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>>;

fn lock_watches(
    watches: &Watches,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<tokio::sync::Notify>>> {
    watches.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tells this process that job `job_id` has news: the broadcast (event streams, sync waits,
/// workers) and the job's watch when it runs here (it then heartbeats and so reads a cancel at
/// once). Both this process's own news ([`Jobs::woke`]) and other replicas' ([`listen`]) go here.
fn tell(wake: &broadcast::Sender<String>, watches: &Watches, job_id: &str) {
    let _ = wake.send(job_id.to_owned());
    if let Some(watch) = lock_watches(watches).get(job_id) {
        watch.notify_one();
    }
}

/// Where the listener hands a notification's job id (see [`tell`]).
struct Relay {
    wake: broadcast::Sender<String>,
    watches: Watches,
}

/// Relays PostgreSQL notifications (job ids) to this process's broadcast and running jobs'
/// watches, reconnecting as needed. Any of them may be a job queued by another replica, so each
/// also tells the workers to claim.
async fn listen(
    mut listener: sqlx::postgres::PgListener,
    relay: Relay,
    claimable: watch::Sender<()>,
    closed: CancellationToken,
) {
    let mut listening = false;
    let mut failures = 0;
    while !closed.is_cancelled() {
        if !listening {
            match listener.listen(super::store::events::NOTIFY_CHANNEL).await {
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
                    tell(&relay.wake, &relay.watches, note.payload());
                    claimable.send_replace(());
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

/// The flavor a plan renders with, for log lines.
fn planned_flavor(planned: &StoredPlan) -> String {
    super::store::rows::flavor_used(&planned.config_flavor)
}

/// The content hash of the flavor a planned job renders with (its span's `config_flavor.hash`).
fn flavor_hash(planned: &StoredPlan) -> String {
    super::store::rows::flavor_hash(&planned.config_flavor)
}
