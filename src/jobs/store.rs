//! The jobs database: one set of queries on SQLite (the embedded default) and PostgreSQL (shared
//! by replicas), through sqlx's `Any` driver so both run the same code.
//!
//! Why sqlx directly rather than a queue crate: the job resource must be listed by status, kind and
//! project with cursor pagination, and its saved upstream runs and events are rows a client reads
//! back; a queue crate's opaque job blob would need a second store beside it.
//!
//! Claiming is one `UPDATE … WHERE seq = (SELECT … LIMIT 1) RETURNING`: SQLite runs a statement
//! under its single writer lock, PostgreSQL adds `FOR UPDATE SKIP LOCKED` so replicas never wait
//! on each other. A claim writes a fresh `claim` token; every later write of the worker is guarded
//! by it, so a worker that lost its job to a takeover cannot overwrite the new owner's work.
//! Every event is inserted in a transaction that first updates its job's row: that row lock orders
//! one job's events, so their ids increase in commit order and `id > Last-Event-ID` misses nothing.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::query::Query;
use sqlx::{AnyPool, Connection, Row};

use crate::error::{ApiError, ErrorKind};
use crate::providers::UpstreamRun;

/// The channel `pg_notify` wakes listeners on; the payload is the job id.
pub const NOTIFY_CHANNEL: &str = "mvgen_jobs";

/// A database fault: unreachable, or a query that failed.
#[derive(Debug, thiserror::Error)]
#[error("jobs database: {0}")]
pub struct StoreError(#[from] pub sqlx::Error);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A job's row, as the API and the workers read it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub status: String,
    pub plan: Value,
    pub config_flavor: Value,
    pub project_id: Option<String>,
    pub sequence: Option<i64>,
    pub output: Option<Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The HTTP status and `details` the sync endpoint would have answered the failure with.
    pub error_status: Option<i64>,
    pub error_details: Value,
    pub attempts: i64,
    /// Claims that took the job over from a dead worker (they do not count as attempts).
    pub takeovers: i64,
    pub progress_stage: Option<String>,
    pub progress_upstream_status: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub cancel_requested: bool,
    /// The latest saved upstream run.
    pub upstream: Option<UpstreamRun>,
}

impl JobRow {
    /// The error the sync endpoint answers for this failed job: the kind (and so the status),
    /// message and details the pipeline failed with (so `Retry-After` and the field name survive
    /// the store). A kind this build does not know is answered as an upstream error.
    pub fn api_error(&self) -> Option<ApiError> {
        if self.status != "failed" {
            return None;
        }
        let kind = self.error_code.clone().map(Value::String).and_then(|code| serde_json::from_value(code).ok());
        Some(ApiError::new(
            kind.unwrap_or(ErrorKind::UpstreamError),
            self.error_message.clone().unwrap_or_default(),
            self.error_details.clone(),
        ))
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub job_id: String,
    pub at: i64,
    pub kind: String,
    pub data: Value,
}

/// A job a worker claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub plan: Value,
    pub attempts: i64,
    /// Takeovers so far, this claim included if it is one.
    pub takeovers: i64,
    /// The job's own attempt limit (`None`: the engine's).
    pub max_attempts: Option<i64>,
    pub claim: String,
    pub cancel_requested: bool,
}

/// What a new job is stored with.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub plan: &'a Value,
    pub config_flavor: &'a Value,
    pub project_id: Option<&'a str>,
    pub sequence: Option<i64>,
    /// Claims before a retryable failure is final; `None`: the engine's default.
    pub max_attempts: Option<i64>,
}

/// How a worker ends its claim.
pub enum Outcome<'a> {
    Succeeded(&'a Value),
    Failed {
        code: &'a str,
        message: &'a str,
        status: u16,
        details: &'a Value,
    },
    Canceled,
    /// A retryable failure: queued again after `after`, its saved upstream runs kept, so the next
    /// attempt resumes a run that is still going or already done (a poll or a download failed)
    /// instead of paying for a second one; a run that failed upstream fails that attempt again.
    Retry {
        code: &'a str,
        message: &'a str,
        after: Duration,
    },
    /// Shutdown: back to the queue at once, runs kept, so the next worker resumes them; its next
    /// claim continues this attempt (a restart is not a failure).
    Released,
}

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
    /// Status and body as first sent; `None` for a key stored before answers were kept.
    pub answer: Option<(u16, Value)>,
}

/// An `Idempotency-Key` a submission holds: bound to its job, with the answer to replay, in the
/// job's own transaction.
pub struct KeyBinding<'a> {
    pub key: &'a str,
    /// The token `begin_key` claimed the key with.
    pub owner: &'a str,
    /// The answer the submission sends (status, body), rendered from the stored row.
    pub answer: &'a (dyn Fn(&JobRow) -> (u16, Value) + Sync),
}

/// How long keys live and when a pending one counts as abandoned.
#[derive(Debug, Clone, Copy)]
pub struct KeyTimes {
    /// Keys created before this (Unix ms) are expired: forgotten, and purged.
    pub expired_before: i64,
    /// A pending key (no job yet) created before this was left by a submission that crashed.
    pub abandoned_before: i64,
}

/// Listing filters (already validated by the API).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub project_id: Option<String>,
    /// Only jobs older than this `seq` (the cursor).
    pub before: Option<i64>,
    pub limit: i64,
}

#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite a pool of one connection: the file has one writer at a time, and
    /// writers that collide inside SQLite wait in its busy handler's back-off (sleeps of 1 to
    /// 100 ms), which held submissions to under half of what one queued writer does. Here they
    /// queue in the process instead. On PostgreSQL the same pool as `pool`.
    writer: AnyPool,
    dialect: Dialect,
    /// When this process last purged the expired idempotency keys (Unix ms; see `begin_key`).
    keys_purged_at: Arc<AtomicI64>,
}

/// How often a process purges expired idempotency keys. A key past its TTL is forgotten the moment
/// it is used again whatever this says; the purge only keeps the table from growing.
pub const KEY_PURGE_EVERY: Duration = Duration::from_secs(60);

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

const COLUMNS: &str = "seq, id, kind, status, plan, config_flavor, project_id, sequence, output, error_code, \
     error_message, error_status, error_details, attempts, takeovers, progress_stage, progress_upstream_status, created_at, started_at, completed_at, \
     cancel_requested, (SELECT provider FROM job_runs r WHERE r.job_id = jobs.id ORDER BY at DESC, slot DESC LIMIT 1) \
     AS up_provider, (SELECT upstream_id FROM job_runs r WHERE r.job_id = jobs.id ORDER BY at DESC, slot DESC LIMIT 1) \
     AS up_id";

fn json(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null)
}

fn job_row(row: &AnyRow) -> Result<JobRow, sqlx::Error> {
    let provider: Option<String> = row.try_get("up_provider")?;
    let upstream_id: Option<String> = row.try_get("up_id")?;
    Ok(JobRow {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        status: row.try_get("status")?,
        plan: json(row.try_get("plan")?),
        config_flavor: json(row.try_get("config_flavor")?),
        project_id: row.try_get("project_id")?,
        sequence: row.try_get("sequence")?,
        output: row.try_get::<Option<String>, _>("output")?.map(|t| json(Some(t))),
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        error_status: row.try_get("error_status")?,
        error_details: json(row.try_get("error_details")?),
        attempts: row.try_get("attempts")?,
        takeovers: row.try_get("takeovers")?,
        progress_stage: row.try_get("progress_stage")?,
        progress_upstream_status: row.try_get("progress_upstream_status")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        completed_at: row.try_get("completed_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        upstream: provider.zip(upstream_id).map(|(provider, id)| UpstreamRun { provider, id, slot: 0 }),
    })
}

/// The migrations, embedded in the binary (the `Any` driver runs them). One text for both
/// dialects: only the serial key differs, and SQLite's `AUTOINCREMENT` keeps ids increasing.
fn migrator(dialect: Dialect) -> Migrator {
    const JOBS: &str = include_str!("../../migrations/jobs/0001_jobs.sql");
    const SYNC_JOBS: &str = include_str!("../../migrations/jobs/0002_sync_jobs.sql");
    const TAKEOVERS: &str = include_str!("../../migrations/jobs/0003_job_takeovers.sql");
    const ANSWERS: &str = include_str!("../../migrations/jobs/0004_idempotency_answers.sql");
    const QUEUED_EVENT: &str = include_str!("../../migrations/jobs/0005_sqlite_queued_event.sql");
    let (jobs, queued_event) = match dialect {
        Dialect::Sqlite => {
            (Cow::Owned(JOBS.replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")), QUEUED_EVENT)
        }
        Dialect::Postgres => (Cow::Borrowed(JOBS), "SELECT 1"),
    };
    let migrations = vec![
        Migration::new(1, Cow::Borrowed("jobs"), MigrationType::Simple, jobs, false),
        Migration::new(2, Cow::Borrowed("sync_jobs"), MigrationType::Simple, Cow::Borrowed(SYNC_JOBS), false),
        Migration::new(3, Cow::Borrowed("job_takeovers"), MigrationType::Simple, Cow::Borrowed(TAKEOVERS), false),
        Migration::new(4, Cow::Borrowed("idempotency_answers"), MigrationType::Simple, Cow::Borrowed(ANSWERS), false),
        Migration::new(
            5,
            Cow::Borrowed("sqlite_queued_event"),
            MigrationType::Simple,
            Cow::Borrowed(queued_event),
            false,
        ),
    ];
    Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
}

/// `sql` with a new job's eight values bound as `$1`..`$8`.
fn insert_job<'q>(sql: &'q str, job: &'q NewJob<'_>, now: i64) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(job.id)
        .bind(job.kind)
        .bind(job.plan.to_string())
        .bind(job.config_flavor.to_string())
        .bind(job.project_id)
        .bind(job.sequence)
        .bind(now)
        .bind(job.max_attempts)
}

/// A job's row as [`Store::insert`] just stored it.
fn queued_row(job: &NewJob<'_>, seq: i64, now: i64) -> JobRow {
    JobRow {
        seq,
        id: job.id.to_owned(),
        kind: job.kind.to_owned(),
        status: "queued".into(),
        plan: job.plan.clone(),
        config_flavor: job.config_flavor.clone(),
        project_id: job.project_id.map(str::to_owned),
        sequence: job.sequence,
        output: None,
        error_code: None,
        error_message: None,
        error_status: None,
        error_details: Value::Null,
        attempts: 0,
        takeovers: 0,
        progress_stage: None,
        progress_upstream_status: None,
        created_at: now,
        started_at: None,
        completed_at: None,
        cancel_requested: false,
        upstream: None,
    }
}

/// A pool of `size` connections. sqlx pings a connection on every release (dropping a broken
/// one) and, by default, again on every acquire: a second round trip per query, which on SQLite's
/// one writer is a second hop to its thread for every write. Here only a connection idle for over
/// a second is pinged before use, so one left over from a database restart is still replaced
/// before it can fail a query, while a busy pool pays nothing.
fn pool_options(size: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > Duration::from_secs(1) {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// An SQLite pool of `size` connections. WAL lets readers (listings, event streams) run beside
/// the one writer; the busy timeout makes a second process sharing the file (`mvgen worker`)
/// wait for the lock instead of failing.
fn sqlite_pool(size: u32) -> AnyPoolOptions {
    pool_options(size).after_connect(|conn, _| {
        Box::pin(async move {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
            sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
            Ok(())
        })
    })
}

impl Store {
    /// Connects (creating an SQLite file if missing) and runs the migrations.
    pub async fn open(url: &str) -> Result<Store, String> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(format!("MVGEN_DATABASE_URL: {url:?} is neither sqlite:… nor postgres://…"));
        };
        let shown = redact(url);
        // One plain connection first: the pool would only say it timed out, this says why.
        let probe = sqlx::AnyConnection::connect(url)
            .await
            .map_err(|e| format!("cannot open the jobs database {shown}: {e}"))?;
        let _ = probe.close().await;
        let opened = |e: sqlx::Error| format!("cannot open the jobs database {shown}: {e}");
        let (pool, writer) = match dialect {
            Dialect::Sqlite => {
                let pool = sqlite_pool(8).connect(url).await.map_err(opened)?;
                let writer = sqlite_pool(1).connect(url).await.map_err(opened)?;
                (pool, writer)
            }
            Dialect::Postgres => {
                let pool = pool_options(16).connect(url).await.map_err(opened)?;
                (pool.clone(), pool)
            }
        };
        migrator(dialect).run(&writer).await.map_err(|e| format!("jobs database {shown}: migrations failed: {e}"))?;
        Ok(Store { pool, writer, dialect, keys_purged_at: Arc::new(AtomicI64::new(0)) })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// One round trip to the database, for the readiness probe.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Inserts an event and on PostgreSQL wakes every replica, in `tx`. Every caller has already
    /// written the job's row in `tx`: that row lock orders one job's events (see above).
    async fn event(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        job_id: &str,
        kind: &str,
        data: &Value,
    ) -> Result<(), sqlx::Error> {
        const INSERT: &str = "INSERT INTO job_events (job_id, at, kind, data) VALUES ($1, $2, $3, $4)";
        // On PostgreSQL the wake-up rides in the same statement: one round trip per event, not two.
        const INSERT_AND_NOTIFY: &str = "WITH e AS (INSERT INTO job_events (job_id, at, kind, data) \
             VALUES ($1, $2, $3, $4) RETURNING job_id) SELECT pg_notify($5, job_id) FROM e";
        let sql = if self.dialect == Dialect::Postgres { INSERT_AND_NOTIFY } else { INSERT };
        let mut query = sqlx::query(sql).bind(job_id).bind(now_ms()).bind(kind).bind(data.to_string());
        if self.dialect == Dialect::Postgres {
            query = query.bind(NOTIFY_CHANNEL);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }

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
        let answer = status
            .zip(body)
            .and_then(|(status, body)| Some((u16::try_from(status).ok()?, serde_json::from_str(&body).ok()?)));
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

    /// Stores a queued job and its first event (and binds `key` to it with the answer to replay)
    /// in one transaction. Returns the stored row, so the submit answer needs no second read;
    /// `Ok(None)` (nothing stored) when `key` was taken over by another submission meanwhile.
    pub async fn insert(&self, job: &NewJob<'_>, key: Option<&KeyBinding<'_>>) -> Result<Option<JobRow>, StoreError> {
        const INSERT: &str = "INSERT INTO jobs (id, kind, status, plan, config_flavor, project_id, sequence, attempts, \
             created_at, run_after, cancel_requested, max_attempts) VALUES ($1, $2, 'queued', $3, $4, $5, $6, 0, $7, \
             $7, 0, $8) RETURNING seq";
        // The row and its first event in one statement, so a submission without a key is one round
        // trip: on SQLite the `jobs_queued_event` trigger (migration 5) writes the event; on
        // PostgreSQL the statement does, and wakes the replicas (a data-modifying CTE always runs,
        // and `woken` runs once because a CTE calling a volatile function is never inlined).
        let now = now_ms();
        let insert_and_event;
        let query = match self.dialect {
            Dialect::Sqlite => insert_job(INSERT, job, now),
            Dialect::Postgres => {
                insert_and_event = format!(
                    "WITH j AS ({INSERT}), e AS (INSERT INTO job_events (job_id, at, kind, data) \
                     SELECT $1, $7, 'queued', $9 FROM j), woken AS (SELECT pg_notify($10, $1)) SELECT seq FROM j, woken"
                );
                insert_job(&insert_and_event, job, now)
                    .bind(serde_json::json!({ "status": "queued" }).to_string())
                    .bind(NOTIFY_CHANNEL)
            }
        };
        let Some(key) = key else {
            let inserted = query.fetch_one(&self.writer).await?;
            return Ok(Some(queued_row(job, inserted.try_get("seq")?, now)));
        };
        let mut tx = self.writer.begin().await?;
        let inserted = query.fetch_one(&mut *tx).await?;
        let row = queued_row(job, inserted.try_get("seq")?, now);
        let (status, body) = (key.answer)(&row);
        let bound = sqlx::query(
            "UPDATE idempotency SET job_id = $1, answer_status = $2, answer_body = $3 \
             WHERE key = $4 AND owner = $5 AND job_id IS NULL",
        )
        .bind(job.id)
        .bind(i64::from(status))
        .bind(body.to_string())
        .bind(key.key)
        .bind(key.owner)
        .execute(&mut *tx)
        .await?;
        if bound.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(row))
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(job_row).transpose()?)
    }

    /// Newest first.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<JobRow>, StoreError> {
        let mut clauses = Vec::new();
        let mut texts = Vec::new();
        for (column, value) in [("status", &filter.status), ("kind", &filter.kind), ("project_id", &filter.project_id)]
        {
            if let Some(value) = value {
                texts.push(value.clone());
                clauses.push(format!("{column} = ${}", texts.len()));
            }
        }
        if filter.before.is_some() {
            clauses.push(format!("seq < ${}", texts.len() + 1));
        }
        let clause = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let sql = format!("SELECT {COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT {}", filter.limit);
        let mut query = sqlx::query(&sql);
        for text in texts {
            query = query.bind(text);
        }
        if let Some(before) = filter.before {
            query = query.bind(before);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(job_row).collect::<Result<_, _>>()?)
    }

    /// The job's events after `after`, oldest first.
    pub async fn events_after(&self, job_id: &str, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, job_id, at, kind, data FROM job_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(job_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EventRow {
                    id: row.try_get("id")?,
                    job_id: row.try_get("job_id")?,
                    at: row.try_get("at")?,
                    kind: row.try_get("kind")?,
                    data: json(row.try_get("data")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError)
    }

    /// Takes the oldest runnable job: queued and due, or processing with a heartbeat older than
    /// `stale_before` (its worker died). Only a claim that starts a try counts an attempt: a
    /// takeover counts in `takeovers` and a claim after a release continues the released attempt,
    /// so restarts never use up the retry budget meant for failures.
    pub async fn claim(&self, claim: &str, stale_before: i64) -> Result<Option<Claimed>, StoreError> {
        self.claim_where(claim, stale_before, None).await
    }

    /// Claims the job `id` if it is queued and due, or processing with a heartbeat older than
    /// `stale_before` (a sync request runs its own job at once rather than waiting for a free
    /// worker, and takes it over from a dead one); `None` when a live worker holds it or it ended.
    pub async fn claim_job(&self, claim: &str, id: &str, stale_before: i64) -> Result<Option<Claimed>, StoreError> {
        self.claim_where(claim, stale_before, Some(id)).await
    }

    async fn claim_where(
        &self,
        claim: &str,
        stale_before: i64,
        id: Option<&str>,
    ) -> Result<Option<Claimed>, StoreError> {
        let now = now_ms();
        let lock = if self.dialect == Dialect::Postgres { "FOR UPDATE SKIP LOCKED" } else { "" };
        let only = if id.is_some() { "AND id = $4" } else { "" };
        let mut tx = self.writer.begin().await?;
        let sql = format!(
            "UPDATE jobs SET status = 'processing', claim = $1, heartbeat_at = $2, \
             attempts = attempts + CASE WHEN status = 'queued' AND resume = 0 THEN 1 ELSE 0 END, \
             takeovers = takeovers + CASE WHEN status = 'processing' THEN 1 ELSE 0 END, resume = 0, \
             started_at = COALESCE(started_at, $2) \
             WHERE seq = (SELECT seq FROM jobs WHERE ((status = 'queued' AND run_after <= $2) \
                OR (status = 'processing' AND heartbeat_at < $3)) {only} ORDER BY seq LIMIT 1 {lock}) \
             RETURNING id, kind, plan, attempts, takeovers, cancel_requested, max_attempts"
        );
        let mut query = sqlx::query(&sql).bind(claim).bind(now).bind(stale_before);
        if let Some(id) = id {
            query = query.bind(id);
        }
        let row = query.fetch_optional(&mut *tx).await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let claimed = Claimed {
            id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            plan: json(row.try_get("plan")?),
            attempts: row.try_get("attempts")?,
            takeovers: row.try_get("takeovers")?,
            max_attempts: row.try_get("max_attempts")?,
            claim: claim.to_owned(),
            cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        };
        let data = serde_json::json!({
            "status": "processing", "attempts": claimed.attempts, "takeovers": claimed.takeovers,
        });
        self.event(&mut tx, &claimed.id, "processing", &data).await?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    /// The upstream runs a job saved, for the next attempt to resume.
    pub async fn runs(&self, job_id: &str) -> Result<Vec<UpstreamRun>, StoreError> {
        let rows = sqlx::query("SELECT provider, upstream_id, slot FROM job_runs WHERE job_id = $1 ORDER BY slot")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(UpstreamRun {
                    provider: row.try_get("provider")?,
                    id: row.try_get("upstream_id")?,
                    slot: row.try_get::<i64, _>("slot")? as u32,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError)
    }

    /// Saves an upstream run of a claimed job; `Ok(false)` when the claim was lost.
    pub async fn save_run(&self, job_id: &str, claim: &str, run: &UpstreamRun) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let owned =
            sqlx::query("UPDATE jobs SET heartbeat_at = $1 WHERE id = $2 AND claim = $3 AND status = 'processing'")
                .bind(now_ms())
                .bind(job_id)
                .bind(claim)
                .execute(&mut *tx)
                .await?;
        if owned.rows_affected() == 0 {
            return Ok(false);
        }
        let upsert = "INSERT INTO job_runs (job_id, provider, slot, upstream_id, at) VALUES ($1, $2, $3, $4, $5) \
                      ON CONFLICT (job_id, provider, slot) DO UPDATE SET upstream_id = excluded.upstream_id, at = excluded.at";
        sqlx::query(upsert)
            .bind(job_id)
            .bind(&run.provider)
            .bind(i64::from(run.slot))
            .bind(&run.id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let data = serde_json::json!({ "provider": run.provider, "id": run.id, "slot": run.slot });
        self.event(&mut tx, job_id, "upstream", &data).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records a progress step of a claimed job (row and event).
    pub async fn progress(
        &self,
        job_id: &str,
        claim: &str,
        stage: &str,
        upstream_status: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let owned = sqlx::query(
            "UPDATE jobs SET progress_stage = $1, progress_upstream_status = $2 \
             WHERE id = $3 AND claim = $4 AND status = 'processing'",
        )
        .bind(stage)
        .bind(upstream_status)
        .bind(job_id)
        .bind(claim)
        .execute(&mut *tx)
        .await?;
        if owned.rows_affected() == 1 {
            let data =
                serde_json::json!({ "status": "processing", "stage": stage, "upstream_status": upstream_status });
            self.event(&mut tx, job_id, "progress", &data).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps a claim alive. `Ok(None)`: the claim was lost (taken over or ended elsewhere);
    /// `Ok(Some(cancel_requested))` otherwise.
    pub async fn heartbeat(&self, job_id: &str, claim: &str) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $1 WHERE id = $2 AND claim = $3 AND status = 'processing' \
             RETURNING cancel_requested",
        )
        .bind(now_ms())
        .bind(job_id)
        .bind(claim)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| r.try_get::<i64, _>("cancel_requested")).transpose()?.map(|c| c != 0))
    }

    /// Ends a claim; `Ok(false)` when it was no longer ours.
    pub async fn finish(&self, job_id: &str, claim: &str, outcome: Outcome<'_>) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let guard = "WHERE id = $1 AND claim = $2 AND status = 'processing'";
        let (result, kind, data) = match outcome {
            Outcome::Succeeded(output) => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = 'succeeded', output = $3, completed_at = $4, claim = NULL, \
                     error_code = NULL, error_message = NULL, error_status = NULL, error_details = NULL {guard}"
                ))
                .bind(job_id)
                .bind(claim)
                .bind(output.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?,
                "succeeded",
                serde_json::json!({ "status": "succeeded" }),
            ),
            Outcome::Failed { code, message, status, details } => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = 'failed', error_code = $3, error_message = $4, error_status = $5, \
                     completed_at = $6, claim = NULL, error_details = $7 {guard}"
                ))
                .bind(job_id)
                .bind(claim)
                .bind(code)
                .bind(message)
                .bind(i64::from(status))
                .bind(now)
                .bind(details.to_string())
                .execute(&mut *tx)
                .await?,
                "failed",
                serde_json::json!({ "status": "failed", "error": { "code": code, "message": message } }),
            ),
            Outcome::Canceled => (
                sqlx::query(&format!("UPDATE jobs SET status = 'canceled', completed_at = $3, claim = NULL {guard}"))
                    .bind(job_id)
                    .bind(claim)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?,
                "canceled",
                serde_json::json!({ "status": "canceled" }),
            ),
            Outcome::Retry { code, message, after } => {
                let result = sqlx::query(&format!(
                    "UPDATE jobs SET status = 'queued', claim = NULL, run_after = $3, error_code = $4, \
                     error_message = $5 {guard}"
                ))
                .bind(job_id)
                .bind(claim)
                .bind(now + after.as_millis() as i64)
                .bind(code)
                .bind(message)
                .execute(&mut *tx)
                .await?;
                let data = serde_json::json!({
                    "status": "queued", "retry_in_seconds": after.as_secs_f64(),
                    "error": { "code": code, "message": message },
                });
                (result, "retrying", data)
            }
            Outcome::Released => (
                sqlx::query(&format!(
                    "UPDATE jobs SET status = 'queued', claim = NULL, run_after = $3, resume = 1 {guard}"
                ))
                .bind(job_id)
                .bind(claim)
                .bind(now)
                .execute(&mut *tx)
                .await?,
                "released",
                serde_json::json!({ "status": "queued" }),
            ),
        };
        if result.rows_affected() == 0 {
            return Ok(false);
        }
        self.event(&mut tx, job_id, kind, &data).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Cancels a queued job at once, or asks the worker of a processing one to stop. Returns the
    /// job as it is afterwards (`None` when unknown) and whether this call canceled a queued job:
    /// no worker holds that one, so nobody else will cancel the upstream runs it saved.
    pub async fn cancel(&self, job_id: &str) -> Result<(Option<JobRow>, bool), StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let queued = sqlx::query(
            "UPDATE jobs SET status = 'canceled', completed_at = $1, cancel_requested = 1 \
             WHERE id = $2 AND status = 'queued'",
        )
        .bind(now)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        if queued.rows_affected() == 1 {
            self.event(&mut tx, job_id, "canceled", &serde_json::json!({ "status": "canceled" })).await?;
        } else {
            let running = sqlx::query(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'processing' AND cancel_requested = 0",
            )
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            if running.rows_affected() == 1 {
                let data = serde_json::json!({ "status": "processing", "cancel_requested": true });
                self.event(&mut tx, job_id, "cancel_requested", &data).await?;
            }
        }
        tx.commit().await?;
        Ok((self.get(job_id).await?, queued.rows_affected() == 1))
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme && url[scheme + 3..at].contains(':') => {
            let user = url[scheme + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
