//! Per-request memory bounds: how long a text field may be, how big a reference image may be, and
//! how many generations may run at once (each may hold a downloaded video in memory).

use std::sync::Arc;

use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ErrorKind};

/// The longest text field accepted, in characters: far above any real prompt, and it keeps one
/// request from growing into a many-megabyte prompt or mock answer. The OpenAPI `maxLength` of each
/// text field repeats it as a literal (utoipa's attribute takes no path); a test in
/// `tests/http/api.rs` fails if the two differ.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// The largest character reference read into memory and sent with a video request.
pub const MAX_REFERENCE_BYTES: u64 = 20 * 1024 * 1024;

/// The largest song `upload_audio` stores by default (`MV_MAX_AUDIO_BYTES`): a 4-minute FLAC at
/// CD quality is about 30 MB, an MP3 a tenth of that.
pub const DEFAULT_MAX_AUDIO_BYTES: u64 = 50 << 20;

/// What a caller told "too many generations" should wait before trying again.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// Every named text field must be at most [`MAX_TEXT_CHARS`] characters and hold no NUL byte (400
/// naming the first that does not). A NUL is in no real prompt, and PostgreSQL cannot store one in
/// text: refused here, a job's input is refused alike on both engines instead of a 503 on one.
pub fn bounded_texts(fields: &[(&str, Option<&str>)]) -> Result<(), ApiError> {
    for (field, value) in fields {
        if value.is_some_and(|v| v.contains('\0')) {
            return Err(ApiError::invalid(field, "must not contain a NUL byte (U+0000)"));
        }
        if let Some(value) = value
            && value.char_indices().nth(MAX_TEXT_CHARS).is_some()
        {
            let chars = value.chars().count();
            return Err(ApiError::invalid(field, format!("must be at most {MAX_TEXT_CHARS} characters, got {chars}")));
        }
    }
    Ok(())
}

/// The cap on generations running at once (`MV_MAX_CONCURRENT_GENERATIONS`).
#[derive(Clone, Debug)]
pub struct GenerationSlots {
    semaphore: Arc<Semaphore>,
    limit: usize,
}

impl GenerationSlots {
    pub fn new(limit: usize) -> Self {
        GenerationSlots { semaphore: Arc::new(Semaphore::new(limit)), limit }
    }

    /// A slot held until the returned permit drops, or a 503 with `Retry-After` at once: waiting
    /// for a slot would only hold the caller's connection for minutes of someone else's renders.
    pub fn take(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.semaphore.clone().try_acquire_owned().map_err(|_| {
            ApiError::new(
                ErrorKind::TooManyGenerations,
                format!(
                    "{} generations are already running, the most this server runs at once; try again shortly",
                    self.limit
                ),
                json!({ "limit": self.limit, "retry_after_seconds": BUSY_RETRY_AFTER_SECS }),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn texts_are_bounded_in_characters_not_bytes() {
        let at_limit = "é".repeat(MAX_TEXT_CHARS);
        assert!(bounded_texts(&[("idea", Some(&at_limit)), ("camera_angle", None)]).is_ok());
        let over = "x".repeat(MAX_TEXT_CHARS + 1);
        let err = bounded_texts(&[("idea", Some("short")), ("camera_angle", Some(&over))]).expect_err("too long");
        assert_eq!((err.status(), err.details), (StatusCode::BAD_REQUEST, json!("camera_angle")));
    }

    #[test]
    fn texts_hold_no_nul_byte() {
        let err = bounded_texts(&[("idea", Some("fine")), ("prompt", Some("a\0b"))]).expect_err("NUL");
        assert_eq!((err.status(), err.details), (StatusCode::BAD_REQUEST, json!("prompt")));
    }

    #[test]
    fn slots_are_refused_past_the_limit_and_come_back() {
        let slots = GenerationSlots::new(1);
        let held = slots.take().expect("first");
        let refused = slots.take().expect_err("second");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        assert!(slots.take().is_ok());
    }
}
