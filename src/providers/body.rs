//! Reading an upstream answer's body without trusting its size: [`read_limited`] stops at a limit
//! (a larger `Content-Length` before reading anything), so an oversized or endless answer never sits
//! in memory whole; with the answer's media type and the sizes its messages name. It decodes nothing.

use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, HeaderMap};

/// Why [`read_limited`] stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The body is longer than the limit; nothing beyond the limit was buffered.
    TooLarge,
    /// Reading the body failed: the connection broke or the attempt timed out.
    Transport(reqwest::Error),
}

/// Reads a body chunk by chunk and stops as soon as it would exceed `limit` bytes, so an oversized
/// (or endless) answer never sits in memory whole.
pub async fn read_limited(response: &mut Response, limit: u64) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|len| len > limit) {
        return Err(ReadError::TooLarge);
    }
    let capacity = response.content_length().unwrap_or(0).min(limit).min(MAX_PREALLOCATION);
    let mut bytes = Vec::with_capacity(capacity as usize);
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A lying `Content-Length` must not make us reserve the full limit up front.
const MAX_PREALLOCATION: u64 = 16 * 1024 * 1024;

/// The media type of a response (`image/png`), lowercased and without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = crate::media::essence(value);
    (!essence.is_empty()).then_some(essence)
}

/// `200 MiB`, `512 KiB`, `1000 bytes`: for size-limit messages.
pub fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn media_type_drops_parameters() {
        let mut headers = HeaderMap::new();
        assert_eq!(media_type(&headers), None);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("Video/MP4; charset=binary"));
        assert_eq!(media_type(&headers).as_deref(), Some("video/mp4"));
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(human_bytes(512 * 1024), "512 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
