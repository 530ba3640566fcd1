//! The jobs database's migrations, embedded in the binary. The SQL files themselves are never
//! edited once released (their checksums are checked); a change is a new file, committed with
//! `fresh_schema.sql` written again (below, [`SQLITE_SCHEMA`]).
//!
//! The rule that keeps a rolling deploy and a rollback working (docs/deploy.md, "Schema changes"):
//! a migration only adds (tables, nullable or defaulted columns, indexes) or replaces an index with
//! a narrower one, so the build before it runs on the new schema, and a build opens a database
//! migrated further than it knows.

use std::borrow::Cow;
use std::collections::HashMap;

use std::time::Duration;

use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection};

use super::Dialect;

/// The migrations this build needs that the database has not applied, oldest first (empty: the
/// schema is current). Only reads, so a role without DDL rights can ask. A migration applied
/// that this build does not know (a newer build ran it) is ignored; one this build knows but
/// applied from other SQL is an error, as sqlx's own run would say.
pub(super) async fn missing(dialect: Dialect, pool: &AnyPool) -> Result<Vec<i64>, String> {
    let exists = match dialect {
        Dialect::Postgres => "SELECT count(to_regclass('_sqlx_migrations'))",
        Dialect::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    };
    let read = |e: sqlx::Error| format!("cannot read its migrations: {}", super::reason(&e));
    let tables: i64 = sqlx::query_scalar(exists).fetch_one(pool).await.map_err(read)?;
    let applied: HashMap<i64, Vec<u8>> = if tables == 0 {
        HashMap::new()
    } else {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(read)?;
        rows.into_iter().collect()
    };
    let mut missing = Vec::new();
    for migration in migrator(dialect).iter() {
        match applied.get(&migration.version) {
            None => missing.push(migration.version),
            Some(checksum) if checksum[..] != migration.checksum[..] => {
                return Err(format!(
                    "migration {} ({}) was applied from other SQL than this build's",
                    migration.version, migration.description
                ));
            }
            Some(_) => {}
        }
    }
    Ok(missing)
}

/// The newest migration this build embeds: the schema version it needs.
pub(super) fn newest(dialect: Dialect) -> i64 {
    migrator(dialect).iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies the migrations not yet applied, all of them in one transaction.
///
/// One transaction rather than sqlx's one per migration: a fresh database paid a commit (and on
/// SQLite a round of WAL writes and locks) per migration, twice (sqlx's `UPDATE … execution_time`
/// after each is a transaction of its own), which was most of a cold start's database work
/// (BENCHMARKS.md, issue 22). It also makes an upgrade all or nothing: a migration that fails
/// leaves the schema as it was, never half-way between two builds. The rows of
/// `_sqlx_migrations` are written by sqlx's own `Migrate` methods (each migration's transaction
/// becomes a savepoint inside ours), so they are exactly what sqlx's migrator writes and checks.
///
/// On SQLite, two processes opening one fresh file at once (two `mvgen serve` started together)
/// both want to apply the migrations: `BEGIN IMMEDIATE` takes the write lock before reading
/// which are applied, so the second waits (the busy timeout) and then finds them applied. A few
/// short retries remain for a lock that could not be had. On PostgreSQL sqlx's advisory lock is
/// taken around the transaction (not inside it, where its release would come before the commit).
pub(super) async fn run(dialect: Dialect, writer: &AnyPool) -> Result<(), MigrateError> {
    const RETRIES: u32 = 5;
    let mut tries = 0;
    loop {
        let applied = match writer.acquire().await {
            Ok(mut conn) => apply_in_one_transaction(dialect, &mut conn).await,
            Err(e) => Err(e.into()),
        };
        match applied {
            Err(e) if dialect == Dialect::Sqlite && tries < RETRIES => {
                tries += 1;
                tracing::debug!(error = %e, tries, "migrations raced another process; running them again");
                tokio::time::sleep(Duration::from_millis(20 * u64::from(tries))).await;
            }
            done => return done,
        }
    }
}

/// sqlx's migrator run inside one transaction on `conn` (see [`run`]). A fresh SQLite file gets
/// its schema from [`sqlite_schema_batch`] instead.
async fn apply_in_one_transaction(dialect: Dialect, conn: &mut AnyConnection) -> Result<(), MigrateError> {
    // The lock is ours to take around the transaction; the migrator must not take it inside.
    let migrator = Migrator { locking: false, ..migrator(dialect) };
    conn.lock().await?;
    let applied = async {
        let mut tx = match dialect {
            Dialect::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => conn.begin().await?,
        };
        match migrator.run_direct(&mut *tx).await {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => {
                // Rolled back now rather than on drop, so the unlock below runs outside it.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }
    .await;
    let unlocked = conn.unlock().await;
    applied.and(unlocked)
}

/// The schema every embedded migration leaves on SQLite, as SQLite itself records it: each
/// table, index and trigger's `sqlite_master.sql`, in the order they were made (sqlx's own
/// `_sqlx_migrations` first). Generated from the migrations and committed beside this module, as
/// `src/api/openapi.json` is: a test fails when it is not what the migrations make, and
/// `MVGEN_WRITE_SCHEMA=1 cargo test --lib fresh_schema` writes it anew (then commit it).
const SQLITE_SCHEMA: &str = include_str!("fresh_schema.sql");

/// The whole schema of a brand-new SQLite file, and the `_sqlx_migrations` row of every embedded
/// migration, as one batch of SQL ending inside an open `BEGIN IMMEDIATE` transaction (the caller
/// records the time taken, then commits: see `fresh::build`).
///
/// Why not sqlx's migrator (BENCHMARKS.md, issue 22): it sends each migration, its savepoint, its
/// bookkeeping row and its `execution_time` update as separate statements, each a hand-off to
/// the connection's worker thread and back; and every `ALTER TABLE` in the migrations makes
/// SQLite parse the whole schema again (36 times for the 16 migrations). The end state instead
/// ([`SQLITE_SCHEMA`]), sent as one string, is parsed once, on that thread. SQLite keeps each
/// CREATE's own text, so the file is the one the migrations make (`e2e schema_migrations`
/// compares the two, and a next build's migration run on both). Only for a file nobody else can
/// see yet (`fresh`): there is nothing applied to check and no lock to take. The rows are those
/// sqlx's `apply` writes (version, description, `TRUE`, the checksum as a blob, `-1` until the
/// time is known), so the next build's migrator reads them as its own.
pub(super) fn sqlite_schema_batch() -> String {
    let mut batch = String::from("PRAGMA synchronous = OFF;\nPRAGMA journal_mode = WAL;\nBEGIN IMMEDIATE;\n");
    batch.push_str(SQLITE_SCHEMA);
    for migration in migrator(Dialect::Sqlite).iter() {
        let description = migration.description.replace('\'', "''");
        let checksum: String = migration.checksum.iter().map(|b| format!("{b:02x}")).collect();
        batch.push_str(&format!(
            "INSERT INTO _sqlx_migrations ( version, description, success, checksum, execution_time ) \
             VALUES ( {}, '{description}', TRUE, X'{checksum}', -1 );\n",
            migration.version
        ));
    }
    batch
}

/// PostgreSQL's message when a migration failed for want of a privilege (SQLSTATE 42501,
/// `insufficient_privilege`: a role without CREATE on the schema or not owning the tables).
pub(super) fn denied(e: &MigrateError) -> Option<String> {
    const INSUFFICIENT_PRIVILEGE: &str = "42501";
    let (MigrateError::Execute(sqlx::Error::Database(db))
    | MigrateError::ExecuteMigration(sqlx::Error::Database(db), _)) = e
    else {
        return None;
    };
    (db.code().as_deref() == Some(INSUFFICIENT_PRIVILEGE)).then(|| db.message().to_owned())
}

/// The migrations, embedded in the binary (the `Any` driver runs them). One text for both
/// dialects: only the serial key differs, and SQLite's `AUTOINCREMENT` keeps ids increasing.
pub(super) fn migrator(dialect: Dialect) -> Migrator {
    const JOBS: &str = include_str!("../../../migrations/jobs/0001_jobs.sql");
    const SYNC_JOBS: &str = include_str!("../../../migrations/jobs/0002_sync_jobs.sql");
    const TAKEOVERS: &str = include_str!("../../../migrations/jobs/0003_job_takeovers.sql");
    const ANSWERS: &str = include_str!("../../../migrations/jobs/0004_idempotency_answers.sql");
    const QUEUED_EVENT: &str = include_str!("../../../migrations/jobs/0005_sqlite_queued_event.sql");
    const RETENTION: &str = include_str!("../../../migrations/jobs/0006_retention_quotas.sql");
    const CLAIMED_EVENT: &str = include_str!("../../../migrations/jobs/0007_sqlite_claimed_event.sql");
    const PROJECTS: &str = include_str!("../../../migrations/jobs/0008_projects.sql");
    const WEBHOOKS: &str = include_str!("../../../migrations/jobs/0009_webhooks.sql");
    const UPSTREAM_ENDED: &str = include_str!("../../../migrations/jobs/0010_upstream_ended.sql");
    const PREVIOUS_OWNER: &str = include_str!("../../../migrations/jobs/0011_takeover_previous_owner.sql");
    const TRACE_CONTEXT: &str = include_str!("../../../migrations/jobs/0012_trace_context.sql");
    const BEAT_PLAN: &str = include_str!("../../../migrations/jobs/0013_beat_plan.sql");
    const PROJECT_WEBHOOKS: &str = include_str!("../../../migrations/jobs/0014_project_webhooks.sql");
    const FINAL_EVENT: &str = include_str!("../../../migrations/jobs/0015_sqlite_final_event.sql");
    const DELIVERIES_PURGE: &str = include_str!("../../../migrations/jobs/0016_project_deliveries_purge.sql");
    const PARTIAL_INDEXES: &str = include_str!("../../../migrations/jobs/0017_partial_job_indexes.sql");
    const PROJECT_FILES: &str = include_str!("../../../migrations/jobs/0018_project_files.sql");
    let serial = |sql: &'static str| match dialect {
        Dialect::Sqlite => Cow::Owned(sql.replace("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT")),
        Dialect::Postgres => Cow::Borrowed(sql),
    };
    let (queued_event, claimed_event, final_event) = match dialect {
        Dialect::Sqlite => (QUEUED_EVENT, CLAIMED_EVENT, FINAL_EVENT),
        Dialect::Postgres => ("SELECT 1", "SELECT 1", "SELECT 1"),
    };
    // Every migration is a plain script, never reversible; only its text varies by dialect.
    let simple = |version, description, sql| {
        Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql, false)
    };
    let migrations = vec![
        simple(1, "jobs", serial(JOBS)),
        simple(2, "sync_jobs", Cow::Borrowed(SYNC_JOBS)),
        simple(3, "job_takeovers", Cow::Borrowed(TAKEOVERS)),
        simple(4, "idempotency_answers", Cow::Borrowed(ANSWERS)),
        simple(5, "sqlite_queued_event", Cow::Borrowed(queued_event)),
        simple(6, "retention_quotas", Cow::Borrowed(RETENTION)),
        simple(7, "sqlite_claimed_event", Cow::Borrowed(claimed_event)),
        simple(8, "projects", serial(PROJECTS)),
        simple(9, "webhooks", serial(WEBHOOKS)),
        simple(10, "upstream_ended", Cow::Borrowed(UPSTREAM_ENDED)),
        simple(11, "takeover_previous_owner", Cow::Borrowed(PREVIOUS_OWNER)),
        simple(12, "trace_context", Cow::Borrowed(TRACE_CONTEXT)),
        simple(13, "beat_plan", Cow::Borrowed(BEAT_PLAN)),
        simple(14, "project_webhooks", Cow::Borrowed(PROJECT_WEBHOOKS)),
        simple(15, "sqlite_final_event", Cow::Borrowed(final_event)),
        simple(16, "project_deliveries_purge", Cow::Borrowed(DELIVERIES_PURGE)),
        simple(17, "partial_job_indexes", Cow::Borrowed(PARTIAL_INDEXES)),
        simple(18, "project_files", Cow::Borrowed(PROJECT_FILES)),
    ];
    // `ignore_missing`: a database a newer build has migrated further still opens here, so a
    // rollback by one version works (migrations only add tables, columns and indexes, which this build
    // never reads). Without it sqlx refuses to start: "migration N was previously applied but is
    // missing in the resolved migrations".
    Migrator { migrations: Cow::Owned(migrations), ignore_missing: true, ..Migrator::DEFAULT }
}

#[cfg(test)]
mod tests {
    use sqlx::{AnyConnection, Connection};

    use super::{Dialect, SQLITE_SCHEMA, migrator};

    /// The file committed beside this module.
    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/jobs/store/fresh_schema.sql");

    /// What the embedded migrations leave in an empty SQLite database, run by sqlx's migrator
    /// one by one as on any existing file: every CREATE text SQLite keeps, in the order made
    /// (SQLite's own `sqlite_sequence` and automatic indexes it makes again by itself).
    async fn schema_the_migrations_make() -> String {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.expect("an in-memory database");
        migrator(Dialect::Sqlite).run_direct(&mut conn).await.expect("the migrations");
        let texts: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name <> 'sqlite_sequence' ORDER BY rowid",
        )
        .fetch_all(&mut conn)
        .await
        .expect("sqlite_master");
        let _ = conn.close().await;
        let header = "-- Generated from migrations/jobs by `MVGEN_WRITE_SCHEMA=1 cargo test --lib fresh_schema`: the\n\
                      -- schema they leave on SQLite, which a fresh file is built from (src/jobs/store/migrate.rs).\n\
                      -- Do not edit; add a migration and write this again.\n\n";
        header.to_owned() + &texts.iter().map(|t| format!("{t};\n\n")).collect::<String>()
    }

    /// A fresh file is built from the committed schema, so it must be what the migrations make
    /// today: a migration added without writing it again fails here.
    #[tokio::test]
    async fn the_committed_fresh_schema_is_the_one_the_migrations_make() {
        let made = schema_the_migrations_make().await;
        if std::env::var_os("MVGEN_WRITE_SCHEMA").is_some() {
            std::fs::write(COMMITTED, &made).expect("write src/jobs/store/fresh_schema.sql");
            return;
        }
        if SQLITE_SCHEMA != made {
            let diff = similar::TextDiff::from_lines(SQLITE_SCHEMA, &made)
                .unified_diff()
                .context_radius(3)
                .header("src/jobs/store/fresh_schema.sql (committed)", "made by the migrations")
                .to_string();
            panic!(
                "src/jobs/store/fresh_schema.sql is not what the migrations make; run `MVGEN_WRITE_SCHEMA=1 cargo \
                 test --lib fresh_schema` and commit it:\n{diff}"
            );
        }
    }
}
