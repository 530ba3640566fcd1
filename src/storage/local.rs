//! Files on the local disk (`file://DIR`, or `MV_OUTPUT_DIR` when no storage URL is set).
//!
//! Writes go to a hidden temporary file in the same directory and are renamed into place, so a
//! crash or a full disk never leaves a half-written file under a final name. Files are found and
//! opened without following a link and only as regular files, so nothing planted under the output
//! directory (a link, a FIFO, a directory) is ever served or waited on. This file must not decide
//! ids, kinds or types: those are the shared rules of [`super`] and [`super::checked`].

use std::path::{Path, PathBuf};

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::checked::{Begun, Checked};
use super::{
    ByteStream, Collection, MAX_RECORD_BYTES, Opened, Put, Reader, Storage, StorageError, Stored, parse_id,
    read_capped, stored_extension,
};
use crate::media::content_type_for;

/// Files on the local disk.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

/// A hidden temp file untouched this long was abandoned (the process writing it was killed): a live
/// write keeps touching its file until the rename, which follows at once.
pub const STALE_PARTIAL_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl LocalStorage {
    /// Files under `root`, which need not exist yet: `check` and the first put create what is missing.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    /// `{root}/records/{kind}`: what is kept about each stored file of a kind.
    fn records_dir(&self, kind: Collection) -> PathBuf {
        self.root.join("records").join(kind.dir_name())
    }

    /// Removes the hidden `.{id}.partial` files a killed process left behind (a crash mid-write
    /// never runs the drop guard), when untouched for [`STALE_PARTIAL_AGE`], and returns how many
    /// went. Meant for startup; a missing directory simply has nothing to clean.
    pub fn remove_stale_partials(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        let kinds = [Collection::CharacterReference, Collection::Video, Collection::Scenes];
        let dirs = kinds.iter().flat_map(|kind| [self.root.join(kind.dir_name()), self.records_dir(*kind)]);
        // The root too: readiness probes (`.mvgen-probe-*.partial`) are written there, and one cut
        // short by a kill would otherwise survive every restart.
        for dir in std::iter::once(self.root.clone()).chain(dirs) {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if !(name.starts_with('.') && name.ends_with(".partial")) {
                    continue;
                }
                // Not following links: only our own regular temp files are ever removed.
                let meta = entry.metadata()?;
                let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
                if meta.is_file() && age >= STALE_PARTIAL_AGE {
                    std::fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Writes `bytes` as file `id` of `kind` (extension `ext`), replacing any file there; with
    /// `durable`, the file is on disk before it is renamed into place.
    async fn write_as(
        &self,
        kind: Collection,
        id: &str,
        ext: &str,
        bytes: &[u8],
        durable: bool,
    ) -> Result<(), StorageError> {
        let dir = self.root.join(kind.dir_name());
        tokio::fs::create_dir_all(&dir).await?;
        let final_path = dir.join(format!("{id}.{ext}"));
        // Hidden temp name in the same directory: rename within one filesystem is atomic. The
        // guard removes it if anything fails, or if the request is dropped mid-write. Its own
        // name per write: two processes on one output dir may write the same id at once (both
        // purging), and the rename that lands last replaces the same bytes.
        let temp = TempFile { path: dir.join(format!(".{id}-{}.partial", Uuid::new_v4())), keep: false };
        write_then_rename(&temp.path, &final_path, bytes, durable).await?;
        temp.disarm();
        Ok(())
    }
}

impl Storage for LocalStorage {
    fn put<'a>(
        &'a self,
        kind: Collection,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            // A file stored under an extension `find` never tries would be unreachable.
            let ext = stored_extension(kind, content_type)?;
            let id = Uuid::new_v4().to_string();
            self.write_as(kind, &id, ext, bytes, kind.durable()).await?;
            Ok(id)
        })
    }

    fn put_as<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let ext = stored_extension(kind, content_type)?;
            self.write_as(kind, &id, ext, bytes, true).await
        })
    }

    fn put_stream<'a>(
        &'a self,
        kind: Collection,
        max_bytes: u64,
        body: ByteStream,
    ) -> BoxFuture<'a, Result<Put, StorageError>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            // The type (so the extension) is known from the first bytes, before any file exists.
            let (mut body, Begun { id, content_type, ext, first }) = Checked::begin(body, kind, max_bytes).await?;
            let dir = self.root.join(kind.dir_name());
            tokio::fs::create_dir_all(&dir).await?;
            let temp = TempFile { path: dir.join(format!(".{id}.partial")), keep: false };
            let mut file = tokio::fs::File::create(&temp.path).await?;
            file.write_all(&first).await?;
            while let Some(chunk) = body.next().await? {
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            if kind.durable() {
                file.sync_all().await?;
            }
            drop(file);
            tokio::fs::rename(&temp.path, dir.join(format!("{id}.{ext}"))).await?;
            temp.disarm();
            Ok(Put { id, content_type, len: body.bytes_read() })
        })
    }

    fn delete<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let dir = self.root.join(kind.dir_name());
            let names = kind.extensions().iter().map(|ext| dir.join(format!("{id}.{ext}")));
            // The record last: while the file may still be there, it stays described.
            for path in names.chain([self.records_dir(kind).join(format!("{id}.json"))]) {
                match tokio::fs::remove_file(&path).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn signed_url<'a>(
        &'a self,
        _kind: Collection,
        _id: &'a str,
        _expires: std::time::Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        Box::pin(async { Ok(None) })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>> {
        Box::pin(async move {
            // The directories a put creates, and a probe written and removed in one of them.
            for kind in Collection::ALL {
                tokio::fs::create_dir_all(self.root.join(kind.dir_name())).await?;
            }
            // In the output directory itself (the operator's, links allowed), never through a kind's
            // directory, which could be a planted link.
            let probe = self.root.join(format!(".mvgen-probe-{}.partial", Uuid::new_v4()));
            write_probe(probe, |path| async move { tokio::fs::write(path, b"probe").await }).await
        })
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn find<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Stored, StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            let dir = self.root.join(kind.dir_name());
            // symlink_metadata never follows a link: every component under the output directory
            // must itself be what it claims. (The output directory may be a link: the operator's.)
            match tokio::fs::symlink_metadata(&dir).await {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) => return Err(refuse(&dir, &meta, id)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(id)),
                Err(e) => return Err(e.into()),
            }
            for ext in kind.extensions() {
                let path = dir.join(format!("{id}.{ext}"));
                match tokio::fs::symlink_metadata(&path).await {
                    Ok(meta) if meta.is_file() => {
                        let content_type = content_type_for(ext).unwrap_or("application/octet-stream");
                        return Ok(Stored { path, content_type });
                    }
                    Ok(meta) => return Err(refuse(&path, &meta, id)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(StorageError::NotFound(id))
        })
    }

    fn put_record<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        record: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            // Records live apart from the files, so a kind's directory holds only what it serves.
            let dir = self.records_dir(kind);
            tokio::fs::create_dir_all(&dir).await?;
            let temp = TempFile { path: dir.join(format!(".{id}.partial")), keep: false };
            write_then_rename(&temp.path, &dir.join(format!("{id}.json")), record, kind.durable()).await?;
            temp.disarm();
            Ok(())
        })
    }

    fn record<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>> {
        Box::pin(async move {
            let id = parse_id(id)?;
            // Opened like a stored file (no link followed, no FIFO waited on) and read with a cap:
            // a record is a few hundred bytes, so anything large was planted.
            let path = self.records_dir(kind).join(format!("{id}.json"));
            let (file, meta) = match open_regular(&path, &id).await {
                Ok(opened) => opened,
                Err(StorageError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e),
            };
            let bytes = read_capped(file, meta.len(), MAX_RECORD_BYTES).await?;
            if bytes.is_none() {
                tracing::warn!(path = %path.display(), "ignoring a record larger than {MAX_RECORD_BYTES} bytes");
            }
            Ok(bytes)
        })
    }
    fn open<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Opened, StorageError>> {
        Box::pin(async move {
            let stored = self.find(kind, id).await?;
            let (file, meta) = open_regular(&stored.path, id).await?;
            let modified = meta.modified().ok();
            // Length and modification time stand for the bytes: a stored file is never rewritten
            // in place (a new one gets a new id), so they change only if the disk was tampered with.
            let nanos = modified.and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            let etag = Some(format!("\"{:x}-{nanos:x}\"", meta.len()));
            Ok(Opened {
                file: Reader::File(file),
                len: meta.len(),
                modified,
                content_type: stored.content_type,
                etag,
                source: None,
            })
        })
    }
}

/// Opens `path` only as a regular file reached without following a link. O_NOFOLLOW: a link
/// (planted, or swapped in since a check) fails with ELOOP instead of being followed; O_NONBLOCK: a
/// FIFO cannot hang the open (regular files ignore it). Anything else is `NotFound`, logged.
async fn open_regular(path: &Path, id: &str) -> Result<(tokio::fs::File, std::fs::Metadata), StorageError> {
    let opened =
        tokio::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).await;
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            tracing::warn!(path = %path.display(), "refusing to serve a link planted as a stored file");
            return Err(StorageError::NotFound(id.to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(id.to_string())),
        Err(e) => return Err(e.into()),
    };
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(refuse(path, &meta, id.to_string()));
    }
    Ok((file, meta))
}

/// `NotFound` for something that is not what a stored file or its directory must be, logged: it
/// was planted there (or the disk was tampered with), and the operator should know.
fn refuse(path: &Path, meta: &std::fs::Metadata, id: String) -> StorageError {
    let what = if meta.is_symlink() {
        "a symbolic link"
    } else if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "a special file"
    };
    tracing::warn!(path = %path.display(), found = what, "refusing to serve: not a regular file reached without links");
    StorageError::NotFound(id)
}

/// Writes the probe at `path` with `write` and removes it. The guard is armed before the write:
/// a write that fails half way (a full disk creates the file, then cannot fill it) or is dropped
/// (readiness bounds each check and drops a slow one) leaves no probe file behind.
async fn write_probe<F, Fut>(path: PathBuf, write: F) -> Result<(), StorageError>
where
    F: FnOnce(PathBuf) -> Fut,
    Fut: Future<Output = std::io::Result<()>>,
{
    let guard = TempFile { path: path.clone(), keep: false };
    write(path.clone()).await?;
    tokio::fs::remove_file(&path).await?;
    guard.disarm();
    Ok(())
}

/// A temporary file that is removed on drop unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn disarm(mut self) {
        self.keep = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn write_then_rename(temp: &Path, final_path: &Path, bytes: &[u8], sync: bool) -> Result<(), StorageError> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(temp).await?;
    file.write_all(bytes).await?;
    // tokio writes in the background: only flush reports a failed write (a full disk, say); a
    // bare sync_all can succeed after it and let a truncated file be renamed into place.
    file.flush().await?;
    // On disk before the rename makes the file visible under its final name.
    if sync {
        file.sync_all().await?;
    }
    drop(file);
    tokio::fs::rename(temp, final_path).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures_util::StreamExt;

    use super::*;

    /// A fresh directory, removed (with everything in it) when the returned guard drops, so a
    /// test leaves nothing in /tmp, passing or failing.
    fn temp_root(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new().prefix(&format!("mvgen-storage-{name}-")).tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        (dir, path)
    }

    #[tokio::test]
    async fn put_then_find_round_trips_and_leaves_no_temp_file() {
        let (_dir, root) = temp_root("roundtrip");
        let storage = LocalStorage::new(&root);
        let id = storage.put(Collection::Video, "video/mp4", b"abc").await.expect("put");
        let stored = storage.find(Collection::Video, &id).await.expect("find");
        assert_eq!(stored.content_type, "video/mp4");
        assert_eq!(std::fs::read(&stored.path).expect("read"), b"abc");
        let names: Vec<String> = std::fs::read_dir(root.join("videos"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("{id}.mp4")]);
        assert!(matches!(storage.find(Collection::CharacterReference, &id).await, Err(StorageError::NotFound(_))));
    }

    #[tokio::test]
    async fn records_are_kept_apart_from_the_files() {
        let (_dir, root) = temp_root("records");
        let storage = LocalStorage::new(&root);
        let id = storage.put(Collection::Video, "video/mp4", b"abc").await.expect("put");
        assert_eq!(storage.record(Collection::Video, &id).await.expect("read"), None);
        storage.put_record(Collection::Video, &id, b"{\"is_mock\":true}").await.expect("record");
        assert_eq!(
            storage.record(Collection::Video, &id).await.expect("read").as_deref(),
            Some(&b"{\"is_mock\":true}"[..])
        );
        assert_eq!(storage.find(Collection::Video, &id).await.expect("find").content_type, "video/mp4");
        let names: Vec<_> =
            std::fs::read_dir(root.join("videos")).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(format!("{id}.mp4"))], "records are kept apart from the files");
        assert!(matches!(storage.record(Collection::Video, "../x").await, Err(StorageError::BadId(_))));
        let scenes = storage.put(Collection::Scenes, "application/json", b"{}").await.expect("scenes");
        assert!(
            storage.find(Collection::Scenes, &scenes).await.expect("find").path.ends_with(format!("{scenes}.json"))
        );
        assert!(matches!(
            storage.put(Collection::Scenes, "video/mp4", b"x").await,
            Err(StorageError::Unsupported { .. })
        ));
    }

    /// A FIFO, a link to a file outside, or a huge file planted as a record is no record: never
    /// waited on, never followed, never read whole.
    #[tokio::test]
    async fn planted_records_are_ignored_without_hanging() {
        let (_dir, root) = temp_root("planted-records");
        let storage = LocalStorage::new(&root);
        let dir = root.join("records").join("videos");
        std::fs::create_dir_all(&dir).expect("records dir");
        let [fifo, link, huge] = [(); 3].map(|_| Uuid::new_v4().to_string());
        let made = std::process::Command::new("mkfifo").arg(dir.join(format!("{fifo}.json"))).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let outside = root.join("secret.json");
        std::fs::write(&outside, b"{\"secret\":true}").expect("outside file");
        std::os::unix::fs::symlink(&outside, dir.join(format!("{link}.json"))).expect("symlink");
        std::fs::write(dir.join(format!("{huge}.json")), vec![b' '; 65 * 1024]).expect("huge");
        for id in [&fifo, &link, &huge] {
            let read =
                tokio::time::timeout(std::time::Duration::from_secs(5), storage.record(Collection::Video, id)).await;
            assert!(matches!(read, Ok(Ok(None))), "{id}: {read:?}");
        }
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_behind() {
        let (_dir, root) = temp_root("fail");
        // A file where the kind's directory should be makes create_dir_all fail.
        std::fs::write(root.join("videos"), b"not a dir").expect("write");
        let storage = LocalStorage::new(&root);
        assert!(matches!(storage.put(Collection::Video, "video/mp4", b"x").await, Err(StorageError::Io(_))));
    }

    #[tokio::test]
    async fn only_types_a_kind_can_be_found_again_are_stored() {
        let (_dir, root) = temp_root("types");
        let storage = LocalStorage::new(&root);
        for (kind, ct) in [
            (Collection::Video, "image/png"),
            (Collection::Video, "video/quicktime"),
            (Collection::CharacterReference, "image/gif"),
        ] {
            let refused = storage.put(kind, ct, b"x").await;
            assert!(matches!(refused, Err(StorageError::Unsupported { .. })), "{ct}");
        }
        let id = storage.put(Collection::CharacterReference, "image/jpeg; charset=binary", b"x").await.expect("jpeg");
        assert_eq!(storage.find(Collection::CharacterReference, &id).await.expect("find").content_type, "image/jpeg");
    }

    /// `chunks` chunks of `size` bytes after an MP4 header, then `tail` (an error cuts the stream).
    fn video_stream(chunks: usize, size: usize, tail: Option<std::io::Error>) -> ByteStream {
        let head = Bytes::from_static(b"\0\0\0\x18ftypisom\0\0\0\0");
        let body = (0..chunks).map(move |i| Ok(Bytes::from(vec![(i % 251) as u8; size])));
        futures_util::stream::iter(std::iter::once(Ok(head)).chain(body).chain(tail.map(Err))).boxed()
    }

    fn names(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_large_stream_is_stored_whole_with_its_sniffed_type() {
        let (_dir, root) = temp_root("stream");
        let storage = LocalStorage::new(&root);
        // 64 MiB in 64 KiB chunks: written as it arrives.
        let put =
            storage.put_stream(Collection::Video, 1 << 30, video_stream(1024, 64 * 1024, None)).await.expect("put");
        assert_eq!((put.content_type, put.len), ("video/mp4", 16 + 64 * 1024 * 1024));
        let opened = storage.open(Collection::Video, &put.id).await.expect("open");
        assert_eq!(opened.len, put.len);
        assert_eq!(names(&root.join("videos")), [format!("{}.mp4", put.id)]);
        let tail: Vec<Bytes> =
            opened.into_range(put.len - 3, 3).await.expect("range").map(|c| c.expect("chunk")).collect().await;
        assert_eq!(tail.concat(), [(1023 % 251) as u8; 3]);
    }

    #[tokio::test]
    async fn a_cut_refused_or_oversized_stream_leaves_nothing() {
        let (_dir, root) = temp_root("stream-fail");
        let storage = LocalStorage::new(&root);
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer went away");
        let put = storage.put_stream(Collection::Video, 1 << 30, video_stream(64, 64 * 1024, Some(cut))).await;
        assert!(matches!(put, Err(StorageError::Interrupted(_))), "{put:?}");
        let put = storage.put_stream(Collection::Video, 1024 * 1024, video_stream(64, 64 * 1024, None)).await;
        assert!(matches!(put, Err(StorageError::TooLarge { limit: 1048576 })), "{put:?}");
        let put = storage.put_stream(Collection::CharacterReference, 1 << 30, video_stream(1, 10, None)).await;
        assert!(matches!(&put, Err(StorageError::Rejected(m)) if m.contains("video/mp4")), "{put:?}");
        let html = futures_util::stream::iter([Ok(Bytes::from_static(b"<html>nope</html>"))]).boxed();
        assert!(matches!(storage.put_stream(Collection::Video, 1 << 30, html).await, Err(StorageError::Rejected(_))));
        // Dropped mid-stream (the request went away): the guard removes the temp file.
        let pending = video_stream(4, 1024, None).chain(futures_util::stream::pending()).boxed();
        let dropped = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            storage.put_stream(Collection::Video, 1 << 30, pending),
        );
        assert!(dropped.await.is_err(), "the stream never ends");
        assert_eq!(names(&root.join("videos")), Vec::<String>::new(), "no file, final or temporary");
    }

    #[tokio::test]
    async fn delete_removes_the_file_and_its_record_and_tolerates_either_missing() {
        let (_dir, root) = temp_root("delete");
        let storage = LocalStorage::new(&root);
        let song: ByteStream = futures_util::stream::iter([Ok(Bytes::from_static(b"fLaC\0\0\0\x22 a song"))]).boxed();
        let put = storage.put_stream(Collection::Audio, 1 << 20, song).await.expect("put");
        assert_eq!(put.content_type, "audio/flac");
        storage.put_record(Collection::Audio, &put.id, b"{}").await.expect("record");
        storage.delete(Collection::Audio, &put.id).await.expect("delete");
        assert!(matches!(storage.find(Collection::Audio, &put.id).await, Err(StorageError::NotFound(_))));
        assert_eq!(storage.record(Collection::Audio, &put.id).await.expect("read"), None);
        assert_eq!(names(&root.join("audio")), Vec::<String>::new());
        storage.delete(Collection::Audio, &put.id).await.expect("deleting again is no error");
        assert!(matches!(storage.delete(Collection::Audio, "../x").await, Err(StorageError::BadId(_))));
    }

    #[tokio::test]
    async fn check_proves_the_directory_writable_and_leaves_nothing() {
        let (_dir, root) = temp_root("check");
        let storage = LocalStorage::new(&root);
        storage.check().await.expect("writable");
        assert_eq!(names(&root.join("scenes")), Vec::<String>::new());
        let mut left = names(&root);
        left.sort();
        assert_eq!(left, ["audio", "character_references", "scenes", "videos"], "the probe is gone");
        std::fs::write(root.join("blocked"), b"a file").expect("file");
        assert!(LocalStorage::new(root.join("blocked")).check().await.is_err());
    }

    #[tokio::test]
    async fn a_probe_write_that_fails_or_is_cut_leaves_no_probe_file() {
        let (_dir, root) = temp_root("probe-fail");
        // As on a full disk: the file is created, then the write fails.
        let full = |path: PathBuf| async move {
            std::fs::write(&path, b"pro")?;
            Err(std::io::Error::other("No space left on device"))
        };
        let probe = root.join(".mvgen-probe-full.partial");
        assert!(write_probe(probe, full).await.is_err());
        assert_eq!(names(&root), Vec::<String>::new(), "the failed probe's file is gone");
        // As when readiness' bound drops a write that hangs.
        let hangs = |path: PathBuf| async move {
            std::fs::write(&path, b"pro")?;
            std::future::pending::<std::io::Result<()>>().await
        };
        let probe = root.join(".mvgen-probe-hangs.partial");
        let cut = tokio::time::timeout(std::time::Duration::from_millis(50), write_probe(probe, hangs));
        assert!(cut.await.is_err(), "the write never ends");
        assert_eq!(names(&root), Vec::<String>::new(), "the dropped probe's file is gone");
    }

    #[test]
    fn startup_cleanup_removes_a_stale_probe_file_in_the_root() {
        let (_dir, root) = temp_root("probe-stale");
        let old = std::time::SystemTime::now() - STALE_PARTIAL_AGE - std::time::Duration::from_secs(5);
        for name in [".mvgen-probe-old.partial", ".mvgen-probe-fresh.partial"] {
            std::fs::write(root.join(name), b"pro").expect("probe");
        }
        let stale = std::fs::File::options().write(true).open(root.join(".mvgen-probe-old.partial")).expect("open");
        stale.set_modified(old).expect("mtime");
        drop(stale);
        assert_eq!(LocalStorage::new(&root).remove_stale_partials().expect("cleanup"), 1);
        assert_eq!(names(&root), [".mvgen-probe-fresh.partial"], "a probe still in flight is left alone");
    }
}
