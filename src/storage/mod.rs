//! Where generated images, videos and scenes are kept, independent of where the bytes live: the
//! [`Storage`] trait handlers and the generation write through, its errors, and the types both
//! backends share (kinds, ids, streams, opened files). Layout: `{root}/{kind}/{uuid}.{ext}`, and
//! what is known about each file (backend, project, time) in `{root}/records/{kind}/{uuid}.json`.
//!
//! Ids are parsed ([`parse_id`]) before they touch a path or key, so a request can't reach outside
//! the store, and every file gets a fresh v4 UUID, so concurrent writers never overwrite each other.
//! The backends are [`local::LocalStorage`] (`file://`, the default) and
//! [`object::ObjectStorage`] for an S3-compatible store (`s3://`), chosen by [`url::open`]. How a
//! backend finds, writes and guards its files lives in its own file, never here.

pub mod blocking;
pub mod checked;
pub mod local;
pub mod object;
pub mod s3_http;
pub mod url;

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf};
use uuid::Uuid;

use crate::media::extension_for;

/// What a stored file is (a collection: images, videos, scenes); each has its own directory. Not
/// a generation kind (`generation::Kind`): a generation may store files of several collections,
/// and files no generation made (uploads) need collections of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    CharacterReference,
    Video,
    /// The scenes one `create_scenes` request wrote, as JSON.
    Scenes,
    /// Songs uploaded for the final cut (`upload_audio`). A song is one only once its record
    /// (what the probe read) is written: the upload writes it after the probe accepts the file.
    Audio,
}

impl Collection {
    /// How the kind is named in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Collection::CharacterReference => "image",
            Collection::Video => "video",
            Collection::Scenes => "scenes file",
            Collection::Audio => "song",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Collection::CharacterReference => "character_references",
            Collection::Video => "videos",
            Collection::Scenes => "scenes",
            Collection::Audio => "audio",
        }
    }

    /// The extensions a kind is stored with, tried in order when looking an id up.
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Collection::CharacterReference => &["png", "jpg", "webp"],
            Collection::Video => &["mp4", "webm"],
            Collection::Scenes => &["json"],
            Collection::Audio => &["mp3", "aac", "m4a", "ogg", "weba", "flac"],
        }
    }

    /// Whether a write waits for the disk (fsync) before the file appears under its final name.
    /// Scenes are small text stored on every create_scenes; an fsync each would cap that endpoint
    /// at the disk's flush rate, and losing the last ones in a power cut costs only a re-request.
    /// The rename still keeps a half-written file from ever showing under a final name.
    fn durable(self) -> bool {
        !matches!(self, Collection::Scenes)
    }

    /// What `put_stream` checks the first bytes against (`media::checked_media_type`); scenes
    /// are JSON mvgen wrote itself.
    fn media(self) -> Option<&'static str> {
        match self {
            Collection::CharacterReference => Some("image"),
            Collection::Video => Some("video"),
            Collection::Audio => Some("audio"),
            Collection::Scenes => None,
        }
    }

    const ALL: [Collection; 4] =
        [Collection::CharacterReference, Collection::Video, Collection::Scenes, Collection::Audio];
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
    /// The store could not be reached or answered with a server error: worth retrying, and
    /// nothing already stored is affected.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A streamed put went past its cap; nothing was kept.
    #[error("the output is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    /// A streamed put's first bytes are not a type the kind is stored as.
    #[error("{0}")]
    Rejected(String),
    /// The stream being stored failed or was cut before its end; nothing was kept.
    #[error("the output stream was cut: {0}")]
    Interrupted(std::io::Error),
}

/// A stream of byte chunks: a download fed to `put_stream`, or a stored file read back.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// What a streamed put stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub id: String,
    /// The type decided from the first bytes.
    pub content_type: &'static str,
    pub len: u64,
}

/// A stored file found by id.
#[derive(Debug, Clone)]
pub struct Stored {
    pub path: PathBuf,
    pub content_type: &'static str,
}

/// A stored file opened for reading: on `file://` a regular file reached without following any
/// link; on a store, the object found (its bytes are fetched only when `file` is first read).
#[derive(Debug)]
pub struct Opened {
    pub file: Reader,
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
    pub content_type: &'static str,
    /// A strong validator for the stored bytes (quoted, as the `ETag` header has it).
    pub etag: Option<String>,
    /// Where a range is fetched from when the file is not local.
    source: Option<object::Source>,
}

impl Opened {
    /// `count` bytes from `start` (both within `len`) as a stream: a seek on a local file, a ranged
    /// GET on a store, so a player's seek into a large video never fetches the whole file.
    pub async fn into_range(self, start: u64, count: u64) -> Result<ByteStream, StorageError> {
        match (self.file, self.source) {
            (Reader::File(mut file), _) => {
                if start > 0 {
                    file.seek(std::io::SeekFrom::Start(start)).await?;
                }
                Ok(tokio_util::io::ReaderStream::with_capacity(file.take(count), CHUNK).boxed())
            }
            (Reader::Stream(_), Some(source)) => source.range(start, count).await,
            // A store's reader is always opened with its source.
            (Reader::Stream(_), None) => Err(StorageError::Io(std::io::Error::other("no source to read a range from"))),
        }
    }
}

/// Read size per chunk of a stored file sent back.
const CHUNK: usize = 64 * 1024;

/// A stored file's bytes as a reader: the open local file, or the object's GET as a stream.
pub enum Reader {
    File(tokio::fs::File),
    Stream(tokio_util::io::StreamReader<ByteStream, Bytes>),
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reader::File(_) => "Reader::File",
            Reader::Stream(_) => "Reader::Stream",
        })
    }
}

impl AsyncRead for Reader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Reader::File(file) => Pin::new(file).poll_read(cx, buf),
            Reader::Stream(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

/// Keeps generated files, and a small record about each where one is written.
pub trait Storage: Send + Sync {
    /// Stores `bytes` as a new file and returns its id.
    fn put<'a>(
        &'a self,
        kind: Collection,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<String, StorageError>>;
    /// Stores `bytes` as the file `id` (a canonical UUID), replacing any file of `kind` there, and
    /// waits for the disk whatever the kind: for a copy that becomes the only one (the scenes a
    /// purged job kept in its row, `generation::scenes::kept_in_job`). Writing the same bytes again
    /// is harmless, so a purge cut after the write and before its delete can simply redo it.
    fn put_as<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        content_type: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Finds a stored file by id. Only a regular file is found: a directory, link or anything else
    /// planted under its name (or a link in place of the kind's directory) is `NotFound`, and logged.
    fn find<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Stored, StorageError>>;
    /// Keeps `record` (a small JSON document: when, by which backend, for which project) with the
    /// stored file `id`, replacing any earlier one.
    fn put_record<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        record: &'a [u8],
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// The record kept with `id`, if one was written.
    fn record<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>>;
    /// Opens a stored file by id, with the same checks as `find` made again on the open file, so a
    /// file swapped for a link in between is refused too.
    fn open<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<Opened, StorageError>>;
    /// Stores a stream of chunks as a new file of `kind` and says what was stored. The first bytes
    /// decide the type (`media::checked_media_type` against the kind's media), checked before
    /// anything past them is written; more than `max_bytes` fails at once. Only a whole stream is
    /// ever visible under its final name: a refused, failed or cut stream (an `Err` chunk, or the
    /// future dropped) leaves nothing, and memory stays bounded whatever the size.
    fn put_stream<'a>(
        &'a self,
        kind: Collection,
        max_bytes: u64,
        body: ByteStream,
    ) -> BoxFuture<'a, Result<Put, StorageError>>;
    /// A URL a client can GET the stored file from directly for `expires`, when the store can
    /// sign one (S3); `None` when it can't (`file://`), and the file is served by mvgen.
    fn signed_url<'a>(
        &'a self,
        kind: Collection,
        id: &'a str,
        expires: std::time::Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>>;
    /// Removes a stored file and its record (either may be missing); an unknown id is not an
    /// error. For a file that must not stay: a song its probe refused after it was stored.
    fn delete<'a>(&'a self, kind: Collection, id: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;
    /// Proves the store usable at startup: writes a probe object and deletes it again.
    fn check(&self) -> BoxFuture<'_, Result<(), StorageError>>;
    /// Where the files are, for log lines (never a secret).
    fn describe(&self) -> String;
}

/// The most a record read back may be; what `put_record` writes is a few hundred bytes.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Reads an opened file whole when it holds at most `limit` bytes, `None` past that. At most one
/// byte over the limit is read, whatever the file grew to since `len` (its size when opened, used
/// only to size the buffer) was read.
pub async fn read_capped(file: impl AsyncRead + Unpin, len: u64, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(limit)).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes).await?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// The extension a file of `kind` and `content_type` is stored under: only one `find` tries, so
/// nothing is stored that could not be found again.
fn stored_extension(kind: Collection, content_type: &str) -> Result<&'static str, StorageError> {
    extension_for(content_type)
        .filter(|ext| kind.extensions().contains(ext))
        .ok_or_else(|| StorageError::Unsupported { content_type: content_type.to_string(), kind: kind.noun() })
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

    #[test]
    fn ids_that_could_escape_the_directory_are_refused() {
        for bad in
            ["../../etc/passwd", "", "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D", "3f2b6c1e8f0a4d2b9c510e4f1a2b3c4d", "a/b"]
        {
            assert!(matches!(parse_id(bad), Err(StorageError::BadId(_))), "{bad}");
        }
        assert!(parse_id("3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d").is_ok());
    }
}
