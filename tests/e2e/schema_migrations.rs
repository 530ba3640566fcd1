//! The jobs database's migrations through `mvgen migrate`, on SQLite and on PostgreSQL: every
//! missing migration is applied in one transaction (issue 22: a fresh database paid a commit per
//! migration), so one that fails leaves the schema exactly as it was; and a database created fresh
//! ends identical to one upgraded migration by migration, as earlier builds applied them, in its
//! schema and in the `_sqlx_migrations` rows the start-up schema check reads. A fresh SQLite file
//! is built whole beside its path and linked into place, so one that cannot be built is never
//! left at the path.

use std::process::Command;

use sqlx::{AnyPool, Row};

use crate::support::postgres::Postgres;
use crate::support::tmpfs::Tmpfs;

/// `mvgen migrate` against `url`: its exit code and what it printed.
fn migrate(url: &str) -> (Option<i32>, String) {
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_mvgen"))
        .arg("migrate")
        .env_clear()
        .env("MV_OUTPUT_DIR", out.path())
        .env("RUST_LOG", "off")
        .env("MVGEN_DATABASE_URL", url)
        .output()
        .expect("run mvgen migrate");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}?mode=rwc", dir.path().join(name).display())
}

async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(url).await.expect("connect")
}

/// The first `count` embedded migrations applied by sqlx's own migrator, one transaction each:
/// a database left by an earlier build.
async fn earlier_build(url: &str, dialect: mvgen::jobs::store::Dialect, count: usize) {
    let pool = pool(url).await;
    let mut migrator = mvgen::jobs::store::embedded_migrations(dialect);
    migrator.migrations = migrator.migrations[..count].to_vec().into();
    migrator.run(&pool).await.expect("the earlier schema");
    pool.close().await;
}

/// What `_sqlx_migrations` says was applied (the time it took and when aside).
async fn applied(url: &str) -> Vec<(i64, String, bool, Vec<u8>)> {
    let pool = pool(url).await;
    let sql = "SELECT version, description, CASE WHEN success THEN 1 ELSE 0 END, checksum FROM _sqlx_migrations \
               ORDER BY version";
    let rows = match sqlx::query(sql).fetch_all(&pool).await {
        Ok(rows) => rows,
        // No table yet: nothing applied.
        Err(e) if e.to_string().contains("no such table") || e.to_string().contains("does not exist") => Vec::new(),
        Err(e) => panic!("_sqlx_migrations: {e}"),
    };
    pool.close().await;
    rows.iter().map(|r| (r.get(0), r.get(1), r.get::<i32, _>(2) == 1, r.get(3))).collect()
}

/// The schema as the database describes it: every table, index and trigger with its definition.
async fn schema(url: &str, dialect: mvgen::jobs::store::Dialect) -> Vec<String> {
    let sql = match dialect {
        mvgen::jobs::store::Dialect::Sqlite => {
            "SELECT type || ' ' || name || ': ' || coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
        }
        mvgen::jobs::store::Dialect::Postgres => {
            "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' \
               || coalesce(column_default, '') FROM information_schema.columns WHERE table_schema = 'public' \
             UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
             UNION ALL SELECT 'constraint ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) \
               FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
             UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
        }
    };
    let pool = pool(url).await;
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("schema");
    pool.close().await;
    rows
}

/// Fresh and upgraded from several earlier builds, on `fresh_url` and `upgraded_urls`: the same.
async fn fresh_and_upgraded_end_identical(
    dialect: mvgen::jobs::store::Dialect,
    fresh_url: &str,
    upgraded_urls: &[(usize, String)],
) {
    let (code, text) = migrate(fresh_url);
    assert_eq!(code, Some(0), "{text}");
    let newest = mvgen::jobs::store::embedded_migrations(dialect).migrations.len();
    let every: Vec<String> = (1..=newest).map(|v| v.to_string()).collect();
    assert!(text.contains(&format!("applied migration {};", every.join(", "))), "{text}");
    let fresh = (applied(fresh_url).await, schema(fresh_url, dialect).await);
    assert_eq!(fresh.0.len(), newest, "every migration applied: {:?}", fresh.0);
    if dialect == mvgen::jobs::store::Dialect::Sqlite {
        let pool = pool(fresh_url).await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&pool).await.expect("journal mode");
        assert_eq!(mode, "wal", "a fresh file is made in WAL mode");
        pool.close().await;
    }
    for (count, url) in upgraded_urls {
        earlier_build(url, dialect, *count).await;
        let (code, text) = migrate(url);
        assert_eq!(code, Some(0), "{text}");
        assert_eq!((applied(url).await, schema(url, dialect).await), fresh, "upgraded from {count} migrations");
    }
}

/// A migration that fails (a table it creates is there already) leaves the schema as it was:
/// none of the missing migrations applied, the earlier ones and the table in the way untouched.
async fn a_failed_migration_applies_none(dialect: mvgen::jobs::store::Dialect, url: &str, earlier: usize) {
    if earlier > 0 {
        earlier_build(url, dialect, earlier).await;
    }
    let before = applied(url).await;
    let db = pool(url).await;
    // Migration 9 creates webhook_deliveries.
    sqlx::query("CREATE TABLE webhook_deliveries (note TEXT)").execute(&db).await.expect("the table in the way");
    sqlx::query("INSERT INTO webhook_deliveries (note) VALUES ('keep me')").execute(&db).await.expect("its row");
    db.close().await;
    let (code, text) = migrate(url);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("migrations failed") && text.contains("webhook_deliveries"), "{text}");
    assert_eq!(applied(url).await, before, "no migration of the failed run is recorded");
    let pool = pool(url).await;
    let tables: Vec<String> = match dialect {
        mvgen::jobs::store::Dialect::Sqlite => {
            sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
            )
            .fetch_all(&pool)
            .await
        }
        mvgen::jobs::store::Dialect::Postgres => {
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
                .fetch_all(&pool)
                .await
        }
    }
    .expect("tables");
    let expected: &[&str] = match earlier {
        0 => &["webhook_deliveries"],
        _ => &["_sqlx_migrations", "idempotency", "job_events", "job_runs", "jobs", "project_scenes", "projects"],
    };
    let mut expected: Vec<String> = expected.iter().map(|t| (*t).to_owned()).collect();
    if earlier > 0 {
        expected.push("webhook_deliveries".to_owned());
        expected.sort();
    }
    assert_eq!(tables, expected, "the schema as it was before the failed run");
    let kept: String =
        sqlx::query_scalar("SELECT note FROM webhook_deliveries").fetch_one(&pool).await.expect("the row kept");
    assert_eq!(kept, "keep me");
    pool.close().await;
}

#[tokio::test]
async fn sqlite_a_failed_migration_applies_none_of_the_missing_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = mvgen::jobs::store::Dialect::Sqlite;
    a_failed_migration_applies_none(sqlite, &sqlite_url(&dir, "fresh.db"), 0).await;
    a_failed_migration_applies_none(sqlite, &sqlite_url(&dir, "older.db"), 8).await;
}

#[tokio::test]
async fn sqlite_fresh_and_upgraded_databases_end_identical() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upgraded: Vec<(usize, String)> =
        [1, 7, 11].into_iter().map(|n| (n, sqlite_url(&dir, &format!("from{n}.db")))).collect();
    fresh_and_upgraded_end_identical(mvgen::jobs::store::Dialect::Sqlite, &sqlite_url(&dir, "fresh.db"), &upgraded)
        .await;
}

/// A fresh SQLite file whose schema cannot be built (the disk fills up part of the way) is never
/// left at its path, where the next start would open it as a database: `mvgen migrate` says why,
/// and the directory holds nothing of it.
#[tokio::test]
async fn sqlite_a_fresh_file_that_cannot_be_built_is_not_left_behind() {
    let test = "sqlite_a_fresh_file_that_cannot_be_built_is_not_left_behind";
    let Some(disk) = Tmpfs::mount("1m", test) else {
        return;
    };
    // 64 KiB left: the empty file fits, the whole schema (about 140 KiB) does not.
    let filler = disk.path().join("filler");
    let size = disk.fill("filler");
    std::fs::OpenOptions::new().write(true).open(&filler).and_then(|f| f.set_len(size - 64 * 1024)).expect("room");
    let file = disk.path().join("jobs.db");
    let (code, text) = migrate(&format!("sqlite://{}?mode=rwc", file.display()));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("cannot open the jobs database {}: ", file.display())) && text.contains("full"),
        "{text}"
    );
    let left: Vec<String> = std::fs::read_dir(disk.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name != "filler")
        .collect();
    assert!(left.is_empty(), "nothing of the database is left: {left:?}");
}

/// A database of its own on `pg` for each name.
async fn databases(pg: &Postgres, names: &[&str]) -> Vec<String> {
    let admin = pool(&pg.url).await;
    for name in names {
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create database");
    }
    admin.close().await;
    let base = pg.url.rsplit_once('/').map_or(pg.url.as_str(), |(base, _)| base);
    names.iter().map(|name| format!("{base}/{name}")).collect()
}

#[tokio::test]
async fn postgres_a_failed_migration_applies_none_of_the_missing_ones() {
    let Some(pg) = Postgres::start("postgres_a_failed_migration_applies_none_of_the_missing_ones") else {
        return;
    };
    let urls = databases(&pg, &["fresh", "older"]).await;
    let postgres = mvgen::jobs::store::Dialect::Postgres;
    a_failed_migration_applies_none(postgres, &urls[0], 0).await;
    a_failed_migration_applies_none(postgres, &urls[1], 8).await;
}

#[tokio::test]
async fn postgres_fresh_and_upgraded_databases_end_identical() {
    let Some(pg) = Postgres::start("postgres_fresh_and_upgraded_databases_end_identical") else {
        return;
    };
    let urls = databases(&pg, &["fresh", "from1", "from7", "from11"]).await;
    let upgraded = vec![(1, urls[1].clone()), (7, urls[2].clone()), (11, urls[3].clone())];
    fresh_and_upgraded_end_identical(mvgen::jobs::store::Dialect::Postgres, &urls[0], &upgraded).await;
}

/// The bookkeeping a fresh SQLite file carries, with each value's storage class: a row the next
/// build's migrator reads as its own must hold the same kinds of values as one sqlx wrote.
async fn records_with_types(url: &str) -> Vec<String> {
    let pool = pool(url).await;
    let sql = "SELECT version || ' ' || description || ' ' || success || ' ' || hex(checksum) || ' ' || typeof(version) \
               || typeof(description) || typeof(success) || typeof(checksum) || typeof(execution_time) \
               || typeof(installed_on) FROM _sqlx_migrations ORDER BY version";
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("_sqlx_migrations");
    pool.close().await;
    rows
}

/// A fresh SQLite file is built in one batch of SQL (issue 22: sqlx's migrator sent each
/// statement to SQLite's thread on its own), not by sqlx's migrator; the file must be the one
/// the migrator makes step by step, one transaction per migration, as earlier builds made it: the
/// same schema text in `sqlite_master`, the same `_sqlx_migrations` rows with the same kinds of
/// values, and a next build (one more migration, run by sqlx's migrator with its checksum and
/// dirty checks) migrating both to the same end.
#[tokio::test]
async fn sqlite_a_fresh_file_is_the_one_sqlx_migrator_makes_step_by_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = mvgen::jobs::store::Dialect::Sqlite;
    let (fresh, stepwise) = (sqlite_url(&dir, "fresh.db"), sqlite_url(&dir, "stepwise.db"));
    let (code, text) = migrate(&fresh);
    assert_eq!(code, Some(0), "{text}");
    let newest = mvgen::jobs::store::embedded_migrations(sqlite).migrations.len();
    earlier_build(&stepwise, sqlite, newest).await;
    let both = |url: String| async move { (schema(&url, sqlite).await, records_with_types(&url).await) };
    let made = both(fresh.clone()).await;
    assert_eq!(made.1.len(), newest, "{:#?}", made.1);
    assert_eq!(made, both(stepwise.clone()).await, "the fresh file differs from sqlx's step-by-step one");
    // The next build: every embedded migration and one more.
    let mut next = mvgen::jobs::store::embedded_migrations(sqlite);
    let version = newest as i64 + 1;
    let mut migrations = next.migrations.to_vec();
    migrations.push(sqlx::migrate::Migration::new(
        version,
        "next_build".into(),
        sqlx::migrate::MigrationType::Simple,
        "ALTER TABLE jobs ADD COLUMN next_build TEXT; CREATE INDEX jobs_next_build ON jobs (next_build);".into(),
        false,
    ));
    next.migrations = migrations.into();
    for url in [&fresh, &stepwise] {
        let pool = pool(url).await;
        next.run(&pool).await.unwrap_or_else(|e| panic!("the next build's migrations on {url}: {e}"));
        pool.close().await;
    }
    let after = both(fresh).await;
    assert_eq!(after.1.len(), newest + 1);
    assert_eq!(after, both(stepwise).await, "the next build migrated the two differently");
}

/// What a start on a fresh output dir asks of SQLite before it serves, from the binary's own
/// statement log (`RUST_LOG=sqlx::query=debug`): the schema in one batch and its commit, the
/// writer's settings and write check, and each connection's own opening statement; no statement
/// per migration (before issue 22's change: 16 migrations, each with its bookkeeping row and time,
/// sqlx's checks, a probe connection and the schema read back, 55 statements), and the file it
/// made is current and in WAL mode for the next start, which opens it without migrating.
#[tokio::test]
async fn sqlite_a_fresh_start_builds_its_schema_in_one_batch() {
    use crate::support::server_process::ServerProcess;
    const READY: &str = "jobs database ready";
    let log_statements = |log: &str| -> Vec<String> {
        let until = log.find(READY).expect("the database ready line");
        log[..until]
            .lines()
            .filter_map(|line| line.split_once("db.statement=\"").map(|(_, sql)| sql.replace("\\n", " ")))
            .map(|sql| sql.trim().chars().take(80).collect())
            .collect()
    };
    // The output dir outlives each server (a server's own temp dir goes with it).
    let out = tempfile::tempdir().expect("temp dir");
    let outputs = out.path().join("outputs");
    let env = [
        ("RUST_LOG", "sqlx::query=debug,mvgen=info"),
        ("MV_PROVIDER", "mock"),
        ("MV_OUTPUT_DIR", outputs.to_str().expect("a UTF-8 temp path")),
    ];
    let server = ServerProcess::start(&env).expect("mvgen serve");
    let log = server.log();
    let statements = log_statements(&log);
    let opens = statements.iter().filter(|s| s.starts_with("PRAGMA foreign_keys")).count();
    assert!(opens <= 2, "a connection to build the file and the writer: {statements:#?}");
    assert!(statements.len() - opens <= 4, "the batch, its commit, the writer's settings and check: {statements:#?}");
    // sqlx's migrator writes each migration's row with bound values, the batch with literals.
    assert!(!log.contains("VALUES ( ?1, ?2, TRUE"), "no migration applied on its own: {statements:#?}");
    // Stopped at once (SIGTERM may come before its handler is set up): the file is WAL, whole.
    drop(server);

    let url = format!("sqlite://{}?mode=rwc", outputs.join("jobs.db").display());
    let newest = mvgen::jobs::store::embedded_migrations(mvgen::jobs::store::Dialect::Sqlite).migrations.len();
    assert_eq!(applied(&url).await.len(), newest);
    let db = pool(&url).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&db).await.expect("journal mode");
    assert_eq!(mode, "wal");
    db.close().await;
    let again = ServerProcess::start(&env).expect("mvgen serve again");
    let log = again.log();
    assert!(!log.contains("_sqlx_migrations ("), "the next start migrates nothing: {:#?}", log_statements(&log));
    assert!(log_statements(&log).iter().any(|s| s.contains("FROM _sqlx_migrations")), "it reads what is applied");
}
