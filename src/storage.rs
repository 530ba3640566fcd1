//! Where generated images, videos and scenes are kept: `{MV_OUTPUT_DIR}/{kind}/{uuid}.{ext}`, and
//! what is known about each (backend, project, time) in `{MV_OUTPUT_DIR}/records/{kind}/{uuid}.json`.
//!
//! Writes go to a temporary file in the same directory and are renamed into place, so a crash or a
//! full disk never leaves a half-written file under a final name, and concurrent writers never
//! overwrite each other (every file gets a fresh v4 UUID). Ids are parsed before they touch a path,
//! so a request can't reach outside the output directory. The `Storage` trait keeps handlers
//! independent of the local disk, so an object store can follow.

use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;
use uuid::Uuid;

use crate::providers::{BoxFuture, content_type_for, extension_for};

/// What a stored file is; each kind has its own directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    CharacterReference,
    Video,
    /// The scenes one `create_scenes` request wrote, as JSON.
    Scenes,
}

impl Kind {
    /// How the kind is named in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::CharacterReference => "image",
            Kind::Video => "video",
            Kind::Scenes => "scenes file",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Kind::CharacterReference => "character_references",
            Kind::Video => "videos",
            Kind::Scenes => "scenes",
        }
    }

    /// The extensions a kind is stored with, tried in order when looking an id up.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Kind::CharacterReference => &["png", "jpg", "webp"],
            Kind::Video => &["mp4", "webm"],
            Kind::Scenes => &["json"],
        }
    }

    /// Whether a write waits for the disk (fsync) before the file appears under its final name.
    /// Scenes are small text stored on every create_scenes; an fsync each would cap that endpoint
    /// at the disk's flush rate, and losing the last ones in a power cut costs only a re-request.
    /// The rename still keeps a half-written file from ever showing under a final name.
    fn durable(self) -> bool {
        !matches!(self, Kind::Scenes)
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("`{0}` is not a valid id: ids are UUIDs such as 3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d")]
    BadId(String),
    #[error("no stored file with id {0}")]
    NotFound(String),
    #[error("`{content_type}` is not a {kind} format mvgen stores")]
    Unsupported { content_type: String, kind: &'static str },
    #[error("storage failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A stored file found by id.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub content_type: &'static str,
}

/// A stored file opened for reading: a regular file, reached without following any link.
#[derive(Debug)]
pub struct Opened {
    pub file: tokio::fs::File,
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
    pub content_type: &'static str,
}

/// Keeps generated files, and a small record about each where one is written.
pub trait Storage: Send + Sync {
    /// Stores `bytes` as a new file and returns its id.
    fn put<'a>(
        &'a self,
        kind: Kind,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<String, StorageError>>;
    /// Finds a stored file by id. Only a regular file is found: a directory, link or anything else
    /// planted under its name (or a link in place of the kind's directory) is `NotFound`, and logged.
    fn find<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Stored, StorageError>>;
    /// Keeps `record` (a small JSON document: when, by which backend, for which project) with the
    /// stored file `id`, replacing any earlier one.
    fn put_record<'a>(&'a self, kind: Kind, id: &'a str, record: &'a [u8]) -> BoxFuture<'a, Result<(), StorageError>>;
    /// The record kept with `id`, if one was written.
    fn record<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>>;
    /// Opens a stored file by id, with the same checks as `find` made again on the open file, so a
    /// file swapped for a link in between is refused too.
    fn open<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Opened, StorageError>>;
}

/// Files on the local disk.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

/// The most a record read back may be; what `put_record` writes is a few hundred bytes.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// A hidden temp file untouched this long was abandoned (the process writing it was killed): a live
/// write keeps touching its file until the rename, which follows at once.
pub const STALE_PARTIAL_AGE: std::time::Duration = std::time::Duration::from_secs(60);

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStorage { root: root.into() }
    }

    /// `{root}/records/{kind}`: what is kept about each stored file of a kind.
    fn records_dir(&self, kind: Kind) -> PathBuf {
        self.root.join("records").join(kind.dir_name())
    }

    /// Removes the hidden `.{id}.partial` files a killed process left behind (a crash mid-write
    /// never runs the drop guard), when untouched for [`STALE_PARTIAL_AGE`], and returns how many
    /// went. Meant for startup; a missing directory simply has nothing to clean.
    pub fn remove_stale_partials(&self) -> std::io::Result<usize> {
        let mut removed = 0;
        let kinds = [Kind::CharacterReference, Kind::Video, Kind::Scenes];
        let dirs = kinds.iter().flat_map(|kind| [self.root.join(kind.dir_name()), self.records_dir(*kind)]);
        for dir in dirs {
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
}

impl Storage for LocalStorage {
    fn put<'a>(
        &'a self,
        kind: Kind,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<String, StorageError>> {
        Box::pin(async move {
            // A file stored under an extension `find` never tries would be unreachable.
            let ext = extension_for(content_type).filter(|ext| kind.extensions().contains(ext)).ok_or_else(|| {
                StorageError::Unsupported { content_type: content_type.to_string(), kind: kind.noun() }
            })?;
            let dir = self.root.join(kind.dir_name());
            tokio::fs::create_dir_all(&dir).await?;
            let id = Uuid::new_v4().to_string();
            let final_path = dir.join(format!("{id}.{ext}"));
            // Hidden temp name in the same directory: rename within one filesystem is atomic. The
            // guard removes it if anything fails, or if the request is dropped mid-write.
            let temp = TempFile { path: dir.join(format!(".{id}.partial")), keep: false };
            write_then_rename(&temp.path, &final_path, bytes, kind.durable()).await?;
            temp.disarm();
            Ok(id)
        })
    }

    fn find<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Stored, StorageError>> {
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

    fn put_record<'a>(&'a self, kind: Kind, id: &'a str, record: &'a [u8]) -> BoxFuture<'a, Result<(), StorageError>> {
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

    fn record<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>> {
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
    fn open<'a>(&'a self, kind: Kind, id: &'a str) -> BoxFuture<'a, Result<Opened, StorageError>> {
        Box::pin(async move {
            let stored = self.find(kind, id).await?;
            let (file, meta) = open_regular(&stored.path, id).await?;
            Ok(Opened { file, len: meta.len(), modified: meta.modified().ok(), content_type: stored.content_type })
        })
    }
}

/// Reads an opened file whole when it holds at most `limit` bytes, `None` past that. At most one
/// byte over the limit is read, whatever the file grew to since `len` (its size when opened, used
/// only to size the buffer) was read.
pub async fn read_capped(file: tokio::fs::File, len: u64, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(limit)).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes).await?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
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

/// Ids are canonical lowercase hyphenated UUIDs; anything else is refused before any path is built.
pub fn parse_id(id: &str) -> Result<String, StorageError> {
    match Uuid::try_parse(id) {
        Ok(uuid) if uuid.hyphenated().to_string() == id => Ok(id.to_string()),
        _ => Err(StorageError::BadId(truncate(id, 80))),
    }
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mvgen-storage-{name}-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[tokio::test]
    async fn put_then_find_round_trips_and_leaves_no_temp_file() {
        let root = temp_root("roundtrip");
        let storage = LocalStorage::new(&root);
        let id = storage.put(Kind::Video, "video/mp4", b"abc").await.expect("put");
        let stored = storage.find(Kind::Video, &id).await.expect("find");
        assert_eq!(stored.content_type, "video/mp4");
        assert_eq!(std::fs::read(&stored.path).expect("read"), b"abc");
        let names: Vec<String> = std::fs::read_dir(root.join("videos"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![format!("{id}.mp4")]);
        assert!(matches!(storage.find(Kind::CharacterReference, &id).await, Err(StorageError::NotFound(_))));
    }

    #[test]
    fn ids_that_could_escape_the_directory_are_refused() {
        for bad in
            ["../../etc/passwd", "", "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D", "3f2b6c1e8f0a4d2b9c510e4f1a2b3c4d", "a/b"]
        {
            assert!(matches!(parse_id(bad), Err(StorageError::BadId(_))), "{bad}");
        }
        assert!(parse_id("3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d").is_ok());
    }

    #[tokio::test]
    async fn records_are_kept_apart_from_the_files() {
        let root = temp_root("records");
        let storage = LocalStorage::new(&root);
        let id = storage.put(Kind::Video, "video/mp4", b"abc").await.expect("put");
        assert_eq!(storage.record(Kind::Video, &id).await.expect("read"), None);
        storage.put_record(Kind::Video, &id, b"{\"is_mock\":true}").await.expect("record");
        assert_eq!(storage.record(Kind::Video, &id).await.expect("read").as_deref(), Some(&b"{\"is_mock\":true}"[..]));
        assert_eq!(storage.find(Kind::Video, &id).await.expect("find").content_type, "video/mp4");
        let names: Vec<_> =
            std::fs::read_dir(root.join("videos")).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(format!("{id}.mp4"))], "records are kept apart from the files");
        assert!(matches!(storage.record(Kind::Video, "../x").await, Err(StorageError::BadId(_))));
        let scenes = storage.put(Kind::Scenes, "application/json", b"{}").await.expect("scenes");
        assert!(storage.find(Kind::Scenes, &scenes).await.expect("find").path.ends_with(format!("{scenes}.json")));
        assert!(matches!(storage.put(Kind::Scenes, "video/mp4", b"x").await, Err(StorageError::Unsupported { .. })));
    }

    /// A FIFO, a link to a file outside, or a huge file planted as a record is no record: never
    /// waited on, never followed, never read whole.
    #[tokio::test]
    async fn planted_records_are_ignored_without_hanging() {
        let root = temp_root("planted-records");
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
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), storage.record(Kind::Video, id)).await;
            assert!(matches!(read, Ok(Ok(None))), "{id}: {read:?}");
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn a_failed_write_leaves_nothing_behind() {
        let root = temp_root("fail");
        // A file where the kind's directory should be makes create_dir_all fail.
        std::fs::write(root.join("videos"), b"not a dir").expect("write");
        let storage = LocalStorage::new(&root);
        assert!(matches!(storage.put(Kind::Video, "video/mp4", b"x").await, Err(StorageError::Io(_))));
    }

    #[tokio::test]
    async fn only_types_a_kind_can_be_found_again_are_stored() {
        let root = temp_root("types");
        let storage = LocalStorage::new(&root);
        for (kind, ct) in
            [(Kind::Video, "image/png"), (Kind::Video, "video/quicktime"), (Kind::CharacterReference, "image/gif")]
        {
            let refused = storage.put(kind, ct, b"x").await;
            assert!(matches!(refused, Err(StorageError::Unsupported { .. })), "{ct}");
        }
        let id = storage.put(Kind::CharacterReference, "image/jpeg; charset=binary", b"x").await.expect("jpeg");
        assert_eq!(storage.find(Kind::CharacterReference, &id).await.expect("find").content_type, "image/jpeg");
    }
}
