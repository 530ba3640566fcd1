//! The HTTP plumbing every real provider shares: the one `reqwest::Client`, the bounded retry
//! loop, size-limited body reads, and the mapping of transport failures to [`ProviderError`].
//!
//! Nothing here knows a provider's wire format; callers decode bodies and map upstream error
//! bodies themselves. No text produced here contains a URL's query or a request header, so keys and
//! tokens cannot leak through it.

use std::error::Error as _;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode, Url, redirect};

use super::config::{ProviderConfig, RetryPolicy};
use super::{ProviderError, RunContext};

/// Same-origin API redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Builds the client all providers share for API calls (one connection pool, one TLS setup).
///
/// Fails rather than panics when the platform has no usable TLS roots, so the server can report it
/// at startup.
pub fn build_client(config: &ProviderConfig) -> Result<reqwest::Client, String> {
    let api_origins: Vec<_> = [&config.gemini_base_url, &config.replicate_base_url]
        .into_iter()
        .filter_map(|base| Url::parse(base).ok())
        .map(|url| url.origin())
        .collect();
    // API calls carry a key in a header that reqwest would forward on a redirect to another host
    // (it strips only `Authorization`), so an API answer may redirect only within its own origin.
    let policy = redirect::Policy::custom(move |attempt| {
        let first_origin = attempt.previous().first().map(Url::origin);
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if first_origin.as_ref().is_some_and(|o| api_origins.contains(o) && *o == attempt.url().origin()) {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    finish(common(config).redirect(policy))
}

/// The client for output downloads: URLs an upstream's answer chose, so it follows no redirect (the
/// target would sidestep the address check) and resolves names only to addresses downloads may
/// reach from the provider at `base_url` (see [`OutboundPolicy`](super::outbound::OutboundPolicy)).
pub fn build_download_client(config: &ProviderConfig, base_url: &str) -> Result<reqwest::Client, String> {
    let policy = super::outbound::OutboundPolicy::new(base_url);
    finish(common(config).redirect(redirect::Policy::none()).dns_resolver(policy))
}

fn common(config: &ProviderConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("mvgen/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(config.connect_timeout)
}

fn finish(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        // Mozilla's roots are compiled in, so HTTPS works where there is no CA store at all (a
        // `scratch` image has no /etc/ssl) and trusts the same roots on every host.
        .tls_certs_only(embedded_roots()?)
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", describe(&e)))
}

fn embedded_roots() -> Result<Vec<reqwest::Certificate>, String> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| reqwest::Certificate::from_der(der))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot load the embedded TLS roots: {}", describe(&e)))
}

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
        let result = build().timeout(timeout).send().await;
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

/// Why [`read_limited`] stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The body is longer than the limit; nothing beyond the limit was buffered.
    TooLarge,
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
    let essence = super::essence(value);
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

pub use crate::media::snippet;

/// Sends a prepared cancel request when dropped, unless disarmed or its run context says the run
/// outlives the call. Armed while a paid upstream job runs, it covers polling errors and requests
/// dropped by their client (a closed connection drops the handler's future), which would otherwise
/// leave the job running and billing. A durable job's worker that shuts down drops its calls too,
/// but another worker resumes their runs: [`RunContext::cancel_on_drop`] decides, at drop time.
pub struct CancelOnDrop<'a> {
    provider: &'static str,
    /// `None` once disarmed.
    cancel: Option<RequestBuilder>,
    ctx: RunContext<'a>,
}

impl<'a> CancelOnDrop<'a> {
    /// `cancel` should carry its own (short) timeout: nobody waits for it.
    pub fn new(provider: &'static str, cancel: RequestBuilder, ctx: RunContext<'a>) -> Self {
        CancelOnDrop { provider, cancel: Some(cancel), ctx }
    }

    /// The job ended or was cancelled otherwise: nothing to do on drop.
    pub fn disarm(mut self) {
        self.cancel = None;
    }
}

/// Sends the cancel of a saved run (`request`, from the provider's `cancel_request`) and says how
/// it went, for a caller that wants to know (a job cancelled while no call held its run).
pub async fn send_cancel(provider: &'static str, request: RequestBuilder) -> Result<(), ProviderError> {
    let response = request.send().await.map_err(|e| ProviderError::Unreachable { provider, message: describe(&e) })?;
    match response.status() {
        status if status.is_success() => Ok(()),
        status => Err(ProviderError::Upstream { provider, status: status.as_u16(), message: "cancel refused".into() }),
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(cancel) = self.cancel.take() else { return };
        let provider = self.provider;
        if !self.ctx.cancel_on_drop() {
            tracing::info!(provider, "left an upstream job running for whoever resumes it");
            return;
        }
        // Drop can't await: the cancel goes out on its own task, which shutdown waits for (a drain
        // that cuts requests drops them here, and the prediction must not run on, billing).
        crate::background::spawn(async move {
            match cancel.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::info!(provider, "cancelled an abandoned upstream job");
                }
                Ok(response) => {
                    tracing::warn!(provider, status = response.status().as_u16(), "cancel of an abandoned job refused");
                }
                Err(err) => tracing::warn!(provider, error = %describe(&err), "cancel of an abandoned job failed"),
            }
        });
    }
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

    #[test]
    fn media_type_drops_parameters() {
        let mut headers = HeaderMap::new();
        assert_eq!(media_type(&headers), None);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("Video/MP4; charset=binary"));
        assert_eq!(media_type(&headers).as_deref(), Some("video/mp4"));
    }

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
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(human_bytes(512 * 1024), "512 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn urls_are_cut_from_reqwest_messages() {
        assert_eq!(strip_url("error sending request for url (http://x/y?key=1)"), "error sending request");
        assert_eq!(strip_url("plain"), "plain");
    }

    /// The client must not depend on the host's CA store. `SSL_CERT_FILE` and `SSL_CERT_DIR`
    /// pointing at nothing leave rustls' platform verifier with no roots (the empty-root case); the
    /// check runs in a child process so this process's environment stays untouched.
    #[test]
    fn client_builds_without_a_system_ca_store() {
        let empty = std::env::temp_dir().join(format!("mvgen-no-ca-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("create an empty CA dir");
        let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "providers::http::tests::client_builds_here", "--ignored", "--nocapture"])
            .env("SSL_CERT_FILE", empty.join("no-such-bundle.pem"))
            .env("SSL_CERT_DIR", &empty)
            .output()
            .expect("run the test binary");
        let _ = std::fs::remove_dir(&empty);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success() && stdout.contains("1 passed"), "{stdout}\n{stderr}");
    }

    #[test]
    #[ignore = "run by client_builds_without_a_system_ca_store with the CA store hidden"]
    fn client_builds_here() {
        build_client(&ProviderConfig::default()).expect("the HTTP client builds");
    }
}
