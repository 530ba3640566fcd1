//! The jobs database: one set of queries on SQLite (the embedded default) and PostgreSQL (shared
//! by replicas), through sqlx's `Any` driver so both run the same code. This file owns the
//! [`Store`] handle (opening, its pools, the dialect, closing) and [`StoreError`]; each concept's
//! queries live in a file of their own, as further `impl Store` blocks:
//!
//! - `rows`: the rows the API and workers read ([`rows::JobRow`], [`rows::EventRow`],
//!   [`rows::Claimed`]) and decoding a row;
//! - `migrate`: the embedded migrations, which of them a database lacks, and the schema they end
//!   at (`fresh_schema.sql`, generated), which a fresh SQLite file is built from in one batch;
//! - `fresh`: a new SQLite file built whole beside its path and linked into place;
//! - `bind`: owned values bound into statements built elsewhere (project edits, grouped writes);
//! - `group_commit`: on SQLite, concurrent single-statement writes sharing one commit;
//! - `submit`: storing a new job;
//! - `idempotency`: `Idempotency-Key`s (claim, release, purge);
//! - `events`: writing a job's events (and waking replicas) and reading them back;
//! - `claims`: claiming a job for a worker, and its heartbeat;
//! - `runs`: a job's saved upstream runs and its progress;
//! - `finish`: how a claim ends, and cancelling;
//! - `deliveries`: outbound webhook deliveries, written with the state they tell of, and sent;
//! - `queries`: reading one job, and listing them;
//! - `projects`: projects and their scenes (`crate::projects` says what they mean);
//! - `project_deliveries`: what a change to a project tells its webhook, written in its transaction;
//! - `quota`: counting queued jobs against the queue limits;
//! - `retention`: purging finished jobs past their retention.
//!
//! Why sqlx directly rather than a queue crate: the job resource must be listed by status, kind and
//! project with cursor pagination, and its saved upstream runs and events are rows a client reads
//! back; a queue crate's opaque job blob would need a second store beside it.

mod bind;
pub use bind::json_text;
pub mod claims;
pub mod deliveries;
pub mod events;
pub mod finish;
mod fresh;
pub mod group_commit;
pub mod idempotency;
mod migrate;
pub mod project_deliveries;
pub mod projects;
pub mod queries;
#[cfg(test)]
mod query_plans;
pub mod quota;
pub mod retention;
pub mod rows;
pub mod runs;
pub mod submit;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor as _};

use crate::jobs::state::UnknownWord;

/// A database fault: unreachable, a query that failed, or a row this build cannot read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, or a query that failed.
    #[error("jobs database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored word (status, error code, event kind) this build does not know, perhaps written by
    /// a newer one: the row is refused rather than guessed at.
    #[error("jobs database: job {job_id}: {word}")]
    Unreadable {
        /// The job whose row (or event) holds it.
        job_id: String,
        /// The column and the value found.
        word: UnknownWord,
    },
}

/// Which database the store runs on: the few statements that differ (locking, wake-ups, the first
/// event of a new job) choose by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// An SQLite file: one process's embedded default (or a worker sharing the file).
    Sqlite,
    /// PostgreSQL, shared by replicas.
    Postgres,
}

/// The jobs database: cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite a pool of one connection: the file has one writer at a time, and
    /// writers that collide inside SQLite wait in its busy handler's back-off (sleeps of 1 to
    /// 100 ms), which held submissions to under half of what one queued writer does. Here they
    /// queue in the process instead. On PostgreSQL the same pool as `pool`.
    writer: AnyPool,
    /// On SQLite, the writer's statements that may share a commit with other callers' (a job's
    /// INSERT, its one-statement end) go through this (`group_commit`); `None` on PostgreSQL,
    /// whose connections commit in parallel.
    group: Option<group_commit::GroupCommit>,
    dialect: Dialect,
    /// When this process last purged the expired idempotency keys (Unix ms; see `begin_key`).
    keys_purged_at: Arc<AtomicI64>,
    /// A job as a webhook delivery's body shows it (`GET /api/mv/jobs/{id}`): the view lives
    /// above the store (`jobs::view`), which renders nothing itself.
    render: RenderJob,
    /// A project as a webhook delivery's body shows it (`GET /api/mv/projects/{id}`), from
    /// `crate::projects`, above the store; `None` (a store opened without projects, as in some
    /// tests): projects' webhooks are not told.
    render_project: Option<project_deliveries::RenderProject>,
    /// On SQLite, the database file as opened: readiness fails once that path is gone, names
    /// another file, or the file has no link left (deleted or replaced under the process, which
    /// would go on writing into an unlinked inode nobody will ever read).
    file: Option<Arc<DatabaseFile>>,
}

/// Renders a job (read with its plan) as the API shows it, for a webhook delivery's body.
pub type RenderJob = fn(&rows::JobRow) -> String;

/// An SQLite database file's path and identity when it was opened.
struct DatabaseFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl DatabaseFile {
    fn of(path: &Path) -> Result<DatabaseFile, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("jobs database {}: {e}", path.display()))?;
        Ok(DatabaseFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() })
    }

    /// Whether the path still names the file opened, and that file still has a link.
    fn still_there(&self) -> Result<(), String> {
        let shown = self.path.display();
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("jobs database {shown}: the file was deleted under the process"))
            }
            Err(e) => Err(format!("jobs database {shown}: {e}")),
            Ok(meta) if (meta.dev(), meta.ino()) != (self.dev, self.ino) => {
                Err(format!("jobs database {shown}: the file was replaced under the process"))
            }
            Ok(meta) if meta.nlink() == 0 => {
                Err(format!("jobs database {shown}: the file was deleted under the process"))
            }
            Ok(_) => Ok(()),
        }
    }
}

/// Now, in Unix milliseconds: every time the jobs database stores.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A new job's id: a UUID whose first bits are the time (version 7), the rest random.
///
/// Why time first: a job's id is a key in two indexes every job writes (`jobs.id`, and
/// `job_events_job` for each of its events). Random ids put each job's entries on a page of their
/// own anywhere in those indexes; ids that grow with time put concurrent jobs' entries on the same
/// last pages, so jobs sharing a commit (`group_commit`) write those pages once between them
/// (BENCHMARKS.md, issue 22). 74 random bits keep an id unguessable.
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().to_string()
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
///
/// The writer pool's connection must be able to write. SQLite opens a file it cannot open for
/// writing (immutable, or on a read-only mount) read-only without a word, and such a connection
/// stays read-only for its life: a writer made then would refuse every write even after the file
/// is writable again. So the writer's connection starts a write (a table created in a
/// transaction that is rolled back: it needs no table of ours, and `BEGIN IMMEDIATE` alone passes
/// on a read-only file in WAL mode) and is refused when that fails: start-up says why, and a
/// reconnect later tries again.
fn sqlite_pool(size: u32, role: Role) -> AnyPoolOptions {
    pool_options(size).after_connect(move |conn, _| {
        Box::pin(async move {
            // One batch: each statement sent alone is a round trip to the connection's thread.
            conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL").await?;
            if role == Role::Writer {
                check_writable(conn).await?;
            }
            Ok(())
        })
    })
}

/// Fails when the SQLite connection `conn` cannot write (see `sqlite_pool`).
async fn check_writable(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    // One batch, one round trip to the connection's thread. A batch stops at its first error, so
    // a refused CREATE leaves the transaction open: it is rolled back here (a ROLLBACK with none
    // open, after a refused BEGIN, fails harmlessly).
    let checked = conn.execute("BEGIN IMMEDIATE; CREATE TABLE main.mvgen_write_check (x); ROLLBACK").await;
    if checked.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    checked.map(drop)
}

/// What an SQLite pool is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Reader,
    Writer,
}

/// What opening the store does about a schema older than this build needs
/// (`MVGEN_MIGRATE_ON_START`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// Applies the missing migrations (today's one-command start). A current schema is only read,
    /// so this also suits a role without DDL rights once `mvgen migrate` has run.
    Migrate,
    /// Refuses to open it, naming `mvgen migrate`: replicas whose role may not change the schema.
    Require,
}

/// What `mvgen migrate` did.
#[derive(Debug)]
pub struct Migrated {
    /// The migrations applied now, oldest first (empty: the schema was already current).
    pub applied: Vec<i64>,
    /// The schema version this build needs, which the database now has.
    pub version: i64,
}

impl Store {
    /// Connects (creating an SQLite file if missing) and migrates or checks the schema as
    /// `schema` says. `application_name` names the process in PostgreSQL's `pg_stat_activity`
    /// unless the URL names it already (see [`with_application_name`]).
    /// `render` writes a webhook delivery's body.
    pub async fn open(
        url: &str,
        schema: Schema,
        application_name: Option<&str>,
        render: RenderJob,
    ) -> Result<Store, String> {
        let built = schema == Schema::Migrate && fresh::create_if_missing(url).await?;
        let (dialect, pool, writer) = connect(url, application_name, 16, built).await?;
        // A file built just now has every migration this build embeds: nothing to read back.
        if !built {
            prepare_schema(dialect, &writer, schema, url).await?;
        }
        let shown = shown(url);
        // After the migrations, so the file surely exists (`mode=rwc` creates it on first write).
        // An in-memory database has no file to watch.
        let file = match dialect {
            Dialect::Sqlite if !shown.is_empty() && !shown.starts_with(':') && !url.contains("mode=memory") => {
                Some(Arc::new(DatabaseFile::of(Path::new(&shown))?))
            }
            _ => None,
        };
        let group = (dialect == Dialect::Sqlite).then(|| group_commit::GroupCommit::start(writer.clone()));
        Ok(Store {
            pool,
            writer,
            group,
            dialect,
            keys_purged_at: Arc::new(AtomicI64::new(0)),
            render,
            render_project: None,
            file,
        })
    }

    /// This store, writing projects' webhook bodies with `render`.
    pub fn rendering_projects(self, render: Option<project_deliveries::RenderProject>) -> Store {
        Store { render_project: render, ..self }
    }

    /// `mvgen migrate`: applies the migrations the database lacks, and says which.
    pub async fn migrate(url: &str, application_name: Option<&str>) -> Result<Migrated, String> {
        let built = fresh::create_if_missing(url).await?;
        let (dialect, pool, writer) = connect(url, application_name, 1, built).await?;
        let applied = if built {
            Ok(migrate::migrator(dialect).iter().map(|m| m.version).collect())
        } else {
            prepare_schema(dialect, &writer, Schema::Migrate, url).await
        };
        pool.close().await;
        writer.close().await;
        Ok(Migrated { applied: applied?, version: migrate::newest(dialect) })
    }
}

/// The migrations this build embeds, as sqlx runs them. Tests build the previous schema from it
/// (all but the newest) to prove an upgrade and a refusal against a real database.
pub fn embedded_migrations(dialect: Dialect) -> sqlx::migrate::Migrator {
    migrate::migrator(dialect)
}

/// Migrates the schema, or checks it is current (`Schema::Require`); returns the migrations
/// applied. The check comes first either way, so a current schema is never written to: sqlx's
/// migrator would `CREATE TABLE IF NOT EXISTS` its own table, which a role without CREATE on the
/// schema is refused even when the table exists.
async fn prepare_schema(dialect: Dialect, writer: &AnyPool, schema: Schema, url: &str) -> Result<Vec<i64>, String> {
    let shown = shown(url);
    let missing = migrate::missing(dialect, writer).await.map_err(|e| format!("jobs database {shown}: {e}"))?;
    match (missing.as_slice(), schema) {
        ([], _) => Ok(missing),
        (_, Schema::Require) => Err(format!(
            "jobs database {shown}: the schema lacks migration {} this build needs: run `mvgen migrate` first \
             (MVGEN_MIGRATE_ON_START=false)",
            missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        )),
        (_, Schema::Migrate) => {
            migrate::run(dialect, writer).await.map_err(|e| match migrate::denied(&e) {
                // A runtime role without DDL rights (docs/deploy.md, "Two roles") on a schema a
                // deploy has not migrated yet: sqlx says only "permission denied", so say what to do.
                Some(denied) => format!(
                    "jobs database {shown}: the schema lacks migration {} this build needs and this role may not \
                     apply it ({denied}): run `mvgen migrate` as the schema's owner first",
                    missing.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                ),
                None => format!("jobs database {shown}: migrations failed: {e}"),
            })?;
            Ok(missing)
        }
    }
}

/// Opens the store's pools (`size` connections on PostgreSQL, where one pool does everything).
/// `built`: this process has just built the SQLite file (`fresh`), so it is surely a database it
/// can write, and the probe below would only read its whole schema once more (each new SQLite
/// connection parses all of it) for nothing.
async fn connect(
    url: &str,
    application_name: Option<&str>,
    size: u32,
    built: bool,
) -> Result<(Dialect, AnyPool, AnyPool), String> {
    sqlx::any::install_default_drivers();
    let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Dialect::Postgres
    } else if url.starts_with("sqlite:") {
        Dialect::Sqlite
    } else {
        return Err(format!("MVGEN_DATABASE_URL: {url:?} is neither sqlite:… nor postgres://…"));
    };
    let shown = shown(url);
    // One plain connection first: the pool would only say it timed out, this says why. On
    // SQLite connecting does not read the file, so the probe also reads its schema: a file
    // that is not a database (corrupt, or something else entirely) fails here with SQLite's
    // reason, not later inside the pool, whose connect retries it until "pool timed out".
    let opened = |e: sqlx::Error| format!("cannot open the jobs database {shown}: {}", reason(&e));
    let named = match (dialect, application_name) {
        (Dialect::Postgres, Some(name)) => with_application_name(url, name),
        _ => url.to_owned(),
    };
    if !built {
        probe(dialect, &named).await.map_err(opened)?;
    }
    let (pool, writer) = match dialect {
        Dialect::Sqlite => {
            // Connected on first use: the probe above has read the file, and the writer below
            // proves it writable; a reader opened now would only cost every start a connection
            // (and its thread) that a server answering no listing yet does not need.
            let pool = sqlite_pool(8, Role::Reader).connect_lazy(url).map_err(opened)?;
            let writer = sqlite_pool(1, Role::Writer).connect(url).await.map_err(opened)?;
            (pool, writer)
        }
        Dialect::Postgres => {
            let pool = pool_options(size).connect(&named).await.map_err(opened)?;
            (pool.clone(), pool)
        }
    };
    Ok((dialect, pool, writer))
}

/// One plain connection to `url`, closed again; on SQLite it also reads the schema and proves
/// the file writable (see `connect`).
async fn probe(dialect: Dialect, url: &str) -> Result<(), sqlx::Error> {
    let mut probe = sqlx::AnyConnection::connect(url).await?;
    let checked = match dialect {
        // And that it can write: a file SQLite could only open read-only is refused here in
        // one line, not after the writer pool's 3 s of retries (see `sqlite_pool`).
        Dialect::Sqlite => match sqlx::query("SELECT count(*) FROM sqlite_master").execute(&mut probe).await {
            Ok(_) => check_writable(&mut probe).await,
            Err(e) => Err(e),
        },
        Dialect::Postgres => Ok(()),
    };
    let _ = probe.close().await;
    checked
}

impl Store {
    /// Runs one autocommit statement on the writer to completion (so a failed commit is its
    /// error, see `submit::only_row`) and returns its rows: on SQLite through the group commit,
    /// where it may share its transaction with other callers' statements, answered only once
    /// that is committed.
    async fn write_alone(
        &self,
        sql: impl Into<std::borrow::Cow<'static, str>>,
        values: Vec<bind::Bind>,
    ) -> Result<Vec<sqlx::any::AnyRow>, StoreError> {
        match &self.group {
            Some(group) => Ok(group.write(sql, values).await?),
            None => Ok(bind::bind_all(sqlx::query(&sql.into()), &values).fetch_all(&self.writer).await?),
        }
    }

    /// The database this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Closes both pools (shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// The readiness checks that cost no database work, run on every probe: the pools are open
    /// and, on SQLite, the file opened is still the one at its path.
    pub fn check_local(&self) -> Result<(), String> {
        if self.writer.is_closed() || self.pool.is_closed() {
            return Err("jobs database: the connection pool is closed".to_owned());
        }
        self.file.as_ref().map_or(Ok(()), |file| file.still_there())
    }

    /// Whether the writer takes a write: a transaction on the writer pool that starts a write
    /// (an `UPDATE` matching no row still takes SQLite's write lock, and PostgreSQL refuses it on
    /// a read-only server) and is rolled back. The lock is held for one statement, and a dropped
    /// probe (readiness bounds it) has its transaction rolled back by sqlx before the
    /// connection is used again.
    pub async fn check_writer(&self) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE idempotency SET created_at = created_at WHERE 1 = 0").execute(&mut *tx).await?;
        tx.rollback().await?;
        Ok(())
    }
}

/// How messages name the database: an SQLite file by its path (`/data/jobs.db`), any other URL
/// without its password.
fn shown(url: &str) -> String {
    match url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        Some(rest) => rest.split('?').next().unwrap_or(rest).to_owned(),
        None => redact(url),
    }
}

/// What went wrong, in the database's own words when it gave any (`file is not a database`
/// rather than sqlx's `error returned from database: (code: 26) file is not a database`).
fn reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// `url` with `application_name=name` added, unless it names one already (an operator's choice
/// wins). PostgreSQL shows it in `pg_stat_activity` and can log it (`%a`), so a connection is
/// traced to its process: `mvgen serve@host:port`, `mvgen worker@host`.
pub fn with_application_name(url: &str, name: &str) -> String {
    let (base, fragment) = url.split_once('#').map_or((url, None), |(b, f)| (b, Some(f)));
    let query = base.split_once('?').map_or("", |(_, q)| q);
    let named = form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == "application_name");
    if named {
        return url.to_owned();
    }
    let param = form_urlencoded::Serializer::new(String::new()).append_pair("application_name", name).finish();
    let separator = if !base.contains('?') {
        "?"
    } else if base.ends_with('?') || base.ends_with('&') {
        ""
    } else {
        "&"
    };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    format!("{base}{separator}{param}{fragment}")
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
        assert_eq!(shown("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(shown("sqlite:///data/out/jobs.db?mode=rwc"), "/data/out/jobs.db");
        assert_eq!(shown("sqlite:jobs.db"), "jobs.db");
    }

    #[test]
    fn application_name_is_added_unless_the_url_names_one() {
        let name = "mvgen serve@db-1:8000";
        assert_eq!(
            with_application_name("postgres://u@h/db", name),
            "postgres://u@h/db?application_name=mvgen+serve%40db-1%3A8000"
        );
        assert_eq!(
            with_application_name("postgres://u@h/db?sslmode=require", name),
            "postgres://u@h/db?sslmode=require&application_name=mvgen+serve%40db-1%3A8000"
        );
        let own = "postgres://u@h/db?sslmode=require&application_name=billing";
        assert_eq!(with_application_name(own, name), own);
    }
}
