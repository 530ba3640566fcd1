//! `POST /api/mv/upload_audio`, `GET /api/mv/get_audio/{id}` and `GET /api/mv/get_audio/{id}/info`:
//! songs for the final cut.
//!
//! An upload is streamed into the store (never held whole), its type decided from its first bytes,
//! capped by `MV_MAX_AUDIO_BYTES`; then the stored file is read back once by the song probe
//! (`media::song`). Accepted, the probe's findings are written as the file's record, and the
//! record is what makes it a song: `get_audio` serves only a file that has one, so an upload
//! still being probed, or one whose process died before its record, is never served. Refused,
//! the file is deleted again.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::extract::ValidPath;
use super::files::{redirect_param, serve_or_redirect};
use crate::error::{ApiError, ErrorKind};
use crate::media::beats::{self, BeatAnalysis, BeatError};
use crate::media::song::{self, SeekableSource, SongCodec, SongError};
use crate::state::AppState;
use crate::storage::blocking::BlockingReader;
use crate::storage::{ByteStream, Collection, StorageError};

/// The upload route's bounds: `MV_MAX_AUDIO_BYTES` and `MV_MAX_SONG_SECONDS`.
#[derive(Debug, Clone, Copy)]
pub struct AudioLimit {
    pub max_bytes: u64,
    /// How much of a song the beat analysis reads.
    pub max_song_seconds: u32,
}

impl Default for AudioLimit {
    fn default() -> AudioLimit {
        AudioLimit {
            max_bytes: crate::limits::DEFAULT_MAX_AUDIO_BYTES,
            max_song_seconds: beats::DEFAULT_MAX_SONG_SECONDS,
        }
    }
}

/// What `upload_audio` answers and `get_audio/{id}/info` repeats; kept as the song's record.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AudioInfo {
    pub audio_id: String,
    /// The type `get_audio` serves it with: audio/mpeg, audio/aac, audio/mp4, audio/ogg,
    /// audio/webm or audio/flac.
    pub content_type: String,
    pub codec: SongCodec,
    /// Read from the frames (a VBR MP3 without a Xing header included).
    pub duration_seconds: f64,
    pub sample_rate: u32,
    pub channels: u16,
    /// Bytes.
    pub size: u64,
    // The beat analysis (`media::beats::BeatAnalysis`), field by field so the OpenAPI schema
    // stays one flat object. Each has a default: a record written before there was any analysis
    // reads as `analysis_version` 0 with no beats, and `record` adds a note saying so.
    /// The tempo in beats per minute; null without beats.
    #[serde(default)]
    pub tempo_bpm: Option<f64>,
    /// Beat times in seconds from the start of the song, ascending; empty when the song has no
    /// clear beat (`analysis_note` says why).
    #[serde(default)]
    pub beats: Vec<f64>,
    /// The beats that start a bar (a subset of `beats`).
    #[serde(default)]
    pub downbeats: Vec<f64>,
    /// Beats in a bar (3 or 4); null without downbeats.
    #[serde(default)]
    pub beats_per_bar: Option<u8>,
    /// How many seconds of the song were analysed: all of it, or the first `MV_MAX_SONG_SECONDS`.
    #[serde(default)]
    pub analysed_seconds: f64,
    /// Why `beats` is empty (silence, no clear beat, too short, Opus), or that only the start of a
    /// long song was analysed; null otherwise.
    #[serde(default)]
    pub analysis_note: Option<String>,
    /// Which analysis found them (0: none; bumped when the algorithm changes what it finds).
    #[serde(default)]
    pub analysis_version: u32,
}

/// What a song stored before beat analysis existed says of its beats.
const NOT_ANALYSED: &str = "this song was stored before beat analysis existed: upload it again for its beats";

/// The multipart form `upload_audio` takes, for the OpenAPI document (the handler streams it).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AudioUploadForm {
    /// The song's bytes.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Multipart bytes allowed around the song itself (part headers, other small fields).
pub(super) const MULTIPART_OVERHEAD: u64 = 64 * 1024;

#[utoipa::path(
    post,
    path = "/api/mv/upload_audio",
    tag = "files",
    request_body(
        description = "The song: multipart/form-data with one `file` part, or the raw bytes with an `audio/*` Content-Type. \
                       Its type is read from the bytes. Accepted: MP3, AAC (M4A or ADTS), Opus (Ogg or WebM), FLAC.",
        content(
            (AudioUploadForm = "multipart/form-data"),
            (Vec<u8> = "audio/mpeg"),
        ),
    ),
    responses(
        (status = 200, description = "Stored", body = AudioInfo),
        (status = 400, description = "Empty, cut, truncated or corrupt; or a multipart body without a `file` part", body = crate::error::ErrorBody),
        (status = 413, description = "Larger than MV_MAX_AUDIO_BYTES", body = crate::error::ErrorBody),
        (status = 415, description = "Not an accepted audio format (WAV, a video, an image, text), or a body that is neither multipart nor audio/*", body = crate::error::ErrorBody),
        (status = 503, description = "The store is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn upload_audio(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let limits = request.extensions().get::<AudioLimit>().copied().unwrap_or_default();
    let limit = limits.max_bytes;
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse().ok());
    if declared.is_some_and(|len: u64| len > limit + MULTIPART_OVERHEAD) {
        // Answered before any of the body is read; the connection closes rather than drain it.
        let mut response = too_large(limit).into_response();
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        return Ok(response);
    }
    let (parts, body) = request.into_parts();
    let body = song_body(&parts.headers, body, limit).await?;
    Ok(Json(store_song(&state, body, limits).await?).into_response())
}

/// Stores a song streamed in `body` within `limits`: put, probed, its beats analysed, its record
/// written; or refused, with nothing left stored. Also a project's song (`POST /api/mv/projects`).
pub(super) async fn store_song(state: &AppState, body: ByteStream, limits: AudioLimit) -> Result<AudioInfo, ApiError> {
    let limit = limits.max_bytes;
    let body = non_empty(body).await?;
    let put = state
        .storage
        .put_stream(Collection::Audio, limit, body)
        .await
        .map_err(|e| super::upload::upload_error(e, || too_large(limit)))?;

    let analysed = match probe_stored(state, &put.id).await {
        Ok(info) => analyse_stored(state, &put.id, &info, limits.max_song_seconds).await.map(|beats| (info, beats)),
        Err(err) => Err(song_error(err)),
    };
    match analysed {
        Ok((info, found)) => {
            let answer = AudioInfo {
                audio_id: put.id.clone(),
                content_type: put.content_type.to_string(),
                codec: info.codec,
                duration_seconds: info.duration_seconds,
                sample_rate: info.sample_rate,
                channels: info.channels,
                size: put.len,
                tempo_bpm: found.tempo_bpm,
                beats: found.beats,
                downbeats: found.downbeats,
                beats_per_bar: found.beats_per_bar,
                analysed_seconds: found.analysed_seconds,
                analysis_note: found.analysis_note,
                analysis_version: beats::ANALYSIS_VERSION,
            };
            let record = serde_json::to_vec(&answer).map_err(|e| ApiError::internal(e.to_string()))?;
            if let Err(e) = state.storage.put_record(Collection::Audio, &put.id, &record).await {
                discard(state, &put.id).await;
                return Err(e.into());
            }
            Ok(answer)
        }
        Err(err) => {
            discard(state, &put.id).await;
            Err(err)
        }
    }
}

/// The song's bytes: the `file` part of a multipart body, or a raw `audio/*` body.
async fn song_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<ByteStream, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = crate::media::essence(content_type);
    let raw = body.into_data_stream().map_err(std::io::Error::other);
    if essence == "multipart/form-data" {
        let boundary = multer::parse_boundary(content_type).map_err(|e| {
            ApiError::new(ErrorKind::InvalidBody, format!("multipart body: {e}"), json!("content-type"))
        })?;
        let constraints =
            multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit + MULTIPART_OVERHEAD));
        let mut multipart = multer::Multipart::with_constraints(raw, boundary, constraints);
        loop {
            match multipart.next_field().await {
                Ok(Some(field)) if field.name() == Some("file") => {
                    // The part owns the body stream's state; the multipart is kept alive beside it.
                    let part = field.map_err(multipart_io_error).map(move |chunk| {
                        let _ = &multipart;
                        chunk
                    });
                    return Ok(part.boxed());
                }
                // Any other field is read past, within the whole body's cap.
                Ok(Some(mut field)) => while field.chunk().await.map_err(|e| multipart_error(e, limit))?.is_some() {},
                Ok(None) => {
                    return Err(ApiError::new(
                        ErrorKind::ValidationError,
                        "the multipart body has no `file` part: send the song as the part named `file`",
                        json!({ "field": "file" }),
                    ));
                }
                Err(e) => return Err(multipart_error(e, limit)),
            }
        }
    } else if essence.starts_with("audio/") || essence == "application/octet-stream" {
        Ok(raw.boxed())
    } else {
        Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!(
                "send the song as multipart/form-data with a `file` part, or as the raw bytes with an audio/* \
                 Content-Type (got {:?}); accepted: {}",
                if essence.is_empty() { "none" } else { essence.as_str() },
                song::ACCEPTED
            ),
            json!("content-type"),
        ))
    }
}

/// The body, refused when it holds no byte at all: an empty upload is a mistake, not a format.
async fn non_empty(mut body: ByteStream) -> Result<ByteStream, ApiError> {
    loop {
        match body.next().await {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(chunk)) => return Ok(stream::once(async { Ok(chunk) }).chain(body).boxed()),
            Some(Err(e)) => return Err(super::upload::cut(&e)),
            None => {
                return Err(ApiError::new(
                    ErrorKind::ValidationError,
                    format!("the song is empty (no bytes were sent); accepted: {}", song::ACCEPTED),
                    json!({ "field": "file" }),
                ));
            }
        }
    }
}

/// Reads the stored song back once, from a blocking thread.
async fn probe_stored(state: &AppState, id: &str) -> Result<song::SongInfo, SongError> {
    let handle = tokio::runtime::Handle::current();
    let reader = BlockingReader::open(Arc::clone(&state.storage), Collection::Audio, id, handle)
        .await
        .map_err(|e| SongError::Io(std::io::Error::other(e)))?;
    tokio::task::spawn_blocking(move || {
        let len = reader.len();
        song::probe(SeekableSource::boxed(reader, len))
    })
    .await
    .map_err(|e| SongError::Io(std::io::Error::other(e)))?
}

/// The stored song's tempo and beats, from a blocking thread (it is decoded: about 0.3 s of CPU
/// for a 4-minute song, BENCHMARKS.md). A song whose audio cannot be decoded is refused like a
/// corrupt one; one with no beat is not refused, its analysis says why.
async fn analyse_stored(
    state: &AppState,
    id: &str,
    info: &song::SongInfo,
    max_seconds: u32,
) -> Result<BeatAnalysis, ApiError> {
    let unreadable =
        |e: String| ApiError::from(StorageError::Unavailable(format!("the stored song could not be read back ({e})")));
    let handle = tokio::runtime::Handle::current();
    let reader = BlockingReader::open(Arc::clone(&state.storage), Collection::Audio, id, handle)
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let info = info.clone();
    let analysed = tokio::task::spawn_blocking(move || {
        let len = reader.len();
        beats::analyse(SeekableSource::boxed(reader, len), &info, max_seconds)
    })
    .await
    .map_err(|e| unreadable(e.to_string()))?;
    analysed.map_err(|e| match e {
        BeatError::Io(io) => unreadable(io.to_string()),
        other => ApiError::new(
            ErrorKind::ValidationError,
            format!("{other}; accepted: {}", song::ACCEPTED),
            json!({ "field": "file" }),
        ),
    })
}

/// Removes a refused upload. A failure is only logged: without its record the file is never
/// served as a song anyway.
pub(super) async fn discard(state: &AppState, id: &str) {
    if let Err(e) = state.storage.delete(Collection::Audio, id).await {
        tracing::warn!(audio_id = id, error = %e, "a refused song could not be deleted; it has no record, so it is never served");
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("the song is larger than the {limit} bytes allowed (MV_MAX_AUDIO_BYTES)"),
        json!({ "limit_bytes": limit }),
    )
}

pub(super) fn multipart_io_error(e: multer::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// A multipart body's fault, past the song's cap its 413.
pub(super) fn multipart_error(e: multer::Error, limit: u64) -> ApiError {
    super::upload::multipart_error(e, || too_large(limit))
}

fn song_error(e: SongError) -> ApiError {
    match e {
        SongError::NotAccepted { .. } => {
            ApiError::new(ErrorKind::UnsupportedMediaType, e.to_string(), json!({ "field": "file" }))
        }
        SongError::Corrupt { .. } => {
            ApiError::new(ErrorKind::ValidationError, e.to_string(), json!({ "field": "file" }))
        }
        SongError::Io(io) => StorageError::Unavailable(format!("the stored song could not be read back ({io})")).into(),
    }
}

#[utoipa::path(
    get,
    path = "/api/mv/get_audio/{id}",
    tag = "files",
    params(
        ("id" = String, Path, description = "An audio id from upload_audio"),
        ("redirect" = Option<bool>, Query, description = "true: a 307 to a presigned URL when the store can sign one (S3); otherwise the file is served"),
    ),
    responses(
        (status = 200, description = "The song as uploaded", content_type = "audio/mpeg", body = Vec<u8>),
        (status = 206, description = "Part of the song (Range request)", content_type = "audio/mpeg", body = Vec<u8>),
        (status = 304, description = "Not modified (If-None-Match or If-Modified-Since)"),
        (status = 307, description = "`redirect=true` on an object store: Location is a presigned URL of the file"),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
        (status = 412, description = "Modified since If-Unmodified-Since", body = crate::error::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = crate::error::ErrorBody),
    )
)]
pub async fn get_audio(
    State(state): State<Arc<AppState>>,
    ValidPath(id): ValidPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let redirect = redirect_param(request.uri().query())?;
    record(&state, &id).await?;
    serve_or_redirect(&state, Collection::Audio, &id, redirect, request).await
}

#[utoipa::path(
    get,
    path = "/api/mv/get_audio/{id}/info",
    tag = "files",
    params(("id" = String, Path, description = "An audio id from upload_audio")),
    responses(
        (status = 200, description = "What the upload found: codec, duration, rate, channels", body = AudioInfo),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
    )
)]
pub async fn get_audio_info(
    State(state): State<Arc<AppState>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    Ok(Json(record(&state, &id).await?).into_response())
}

/// The song's record: what makes a stored file a song.
async fn record(state: &AppState, id: &str) -> Result<AudioInfo, ApiError> {
    let id = crate::storage::parse_id(id)?;
    let bytes = state
        .storage
        .record(Collection::Audio, &id)
        .await?
        .ok_or_else(|| ApiError::from(StorageError::NotFound(id.clone())))?;
    let mut info: AudioInfo = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::internal(format!("the record of song {id} is unreadable: {e}")))?;
    if info.analysis_version == 0 && info.analysis_note.is_none() {
        info.analysis_note = Some(NOT_ANALYSED.to_string());
    }
    Ok(info)
}
