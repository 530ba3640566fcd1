//! A JSON body parsed into a typed value, with the API's split between a body that is not JSON
//! (400, with line and column) and one of the wrong shape (422, naming the field path).
//!
//! Below the HTTP edge because the same parser checks a job's stored input when the job is planned
//! (`generation::driver`), so a job and the sync endpoint refuse the same bodies with the same errors.

use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ErrorKind};

/// Deserializes `bytes`, telling syntax errors (400) from shape errors (422, with the field path).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first: a body that isn't JSON at all is a 400 whatever its first key says. JSON is
    // UTF-8 by definition, and skipping unknown keys would not check their strings.
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidJson,
            format!("the body is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
            json!({ "offset": e.valid_up_to() }),
        )
    })?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| classify(".", &e))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        classify(&path, &err.into_inner())
    })?;
    // Trailing bytes after the value are a syntax error like any other.
    de.end().map_err(|e| classify(".", &e))?;
    Ok(value)
}

fn classify(path: &str, error: &serde_json::Error) -> ApiError {
    if error.is_data() {
        let field = field_of(path, &error.to_string());
        let message = format!("{field}: {}", strip_position(&error.to_string()));
        ApiError::body_mismatch(&field, message)
    } else {
        ApiError::new(
            ErrorKind::InvalidJson,
            format!("the body is not valid JSON: {error}"),
            json!({ "line": error.line(), "column": error.column() }),
        )
    }
}

/// serde reports a missing field at its parent's path, with the field's name in the message.
fn field_of(path: &str, message: &str) -> String {
    let missing = message.split_once("missing field `").and_then(|(_, rest)| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_string(),
        (_, Some(name)) => format!("{path}.{name}"),
        (".", None) => "body".to_string(),
        (_, None) => path.to_string(),
    }
}

fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        idea: String,
        number_of_scenes: Option<i64>,
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse::<Body>(br#"{"idea": "x", "number_of_scenes": "six"}"#).expect_err("type");
        assert_eq!((e.status(), e.details.clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("number_of_scenes")));
        let e = parse::<Body>(br#"{}"#).expect_err("missing");
        assert_eq!(e.details, json!("idea"));
        let e = parse::<Body>(br#"{"idea": "x", "extra": 1}"#).expect_err("unknown");
        assert_eq!(e.details, json!("extra"));
        let e = parse::<Body>(br#"[1]"#).expect_err("not an object");
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn syntax_errors_are_400_with_position() {
        let e = parse::<Body>(b"{\"idea\": ").expect_err("eof");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = parse::<Body>(br#"{"idea": "x"} trailing"#).expect_err("trailing");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
