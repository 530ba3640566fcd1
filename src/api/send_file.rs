//! Sends an opened stored file with the conditional and range semantics of RFC 9110: `HEAD`,
//! `Range` (one byte range), `If-Range`, `If-None-Match`, `If-Modified-Since` and
//! `If-Unmodified-Since`. The bytes come from the store as a stream (`Opened::into_range`): a
//! seek on a local file, a ranged GET on an object store.
//!
//! tower-http's `ServeFile` did this before, but it opens by path (following links) and departs
//! from the RFC where it matters to players and caches: it honoured `Range` whatever `If-Range`
//! said, answered 416 to a `Range` it could not parse instead of ignoring it, and took an
//! `If-Modified-Since` in the future as "not modified".
//!
//! The ETag is the store's (an object's ETag; on `file://`, length and modification time).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::storage::Opened;

/// The answer to a GET or HEAD of `opened`, given the request's headers.
pub async fn send_file(opened: Opened, method: &Method, headers: &HeaderMap) -> Result<Response, ApiError> {
    let len = opened.len;
    // HTTP dates carry whole seconds: compare at that precision.
    let modified = opened.modified.map(whole_seconds);
    let mut common = HeaderMap::new();
    common.insert(header::CONTENT_TYPE, HeaderValue::from_static(opened.content_type));
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(value) = modified.and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok()) {
        common.insert(header::LAST_MODIFIED, value);
    }
    let etag = opened.etag.as_deref().filter(|tag| HeaderValue::from_str(tag).is_ok());
    if let Some(tag) = etag.and_then(|tag| HeaderValue::from_str(tag).ok()) {
        common.insert(header::ETAG, tag);
    }

    // RFC 9110 13.2.2: If-Unmodified-Since, then (without If-None-Match) If-Modified-Since.
    if let (Some(since), Some(modified)) = (date(headers, header::IF_UNMODIFIED_SINCE), modified)
        && modified > since
    {
        let error = ApiError::new(
            ErrorKind::PreconditionFailed,
            "the file was modified after If-Unmodified-Since",
            json!("if-unmodified-since"),
        );
        return Ok(error.into_response());
    }
    // If-None-Match (weak comparison, RFC 9110 13.1.2); its presence disables If-Modified-Since.
    let get_or_head = method == Method::GET || method == Method::HEAD;
    if get_or_head && headers.get(header::IF_NONE_MATCH).is_some_and(|v| none_match_hits(v, etag)) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    if get_or_head
        && !headers.contains_key(header::IF_NONE_MATCH)
        && let (Some(since), Some(modified)) = (date(headers, header::IF_MODIFIED_SINCE), modified)
        // A date in the future is not a valid validator (RFC 9110 13.1.3): ignored.
        && since <= SystemTime::now()
        && modified <= since
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }

    let range = if method == Method::GET && if_range_allows(headers, modified, etag) {
        byte_range(headers.get(header::RANGE), len)
    } else {
        Range::Whole
    };
    let (status, start, count) = match range {
        Range::Whole => (StatusCode::OK, 0, len),
        Range::Part { first, last } => {
            let value = format!("bytes {first}-{last}/{len}");
            common.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&value).map_err(|e| ApiError::internal(e.to_string()))?,
            );
            (StatusCode::PARTIAL_CONTENT, first, last - first + 1)
        }
        Range::Unsatisfiable => {
            let mut response = ApiError::new(
                ErrorKind::RangeNotSatisfiable,
                format!("the requested range is outside the file's {len} bytes"),
                json!({ "size": len }),
            )
            .into_response();
            let value =
                HeaderValue::from_str(&format!("bytes */{len}")).map_err(|e| ApiError::internal(e.to_string()))?;
            response.headers_mut().insert(header::CONTENT_RANGE, value);
            return Ok(response);
        }
    };
    common.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if method == Method::HEAD {
        return Ok((status, common).into_response());
    }
    let body = opened.into_range(start, count).await?;
    Ok((status, common, Body::from_stream(body)).into_response())
}

/// Whether an `If-None-Match` value matches the file: `*`, or any listed tag equal to ours when
/// both are stripped of `W/` (the weak comparison RFC 9110 13.1.2 asks of this header).
fn none_match_hits(value: &HeaderValue, etag: Option<&str>) -> bool {
    let Ok(text) = value.to_str() else { return false };
    // `*` matches any current representation, with or without an ETag (RFC 9110 13.1.2).
    if text.trim() == "*" {
        return true;
    }
    let Some(ours) = etag else { return false };
    let ours = ours.trim_start_matches("W/");
    text.split(',').any(|tag| tag.trim().trim_start_matches("W/") == ours)
}

/// What the `Range` header asks for, as this server answers it.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No range, or one to ignore: an unknown unit, a malformed value, several ranges.
    Whole,
    /// Bytes `first..=last`, both within the file.
    Part { first: u64, last: u64 },
    /// A well-formed byte range that starts past the end (or an empty suffix): 416.
    Unsatisfiable,
}

/// RFC 9110 14.2: a recipient ignores a Range with an unknown unit or that it cannot parse; one
/// byte range is served, several are ignored (allowed, and players only ever ask for one).
fn byte_range(value: Option<&HeaderValue>, len: u64) -> Range {
    let Some(text) = value.and_then(|v| v.to_str().ok()) else { return Range::Whole };
    let Some((unit, set)) = text.split_once('=') else { return Range::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return Range::Whole };
    let number = |s: &str| if s.bytes().all(|b| b.is_ascii_digit()) { s.parse::<u64>().ok() } else { None };
    match (first, last) {
        ("", suffix) => match number(suffix) {
            None => Range::Whole,
            Some(0) => Range::Unsatisfiable,
            Some(_) if len == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part { first: len.saturating_sub(n), last: len - 1 },
        },
        (first, last) => {
            let Some(first) = number(first) else { return Range::Whole };
            let last = if last.is_empty() { Some(u64::MAX) } else { number(last) };
            match last {
                None => Range::Whole,
                Some(last) if last < first => Range::Whole,
                Some(_) if first >= len => Range::Unsatisfiable,
                Some(last) => Range::Part { first, last: last.min(len - 1) },
            }
        }
    }
}

/// RFC 9110 13.1.5: without If-Range the Range applies; with one, only when it matches: an entity
/// tag strongly equal to ours (never a weak one), or a date exactly equal to Last-Modified.
fn if_range_allows(headers: &HeaderMap, modified: Option<SystemTime>, etag: Option<&str>) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else { return true };
    let text = value.to_str().unwrap_or("").trim();
    if text.starts_with('"') || text.starts_with("W/") {
        return etag.is_some_and(|ours| !ours.starts_with("W/") && ours == text);
    }
    let given = value.to_str().ok().and_then(|v| httpdate::parse_http_date(v.trim()).ok());
    given.is_some() && given == modified
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(headers.get(name)?.to_str().ok()?.trim()).ok()
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, len: u64) -> Range {
        byte_range(Some(&HeaderValue::from_str(value).expect("header")), len)
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(range("bytes=2-5", 10), Range::Part { first: 2, last: 5 });
        assert_eq!(range("Bytes = 2-", 10), Range::Part { first: 2, last: 9 });
        assert_eq!(range("bytes=5-100", 10), Range::Part { first: 5, last: 9 });
        assert_eq!(range("bytes=-3", 10), Range::Part { first: 7, last: 9 });
        assert_eq!(range("bytes=-30", 10), Range::Part { first: 0, last: 9 });
        assert_eq!(range("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(range("bytes=-0", 10), Range::Unsatisfiable);
        for ignored in ["items=0-1", "bytes=5-2", "bytes=a-b", "bytes=0-1,3-4", "bytes=", "bytes 0-1", "bytes=+1-2"] {
            assert_eq!(range(ignored, 10), Range::Whole, "{ignored}");
        }
        assert_eq!(byte_range(None, 10), Range::Whole);
    }

    #[test]
    fn if_range_matches_only_the_exact_last_modified_date() {
        let modified = whole_seconds(SystemTime::now() - Duration::from_secs(3600));
        let mut headers = HeaderMap::new();
        assert!(if_range_allows(&headers, Some(modified), None));
        headers.insert(header::IF_RANGE, HeaderValue::from_str(&httpdate::fmt_http_date(modified)).expect("date"));
        assert!(if_range_allows(&headers, Some(modified), None));
        assert!(!if_range_allows(&headers, Some(modified + Duration::from_secs(1)), None));
        headers.insert(header::IF_RANGE, HeaderValue::from_static("\"some-etag\""));
        assert!(!if_range_allows(&headers, Some(modified), None));
        assert!(!if_range_allows(&headers, Some(modified), Some("\"other\"")));
        assert!(if_range_allows(&headers, Some(modified), Some("\"some-etag\"")));
        headers.insert(header::IF_RANGE, HeaderValue::from_static("W/\"some-etag\""));
        assert!(!if_range_allows(&headers, Some(modified), Some("\"some-etag\"")), "weak tags never match");
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_a_star() {
        let hit = |value: &'static str, ours| none_match_hits(&HeaderValue::from_static(value), ours);
        assert!(hit("\"a\"", Some("\"a\"")));
        assert!(hit("W/\"a\"", Some("\"a\"")));
        assert!(hit("\"b\", \"a\"", Some("\"a\"")));
        assert!(hit("*", Some("\"a\"")));
        assert!(!hit("\"b\"", Some("\"a\"")));
        // `*` matches any current representation, ETag or not (RFC 9110 13.1.2).
        assert!(hit("*", None));
    }
}
