//! The bounded retry loop every provider call goes through: which answers are worth repeating
//! ([`Repeat`]), how long to wait between tries (`Retry-After`, else doubling backoff, always
//! capped), and how many tries in all. It never reads a body: the last answer is the caller's to
//! decode.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::ProviderError;
use super::config::RetryPolicy;
use super::upstream_error::{describe, transport_error};

/// Whether repeating a request is harmless once the upstream may have acted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads and answers without lasting effects: retry on 429 and every 5xx.
    Safe,
    /// Starts paid work (a Replicate prediction): a 500, 502 or 504 may come after the work was
    /// created, and a retry would start it twice. Retry only where it surely wasn't: 429 and 503.
    CreatesWork,
}

/// Sends the request made by `build` and retries it while that is worth it: on connect errors,
/// 429 (waiting for `Retry-After` seconds, capped) and 5xx (see [`Repeat`]), at most
/// `policy.max_attempts` times in all, with exponential backoff. Any other answer, or the last one, is returned for the caller to
/// decode, whatever its status.
///
/// `timeout` bounds each attempt, answer body included; a timed-out attempt is not retried because
/// the upstream may still be working on it and a retry would only multiply the wait.
pub async fn send_with_retry(
    provider: &'static str,
    policy: &RetryPolicy,
    timeout: Duration,
    repeat: Repeat,
    mut build: impl FnMut() -> RequestBuilder,
) -> Result<Response, ProviderError> {
    let mut attempt = 1;
    loop {
        let last = attempt >= policy.max_attempts;
        // The trace this call is made in goes on upstream (W3C `traceparent`/`tracestate`; none
        // unless spans are exported).
        let traced = crate::trace_context::outgoing().into_iter().fold(build(), |b, (name, v)| b.header(name, v));
        let result = traced.timeout(timeout).send().await;
        let retry_after = match result {
            Ok(response) if !last && is_retryable(response.status(), repeat) => {
                let wait = parse_retry_after(response.headers());
                tracing::warn!(provider, status = response.status().as_u16(), attempt, "upstream asked us to retry");
                wait
            }
            Ok(response) => return Ok(response),
            Err(err) if !last && err.is_connect() => {
                tracing::warn!(provider, attempt, error = %describe(&err), "cannot connect, will retry");
                None
            }
            Err(err) => return Err(transport_error(provider, &err, timeout)),
        };
        tokio::time::sleep(retry_delay(policy, attempt, retry_after)).await;
        attempt += 1;
    }
}

/// 429 and 5xx as `repeat` allows; no other 4xx, since repeating a bad request gives the same answer.
pub fn is_retryable(status: StatusCode, repeat: Repeat) -> bool {
    match repeat {
        Repeat::Safe => status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        Repeat::CreatesWork => matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// The wait before retry number `retry` (1 = the first retry): what the upstream asked for, else
/// `base_delay` doubled per retry; never more than `max_delay`.
pub fn retry_delay(policy: &RetryPolicy, retry: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = || policy.base_delay.saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)));
    retry_after.unwrap_or_else(backoff).min(policy.max_delay)
}

/// `Retry-After` in seconds. The HTTP-date form is ignored (neither Gemini nor Replicate sends it),
/// which falls back to plain backoff.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(2) }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        assert_eq!(retry_delay(&p, 1, None), Duration::from_millis(100));
        assert_eq!(retry_delay(&p, 2, None), Duration::from_millis(200));
        assert_eq!(retry_delay(&p, 3, None), Duration::from_millis(400));
        assert_eq!(retry_delay(&p, 10, None), Duration::from_secs(2));
        assert_eq!(retry_delay(&p, u32::MAX, None), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_wins_over_backoff_but_is_capped() {
        let p = policy();
        assert_eq!(retry_delay(&p, 1, Some(Duration::from_secs(1))), Duration::from_secs(1));
        assert_eq!(retry_delay(&p, 1, Some(Duration::from_secs(3600))), Duration::from_secs(2));
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        let safe = |s| is_retryable(s, Repeat::Safe);
        assert!(safe(StatusCode::TOO_MANY_REQUESTS));
        assert!(safe(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(safe(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!safe(StatusCode::BAD_REQUEST));
        assert!(!safe(StatusCode::FORBIDDEN));
        assert!(!safe(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!safe(StatusCode::OK));
        let creates = |s| is_retryable(s, Repeat::CreatesWork);
        assert!(creates(StatusCode::TOO_MANY_REQUESTS) && creates(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!creates(StatusCode::INTERNAL_SERVER_ERROR) && !creates(StatusCode::GATEWAY_TIMEOUT));
    }
}
