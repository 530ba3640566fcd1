//! A throwaway PostgreSQL cluster on 127.0.0.1 in a temp dir, for the job engine's replica tests.
//!
//! Debian's `postgresql` puts its binaries under `/usr/lib/postgresql/<version>/bin` (`.ci/run`
//! installs it). `initdb` refuses to run as root, so as root the cluster is created and run as the
//! `postgres` user through `runuser`. Without the binaries a test prints a skip line; under
//! `CI=true` it fails instead.

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

impl Postgres {
    /// Creates and starts a cluster, or `None` (after a skip line) when PostgreSQL is missing.
    pub fn start(test: &str) -> Option<Postgres> {
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

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = run(&self.bin, "pg_ctl", &["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"]);
    }
}
