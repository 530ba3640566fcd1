//! `GET /api/mv/get_character_reference/{id}` and `GET /api/mv/get_video/{id}`: stored files, with
//! Range support (so a `<video>` element can seek), conditional requests and the right content type.
//! Only regular files reached without links are served (see `Storage::open`).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use super::extract::ValidPath;
use super::send_file::send_file;
use crate::storage::Kind;

#[utoipa::path(
    get,
    path = "/api/mv/get_character_reference/{id}",
    tag = "files",
    params(("id" = String, Path, description = "An image id from generate_character_reference")),
    responses(
        (status = 200, description = "The image", content_type = "image/png", body = Vec<u8>),
        (status = 206, description = "Part of the image (Range request)", content_type = "image/png", body = Vec<u8>),
        (status = 304, description = "Not modified since If-Modified-Since"),
        (status = 400, description = "Malformed id", body = super::error::ErrorBody),
        (status = 404, description = "Unknown id", body = super::error::ErrorBody),
        (status = 412, description = "Modified since If-Unmodified-Since", body = super::error::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = super::error::ErrorBody),
    )
)]
pub async fn get_character_reference(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&state, Kind::CharacterReference, &id, request).await
}

#[utoipa::path(
    get,
    path = "/api/mv/get_video/{id}",
    tag = "files",
    params(("id" = String, Path, description = "A video id from generate_video")),
    responses(
        (status = 200, description = "The video", content_type = "video/mp4", body = Vec<u8>),
        (status = 206, description = "Part of the video (Range request)", content_type = "video/mp4", body = Vec<u8>),
        (status = 304, description = "Not modified since If-Modified-Since"),
        (status = 400, description = "Malformed id", body = super::error::ErrorBody),
        (status = 404, description = "Unknown id", body = super::error::ErrorBody),
        (status = 412, description = "Modified since If-Unmodified-Since", body = super::error::ErrorBody),
        (status = 416, description = "Range not satisfiable", body = super::error::ErrorBody),
    )
)]
pub async fn get_video(
    State(state): State<AppState>,
    ValidPath(id): ValidPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&state, Kind::Video, &id, request).await
}

async fn serve(state: &AppState, kind: Kind, id: &str, request: Request) -> Result<Response, ApiError> {
    // Opened only as a regular file reached without links (storage checks), then sent with Range
    // and conditional requests as RFC 9110 has them.
    let opened = state.storage.open(kind, id).await?;
    let mut response = send_file(opened, request.method(), request.headers()).await?;
    // Ids are never reused, so a stored file never changes; errors must not be cached that long.
    let status = response.status();
    if status.is_success() || status == axum::http::StatusCode::NOT_MODIFIED {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    }
    Ok(response)
}
