//! The jobs database's migrations, embedded in the binary. The SQL files themselves are never
//! edited once released (sqlx checks their checksums); a change is a new file.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::Dialect;

/// The migrations, embedded in the binary (the `Any` driver runs them). One text for both
/// dialects: only the serial key differs, and SQLite's `AUTOINCREMENT` keeps ids increasing.
pub(super) fn migrator(dialect: Dialect) -> Migrator {
    const JOBS: &str = include_str!("../../../migrations/jobs/0001_jobs.sql");
    const SYNC_JOBS: &str = include_str!("../../../migrations/jobs/0002_sync_jobs.sql");
    const TAKEOVERS: &str = include_str!("../../../migrations/jobs/0003_job_takeovers.sql");
    const ANSWERS: &str = include_str!("../../../migrations/jobs/0004_idempotency_answers.sql");
    const QUEUED_EVENT: &str = include_str!("../../../migrations/jobs/0005_sqlite_queued_event.sql");
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
