//! The song under a cut, read twice from the store, each time from a blocking thread (the demuxer
//! is sync): first its frame table (each frame's size and length) for the plan, then its frames
//! in order as the cut is written. Neither pass holds more than a frame or two of audio.

use std::sync::Arc;

use bytes::Bytes;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::media::cut::SongPlan;
use crate::media::song::{SeekableSource, SongError, SongTrack};
use crate::storage::blocking::BlockingReader;
use crate::storage::{Collection, Storage, StorageError};

/// Frames read ahead of the copy.
const READ_AHEAD: usize = 64;

/// Song `id`'s frame table, or the warning the answer gives when there is no such song (as the
/// Python service did: the cut is made without it). A store that fails is an error: retryable.
pub async fn frames(storage: &Arc<dyn Storage>, id: &str, looped: bool) -> Result<Result<SongPlan, String>, ApiError> {
    let not_found = || Ok(Err(format!("Audio file with ID '{id}' not found")));
    // A song is served only once its upload was probed and its record written.
    match storage.record(Collection::Audio, id).await {
        Ok(Some(_)) => {}
        Ok(None) | Err(StorageError::NotFound(_)) => return not_found(),
        Err(e) => return Err(e.into()),
    }
    let track = match open(storage, id).await {
        Ok(track) => track,
        Err(StorageError::NotFound(_)) => return not_found(),
        Err(e) => return Err(e.into()),
    };
    let table = tokio::task::spawn_blocking(move || -> Result<SongPlan, SongError> {
        let mut track = track()?;
        let mut frames = Vec::new();
        while let Some(frame) = track.next_frame()? {
            frames.push((frame.data.len() as u32, frame.duration));
        }
        Ok(SongPlan { entry: track.entry.clone(), timescale: track.timescale, priming: track.priming, frames, looped })
    })
    .await
    .map_err(|e| ApiError::internal(format!("the song's reader stopped: {e}")))?;
    match table {
        Ok(plan) => Ok(Ok(plan)),
        Err(SongError::Io(e)) => Err(StorageError::Unavailable(format!("the song {id} could not be read: {e}")).into()),
        // Checked when it was uploaded, so this is a song changed or damaged since: said, not fatal.
        Err(e) => Ok(Err(format!("Audio file with ID '{id}' could not be used: {e}"))),
    }
}

/// A way to open the stored song as a track, from a blocking thread (the file is found now).
async fn open(
    storage: &Arc<dyn Storage>,
    id: &str,
) -> Result<impl Fn() -> Result<SongTrack, SongError> + Send + 'static, StorageError> {
    let (storage, id) = (Arc::clone(storage), id.to_owned());
    // Found now, so a missing song is told apart from one that fails to read.
    storage.find(Collection::Audio, &id).await?;
    let handle = Handle::current();
    Ok(move || {
        let reader = handle
            .block_on(BlockingReader::open(Arc::clone(&storage), Collection::Audio, &id, handle.clone()))
            .map_err(|e| SongError::Io(std::io::Error::other(e)))?;
        let len = reader.len();
        SongTrack::open(SeekableSource::boxed(reader, len))
    })
}

/// The song's frames in order, read ahead on a blocking thread; it starts the song again at its
/// end (the plan asks for more frames than one pass only when the song is looped).
pub struct SongReader {
    frames: mpsc::Receiver<Result<Bytes, SongError>>,
}

impl SongReader {
    pub async fn start(storage: Arc<dyn Storage>, id: String) -> Result<SongReader, ApiError> {
        let track = open(&storage, &id).await?;
        let (tx, frames) = mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            loop {
                let mut song = match track() {
                    Ok(song) => song,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                let mut any = false;
                loop {
                    let next = match song.next_frame() {
                        Ok(Some(frame)) => Ok(Bytes::from(frame.data)),
                        Ok(None) => break,
                        Err(e) => Err(e),
                    };
                    let failed = next.is_err();
                    // The cut stopped taking frames (done, or failed): so does the reader.
                    if tx.blocking_send(next).is_err() || failed {
                        return;
                    }
                    any = true;
                }
                if !any {
                    return;
                }
            }
        });
        Ok(SongReader { frames })
    }

    /// The next frame's bytes.
    pub async fn next(&mut self) -> Result<Bytes, ApiError> {
        match self.frames.recv().await {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(SongError::Io(e))) => {
                Err(StorageError::Unavailable(format!("the song could not be read: {e}")).into())
            }
            Some(Err(e)) => Err(ApiError::internal(format!("the song changed since the cut was planned: {e}"))),
            None => Err(ApiError::internal("the song ended before the frames the cut planned")),
        }
    }
}
