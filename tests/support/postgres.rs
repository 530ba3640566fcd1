//! A throwaway PostgreSQL cluster on 127.0.0.1 in a temp dir, for the job engine's replica tests.
//!
//! Debian's `postgresql` puts its binaries under `/usr/lib/postgresql/<version>/bin` (`.ci/run`
//! installs it). `initdb` refuses to run as root, so as root the cluster is created and run as the
//! `postgres` user through `runuser`. Without the binaries a test prints a skip line; under
//! `CI=true` it fails instead.
//!
//! [`Postgres::start_tls`] starts one as managed PostgreSQL runs: `ssl = on` with a server
//! certificate the test made, and `pg_hba.conf` admitting TCP connections over TLS only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// e.g. `postgres://postgres@127.0.0.1:41234/postgres`
    pub url: String,
}

fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| Some(entry.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL tool, as `postgres` when we are root.
fn run(bin: &Path, tool: &str, args: &[&str]) -> Output {
    let program = bin.join(tool);
    let output = if is_root() {
        Command::new("runuser").args(["-u", "postgres", "--"]).arg(&program).args(args).output()
    } else {
        Command::new(&program).args(args).output()
    };
    output.unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn check(output: Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A server certificate and its key (PEM files), for [`Postgres::start_tls`].
pub struct ServerTls<'a> {
    pub cert: &'a Path,
    pub key: &'a Path,
}

impl Postgres {
    /// Creates and starts a cluster, or `None` (after a skip line) when PostgreSQL is missing.
    pub fn start(test: &str) -> Option<Postgres> {
        Postgres::start_with(test, None)
    }

    /// A cluster serving TLS with `tls`, whose `pg_hba.conf` refuses TCP connections without it
    /// (`hostssl` lines only; the Unix socket stays open to the test's tools).
    pub fn start_tls(test: &str, tls: ServerTls<'_>) -> Option<Postgres> {
        Postgres::start_with(test, Some(tls))
    }

    fn start_with(test: &str, tls: Option<ServerTls<'_>>) -> Option<Postgres> {
        let Some(bin) = find_bin() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "PostgreSQL is required under CI=true (apt-get install postgresql; .ci/run does)"
            );
            eprintln!("skip {test}: PostgreSQL not installed (/usr/lib/postgresql/*/bin)");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("mvgen-pg").tempdir().expect("temp dir");
        if is_root() {
            let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).output();
            check(chown.expect("chown"), "chown");
        }
        let data = dir.path().join("data");
        let data_arg = data.to_str().expect("utf-8 temp path");
        check(run(&bin, "initdb", &["-D", data_arg, "-A", "trust", "-U", "postgres", "--no-sync"]), "initdb");
        if let Some(tls) = tls {
            // PostgreSQL reads the key only when its owner (the server's user) alone may read it.
            install(tls.cert, &data.join("server.crt"), 0o644);
            install(tls.key, &data.join("server.key"), 0o600);
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
            text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            std::fs::write(&conf, text).expect("postgresql.conf");
            let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n";
            std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let pg = Postgres { bin, port, url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir };
        pg.start_again();
        Some(pg)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the (stopped) cluster again on the same port.
    pub fn start_again(&self) {
        let data = self.dir.path().join("data");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c fsync=off -c unix_socket_directories={} -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let args = ["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "start"];
        check(run(&self.bin, "pg_ctl", &args), "pg_ctl start");
    }

    /// Stops the cluster (the database is "lost" until `start_again`).
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        check(
            run(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]),
            "pg_ctl stop",
        );
    }
}

/// Copies `from` to `to` with `mode`, owned by `postgres` when we are root (the server runs as it).
fn install(from: &Path, to: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).expect("chmod");
    if is_root() {
        check(Command::new("chown").args(["postgres:postgres"]).arg(to).output().expect("chown"), "chown");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = run(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"]);
    }
}
