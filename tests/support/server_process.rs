//! The real `mvgen serve` binary as a child process, for tests that need the whole program.
//!
//! It binds `127.0.0.1:0` and the test reads the chosen address back from the startup log line,
//! so no other process can take the port between choosing and binding it. The environment is
//! cleared (no keys leak in from a developer's shell), outputs and logs live in a temp dir, and the
//! child is killed when the value is dropped, even when an assertion fails first.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to print its address; generous for a loaded CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const LISTENING: &str = "mvgen listening on http://";

pub struct ServerProcess {
    child: Child,
    /// e.g. `http://127.0.0.1:41234`
    pub base: String,
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `mvgen serve` with exactly `envs` (plus `MV_OUTPUT_DIR` in a temp dir unless given).
    /// `RUST_LOG` defaults to `info`; the startup line is always logged whatever it says.
    pub fn start(envs: &[(&str, &str)]) -> Result<ServerProcess, String> {
        ServerProcess::start_with(&[], envs)
    }

    /// `start` with more `serve` arguments, e.g. `--configs DIR`.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> Result<ServerProcess, String> {
        ServerProcess::start_on("127.0.0.1:0", args, envs)
    }

    /// `start_with` on a given address: a replica restarted where a load balancer expects it.
    pub fn start_on(addr: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<ServerProcess, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let log = std::fs::File::create(dir.path().join("server.log")).map_err(|e| format!("log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
        let rust_log = envs.iter().find(|(k, _)| *k == "RUST_LOG").map_or("info", |(_, v)| *v);
        let mut command = Command::new(env!("CARGO_BIN_EXE_mvgen"));
        command
            .args(["serve", "--addr", addr])
            .args(args)
            .env_clear()
            .env("MV_OUTPUT_DIR", dir.path().join("outputs"))
            .envs(envs.iter().copied().filter(|(k, _)| *k != "RUST_LOG"))
            .env("RUST_LOG", format!("{rust_log},mvgen::cli::serve=info"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = command.spawn().map_err(|e| format!("starting mvgen: {e}"))?;
        let mut server = ServerProcess { child, base: String::new(), dir };
        server.base = server.wait_for_address()?;
        Ok(server)
    }

    fn wait_for_address(&mut self) -> Result<String, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let log = self.log();
            if let Some(rest) = log.split(LISTENING).nth(1) {
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                return Ok(format!("http://{addr}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("mvgen exited with {status} before listening:\n{log}"));
            }
            if Instant::now() > deadline {
                return Err(format!("mvgen printed no address within {START_TIMEOUT:?}:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Where the server stores generated files (unless the test set `MV_OUTPUT_DIR` itself).
    pub fn output_dir(&self) -> PathBuf {
        self.dir.path().join("outputs")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM, as a container runtime does, and waits for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM");
        let status = self.child.wait().expect("wait for mvgen");
        (status, self.log())
    }
}

impl ServerProcess {
    /// Sends `signal` (e.g. `TERM`, `INT`) without waiting.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIG{signal}");
    }

    /// Waits up to `limit` for the process to exit; `None` if it is still running then.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
