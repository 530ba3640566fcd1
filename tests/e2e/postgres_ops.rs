//! PostgreSQL as it is run for real (issue 27, point 3), through the real binary against a
//! throwaway cluster: TLS (`sslmode=verify-full` with `sslrootcert=`, `require`, a server that
//! admits TLS connections only), `mvgen migrate` run by the owner role and `serve`/`worker` by a
//! role without DDL rights, the schema check of `MVGEN_MIGRATE_ON_START=false` against the
//! previous schema and a newer one, and `application_name` in `pg_stat_activity`.
//!
//! Certificates are made here with Debian's `openssl` (`tests/support/certs.rs`). Without
//! PostgreSQL each test prints a skip line; under `CI=true` it fails.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::certs::TestCa;
use crate::support::postgres::{Postgres, ServerTls};
use crate::support::server_process::ServerProcess;

/// A hang guard for waits, not a speed target.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `mvgen ARGS` with exactly `envs` (plus an output dir) until it exits: its status (`None`
/// when it still ran after 20 s and was killed: it started when it should have refused), stdout
/// and stderr.
fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> (Option<ExitStatus>, String, String) {
    let out = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mvgen"))
        .args(args)
        .env_clear()
        .env("MV_OUTPUT_DIR", out.path())
        .env("RUST_LOG", "off")
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mvgen");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |pipe: Option<&mut dyn std::io::Read>| {
        let mut text = String::new();
        if let Some(pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    };
    let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn std::io::Read));
    let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn std::io::Read));
    (status, stdout, stderr)
}

/// Asserts `mvgen ARGS` refused to start with exit code 2 and one line; returns it.
fn refused(args: &[&str], envs: &[(&str, &str)]) -> String {
    let (status, _, stderr) = tokio::task::block_in_place(|| run_to_exit(args, envs));
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?} must refuse to start: {stderr}");
    let line = stderr.trim_end();
    assert!(!line.contains('\n'), "one line: {stderr}");
    line.to_owned()
}

/// `mvgen migrate` that must succeed: its stdout.
fn migrate(url: &str) -> String {
    let (status, stdout, stderr) =
        tokio::task::block_in_place(|| run_to_exit(&["migrate"], &[("MVGEN_DATABASE_URL", url)]));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "mvgen migrate: {stdout}{stderr}");
    stdout
}

fn serve(envs: &[(&str, &str)]) -> ServerProcess {
    tokio::task::block_in_place(|| ServerProcess::start(envs)).unwrap_or_else(|e| panic!("mvgen serve: {e}"))
}

/// `mvgen worker` as a child process with outputs in a temp dir of its own, killed when dropped.
struct Worker {
    child: Child,
    /// Kept until the worker is gone: its outputs.
    _outputs: tempfile::TempDir,
}

impl Worker {
    fn start(url: &str) -> Worker {
        let out = tempfile::tempdir().expect("temp dir");
        let child = Command::new(env!("CARGO_BIN_EXE_mvgen"))
            .arg("worker")
            .env_clear()
            .env("MV_OUTPUT_DIR", out.path())
            .env("RUST_LOG", "off")
            .env("MVGEN_DATABASE_URL", url)
            .env("MVGEN_WORKERS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run mvgen worker");
        Worker { child, _outputs: out }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http() -> reqwest::Client {
    crate::support::http_client_builder().timeout(PATIENCE).build().expect("client")
}

async fn ready(base: &str) {
    let response = http().get(format!("{base}/readyz")).send().await.expect("readyz");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A scenes job through `POST /api/mv/jobs`, followed until it succeeds (mock providers).
async fn job_succeeds(base: &str) {
    let input = json!({ "idea": "a lighthouse at dawn", "character_description": "its keeper" });
    let response =
        http().post(format!("{base}/api/mv/jobs")).json(&json!({ "kind": "scenes", "input": input })).send().await;
    let job: Value = response.expect("submit").json().await.expect("job");
    let id = job["id"].as_str().unwrap_or_else(|| panic!("a job: {job}")).to_owned();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let job: Value =
            http().get(format!("{base}/api/mv/jobs/{id}")).send().await.expect("get").json().await.expect("job");
        match job["status"].as_str() {
            Some("succeeded") => return,
            Some("queued" | "processing") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => panic!("job did not succeed: {job}"),
        }
    }
}

/// The `application_name` of every client connection, and whether it uses TLS.
async fn sessions(admin: &mut PgConnection) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT a.application_name, coalesce(s.ssl, false) FROM pg_stat_activity a \
         LEFT JOIN pg_stat_ssl s USING (pid) WHERE a.backend_type = 'client backend'",
    )
    .fetch_all(admin)
    .await
    .expect("pg_stat_activity")
}

/// Waits until a session named `name` shows; returns whether it uses TLS.
async fn session_named(admin: &mut PgConnection, name: &str) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let all = sessions(admin).await;
        if let Some((_, ssl)) = all.iter().find(|(n, _)| n == name) {
            return *ssl;
        }
        assert!(Instant::now() < deadline, "no session named {name:?} in pg_stat_activity: {all:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The host name in the processes' `application_name` (`mvgen serve@<host>:<port>`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name").trim().to_owned()
}

fn port_of(base: &str) -> &str {
    base.rsplit(':').next().expect("a port")
}

/// Managed PostgreSQL requires TLS. The cluster serves a certificate for `localhost` signed by a
/// CA made here, and admits TCP connections over TLS only (`hostssl`): without TLS mvgen is
/// refused (proving the rule bites); `verify-full` with the CA file connects, migrates, serves and
/// runs a job, every connection of the process encrypted; `verify-full` with another CA stops at
/// start in one line; `require` (encrypted, certificate unchecked) works. Before sqlx's TLS
/// feature, every TLS mode was refused at start ("SQLx was built without TLS support").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_full_with_the_ca_connects_and_a_wrong_ca_is_refused_in_one_line() {
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(certs.path(), "mvgen-test-ca");
    let (cert, key) = ca.server("localhost");
    let others = tempfile::tempdir().expect("temp dir");
    let wrong = TestCa::new(others.path(), "another-ca");
    let tls = ServerTls { cert: &cert, key: &key };
    let Some(pg) =
        Postgres::start_tls("tls_verify_full_with_the_ca_connects_and_a_wrong_ca_is_refused_in_one_line", tls)
    else {
        return;
    };
    let url = |params: String| format!("postgres://postgres@localhost:{}/postgres?{params}", pg.port());

    let plain = url("sslmode=disable".to_owned());
    let line = refused(&["migrate"], &[("MVGEN_DATABASE_URL", &plain)]);
    assert!(line.starts_with(&format!("mvgen: cannot open the jobs database {plain}: ")), "{line}");
    assert!(line.contains("no encryption"), "the server refuses a connection without TLS: {line}");

    let verified = url(format!("sslmode=verify-full&sslrootcert={}", ca.cert.display()));
    assert!(migrate(&verified).contains("applied migration"), "a fresh database is migrated over TLS");
    let server = serve(&[("MVGEN_DATABASE_URL", &verified), ("MVGEN_WORKERS", "1")]);
    ready(&server.base).await;
    job_succeeds(&server.base).await;
    let mut admin = PgConnection::connect(&url("sslmode=require".to_owned())).await.expect("admin connection");
    let name = format!("mvgen serve@{}:{}", host_name(), port_of(&server.base));
    assert!(session_named(&mut admin, &name).await, "the server's connections use TLS");
    assert!(
        sessions(&mut admin).await.iter().filter(|(n, _)| *n == name).all(|(_, ssl)| *ssl),
        "every connection of the server, the LISTEN one included, uses TLS"
    );

    let wrong_ca = url(format!("sslmode=verify-full&sslrootcert={}", wrong.cert.display()));
    let line = refused(&["serve", "--addr", "127.0.0.1:0"], &[("MVGEN_DATABASE_URL", &wrong_ca)]);
    assert!(line.starts_with(&format!("mvgen: cannot open the jobs database {wrong_ca}: ")), "{line}");
    assert!(line.contains("certificate"), "says the certificate is not trusted: {line}");

    let required = serve(&[("MVGEN_DATABASE_URL", &url("sslmode=require".to_owned())), ("MVGEN_WORKERS", "0")]);
    ready(&required.base).await;
}

/// The two roles docs/deploy.md describes, set up as written there (by the owner, no superuser:
/// managed PostgreSQL has none): `mvgen migrate` runs as the owner and again changes nothing;
/// the runtime role, which may not create anything, then runs `serve` (with the schema check, and
/// with the default migrate-on-start, which writes nothing to a current schema) and `worker`,
/// and a job runs. Each process is named in `pg_stat_activity` (`mvgen serve@host:port`,
/// `mvgen worker@host`) unless the URL names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_as_a_role_without_ddl_rights_once_migrate_ran_as_the_owner() {
    let Some(pg) = Postgres::start("serve_runs_as_a_role_without_ddl_rights_once_migrate_ran_as_the_owner") else {
        return;
    };
    let mut admin = PgConnection::connect(&pg.url).await.expect("admin connection");
    let url = two_roles(&pg, &mut admin).await;

    let newest = mvgen::jobs::store::embedded_migrations(mvgen::jobs::store::Dialect::Postgres)
        .iter()
        .map(|m| m.version)
        .max()
        .expect("migrations");
    let first = migrate(&url("mvgen_owner"));
    assert!(first.contains(&format!("schema now at migration {newest}")), "{first}");
    let again = migrate(&url("mvgen_owner"));
    assert!(again.contains(&format!("schema already at migration {newest}; nothing to apply")), "{again}");

    let mut app = PgConnection::connect(&url("mvgen_app")).await.expect("app connection");
    let ddl = sqlx::query("CREATE TABLE mvgen_app_table (x int)").execute(&mut app).await;
    let refused = ddl.expect_err("the runtime role may not create tables").to_string();
    assert!(refused.contains("permission denied for schema public"), "{refused}");

    let checked = serve(&[("MVGEN_DATABASE_URL", &url("mvgen_app")), ("MVGEN_MIGRATE_ON_START", "false")]);
    ready(&checked.base).await;
    job_succeeds(&checked.base).await;
    drop(checked);
    // An API-only serve with the default migrate-on-start, and a worker: only the worker can run
    // the job.
    let by_default = serve(&[("MVGEN_DATABASE_URL", &url("mvgen_app")), ("MVGEN_WORKERS", "0")]);
    ready(&by_default.base).await;
    let _worker = Worker::start(&url("mvgen_app"));
    job_succeeds(&by_default.base).await;

    // Each process named in pg_stat_activity, unless its URL names it.
    let _named = Worker::start(&format!("{}?application_name=render-farm", url("mvgen_app")));
    let host = host_name();
    session_named(&mut admin, &format!("mvgen serve@{host}:{}", port_of(&by_default.base))).await;
    session_named(&mut admin, &format!("mvgen worker@{host}")).await;
    session_named(&mut admin, "render-farm").await;
}

/// The owner and runtime roles and their grants as docs/deploy.md sets them up, on a database
/// `mvgen` owned by the owner; returns the URL of a role on it.
async fn two_roles(pg: &Postgres, admin: &mut PgConnection) -> impl Fn(&str) -> String + use<> {
    for statement in
        ["CREATE ROLE mvgen_owner LOGIN", "CREATE ROLE mvgen_app LOGIN", "CREATE DATABASE mvgen OWNER mvgen_owner"]
    {
        sqlx::query(statement).execute(&mut *admin).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let port = pg.port();
    let url = move |role: &str| format!("postgres://{role}@127.0.0.1:{port}/mvgen");
    let mut owner = PgConnection::connect(&url("mvgen_owner")).await.expect("owner connection");
    for statement in [
        "GRANT USAGE ON SCHEMA public TO mvgen_app",
        "ALTER DEFAULT PRIVILEGES FOR ROLE mvgen_owner IN SCHEMA public \
         GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mvgen_app",
        "ALTER DEFAULT PRIVILEGES FOR ROLE mvgen_owner IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO mvgen_app",
    ] {
        sqlx::query(statement).execute(&mut owner).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    url
}

/// The previous schema (every embedded migration but the newest) applied to `url`; returns the
/// newest migration's version, the one left missing.
async fn previous_schema(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("pool");
    let mut migrator = mvgen::jobs::store::embedded_migrations(mvgen::jobs::store::Dialect::Postgres);
    let mut all = migrator.migrations.to_vec();
    let newest = all.pop().expect("migrations").version;
    migrator.migrations = all.into();
    migrator.run(&pool).await.expect("the previous schema");
    pool.close().await;
    newest
}

/// A deploy that skipped `mvgen migrate`: the runtime role, left at the default
/// `MVGEN_MIGRATE_ON_START`, finds the schema one migration behind and may not apply it. `serve`
/// and `worker` stop in one line that says what to do (it said only "permission denied for
/// schema public" before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_ddl_rights_on_an_older_schema_is_told_to_run_migrate() {
    let Some(pg) = Postgres::start("a_role_without_ddl_rights_on_an_older_schema_is_told_to_run_migrate") else {
        return;
    };
    let mut admin = PgConnection::connect(&pg.url).await.expect("admin connection");
    let url = two_roles(&pg, &mut admin).await;
    let newest = previous_schema(&url("mvgen_owner")).await;
    let app_url = url("mvgen_app");
    let app = [("MVGEN_DATABASE_URL", app_url.as_str())];
    for args in [&["serve", "--addr", "127.0.0.1:0"][..], &["worker"]] {
        let line = refused(args, &app);
        assert!(
            line.contains(&format!("the schema lacks migration {newest} this build needs"))
                && line.contains("permission denied")
                && line.ends_with("run `mvgen migrate` as the schema's owner first"),
            "{args:?}: {line}"
        );
    }
    // Once the owner migrated, the same role and settings start.
    migrate(&url("mvgen_owner"));
    let started = serve(&app);
    ready(&started.base).await;
}

/// A rolling deploy's two sides, as far as one build can play them. The previous schema (every
/// migration but the newest): with `MVGEN_MIGRATE_ON_START=false` `serve` and `worker` refuse
/// in one line naming `mvgen migrate`; by default `serve` migrates it. A database a newer build
/// migrated further (an applied migration this build does not know) opens with the check on and
/// `mvgen migrate` has nothing to do. A migration applied from other SQL is refused in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_one_migration_behind_is_refused_or_migrated_and_a_newer_one_opens() {
    let Some(pg) = Postgres::start("a_schema_one_migration_behind_is_refused_or_migrated_and_a_newer_one_opens") else {
        return;
    };
    let url = pg.url.as_str();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("pool");
    let mut migrator = mvgen::jobs::store::embedded_migrations(mvgen::jobs::store::Dialect::Postgres);
    let mut all = migrator.migrations.to_vec();
    let newest = all.pop().expect("migrations").version;
    migrator.migrations = all.into();
    migrator.run(&pool).await.expect("the previous schema");

    let check = [("MVGEN_DATABASE_URL", url), ("MVGEN_MIGRATE_ON_START", "false")];
    let expected = format!(
        "mvgen: jobs database {url}: the schema lacks migration {newest} this build needs: run `mvgen migrate` \
         first (MVGEN_MIGRATE_ON_START=false)"
    );
    assert_eq!(refused(&["serve", "--addr", "127.0.0.1:0"], &check), expected);
    assert_eq!(refused(&["worker"], &check), expected);

    let upgraded = serve(&[("MVGEN_DATABASE_URL", url)]);
    ready(&upgraded.base).await;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&pool)
        .await
        .expect("applied migrations");
    assert_eq!(applied.last(), Some(&newest), "serve migrated the previous schema at start");
    // sqlx's `CREATE TABLE IF NOT EXISTS _sqlx_migrations` draws a PostgreSQL NOTICE on a schema
    // that has the table: not logged (issue 27, point 5).
    let log = upgraded.log();
    assert!(!log.contains("already exists"), "the _sqlx_migrations notice is logged:\n{log}");
    drop(upgraded);

    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer build', TRUE, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .expect("record a newer migration");
    let newer = serve(&check);
    ready(&newer.base).await;
    job_succeeds(&newer.base).await;
    assert!(migrate(url).contains("nothing to apply"));
    drop(newer);

    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 1")
        .execute(&pool)
        .await
        .expect("tamper");
    let line = refused(&["serve", "--addr", "127.0.0.1:0"], &check);
    assert_eq!(
        line,
        format!("mvgen: jobs database {url}: migration 1 (jobs) was applied from other SQL than this build's")
    );
}
