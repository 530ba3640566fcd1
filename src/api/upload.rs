//! Uploads of one file as the `file` part of a multipart form (their UI's `upload_character_reference`
//! and a scene's `upload_video`): the part streamed into the store, never whole in memory, capped,
//! its type read from its bytes by the store.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::state::AppState;
use crate::storage::{ByteStream, Collection, Put, StorageError};

/// The largest character reference image (as theirs: 10 MB).
pub const MAX_IMAGE_BYTES: u64 = 10 * 1024 * 1024;
/// The largest uploaded scene video (as theirs: 100 MB).
pub const MAX_VIDEO_BYTES: u64 = 100 * 1024 * 1024;
/// Multipart bytes allowed around the file (part headers, other small fields).
const OVERHEAD: u64 = 64 * 1024;

/// What the `file` part said of itself.
pub struct Part {
    pub filename: Option<String>,
    pub content_type: Option<String>,
}

/// Streams the `file` part of `request` (a multipart form) into the store as a new file of
/// `kind`, at most `limit` bytes. `expected`: the declared type's prefix their service checked
/// (`image/`, `video/`), refused before anything is stored.
pub async fn store_file_part(
    state: &AppState,
    request: Request,
    kind: Collection,
    limit: u64,
    expected: &str,
) -> Result<(Put, Part), ApiError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if crate::media::essence(content_type) != "multipart/form-data" {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "send the file as multipart/form-data, in the part named `file`",
            json!("content-type"),
        ));
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| ApiError::new(ErrorKind::InvalidBody, format!("multipart body: {e}"), json!("content-type")))?;
    let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit + OVERHEAD));
    let raw = request.into_body().into_data_stream().map_err(std::io::Error::other);
    let mut multipart = multer::Multipart::with_constraints(raw, boundary, constraints);
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                return Err(ApiError::new(
                    ErrorKind::ValidationError,
                    "the multipart body has no `file` part",
                    json!({ "field": "file" }),
                ));
            }
            Err(e) => return Err(multipart_error(e, || too_large(limit))),
        };
        if field.name() != Some("file") {
            while field.chunk().await.map_err(|e| multipart_error(e, || too_large(limit)))?.is_some() {}
            continue;
        }
        let part = Part {
            filename: field.file_name().map(str::to_owned),
            content_type: field.content_type().map(|m| m.essence_str().to_owned()),
        };
        if !part.content_type.as_deref().is_some_and(|t| t.starts_with(expected)) {
            return Err(ApiError::new(
                ErrorKind::ValidationError,
                format!(
                    "Invalid file type: expected {expected}*, got {}",
                    part.content_type.as_deref().unwrap_or("none")
                ),
                json!({ "field": "file" }),
            ));
        }
        let stream: ByteStream = field.map_err(std::io::Error::other).boxed();
        let put =
            state.storage.put_stream(kind, limit, stream).await.map_err(|e| upload_error(e, || too_large(limit)))?;
        return Ok((put, part));
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("File too large: at most {limit} bytes"),
        json!({ "field": "file", "limit_bytes": limit }),
    )
}

/// A multipart body's fault as the caller's error: past its cap `too_large`, else malformed. Songs
/// (`audio`) and files (here) share it, each with its own 413.
pub(super) fn multipart_error(e: multer::Error, too_large: impl FnOnce() -> ApiError) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => too_large(),
        other => ApiError::new(ErrorKind::InvalidBody, format!("multipart body: {other}"), serde_json::Value::Null),
    }
}

/// An upload cut before its end.
pub(super) fn cut(e: &std::io::Error) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidBody,
        format!("the upload was cut before its end ({e}); nothing was stored"),
        serde_json::Value::Null,
    )
}

/// A streamed put's failure, as the uploader's error where it is theirs (`too_large` past the cap).
pub(super) fn upload_error(e: StorageError, too_large: impl FnOnce() -> ApiError) -> ApiError {
    match e {
        StorageError::TooLarge { .. } => too_large(),
        StorageError::Rejected(message) => {
            ApiError::new(ErrorKind::UnsupportedMediaType, message, json!({ "field": "file" }))
        }
        StorageError::Interrupted(io) => match io.get_ref().and_then(|inner| inner.downcast_ref::<multer::Error>()) {
            Some(multer::Error::StreamSizeExceeded { .. }) => too_large(),
            _ => cut(&io),
        },
        other => other.into(),
    }
}

/// `upload_character_reference`'s answer (their fields).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImageUploaded {
    pub image_id: String,
    /// `/api/mv/get_character_reference/{id}`.
    pub image_url: String,
    pub filename: Option<String>,
    pub content_type: String,
    pub file_size: u64,
}

/// `POST /api/mv/upload_character_reference`: an image (`file`, `image/*`, at most 10 MB) stored as
/// a character reference → `{image_id, image_url, filename, content_type, file_size}`.
#[utoipa::path(
    post, path = "/api/mv/upload_character_reference", tag = "files",
    request_body(description = "multipart/form-data with the image as the `file` part (image/*: PNG, JPEG or WebP, at most 10 MB)",
        content((String = "multipart/form-data"))),
    responses(
        (status = 200, description = "Stored", body = ImageUploaded),
        (status = 400, description = "No `file` part, or not declared image/*", body = crate::error::ErrorBody),
        (status = 401, description = "A valid API key is required", body = crate::error::UnauthorizedBody),
        (status = 413, description = "Larger than 10 MB", body = crate::error::ErrorBody),
        (status = 415, description = "Not multipart, or the bytes are not PNG, JPEG or WebP", body = crate::error::ErrorBody),
        (status = 503, description = "The store is unavailable", body = crate::error::ErrorBody),
    )
)]
pub async fn upload_character_reference(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (put, part) =
        store_file_part(&state, request, Collection::CharacterReference, MAX_IMAGE_BYTES, "image/").await?;
    let answer = ImageUploaded {
        image_url: format!("/api/mv/get_character_reference/{}", put.id),
        image_id: put.id,
        filename: part.filename,
        content_type: put.content_type.to_string(),
        file_size: put.len,
    };
    Ok(Json(answer).into_response())
}
