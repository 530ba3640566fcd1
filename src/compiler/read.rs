//! Reading one configs file, and only what a configs file can be: a regular file (or a link to one,
//! as Kubernetes mounts a ConfigMap) of at most [`MAX_FILE_BYTES`].
//!
//! `serve --configs DIR` recompiles whatever lands in the directory, so a FIFO, a device or a huge
//! file there must be a diagnostic, not a reload thread blocked forever on a FIFO's open or memory
//! filling from `/dev/zero`. The file is opened first and its type checked on the opened descriptor
//! (a stat of the path before opening could be raced by a swap in between).

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use super::diag::Diagnostic;

/// The largest configs file read: 1 MiB, Kubernetes' ConfigMap limit. The shipped files are a few
/// KiB; anything near this is a mistake, and reading stops one byte past it.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The bytes of the configs file at `path` (`shown` is how diagnostics name it).
pub fn read_config_file(path: &Path, shown: &str) -> Result<Vec<u8>, Diagnostic> {
    // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer, forever. It changes
    // nothing for a regular file. O_NOCTTY: a terminal device named here must not become the
    // process's controlling terminal before it is refused.
    let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path);
    let file = match opened {
        Ok(file) => file,
        // A socket cannot be opened at all (ENXIO); say what it is rather than "no such device".
        Err(e) => {
            return Err(match std::fs::metadata(path) {
                Ok(meta) if !meta.is_file() => not_regular(shown, &meta),
                _ => Diagnostic::whole(shown, format!("cannot read file: {e}")),
            });
        }
    };
    let meta = file.metadata().map_err(|e| Diagnostic::whole(shown, format!("cannot read file: {e}")))?;
    if !meta.is_file() {
        return Err(not_regular(shown, &meta));
    }
    read_at_most(file, shown)
}

/// Reads through `take(cap + 1)`, so a file that grows while it is read (or lies about its size)
/// costs at most the cap plus one byte, and that one byte says it is too big.
fn read_at_most(file: File, shown: &str) -> Result<Vec<u8>, Diagnostic> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Diagnostic::whole(shown, format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::whole(
            shown,
            format!(
                "file is larger than {} MiB ({MAX_FILE_BYTES} bytes), the most a configs file may be; a flavor's settings fit in a few KiB",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    Ok(bytes)
}

fn not_regular(shown: &str, meta: &Metadata) -> Diagnostic {
    let kind = meta.file_type();
    let what = if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "a special file"
    };
    Diagnostic::whole(
        shown,
        format!("not a regular file but {what}: a configs file must be a regular file or a link to one"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_exactly_the_cap_is_read_and_one_byte_more_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("p.yaml");
        let at_cap = vec![b' '; usize::try_from(MAX_FILE_BYTES).expect("fits")];
        std::fs::write(&path, &at_cap).expect("write");
        assert_eq!(read_config_file(&path, "p.yaml").expect("at the cap").len(), at_cap.len());
        std::fs::write(&path, [at_cap.as_slice(), b" "].concat()).expect("write");
        let d = read_config_file(&path, "p.yaml").expect_err("over the cap");
        assert!(d.message.contains("larger than 1 MiB (1048576 bytes)"), "{d}");
    }

    #[test]
    fn a_link_to_a_regular_file_is_read_and_a_link_to_a_device_is_not() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let target = tmp.path().join("real.yaml");
        std::fs::write(&target, "a: 1\n").expect("write");
        let link = tmp.path().join("p.yaml");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert_eq!(read_config_file(&link, "p.yaml").expect("link to a file"), b"a: 1\n");
        let zero = tmp.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        let d = read_config_file(&zero, "zero.yaml").expect_err("device");
        assert_eq!(
            d.to_string(),
            "zero.yaml: not a regular file but a character device: a configs file must be a regular file or a link to one"
        );
    }
}
