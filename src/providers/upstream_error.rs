//! Failures as [`ProviderError`]s: a transport failure (connect, timeout, a cut body) and a non-2xx
//! answer, with reqwest's messages cut to their useful causes and upstream text shortened.
//!
//! No text made here may contain a URL's query, a request header or the credential: reqwest's
//! ` for url (...)` is cut and an echoed secret is redacted, so keys and tokens cannot leak through
//! an error. Decoding a provider's own error body is the provider's job, not this file's.

use std::error::Error as _;
use std::time::Duration;

use reqwest::StatusCode;

use super::ProviderError;

/// Maps a reqwest failure (sending, or reading the body) to a provider error.
pub fn transport_error(provider: &'static str, err: &reqwest::Error, timeout: Duration) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout { provider, after: timeout }
    } else if err.is_connect() {
        ProviderError::Unreachable { provider, message: describe(err) }
    } else if err.is_body() || err.is_decode() {
        ProviderError::Unreachable {
            provider,
            message: format!("connection lost while reading the answer: {}", describe(err)),
        }
    } else {
        ProviderError::Unreachable { provider, message: describe(err) }
    }
}

/// An error and its causes on one line, without the request URL.
///
/// reqwest's own Display names only the outermost layer ("error sending request"); the useful
/// part ("Connection refused") is in the source chain.
pub fn describe(err: &reqwest::Error) -> String {
    let mut parts = vec![strip_url(&err.to_string())];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// reqwest appends ` for url (...)` to its messages; the URL is ours and says nothing new.
fn strip_url(text: &str) -> String {
    match text.find(" for url (") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// Shortens upstream text for an error message and removes `secret` from it, in case an upstream
/// ever echoes the credential back.
pub fn clean_message(text: &str, secret: &str) -> String {
    const MAX_CHARS: usize = 300;
    let text = text.trim();
    let redacted = if secret.is_empty() { text.to_owned() } else { text.replace(secret, "[redacted]") };
    match redacted.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &redacted[..cut]),
        None => redacted,
    }
}

/// A non-2xx answer as `Upstream`: the provider's own message when its error body carried one,
/// else the raw body (or the status reason when empty), cleaned of any echoed `secret`.
pub fn upstream_error(
    provider: &'static str,
    status: StatusCode,
    message: Option<String>,
    body: &[u8],
    secret: &str,
) -> ProviderError {
    let message = match message.filter(|m| !m.trim().is_empty()) {
        Some(m) => m,
        None if body.is_empty() => status.canonical_reason().unwrap_or("no message").to_owned(),
        None => String::from_utf8_lossy(body).into_owned(),
    };
    ProviderError::Upstream { provider, status: status.as_u16(), message: clean_message(&message, secret) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_redacted_and_shortened() {
        assert_eq!(clean_message(" bad key sk-123 ", "sk-123"), "bad key [redacted]");
        assert_eq!(clean_message("no secret here", ""), "no secret here");
        let long = "é".repeat(1000);
        let short = clean_message(&long, "x");
        assert_eq!(short.chars().count(), 301);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn urls_are_cut_from_reqwest_messages() {
        assert_eq!(strip_url("error sending request for url (http://x/y?key=1)"), "error sending request");
        assert_eq!(strip_url("plain"), "plain");
    }
}
