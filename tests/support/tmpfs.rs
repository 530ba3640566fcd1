//! A small tmpfs mounted for one test, to fill a disk for real without touching the machine's own
//! filesystems. Mounting needs root (or `sudo` without a password, as `.ci/run` uses for apt):
//! without it the test skips (prints a line), and under `CI=true` it fails instead.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    /// Keeps the mount point's parent alive; dropped after the unmount.
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// A tmpfs of `size` (as `mount -o size=` reads it, e.g. `8m`), or `None` (after a skip line)
    /// where mounting is not allowed.
    pub fn mount(size: &str, test: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tmpfs");
        std::fs::create_dir(&path).expect("mount point");
        // Owned by whoever runs the test, so the server it starts can write there.
        let owner = format!("uid={},gid={}", own_id("-u"), own_id("-g"));
        let mounted = privileged("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755,{owner}"), "tmpfs"])
            .arg(&path)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Tmpfs { _dir: dir, path }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert_ne!(
                    std::env::var("CI").as_deref(),
                    Ok("true"),
                    "{test}: mounting a tmpfs failed under CI=true: {why}"
                );
                eprintln!("skip {test}: cannot mount a tmpfs (needs root): {why}");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file at `path` until the filesystem has no space left; returns its size.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path.join(name)).expect("filler file");
        let chunk = vec![0x5a_u8; 4096];
        let mut written = 0;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let _ = file.flush();
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy, so a process still holding a file there (a server being killed) can't keep it.
        let _ = privileged("umount").arg("-l").arg(&self.path).status();
    }
}

/// `program` as root: directly when the test runs as root, else through `sudo -n` (never asks
/// for a password: without one set up it fails, and the caller skips).
pub fn privileged(program: &str) -> Command {
    if own_id("-u") == "0" {
        Command::new(program)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    }
}

/// `id -u` or `id -g` of this process (the tests have no libc binding of their own).
fn own_id(flag: &str) -> String {
    let out = Command::new("id").arg(flag).output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
