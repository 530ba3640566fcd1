//! A planned cut's bytes, streamed from the store into the store: the header, then each piece in
//! order (ranged reads of the clips, the song's frames, silence). A task produces the chunks into
//! a small channel that `put_stream` drains, so memory holds a few chunks whatever the cut's size,
//! and on S3 the new object goes up in parts as it is made.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::song::SongReader;
use crate::error::ApiError;
use crate::media::cut::{ClipIn, Cut, Piece};
use crate::storage::{ByteStream, Collection, Put, Storage, StorageError};

/// Chunks in flight between the reader task and the store.
const IN_FLIGHT: usize = 8;

/// Copy pieces of one clip separated by less than this are read as one range, the bytes between
/// (another track's samples) read and dropped: fewer requests to the store for a few KiB.
const READ_THROUGH: u64 = 256 * 1024;

/// Stores `cut` as a new video and says what was stored.
pub async fn store(
    storage: &Arc<dyn Storage>,
    cut: &Cut,
    clips: &[ClipIn],
    song_id: Option<&str>,
) -> Result<Put, ApiError> {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(IN_FLIGHT);
    // What went wrong while reading, told apart from the store's own failure to write.
    let failed: Arc<Mutex<Option<ApiError>>> = Arc::default();
    let producer = Producer {
        storage: Arc::clone(storage),
        ids: clips.iter().map(|c| c.name.clone()).collect(),
        song: song_id.map(str::to_owned),
        failed: Arc::clone(&failed),
    };
    let header = Bytes::from(cut.header.clone());
    let pieces = cut.pieces.clone();
    let task = tokio::spawn(async move { producer.run(header, pieces, tx).await });
    let body: ByteStream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed();
    let stored = storage.put_stream(Collection::Video, cut.len, body).await;
    task.abort();
    let read_failure = failed.lock().ok().and_then(|mut f| f.take());
    match (stored, read_failure) {
        (_, Some(e)) => Err(e),
        (Ok(put), None) if put.len == cut.len => Ok(put),
        (Ok(put), None) => {
            Err(ApiError::internal(format!("the cut was planned as {} bytes and {} were stored", cut.len, put.len)))
        }
        (Err(StorageError::Interrupted(e)), None) => Err(ApiError::internal(format!("the cut's copy stopped: {e}"))),
        (Err(e), None) => Err(e.into()),
    }
}

struct Producer {
    storage: Arc<dyn Storage>,
    ids: Vec<String>,
    song: Option<String>,
    failed: Arc<Mutex<Option<ApiError>>>,
}

impl Producer {
    async fn run(self, header: Bytes, pieces: Vec<Piece>, tx: mpsc::Sender<std::io::Result<Bytes>>) {
        if let Err(e) = self.copy(header, &pieces, &tx).await {
            let message = e.message.clone();
            if let Ok(mut failed) = self.failed.lock() {
                *failed = Some(e);
            }
            // Ends the stored stream with an error, so nothing is kept under a final name.
            let _ = tx.send(Err(std::io::Error::other(message))).await;
        }
    }

    async fn copy(
        &self,
        header: Bytes,
        pieces: &[Piece],
        tx: &mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Result<(), ApiError> {
        let send = |chunk: Bytes| async move {
            tx.send(Ok(chunk)).await.map_err(|_| ApiError::internal("the store stopped taking the cut"))
        };
        send(header).await?;
        let mut song: Option<SongReader> = None;
        let mut i = 0;
        while i < pieces.len() {
            match &pieces[i] {
                Piece::Copy { clip, start, .. } => {
                    // This piece and the ones after it from the same clip, close enough to read
                    // in one range.
                    let mut end = i + 1;
                    let mut last_end = piece_end(&pieces[i]);
                    while let Some(Piece::Copy { clip: c, start: s, len: l }) = pieces.get(end)
                        && c == clip
                        && *s >= last_end
                        && s - last_end <= READ_THROUGH
                    {
                        last_end = s + l;
                        end += 1;
                    }
                    self.copy_range(*clip, *start, last_end, &pieces[i..end], tx).await?;
                    i = end;
                    continue;
                }
                Piece::Bytes(bytes) => send(Bytes::from(bytes.clone())).await?,
                Piece::Song { frames, .. } => {
                    let reader = match &mut song {
                        Some(reader) => reader,
                        None => {
                            let id = self
                                .song
                                .as_deref()
                                .ok_or_else(|| ApiError::internal("a song piece without a song"))?;
                            song.insert(SongReader::start(Arc::clone(&self.storage), id.to_owned()).await?)
                        }
                    };
                    for _ in 0..*frames {
                        send(reader.next().await?).await?;
                    }
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Reads `start..end` of clip `clip` once and sends the parts `pieces` name.
    async fn copy_range(
        &self,
        clip: usize,
        start: u64,
        end: u64,
        pieces: &[Piece],
        tx: &mpsc::Sender<std::io::Result<Bytes>>,
    ) -> Result<(), ApiError> {
        let id = &self.ids[clip];
        let opened = self.storage.open(Collection::Video, id).await?;
        if end > opened.len {
            return Err(ApiError::internal(format!("clip {id} is shorter than its header says")));
        }
        let mut stream = opened.into_range(start, end - start).await?;
        // The wanted ranges, relative to `start`, in order.
        let mut wanted = pieces.iter().filter_map(|p| match p {
            Piece::Copy { start: s, len, .. } => Some((s - start, s - start + len)),
            _ => None,
        });
        let mut range = wanted.next();
        let mut at = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::from(StorageError::Io(e)))?;
            let chunk_end = at + chunk.len() as u64;
            while let Some((from, to)) = range {
                let (a, b) = (from.max(at), to.min(chunk_end));
                if a < b {
                    let part = chunk.slice((a - at) as usize..(b - at) as usize);
                    tx.send(Ok(part)).await.map_err(|_| ApiError::internal("the store stopped taking the cut"))?;
                }
                if to <= chunk_end {
                    range = wanted.next();
                } else {
                    break;
                }
            }
            at = chunk_end;
        }
        if range.is_some() {
            return Err(ApiError::internal(format!("clip {id} ended before the bytes its header names")));
        }
        Ok(())
    }
}

fn piece_end(piece: &Piece) -> u64 {
    match piece {
        Piece::Copy { start, len, .. } => start + len,
        _ => 0,
    }
}
