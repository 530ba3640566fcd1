//! A stored clip's header, read with ranged reads: the top-level boxes are walked from the start
//! (16 bytes at a time past what the first read brought) until the `moov`, which alone is read
//! whole. A clip whose `moov` comes after its `mdat` costs a few small reads, never the clip.

use futures_util::TryStreamExt;

use crate::media::cut::{ClipTracks, CutError, MAX_MOOV_BYTES, box_at};
use crate::storage::{Collection, Storage, StorageError};

/// What the first read of a clip fetches: a faststart clip's `ftyp` and `moov` are in it.
const HEAD: u64 = 64 * 1024;

/// Why a clip's header could not be read: the store failed (worth retrying), or the file is not
/// an MP4 the cut reads (the caller's).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Storage(StorageError),
    #[error("{0}")]
    Cut(CutError),
}

impl From<StorageError> for ReadError {
    fn from(e: StorageError) -> Self {
        ReadError::Storage(e)
    }
}

impl From<CutError> for ReadError {
    fn from(e: CutError) -> Self {
        ReadError::Cut(e)
    }
}

/// The tracks of stored video `id`.
pub async fn clip_tracks(storage: &dyn Storage, id: &str) -> Result<ClipTracks, ReadError> {
    let opened = storage.open(Collection::Video, id).await?;
    let len = opened.len;
    let head = read(opened.into_range(0, len.min(HEAD)).await?).await?;
    let mut at = 0u64;
    while at < len {
        // A box header is at most 16 bytes: from the first read when it holds them (or holds the
        // whole file), else fetched.
        let held = head.len() as u64;
        let header = if at + 16 <= held || (held == len && at < held) {
            head[at as usize..held.min(at + 16) as usize].to_vec()
        } else {
            range(storage, id, at, 16.min(len - at)).await?
        };
        let found = box_at(&header, at, len)?;
        if &found.kind == b"moov" {
            if found.len > MAX_MOOV_BYTES {
                return Err(CutError::Clip(format!(
                    "its header (moov) is {} bytes, more than the {MAX_MOOV_BYTES} read",
                    found.len
                ))
                .into());
            }
            let end = found.start + found.len;
            let moov = if end <= head.len() as u64 {
                head[found.start as usize..end as usize].to_vec()
            } else {
                range(storage, id, found.start, found.len).await?
            };
            return Ok(ClipTracks::from_moov(&moov, len)?);
        }
        at = found.start + found.len;
    }
    Err(CutError::Clip("it has no header (moov box): it is not an MP4 the cut can read".into()).into())
}

/// `count` bytes of stored video `id` from `start`.
async fn range(storage: &dyn Storage, id: &str, start: u64, count: u64) -> Result<Vec<u8>, StorageError> {
    let opened = storage.open(Collection::Video, id).await?;
    read(opened.into_range(start, count).await?).await
}

async fn read(stream: crate::storage::ByteStream) -> Result<Vec<u8>, StorageError> {
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await?;
    Ok(chunks.concat())
}
