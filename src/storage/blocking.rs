//! A stored file as a blocking `Read + Seek`, for readers that are sync (the song demuxer) and
//! run inside `spawn_blocking`. Reads stream from the store; a seek starts a new ranged read
//! (a seek of the local file, a ranged GET on S3) only when the next read needs it, so a file read
//! front to back is one read, and memory stays one chunk whatever the file's size.

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{ByteStream, Collection, Storage, StorageError};

type Bridge = SyncIoBridge<StreamReader<ByteStream, Bytes>>;

pub struct BlockingReader {
    storage: Arc<dyn Storage>,
    kind: Collection,
    id: String,
    len: u64,
    pos: u64,
    handle: Handle,
    /// The open read and the position it is at. In a mutex only so the reader is `Sync` (a
    /// demuxer's source must be); it is never shared.
    current: Mutex<Option<(u64, Bridge)>>,
}

impl BlockingReader {
    /// Opens stored file `id` to read from a blocking thread; `handle` runs the store's futures.
    /// Its length is known at once (the store's HEAD, or the file's metadata).
    pub async fn open(
        storage: Arc<dyn Storage>,
        kind: Collection,
        id: &str,
        handle: Handle,
    ) -> Result<BlockingReader, StorageError> {
        let opened = storage.open(kind, id).await?;
        Ok(BlockingReader {
            storage,
            kind,
            id: id.to_string(),
            len: opened.len,
            pos: 0,
            handle,
            current: Mutex::new(None),
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A read from `self.pos` to the end.
    fn start(&self) -> std::io::Result<Bridge> {
        let (storage, kind, id, pos, len) = (Arc::clone(&self.storage), self.kind, self.id.clone(), self.pos, self.len);
        let stream = self
            .handle
            .block_on(async move { storage.open(kind, &id).await?.into_range(pos, len - pos).await })
            .map_err(|e| match e {
                StorageError::Io(io) => io,
                other => std::io::Error::other(other),
            })?;
        Ok(SyncIoBridge::new_with_handle(StreamReader::new(stream), self.handle.clone()))
    }
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let mut current = self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.as_ref().is_none_or(|(at, _)| *at != self.pos) {
            *current = Some((self.pos, self.start()?));
        }
        let Some((at, bridge)) = current.as_mut() else { return Ok(0) };
        let n = bridge.read(buf)?;
        *at += n as u64;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlockingReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos =
            target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
