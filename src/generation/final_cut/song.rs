//! The song under a cut. Songs are stored by `upload_audio`, which lands next; until then no song
//! id is found, and a cut that names one is made without it, with the Python service's warning.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::ApiError;
use crate::media::cut::SongPlan;
use crate::storage::Storage;

/// Song `id`'s frame table, or the warning the answer gives when there is no such song.
pub async fn frames(
    _storage: &Arc<dyn Storage>,
    id: &str,
    _looped: bool,
) -> Result<Result<SongPlan, String>, ApiError> {
    Ok(Err(format!("Audio file with ID '{id}' not found")))
}

/// The song's frames in order, as the cut is written.
pub struct SongReader;

impl SongReader {
    pub async fn start(_storage: Arc<dyn Storage>, id: String) -> Result<SongReader, ApiError> {
        Err(ApiError::internal(format!("no song {id} to read")))
    }

    pub async fn next(&mut self) -> Result<Bytes, ApiError> {
        Err(ApiError::internal("no song to read"))
    }
}
