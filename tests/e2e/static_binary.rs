//! The static binary in the layout of the `scratch` image: a root holding only `/mvgen`, the device
//! nodes and `/etc` files a container runtime provides, and the writable output directory, run as
//! UID 65532 (the Dockerfile's USER). From outside, the test gets 200s from the health check, the
//! flavor list and the create page, and sends scenes through the real Gemini client to a fake
//! upstream it reaches by a name from `/etc/hosts`: DNS without NSS modules, and an HTTP client
//! whose TLS roots are compiled in (without them, the client cannot be built in an empty root and
//! the server refuses to start).
//!
//! The binary is `cargo build-static-ci` (`.ci/run` builds it before `cargo test`), or
//! `cargo build-static`, whichever is newer, or `$MVGEN_STATIC_BIN`. Without root, `chroot(8)` or
//! that binary the test prints one `SKIPPED` line and passes, except under `CI=true`, where it fails.

#![cfg(all(target_os = "linux", target_arch = "x86_64"))]

use crate::support;

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::fake_upstream::FakeGemini;

/// The Dockerfile's `USER`.
const UID: u32 = 65532;
/// A name only the root's `/etc/hosts` knows.
const UPSTREAM_HOST: &str = "gemini.upstream.test";

#[tokio::test]
async fn static_binary_serves_from_an_empty_root() {
    let Some((binary, chroot)) = preconditions() else { return };
    assert_static_pie(&binary);

    let gemini = FakeGemini::start().await;
    gemini.set_default_scenes(mvgen::flavor::default().parameters.number_of_scenes.value);
    let gemini_port = gemini.base_url.rsplit(':').next().expect("the fake's base URL has a port");
    let root = Root::create(&binary);
    let port = free_port();
    let mut server = root.serve(
        &chroot,
        port,
        &[
            ("GEMINI_API_KEY", "chroot-test-key"),
            ("GEMINI_BASE_URL", &format!("http://{UPSTREAM_HOST}:{gemini_port}")),
            ("MV_OUTPUT_DIR", "/data"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::support::http_client();
    if !wait_ready(&client, &base, &mut server).await {
        panic!("the static binary never answered /health in the chroot; its log:\n{}", server.log());
    }

    let (status, body) = get(&client, &format!("{base}/health")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&client, &format!("{base}/api/mv/get_config_flavors")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["default"], "default", "{body}");
    let page = client.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status().as_u16(), 200, "the create page is embedded in the binary");
    let html = page.text().await.expect("page body");
    assert!(html.contains("config-flavor"), "the create page: {html:.200}");

    let idea = json!({"idea": "a lighthouse keeper's last night", "character_description": "an old sailor"});
    let (status, body) = post(&client, &format!("{base}/api/mv/create_scenes"), &idea).await;
    assert_eq!(status, 200, "{body}\nserver log:\n{}", server.log());
    assert_eq!(body["metadata"]["backend_used"], "gemini", "{body}");
    assert_eq!(gemini.received().len(), 1, "the fake Gemini got the request through the /etc/hosts name");

    // Images come from the mock (no Replicate token) and are written to the non-root output dir.
    let character = json!({"character_description": "an old sailor", "num_images": 1});
    let (status, body) = post(&client, &format!("{base}/api/mv/generate_character_reference"), &character).await;
    assert_eq!(status, 200, "{body}\nserver log:\n{}", server.log());
    let id = body["images"][0]["id"].as_str().expect("an image id");
    let (status, _) = get(&client, &format!("{base}/api/mv/get_character_reference/{id}")).await;
    assert_eq!(status, 200);
    let stored = root.files_owned_by_uid("data");
    assert!(stored > 0, "no file owned by {UID} under /data");
}

/// The binary to test and `chroot(8)`, or `None` after printing why the test cannot run here.
fn preconditions() -> Option<(PathBuf, PathBuf)> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let chroot = find_in_path("chroot");
    let reason = match (is_root(), chroot, static_binary()) {
        (false, _, _) => "not running as root (chroot and mknod need it)".to_owned(),
        (true, None, _) => "chroot(8) is not in PATH".to_owned(),
        (true, Some(_), Err(e)) => e,
        (true, Some(chroot), Ok(binary)) => return Some((binary, chroot)),
    };
    assert!(!in_ci, "static_binary cannot run under CI=true: {reason}");
    // Straight to stderr: the harness captures `eprintln!` of passing tests, and this must be seen.
    let _ = writeln!(std::io::stderr(), "static_binary: SKIPPED: {reason}");
    None
}

/// An absolute path, because the server starts with an empty environment and so no `PATH`.
fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn is_root() -> bool {
    // `Uid:` lists real, effective, saved and filesystem IDs; the effective one decides.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|ids| ids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `$MVGEN_STATIC_BIN`, else the newer of the `ci-static` and `release` static builds.
fn static_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("MVGEN_STATIC_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("MVGEN_STATIC_BIN={} is not a file", path.display()))
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), PathBuf::from)
        .join("x86_64-unknown-linux-gnu");
    ["ci-static", "release"]
        .iter()
        .map(|profile| target.join(profile).join("mvgen"))
        .filter_map(|path| Some((fs::metadata(&path).ok()?.modified().ok()?, path)))
        .max()
        .map(|(_, path)| path)
        .ok_or_else(|| format!("no static binary under {}: run `cargo build-static-ci` first", target.display()))
}

/// A position-independent executable (`ET_DYN`) with no program interpreter (`PT_INTERP`): the
/// kernel maps it alone, so it needs nothing from the root's filesystem.
fn assert_static_pie(binary: &Path) {
    let elf = fs::read(binary).expect("read the static binary");
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not an ELF file", binary.display());
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().expect("8 bytes"));
    const ET_DYN: u16 = 3;
    const PT_INTERP: u32 = 3;
    assert_eq!(u16_at(0x10), ET_DYN, "{} is not position-independent", binary.display());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    let has_interpreter = (0..phnum).any(|i| u32_at(phoff + i * phentsize) == PT_INTERP);
    assert!(!has_interpreter, "{} is dynamically linked (it has PT_INTERP)", binary.display());
}

/// A throwaway root laid out like the image, removed on drop.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn create(binary: &Path) -> Root {
        let dir = std::env::temp_dir().join(format!("mvgen-chroot-{}", uuid::Uuid::new_v4()));
        let root = Root { dir };
        for sub in ["dev", "etc", "data"] {
            fs::create_dir_all(root.dir.join(sub)).expect("create a directory in the root");
        }
        fs::copy(binary, root.dir.join("mvgen")).expect("copy the binary into the root");
        fs::set_permissions(root.dir.join("mvgen"), fs::Permissions::from_mode(0o755)).expect("chmod the binary");
        // The nodes Docker and Podman create in every container's /dev.
        for (name, minor) in [("null", "3"), ("zero", "5"), ("full", "7"), ("random", "8"), ("urandom", "9")] {
            let node = root.dir.join("dev").join(name);
            let status = Command::new("mknod").args(["-m", "666"]).arg(&node).args(["c", "1", minor]).status();
            assert!(status.is_ok_and(|s| s.success()), "mknod {}", node.display());
        }
        // What a runtime injects: its resolver (here unreachable, as DNS is offline in tests) and
        // a hosts file, where the fake upstream's name lives.
        fs::write(root.dir.join("etc/resolv.conf"), "nameserver 127.0.0.11\noptions ndots:0 timeout:1 attempts:1\n")
            .expect("write resolv.conf");
        let hosts =
            format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\t{UPSTREAM_HOST}\n");
        fs::write(root.dir.join("etc/hosts"), hosts).expect("write hosts");
        // The Dockerfile creates the output directory owned by the runtime user; so does this.
        let status = Command::new("chown").arg(format!("{UID}:{UID}")).arg(root.dir.join("data")).status();
        assert!(status.is_ok_and(|s| s.success()), "chown /data");
        root
    }

    /// Starts `/mvgen serve` in the root as UID 65532 with only `env` in its environment.
    fn serve(&self, chroot: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        let log = self.dir.with_extension("log");
        let log_file = fs::File::create(&log).expect("create the server log");
        let child = Command::new(chroot)
            .arg(format!("--userspec={UID}:{UID}"))
            .arg(&self.dir)
            .args(["/mvgen", "serve", "--addr", &format!("127.0.0.1:{port}")])
            .env_clear()
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start chroot");
        Server { child, log }
    }

    fn files_owned_by_uid(&self, sub: &str) -> usize {
        let mut count = 0;
        let mut pending = vec![self.dir.join(sub)];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).expect("read the output dir").flatten() {
                let meta = entry.metadata().expect("stat an output file");
                if meta.is_dir() {
                    pending.push(entry.path());
                } else if meta.uid() == UID {
                    count += 1;
                }
            }
        }
        count
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // Nothing is mounted in the root, so removing it cannot reach outside it.
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(self.dir.with_extension("log"));
    }
}

/// The chrooted server; killed and reaped on drop, so a failed assertion leaks no process.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// False when the server exits or stays silent; the bound is for a hung start, since a healthy one
/// answers within milliseconds.
async fn wait_ready(client: &reqwest::Client, base: &str, server: &mut Server) -> bool {
    for _ in 0..300 {
        if client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        if server.child.try_wait().is_ok_and(|exit| exit.is_some()) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = client.get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = client.post(url).json(body).send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
