//! Debian's `nginx` in front of test replicas, started from a site file (docs/nginx/mvgen.conf)
//! as a user-writable prefix: everything it writes (pid, logs, temp files) lives in a temp dir and
//! it listens on 127.0.0.1 only. Without nginx a test prints a skip line; under `CI=true` it fails
//! instead (`.ci/run` installs it).
//!
//! The site file is an http-context include, as operators use it (`/etc/nginx/conf.d/`); the
//! main file around it here holds only what a non-root prefix needs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// e.g. `http://127.0.0.1:41234`
    pub base: String,
    /// Reloads done so far: each one logs a `reconfiguring` line.
    reloads: usize,
}

/// A free port on 127.0.0.1 for nginx to listen on (nginx cannot report a port it chose).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

fn installed() -> bool {
    Command::new(NGINX).arg("-v").output().is_ok_and(|o| o.status.success())
}

/// The `*_temp_path` directives this build has: Debian compiles absolute paths under
/// /var/lib/nginx, which a non-root nginx cannot create, so each is moved into the prefix.
fn temp_path_directives(prefix: &Path) -> String {
    let version = Command::new(NGINX).arg("-V").output().expect("nginx -V");
    let built = String::from_utf8_lossy(&version.stderr).into_owned();
    let mut directives = String::new();
    for (flag, directive) in [
        ("client-body", "client_body_temp_path"),
        ("proxy", "proxy_temp_path"),
        ("fastcgi", "fastcgi_temp_path"),
        ("uwsgi", "uwsgi_temp_path"),
        ("scgi", "scgi_temp_path"),
    ] {
        if built.contains(&format!("--http-{flag}-temp-path")) {
            directives.push_str(&format!("    {directive} {};\n", prefix.join("temp").join(flag).display()));
        }
    }
    directives
}

impl Nginx {
    /// Starts nginx serving `site` (an http-context file), or `None` after a skip line.
    pub fn start(test: &str, site: &str, port: u16) -> Option<Nginx> {
        if !installed() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "nginx is required under CI=true (apt-get install nginx-light; .ci/run does)"
            );
            eprintln!("skip {test}: nginx not installed ({NGINX})");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("mvgen-nginx").tempdir().expect("temp dir");
        // As root, nginx's workers run as an unprivileged user: they must reach the temp dirs.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir(dir.path().join("temp")).expect("mkdir temp");
        std::fs::set_permissions(dir.path().join("temp"), std::fs::Permissions::from_mode(0o777)).expect("chmod");
        std::fs::write(dir.path().join("site.conf"), site).expect("site.conf");
        let main = format!(
            "worker_processes 1;\nevents {{ worker_connections 1024; }}\nhttp {{\n    access_log {access};\n{temp}    include {site};\n}}\n",
            access = dir.path().join("access.log").display(),
            temp = temp_path_directives(dir.path()),
            site = dir.path().join("site.conf").display(),
        );
        std::fs::write(dir.path().join("nginx.conf"), main).expect("nginx.conf");
        let globals = format!(
            "daemon off; master_process on; pid {}; error_log {} notice;",
            dir.path().join("nginx.pid").display(),
            dir.path().join("error.log").display()
        );
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", &globals])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log"))
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, dir, base: format!("http://127.0.0.1:{port}"), reloads: 0 };
        nginx.wait_for("nginx to start worker processes", |log| log.contains("start worker process"));
        Some(nginx)
    }

    /// What nginx logged so far (its error log at `notice`, then its stderr).
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("error.log"), read("stderr.log"))
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if done(&log) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Replaces the site file and reloads, as `nginx -s reload` does (SIGHUP to the master), and
    /// returns once the old worker has stopped taking connections: the master starts a worker
    /// on the new file, then tells the old one to finish its open requests and exit.
    pub fn reload(&mut self, site: &str) {
        std::fs::write(self.dir.path().join("site.conf"), site).expect("site.conf");
        let sent = Command::new("kill").args(["-HUP", &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGHUP to nginx");
        self.reloads += 1;
        let reloads = self.reloads;
        self.wait_for("nginx to reload", |log| {
            let count = |needle: &str| log.matches(needle).count();
            count("reconfiguring") >= reloads && count("gracefully shutting down") >= reloads
        });
        assert!(!self.log().contains("[emerg]"), "nginx refused the new site file:\n{}", self.log());
    }

    pub fn prefix(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers, which would outlive it.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
