//! The checks a streamed put makes while the bytes pass: the type from the first bytes (before
//! anything past them is written anywhere) and the size cap on every chunk.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{ByteStream, Collection, StorageError, stored_extension};
use crate::media::checked_media_type;

/// Bytes enough for every signature `media::sniff_media_type` knows (WebP's is 12).
pub const SNIFF_BYTES: usize = 16;

/// What a streamed put knows once its first bytes were read.
pub struct Begun {
    pub id: String,
    pub content_type: &'static str,
    pub ext: &'static str,
    /// The bytes read to decide the type, to be written first.
    pub first: Bytes,
}

/// A stream being stored, checked as it is read.
pub struct Checked {
    body: ByteStream,
    kind: Collection,
    max_bytes: u64,
    len: u64,
}

impl Checked {
    pub fn new(body: ByteStream, kind: Collection, max_bytes: u64) -> Self {
        Checked { body, kind, max_bytes, len: 0 }
    }

    /// Starts a streamed put of `body`: reads its first bytes, decides the type and the extension
    /// it is stored under, and picks the new id, all before anything is written anywhere.
    pub async fn begin(body: ByteStream, kind: Collection, max_bytes: u64) -> Result<(Checked, Begun), StorageError> {
        let mut checked = Checked::new(body, kind, max_bytes);
        let (content_type, first) = checked.first().await?;
        let ext = stored_extension(kind, content_type)?;
        Ok((checked, Begun { id: uuid::Uuid::new_v4().to_string(), content_type, ext, first }))
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.len
    }

    /// Reads until the type can be decided (or the stream ends) and returns it with the bytes read.
    pub async fn first(&mut self) -> Result<(&'static str, Bytes), StorageError> {
        let mut head = BytesMut::new();
        while head.len() < SNIFF_BYTES {
            match self.next().await? {
                Some(chunk) => head.extend_from_slice(&chunk),
                None => break,
            }
        }
        let content_type = match self.kind.media() {
            Some(expected) => checked_media_type(&head, expected).map_err(StorageError::Rejected)?,
            None => "application/json",
        };
        Ok((content_type, head.freeze()))
    }

    /// The next chunk, `None` at the end; an error from the stream is `Interrupted`, and passing
    /// the cap is `TooLarge` before the chunk that passes it is handed on.
    pub async fn next(&mut self) -> Result<Option<Bytes>, StorageError> {
        match self.body.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(StorageError::Interrupted(e)),
            Some(Ok(chunk)) => {
                self.len += chunk.len() as u64;
                if self.len > self.max_bytes {
                    return Err(StorageError::TooLarge { limit: self.max_bytes });
                }
                Ok(Some(chunk))
            }
        }
    }
}
