//! `GET /api/mv/get_character_reference/{id}`, `GET /api/mv/get_video/{id}` and
//! `GET /api/mv/get_scenes/{id}`: stored files, with Range support (so a `<video>` element can
//! seek), conditional requests and the right content type. Only regular files reached without links are
//! served (see `Storage::open`). Also `GET /api/mv/get_video/{id}/info`
//! and `GET /api/mv/get_scenes/{id}/markdown`.
//!
//! Scenes a job keeps in its row (every scenes job this build runs) are answered from the row; the
//! other ids are files in the store (see `generation::scenes`).
//!
//! `?redirect=true|false` is accepted on the image and video routes, as the service mvgen replaces
//! took it: `true` asks for a redirect to a cloud copy. On an object store that can sign URLs (S3)
//! that is a 307 to a presigned GET, so the bytes go from the store to the client directly; on
//! `file://` the file itself is served, as with `false`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::extract::ValidPath;
use super::send_file::send_file;
use crate::error::{ApiError, ErrorKind};
use crate::generation::Kind;
use crate::generation::video::VideoRecord;
use crate::jobs::Jobs;
use crate::state::AppState;
use crate::storage::Collection;

#[utoipa::path(
    get,
    path = "/api/mv/get_character_reference/{id}",
    tag = "files",
    params(
        ("id" = String, Path, description = "An image id from generate_character_reference"),
        ("redirect" = Option<bool>, Query, description = "true: a 307 to a presigned URL when the store can sign one (S3); otherwise the file is served"),
    ),
    responses(
        (status = 200, description = "The image", content_type = "image/png", body = Vec<u8>),
        (status = 206, description = "Part of the image (Range request)", content_type = "image/png", body = Vec<u8>),
        (status = 304, description = "Not modified (If-None-Match or If-Modified-Since)"),
        (status = 307, description = "`redirect=true` on an object store: Location is a presigned URL of the file"),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
        (status = 412, description = "Modified since If-Unmodified-Since", body = crate::error::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = crate::error::ErrorBody),
    )
)]
pub async fn get_character_reference(
    State(state): State<Arc<AppState>>,
    ValidPath(id): ValidPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let redirect = redirect_param(request.uri().query())?;
    serve_or_redirect(&state, Collection::CharacterReference, &id, redirect, request).await
}

#[utoipa::path(
    get,
    path = "/api/mv/get_video/{id}",
    tag = "files",
    params(
        ("id" = String, Path, description = "A video id from generate_video"),
        ("redirect" = Option<bool>, Query, description = "true: a 307 to a presigned URL when the store can sign one (S3); otherwise the file is served"),
    ),
    responses(
        (status = 200, description = "The video", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "Part of the video (Range request)", content_type = "video/mp4", body = Vec<u8>),
        (status = 304, description = "Not modified (If-None-Match or If-Modified-Since)"),
        (status = 307, description = "`redirect=true` on an object store: Location is a presigned URL of the file"),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
        (status = 412, description = "Modified since If-Unmodified-Since", body = crate::error::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = crate::error::ErrorBody),
    )
)]
pub async fn get_video(
    State(state): State<Arc<AppState>>,
    ValidPath(id): ValidPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let redirect = redirect_param(request.uri().query())?;
    serve_or_redirect(&state, Collection::Video, &id, redirect, request).await
}

#[utoipa::path(
    get,
    path = "/api/mv/get_scenes/{id}",
    tag = "files",
    params(("id" = String, Path, description = "An id from create_scenes' `output_files`")),
    responses(
        (status = 200, description = "The scenes: `{\"scenes\": [...], \"metadata\": {...}}`", content_type = "application/json", body = Object),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
    )
)]
pub async fn get_scenes(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    ValidPath(id): ValidPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    if let Some(document) = scenes_in_job(jobs.as_deref(), &id).await? {
        let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, IMMUTABLE)];
        return Ok((headers, document).into_response());
    }
    serve(&state, Collection::Scenes, &id, request).await
}

#[utoipa::path(
    get,
    path = "/api/mv/get_scenes/{id}/markdown",
    tag = "files",
    params(("id" = String, Path, description = "An id from create_scenes' `output_files`")),
    responses(
        (status = 200, description = "The scenes as Markdown", content_type = "text/markdown", body = String),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
    )
)]
pub async fn get_scenes_markdown(
    State(state): State<Arc<AppState>>,
    jobs: Option<Extension<Arc<Jobs>>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Response, ApiError> {
    let bytes = match scenes_in_job(jobs.as_deref(), &id).await? {
        Some(document) => document,
        None => {
            let mut opened = state.storage.open(Collection::Scenes, &id).await?;
            let mut bytes = Vec::with_capacity(usize::try_from(opened.len).unwrap_or(0));
            opened.file.read_to_end(&mut bytes).await.map_err(crate::storage::StorageError::from)?;
            bytes
        }
    };
    let text = crate::generation::scenes::markdown(&bytes)
        .ok_or_else(|| ApiError::internal(format!("stored scenes {id} could not be read back")))?;
    Ok(([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], text).into_response())
}

/// The scenes document job `id` keeps in its row (see `generation::scenes`), when this server
/// runs a job engine and that job is a succeeded scenes job that kept them there. `None` sends the
/// caller to the store, where scenes are a file: stored by a build before 2026-12-06, by a run
/// outside the job engine, or by the purge of their job, which writes the file before it deletes
/// the row (so a row missed here is a file found there).
async fn scenes_in_job(jobs: Option<&Arc<Jobs>>, id: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(jobs) = jobs else {
        return Ok(None);
    };
    // Malformed ids are the store's 400, before any query.
    let id = crate::storage::parse_id(id)?;
    let output = jobs.store().succeeded_output(&id, Kind::Scenes).await.map_err(|e| {
        tracing::warn!(error = %e, "jobs database unavailable");
        ApiError::new(
            ErrorKind::DatabaseUnavailable,
            "the jobs database, which keeps recent scenes, is unavailable; retry shortly",
            json!({ "retry_after_seconds": 5 }),
        )
    })?;
    Ok(output.and_then(|output| crate::generation::scenes::kept_in_job(&id, &output)))
}

/// Ids are never reused, so what one names never changes; errors must not be cached that long.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";

/// What `get_video/{id}/info` says about a stored video.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VideoInfo {
    pub video_id: String,
    pub video_url: String,
    /// Bytes.
    pub size: u64,
    pub content_type: String,
    /// When it was made, RFC 3339 in UTC.
    pub created: String,
    /// Whether the mock provider made it; null for a file stored without a record.
    pub is_mock: Option<bool>,
    pub backend_used: Option<String>,
    pub model_used: Option<String>,
    /// The flavor the video was made with and its content hash then; null without a record.
    pub config_flavor: Option<String>,
    pub config_flavor_hash: Option<String>,
    pub project_id: Option<String>,
    pub sequence: Option<u32>,
    /// A final cut's length in seconds (null for a scene clip).
    pub duration_seconds: Option<f64>,
    /// The clips a final cut was cut from, with their effective trims (null for a scene clip).
    pub cut_from: Option<Vec<crate::generation::video::CutClip>>,
}

#[utoipa::path(
    get,
    path = "/api/mv/get_video/{id}/info",
    tag = "files",
    params(("id" = String, Path, description = "A video id from generate_video")),
    responses(
        (status = 200, description = "About the stored video", body = VideoInfo),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 404, description = "Unknown id", body = crate::error::ErrorBody),
    )
)]
pub async fn get_video_info(
    State(state): State<Arc<AppState>>,
    ValidPath(id): ValidPath<String>,
) -> Result<Json<VideoInfo>, ApiError> {
    let opened = state.storage.open(Collection::Video, &id).await?;
    // A record that can't be read or parsed only costs the answer its details.
    let record: Option<VideoRecord> = match state.storage.record(Collection::Video, &id).await {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
        _ => None,
    };
    let created = match (&record, opened.modified) {
        (Some(r), _) => r.created.clone(),
        (None, Some(time)) => humantime::format_rfc3339_millis(time).to_string(),
        (None, None) => String::new(),
    };
    Ok(Json(VideoInfo {
        video_url: format!("/api/mv/get_video/{id}"),
        video_id: id,
        size: opened.len,
        content_type: opened.content_type.to_string(),
        created,
        is_mock: record.as_ref().map(|r| r.is_mock),
        backend_used: record.as_ref().map(|r| r.backend.clone()),
        model_used: record.as_ref().map(|r| r.model.clone()),
        config_flavor: record.as_ref().map(|r| r.config_flavor.clone()),
        config_flavor_hash: record.as_ref().map(|r| r.config_flavor_hash.clone()).filter(|h| !h.is_empty()),
        project_id: record.as_ref().and_then(|r| r.project_id.clone()),
        sequence: record.as_ref().and_then(|r| r.sequence),
        duration_seconds: record.as_ref().and_then(|r| r.duration_seconds),
        cut_from: record.and_then(|r| r.cut_from),
    }))
}

/// `?redirect=` must be `true` or `false` when present; whether it asked for a redirect.
pub(super) fn redirect_param(query: Option<&str>) -> Result<bool, ApiError> {
    let value = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("redirect="));
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::invalid("redirect", "must be true or false")),
    }
}

/// How long a presigned URL from `?redirect=true` stays valid: long enough for a player to fetch
/// a video in ranges, short enough that a leaked link soon stops working.
const SIGNED_URL_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A 307 to a presigned URL when one was asked for and the store can sign it; the file otherwise.
pub(super) async fn serve_or_redirect(
    state: &AppState,
    kind: Collection,
    id: &str,
    redirect: bool,
    request: Request,
) -> Result<Response, ApiError> {
    if redirect && let Some(url) = state.storage.signed_url(kind, id, SIGNED_URL_TTL).await? {
        let location = HeaderValue::from_str(&url).map_err(|e| ApiError::internal(e.to_string()))?;
        // Signed for a while only: neither the redirect nor its URL may be cached past that.
        let headers = [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))];
        return Ok((StatusCode::TEMPORARY_REDIRECT, headers).into_response());
    }
    serve(state, kind, id, request).await
}

async fn serve(state: &AppState, kind: Collection, id: &str, request: Request) -> Result<Response, ApiError> {
    // Opened only as a regular file reached without links (storage checks), then sent with Range
    // and conditional requests as RFC 9110 has them.
    let opened = state.storage.open(kind, id).await?;
    let mut response = send_file(opened, request.method(), request.headers()).await?;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    }
    Ok(response)
}
