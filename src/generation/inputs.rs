//! Request values as the service mvgen replaces read them, so the same request sends the same bytes
//! upstream: every string stripped of surrounding whitespace (Python's `str.strip`), an optional
//! value that is `null`, `""` or only whitespace meaning "not given". The checks every kind's
//! `validate` shares (required text, ranges, choices, seeds), each stripping as it checks, and the
//! fields that came from that service: `project_id`, `sequence` and `reference_image_base64`.

use base64::Engine;
use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::media::sniff_media_type;
use crate::model::Choice;
use crate::prompts::py_strip;
use crate::providers::Media;

/// A required string, stripped (blank is then refused by `required`).
pub fn text(value: String) -> String {
    match py_strip(&value) {
        s if s.len() == value.len() => value,
        s => s.to_string(),
    }
}

/// An optional string, stripped; empty after stripping is "not given".
pub fn optional(value: Option<String>) -> Option<String> {
    value.map(text).filter(|s| !s.is_empty())
}

/// A required text field, stripped: it must not be blank.
pub fn required(field: &str, value: String) -> Result<String, ApiError> {
    let value = text(value);
    if value.trim().is_empty() { Err(ApiError::invalid(field, "must not be empty")) } else { Ok(value) }
}

/// An optional integer field within `min..=max`.
pub fn in_range(field: &str, value: Option<i64>, (min, max): (u32, u32)) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) if (i64::from(min)..=i64::from(max)).contains(&v) => {
            u32::try_from(v).map(Some).map_err(|_| ApiError::invalid(field, format!("must be in {min}..={max}")))
        }
        Some(v) => Err(ApiError::invalid(field, format!("must be in {min}..={max}, got {v}"))),
    }
}

/// An optional enum field given as its wire spelling, stripped (blank is not given).
pub fn choice<T: Choice>(field: &str, value: Option<String>) -> Result<Option<T>, ApiError> {
    match optional(value) {
        None => Ok(None),
        Some(s) => T::parse(&s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(field, format!("expected one of {}, got {s:?}", T::spellings()))),
    }
}

/// Seeds are passed to the models as unsigned 32-bit integers.
pub fn seed(value: Option<i64>) -> Result<Option<i64>, ApiError> {
    in_range("seed", value, (0, u32::MAX)).map(|s| s.map(i64::from))
}

/// `project_id`: a UUID when given, echoed back in its canonical form. Checked before any model
/// call, as it was there.
pub fn project_id(value: Option<String>) -> Result<Option<String>, ApiError> {
    match optional(value) {
        None => Ok(None),
        Some(s) => match uuid::Uuid::try_parse(&s) {
            Ok(id) => Ok(Some(id.hyphenated().to_string())),
            Err(_) => Err(ApiError::invalid("project_id", "Invalid project_id format: expected a UUID")),
        },
    }
}

/// `project_id` and `sequence` (an integer ≥ 1) for a video: both or neither.
pub fn project_and_sequence(
    project: Option<String>,
    sequence: Option<i64>,
) -> Result<(Option<String>, Option<u32>), ApiError> {
    let project = project_id(project)?;
    let sequence = match sequence {
        None => None,
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::invalid("sequence", format!("must be an integer >= 1, got {n}")))?,
        ),
    };
    match (&project, sequence) {
        (Some(_), None) => Err(ApiError::invalid("sequence", "project_id and sequence must be provided together")),
        (None, Some(_)) => Err(ApiError::invalid("project_id", "project_id and sequence must be provided together")),
        _ => Ok((project, sequence)),
    }
}

/// Now, as RFC 3339 in UTC with milliseconds: `2026-01-31T12:00:00.123Z`.
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The largest reference image accepted, decoded. The 1 MiB body limit bounds it first (base64
/// makes 4 bytes of 3), so this only matters if that limit is raised.
pub const REFERENCE_IMAGE_LIMIT: usize = 8 * 1024 * 1024;

/// `reference_image_base64`: base64 (standard alphabet, or a `data:image/...;base64,` URI) of a PNG,
/// JPEG or WebP file, recognised by its first bytes (the stored image types, as downloads are),
/// never by what the caller claims.
pub fn reference_image(value: Option<String>) -> Result<Option<Media>, ApiError> {
    const FIELD: &str = "reference_image_base64";
    let Some(text) = optional(value) else { return Ok(None) };
    let payload = match text.strip_prefix("data:") {
        Some(rest) => rest.split_once(";base64,").map(|(_, data)| data).ok_or_else(|| {
            ApiError::invalid(FIELD, "a data: URI must be base64-encoded (data:image/png;base64,...)")
        })?,
        None => text.as_str(),
    };
    if payload.len() / 4 * 3 > REFERENCE_IMAGE_LIMIT {
        return Err(too_large());
    }
    // Line breaks (as `base64` the tool writes them) are not part of the data.
    let compact: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| ApiError::invalid(FIELD, format!("is not valid base64 ({e})")))?;
    if bytes.len() > REFERENCE_IMAGE_LIMIT {
        return Err(too_large());
    }
    let content_type = sniff_media_type(&bytes).filter(|t| t.starts_with("image/")).ok_or_else(|| {
        ApiError::new(ErrorKind::ValidationError, format!("{FIELD}: is not a PNG, JPEG or WebP image"), json!(FIELD))
    })?;
    Ok(Some(Media { bytes, content_type: content_type.to_string() }))
}

fn too_large() -> ApiError {
    ApiError::invalid(
        "reference_image_base64",
        format!("the image is larger than {} MiB", REFERENCE_IMAGE_LIMIT / (1024 * 1024)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn strings_are_stripped_and_blank_optionals_are_not_given() {
        assert_eq!(text("  A robot walks.  \n".into()), "A robot walks.");
        assert_eq!(optional(Some(" \t\n".into())), None);
        assert_eq!(optional(Some("".into())), None);
        assert_eq!(optional(Some(" 9:16 ".into())).as_deref(), Some("9:16"));
        assert_eq!(optional(None), None);
    }

    #[test]
    fn project_ids_are_uuids_and_sequences_come_with_them() {
        let id = "3F2B6C1E-8F0A-4D2B-9C51-0E4F1A2B3C4D";
        assert_eq!(project_id(Some(id.into())).expect("uuid").as_deref(), Some("3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d"));
        assert_eq!(project_id(Some(" ".into())).expect("blank"), None);
        let e = project_id(Some("project-1".into())).expect_err("not a uuid");
        assert_eq!(e.details, json!("project_id"));
        assert!(e.message.contains("Invalid project_id format"));
        assert_eq!(project_and_sequence(Some(id.into()), Some(2)).expect("both").1, Some(2));
        assert_eq!(project_and_sequence(None, None).expect("neither"), (None, None));
        for (p, s, field) in
            [(None, Some(1), "project_id"), (Some(id), None, "sequence"), (Some(id), Some(0), "sequence")]
        {
            let e = project_and_sequence(p.map(String::from), s).expect_err("refused");
            assert_eq!(e.details, json!(field), "{p:?} {s:?}");
        }
    }

    #[test]
    fn reference_images_are_recognised_by_their_bytes() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        let media = reference_image(Some(b64(png))).expect("png").expect("given");
        assert_eq!((media.content_type.as_str(), media.bytes.as_slice()), ("image/png", &png[..]));
        let uri = format!("data:image/png;base64,{}", b64(b"\xFF\xD8\xFFjpeg"));
        assert_eq!(reference_image(Some(uri)).expect("data uri").expect("given").content_type, "image/jpeg");
        let webp = reference_image(Some(b64(b"RIFF\x00\x00\x00\x00WEBPVP8 "))).expect("webp").expect("given");
        assert_eq!(webp.content_type, "image/webp");
        assert_eq!(reference_image(Some("  ".into())).expect("blank"), None);
        for bad in [b64(b"GIF89a..."), "not base64!".to_string(), "data:image/png,raw".to_string()] {
            let e = reference_image(Some(bad.clone())).expect_err("refused");
            assert_eq!((e.status().as_u16(), e.details.clone()), (400, json!("reference_image_base64")), "{bad}");
        }
    }
}
