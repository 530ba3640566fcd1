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
            // A bug, never a caller's input: what was stored is not the planned file, so it goes.
            if let Err(e) = storage.delete(Collection::Video, &put.id).await {
                tracing::warn!(video = %put.id, error = %e, "a cut of the wrong length could not be deleted");
            }
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
        let steps = steps(pieces);
        let reads: Vec<&Read> =
            steps.iter().filter_map(|s| if let Step::Read(r) = s { Some(r) } else { None }).collect();
        // The next read is opened while the one before it is copied, so its requests' round trips
        // (a HEAD and a ranged GET on S3) overlap the copy instead of adding to it.
        let mut opening = reads.first().map(|r| self.open(r));
        let mut next = 1;
        let mut song: Option<SongReader> = None;
        for step in &steps {
            match step {
                Step::Read(read) => {
                    let stream = match opening.take() {
                        Some(task) => task.await.map_err(|e| ApiError::internal(format!("opening a clip: {e}")))??,
                        None => return Err(ApiError::internal("a clip read that was never opened")),
                    };
                    opening = reads.get(next).map(|r| self.open(r));
                    next += 1;
                    copy_range(read, stream, &self.ids[read.clip], tx).await?;
                }
                Step::Bytes(bytes) => send(Bytes::copy_from_slice(bytes)).await?,
                Step::Song(frames) => {
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
        }
        Ok(())
    }

    /// Starts the ranged read `read` names, on a task of its own.
    fn open(&self, read: &Read) -> tokio::task::JoinHandle<Result<ByteStream, ApiError>> {
        let storage = Arc::clone(&self.storage);
        let (id, start, end) = (self.ids[read.clip].clone(), read.start, read.end);
        tokio::spawn(async move {
            let opened = storage.open(Collection::Video, &id).await?;
            if end > opened.len {
                return Err(ApiError::internal(format!("clip {id} is shorter than its header says")));
            }
            Ok(opened.into_range(start, end - start).await?)
        })
    }
}

/// What the copy does, in order: a ranged read of a clip covering one or more copy pieces, or a
/// piece made here.
enum Step<'p> {
    Read(Read<'p>),
    Bytes(&'p [u8]),
    Song(usize),
}

/// One ranged read of clip `clip`, `start..end`, and the copy pieces it covers.
struct Read<'p> {
    clip: usize,
    start: u64,
    end: u64,
    pieces: &'p [Piece],
}

/// The pieces as steps: copy pieces of one clip that follow each other with gaps of at most
/// `READ_THROUGH` become one read.
fn steps(pieces: &[Piece]) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        match &pieces[i] {
            Piece::Copy { clip, start, .. } => {
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
                steps.push(Step::Read(Read { clip: *clip, start: *start, end: last_end, pieces: &pieces[i..end] }));
                i = end;
                continue;
            }
            Piece::Bytes(bytes) => steps.push(Step::Bytes(bytes)),
            Piece::Song { frames, .. } => steps.push(Step::Song(*frames)),
        }
        i += 1;
    }
    steps
}

/// Sends the parts of `stream` (the bytes of `read`) its pieces name.
async fn copy_range(
    read: &Read<'_>,
    mut stream: ByteStream,
    id: &str,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<(), ApiError> {
    let start = read.start;
    // The wanted ranges, relative to `start`, in order.
    let mut wanted = read.pieces.iter().filter_map(|p| match p {
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

fn piece_end(piece: &Piece) -> u64 {
    match piece {
        Piece::Copy { start, len, .. } => start + len,
        _ => 0,
    }
}
