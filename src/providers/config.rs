//! Provider settings read once at startup: which upstreams are real (a key is set) and which are
//! mocked, where they live, and every timeout, retry and size limit the clients obey.
//!
//! This file only reads and checks values; it opens no connections. Secrets never appear in `Debug`
//! output, so the whole config can be logged.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

/// Default Gemini endpoint (Generative Language API).
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// Default Replicate endpoint.
pub const DEFAULT_REPLICATE_BASE_URL: &str = "https://api.replicate.com";

/// Where Replicate's signed webhooks are received (`api::replicate_webhook`).
pub const REPLICATE_WEBHOOK_PATH: &str = "/api/mv/webhooks/replicate";

/// Everything the providers need, usually from [`ProviderConfig::from_env`].
///
/// Environment variables (durations in seconds, fractions allowed, e.g. `0.5`). A value outside its
/// bounds is refused at startup naming the setting; each bound and why is at the line reading it in
/// [`ProviderConfig::from_lookup`]:
///
/// | variable | meaning | default | bounds |
/// |---|---|---|---|
/// | `MV_PROVIDER` | `mock` forces every provider to the offline mock; `auto` picks per key | `auto` | |
/// | `GEMINI_API_KEY` | real scene writer when set | unset (mock) | |
/// | `GEMINI_BASE_URL` | Gemini endpoint | `https://generativelanguage.googleapis.com` | http(s) with a host |
/// | `REPLICATE_API_TOKEN` (or `REPLICATE_API_KEY`) | real images and videos when set | unset (mock) | |
/// | `REPLICATE_BASE_URL` | Replicate endpoint | `https://api.replicate.com` | http(s) with a host |
/// | `MV_CONNECT_TIMEOUT_SECS` | TCP + TLS connect | 10 | 0.1–300 |
/// | `MV_REQUEST_TIMEOUT_SECS` | one API request, answer included | 120 | 0.1–86400 |
/// | `MV_RETRY_MAX_ATTEMPTS` | attempts per request (1 = no retry) | 3 | 1–10 |
/// | `MV_RETRY_BASE_DELAY_SECS` | first backoff, doubled per retry | 1 | 0.01–86400 |
/// | `MV_RETRY_MAX_DELAY_SECS` | cap on backoff and on a `Retry-After` wait | 30 | 0.01–86400 |
/// | `MV_REPLICATE_WAIT_SECS` | `Prefer: wait=N` (0 = don't send) | 60 | 0–60 |
/// | `MV_REPLICATE_POLL_SECS` | pause between prediction polls | 2 | 0.05–300 |
/// | `MV_IMAGE_DEADLINE_SECS` | whole image prediction, polls included | 300 | 0.1–86400 |
/// | `MV_VIDEO_DEADLINE_SECS` | whole video prediction, polls included | 900 | 0.1–86400 |
/// | `MV_DOWNLOAD_TIMEOUT_SECS` | downloading one output file | 300 | 0.1–86400 |
/// | `MV_MAX_IMAGE_BYTES` | largest image output accepted | 20 MiB | 1 B–1 GiB |
/// | `MV_MAX_VIDEO_BYTES` | largest video output accepted | 200 MiB | 1 B–64 GiB |
/// | `MV_GEMINI_POLL_SECS` | pause between polls of a Veo operation (`backend: "gemini"`) | 10 | 0.05–300 |
/// | `MVGEN_PUBLIC_URL` | where Replicate reaches this service: creates ask for a `completed` webhook to `{it}/api/mv/webhooks/replicate` | unset | http(s) with a host |
/// | `MV_REPLICATE_BACKSTOP_POLL_SECS` | pause between polls while a webhook is asked for | 30 | 0.05–3600 |
///
/// Keys are trimmed; an empty value counts as unset.
#[derive(Clone)]
pub struct ProviderConfig {
    /// `MV_PROVIDER=mock`: ignore keys and mock everything.
    pub force_mock: bool,
    /// `GEMINI_API_KEY`; `Some` (and not forced mock) means real scenes.
    pub gemini_api_key: Option<String>,
    /// `GEMINI_BASE_URL`, without the `/v1beta/...` path.
    pub gemini_base_url: String,
    /// `REPLICATE_API_TOKEN`; `Some` (and not forced mock) means real images and videos.
    pub replicate_api_token: Option<String>,
    /// `REPLICATE_BASE_URL`, without the `/v1/...` path.
    pub replicate_base_url: String,
    /// TCP + TLS connect, per attempt.
    pub connect_timeout: Duration,
    /// One API request attempt, answer body included (`Prefer: wait` time is added on top).
    pub request_timeout: Duration,
    /// Retries of connect errors, 429 and 5xx.
    pub retry: RetryPolicy,
    /// Sent as `Prefer: wait=N` when creating a prediction; zero sends no `Prefer` header.
    pub replicate_wait: Duration,
    /// Pause between two polls of a running prediction.
    pub poll_interval: Duration,
    /// Create + polls of one image prediction; past it the prediction is cancelled.
    pub image_deadline: Duration,
    /// Create + polls of one video prediction; past it the prediction is cancelled.
    pub video_deadline: Duration,
    /// Downloading one output file, per attempt.
    pub download_timeout: Duration,
    /// Largest image output accepted; a bigger one is `Malformed` and never fully read.
    pub max_image_bytes: u64,
    /// Largest video output accepted; a bigger one is `Malformed` and never fully read.
    pub max_video_bytes: u64,
    /// Pause between two polls of a running Veo operation on the Gemini API (`backend: "gemini"`).
    pub gemini_poll_interval: Duration,
    /// `MVGEN_PUBLIC_URL` + `/api/mv/webhooks/replicate`: with it every create asks Replicate
    /// for a `completed` webhook there, and polling slows to `replicate_backstop_poll`.
    pub replicate_webhook_url: Option<String>,
    /// The pause between polls while a webhook will tell of the end: a backstop for a webhook
    /// that never comes.
    pub replicate_backstop_poll: Duration,
}

/// How often and how patiently a request is retried (connect errors, 429 and 5xx only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first; at least 1.
    pub max_attempts: u32,
    /// Backoff before the first retry, doubled for each further one.
    pub base_delay: Duration,
    /// Cap on any single wait, including one asked for by `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 3, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(30) }
    }
}

impl Default for ProviderConfig {
    /// All mock, real endpoints, production timeouts.
    fn default() -> Self {
        ProviderConfig {
            force_mock: false,
            gemini_api_key: None,
            gemini_base_url: DEFAULT_GEMINI_BASE_URL.to_owned(),
            replicate_api_token: None,
            replicate_base_url: DEFAULT_REPLICATE_BASE_URL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            // Gemini 2.5 Pro writing a dozen scenes with thinking on can take over a minute.
            request_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            replicate_wait: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            image_deadline: Duration::from_secs(300),
            // Veo runs take minutes, and queueing adds more.
            video_deadline: Duration::from_secs(900),
            download_timeout: Duration::from_secs(300),
            max_image_bytes: 20 * 1024 * 1024,
            max_video_bytes: 200 * 1024 * 1024,
            // Google's own clients poll Veo operations every 10 s; a run takes minutes.
            gemini_poll_interval: Duration::from_secs(10),
            replicate_webhook_url: None,
            replicate_backstop_poll: Duration::from_secs(30),
        }
    }
}

impl ProviderConfig {
    /// Reads the process environment (see the table on [`ProviderConfig`]).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` instead of the process environment, so tests need not
    /// mutate global state.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let defaults = ProviderConfig::default();
        let secs = |name: &str, default: Duration, bounds| secs_setting(&lookup, name, default, bounds);
        let int = |name: &str, default: u64, bounds: RangeInclusive<u64>| -> anyhow::Result<u64> {
            match text(name) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| bounds.contains(n)).ok_or_else(|| {
                    anyhow!("{name}={v:?}: expected a whole number from {} to {}", bounds.start(), bounds.end())
                }),
            }
        };
        let ms = Duration::from_millis;
        // Timeouts and deadlines: under 0.1 s not even a nearby upstream answers; over a day,
        // nothing is still waiting for the answer (and `Instant::now() + d` must not overflow).
        let timeout = ms(100)..=DAY;
        // Polls: 0.05 s at the fastest (twenty requests a second per job, already far past what a
        // provider's rate limit lets a fleet do; the tests' local fakes poll that fast); at most
        // 5 minutes, or a finished prediction waits that long to be noticed.
        let poll = ms(50)..=Duration::from_secs(300);

        let force_mock = match text("MV_PROVIDER").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("auto") => false,
            Some("mock") => true,
            Some(other) => bail!("MV_PROVIDER={other:?}: expected \"mock\" or \"auto\""),
        };
        let config = ProviderConfig {
            force_mock,
            gemini_api_key: text("GEMINI_API_KEY"),
            gemini_base_url: text("GEMINI_BASE_URL").unwrap_or(defaults.gemini_base_url),
            replicate_api_token: text("REPLICATE_API_TOKEN").or_else(|| text("REPLICATE_API_KEY")),
            replicate_base_url: text("REPLICATE_BASE_URL").unwrap_or(defaults.replicate_base_url),
            // At most 5 minutes: a TCP + TLS handshake that takes longer is not coming.
            connect_timeout: secs("MV_CONNECT_TIMEOUT_SECS", defaults.connect_timeout, ms(100)..=ms(300_000))?,
            request_timeout: secs("MV_REQUEST_TIMEOUT_SECS", defaults.request_timeout, timeout.clone())?,
            retry: RetryPolicy {
                // 1..=10: every attempt may be a paid create, and 10 backoffs reach the cap anyway.
                max_attempts: int("MV_RETRY_MAX_ATTEMPTS", u64::from(defaults.retry.max_attempts), 1..=10)? as u32,
                // At least 0.01 s: a zero backoff hammers an upstream that just answered 5xx.
                base_delay: secs("MV_RETRY_BASE_DELAY_SECS", defaults.retry.base_delay, ms(10)..=DAY)?,
                max_delay: secs("MV_RETRY_MAX_DELAY_SECS", defaults.retry.max_delay, ms(10)..=DAY)?,
            },
            // Replicate rejects `Prefer: wait=N` above 60 seconds; 0 sends no header.
            replicate_wait: secs("MV_REPLICATE_WAIT_SECS", defaults.replicate_wait, Duration::ZERO..=ms(60_000))?,
            poll_interval: secs("MV_REPLICATE_POLL_SECS", defaults.poll_interval, poll.clone())?,
            image_deadline: secs("MV_IMAGE_DEADLINE_SECS", defaults.image_deadline, timeout.clone())?,
            video_deadline: secs("MV_VIDEO_DEADLINE_SECS", defaults.video_deadline, timeout.clone())?,
            download_timeout: secs("MV_DOWNLOAD_TIMEOUT_SECS", defaults.download_timeout, timeout)?,
            // At least 1 byte (0 would refuse every output); at most 1 GiB for an image and
            // 64 GiB for a video: anything larger is a fault upstream, not a render.
            max_image_bytes: int("MV_MAX_IMAGE_BYTES", defaults.max_image_bytes, 1..=1 << 30)?,
            max_video_bytes: int("MV_MAX_VIDEO_BYTES", defaults.max_video_bytes, 1..=1 << 36)?,
            gemini_poll_interval: secs("MV_GEMINI_POLL_SECS", defaults.gemini_poll_interval, poll)?,
            replicate_webhook_url: text("MVGEN_PUBLIC_URL")
                .map(|public| format!("{}{REPLICATE_WEBHOOK_PATH}", public.trim_end_matches('/'))),
            // Up to an hour: it only bounds how late a lost webhook is made up for.
            replicate_backstop_poll: secs(
                "MV_REPLICATE_BACKSTOP_POLL_SECS",
                defaults.replicate_backstop_poll,
                ms(50)..=Duration::from_secs(3600),
            )?,
        };
        config.check()?;
        Ok(config)
    }

    /// Rejects base URLs the clients could not work with, naming the setting. The bounds of the
    /// numeric settings are where they are read ([`ProviderConfig::from_lookup`]).
    pub fn check(&self) -> anyhow::Result<()> {
        check_base_url("GEMINI_BASE_URL", &self.gemini_base_url)?;
        check_base_url("REPLICATE_BASE_URL", &self.replicate_base_url)?;
        if let Some(url) = &self.replicate_webhook_url {
            check_base_url("MVGEN_PUBLIC_URL", url.trim_end_matches(REPLICATE_WEBHOOK_PATH))?;
        }
        Ok(())
    }

    /// The real-or-mock choice for scenes: `Some(key)` means use Gemini.
    pub(crate) fn gemini_key(&self) -> Option<&str> {
        self.gemini_api_key.as_deref().map(str::trim).filter(|k| !k.is_empty() && !self.force_mock)
    }

    /// The real-or-mock choice for images and videos: `Some(token)` means use Replicate.
    pub(crate) fn replicate_token(&self) -> Option<&str> {
        self.replicate_api_token.as_deref().map(str::trim).filter(|k| !k.is_empty() && !self.force_mock)
    }
}

/// A day: the longest any timeout, deadline or delay setting may be.
pub(crate) const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Reads a duration setting (seconds, fractions allowed; blank is unset) through `var`, refusing
/// values outside `bounds` with the setting's name and the bounds.
pub(crate) fn secs_setting(
    var: impl Fn(&str) -> Option<String>,
    name: &str,
    default: Duration,
    bounds: RangeInclusive<Duration>,
) -> anyhow::Result<Duration> {
    let Some(text) = var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(default);
    };
    parse_secs(&text).filter(|d| bounds.contains(d)).ok_or_else(|| {
        anyhow!(
            "{name}={text:?}: expected a number of seconds from {} to {}",
            bounds.start().as_secs_f64(),
            bounds.end().as_secs_f64()
        )
    })
}

/// Written by hand so a logged config shows whether a secret is set, never what it is.
impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("ProviderConfig")
            .field("force_mock", &self.force_mock)
            .field("gemini_api_key", &secret(&self.gemini_api_key))
            .field("gemini_base_url", &self.gemini_base_url)
            .field("replicate_api_token", &secret(&self.replicate_api_token))
            .field("replicate_base_url", &self.replicate_base_url)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("replicate_wait", &self.replicate_wait)
            .field("poll_interval", &self.poll_interval)
            .field("image_deadline", &self.image_deadline)
            .field("video_deadline", &self.video_deadline)
            .field("download_timeout", &self.download_timeout)
            .field("max_image_bytes", &self.max_image_bytes)
            .field("max_video_bytes", &self.max_video_bytes)
            .field("gemini_poll_interval", &self.gemini_poll_interval)
            .field("replicate_webhook_url", &self.replicate_webhook_url)
            .field("replicate_backstop_poll", &self.replicate_backstop_poll)
            .finish()
    }
}

/// `"2"`, `"0.25"`: a non-negative, finite number of seconds.
pub(crate) fn parse_secs(text: &str) -> Option<Duration> {
    let secs: f64 = text.parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

fn check_base_url(name: &str, value: &str) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(value).with_context(|| format!("{name}={value:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("{name}={value:?}: expected an http(s) URL with a host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("{name}={value:?}: a base URL takes no query or fragment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<ProviderConfig, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ProviderConfig::from_lookup(|name| map.get(name).cloned()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn empty_environment_is_all_mock_with_defaults() {
        let config = from(&[]).unwrap();
        assert_eq!(config.gemini_key(), None);
        assert_eq!(config.replicate_token(), None);
        assert_eq!(config.gemini_base_url, DEFAULT_GEMINI_BASE_URL);
        assert_eq!(config.replicate_base_url, DEFAULT_REPLICATE_BASE_URL);
        assert_eq!(config.max_video_bytes, 200 * 1024 * 1024);
    }

    #[test]
    fn keys_are_trimmed_and_blank_means_unset() {
        let config = from(&[("GEMINI_API_KEY", "  g-key \n"), ("REPLICATE_API_TOKEN", "   ")]).unwrap();
        assert_eq!(config.gemini_key(), Some("g-key"));
        assert_eq!(config.replicate_token(), None);
    }

    #[test]
    fn replicate_api_key_is_accepted_as_a_fallback_name() {
        let config = from(&[("REPLICATE_API_KEY", "r8_x")]).unwrap();
        assert_eq!(config.replicate_token(), Some("r8_x"));
        let both = from(&[("REPLICATE_API_KEY", "old"), ("REPLICATE_API_TOKEN", "new")]).unwrap();
        assert_eq!(both.replicate_token(), Some("new"));
    }

    #[test]
    fn mv_provider_mock_overrides_keys() {
        let config = from(&[("MV_PROVIDER", "MOCK"), ("GEMINI_API_KEY", "k"), ("REPLICATE_API_TOKEN", "t")]).unwrap();
        assert_eq!(config.gemini_key(), None);
        assert_eq!(config.replicate_token(), None);
        assert!(from(&[("MV_PROVIDER", "real")]).unwrap_err().contains("MV_PROVIDER"));
    }

    #[test]
    fn durations_accept_fractions_and_reject_garbage() {
        let config = from(&[("MV_REPLICATE_POLL_SECS", "0.25"), ("MV_REQUEST_TIMEOUT_SECS", "7")]).unwrap();
        assert_eq!(config.poll_interval, Duration::from_millis(250));
        assert_eq!(config.request_timeout, Duration::from_secs(7));
        let err = from(&[("MV_REQUEST_TIMEOUT_SECS", "soon")]).unwrap_err();
        assert!(err.contains("MV_REQUEST_TIMEOUT_SECS"), "{err}");
        assert!(from(&[("MV_REQUEST_TIMEOUT_SECS", "-1")]).is_err());
        assert!(from(&[("MV_REQUEST_TIMEOUT_SECS", "0")]).is_err());
        assert_eq!(config.gemini_poll_interval, Duration::from_secs(10));
        let gemini_poll = from(&[("MV_GEMINI_POLL_SECS", "0.5")]).unwrap().gemini_poll_interval;
        assert_eq!(gemini_poll, Duration::from_millis(500));
        assert!(from(&[("MV_GEMINI_POLL_SECS", "0")]).is_err());
        assert!(from(&[("MV_REPLICATE_WAIT_SECS", "61")]).is_err());
        assert!(from(&[("MV_RETRY_MAX_ATTEMPTS", "0")]).is_err());
        assert!(from(&[("MV_RETRY_MAX_ATTEMPTS", "11")]).is_err());
        // Would overflow `Instant::now() + deadline` on the request path.
        let err = from(&[("MV_VIDEO_DEADLINE_SECS", "1e19")]).unwrap_err();
        assert!(err.contains("MV_VIDEO_DEADLINE_SECS"), "{err}");
        assert!(from(&[("MV_RETRY_MAX_DELAY_SECS", "100000")]).is_err());
    }

    #[test]
    fn every_duration_and_count_has_bounds() {
        // A microsecond poll interval was accepted: a busy loop against a paid API.
        let err = from(&[("MV_REPLICATE_POLL_SECS", "0.000001")]).unwrap_err();
        assert_eq!(err, "MV_REPLICATE_POLL_SECS=\"0.000001\": expected a number of seconds from 0.05 to 300");
        for (name, bad) in [
            ("MV_GEMINI_POLL_SECS", "301"),
            ("MV_REPLICATE_POLL_SECS", "0.01"),
            ("MV_CONNECT_TIMEOUT_SECS", "0.001"),
            ("MV_CONNECT_TIMEOUT_SECS", "301"),
            ("MV_REQUEST_TIMEOUT_SECS", "0.05"),
            ("MV_DOWNLOAD_TIMEOUT_SECS", "86401"),
            ("MV_IMAGE_DEADLINE_SECS", "0.0001"),
            ("MV_RETRY_BASE_DELAY_SECS", "0"),
            ("MV_RETRY_MAX_DELAY_SECS", "0.001"),
            ("MV_REPLICATE_WAIT_SECS", "60.5"),
            ("MV_MAX_IMAGE_BYTES", "0"),
            ("MV_MAX_IMAGE_BYTES", "1073741825"),
            ("MV_MAX_VIDEO_BYTES", "18446744073709551615"),
            ("MV_RETRY_MAX_ATTEMPTS", "4294967297"),
        ] {
            let err = from(&[(name, bad)]).expect_err(bad);
            assert!(err.starts_with(&format!("{name}={bad:?}: expected ")), "{err}");
        }
        let edges = from(&[
            ("MV_REPLICATE_POLL_SECS", "0.05"),
            ("MV_GEMINI_POLL_SECS", "300"),
            ("MV_REPLICATE_WAIT_SECS", "0"),
            ("MV_RETRY_BASE_DELAY_SECS", "0.01"),
            ("MV_VIDEO_DEADLINE_SECS", "86400"),
            ("MV_MAX_VIDEO_BYTES", "68719476736"),
            ("MV_MAX_IMAGE_BYTES", "1"),
        ])
        .unwrap();
        assert_eq!(
            (edges.poll_interval, edges.gemini_poll_interval),
            (Duration::from_millis(50), Duration::from_secs(300))
        );
        assert_eq!((edges.max_video_bytes, edges.max_image_bytes), (1 << 36, 1));
    }

    #[test]
    fn base_urls_must_be_http_with_a_host() {
        assert!(from(&[("GEMINI_BASE_URL", "http://127.0.0.1:9")]).is_ok());
        assert!(from(&[("GEMINI_BASE_URL", "ftp://example.com")]).is_err());
        assert!(from(&[("REPLICATE_BASE_URL", "not a url")]).is_err());
        assert!(from(&[("REPLICATE_BASE_URL", "https://x.test/?key=1")]).is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let config = from(&[("GEMINI_API_KEY", "AIza-secret"), ("REPLICATE_API_TOKEN", "r8_secret")]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("AIza-secret") && !shown.contains("r8_secret"), "{shown}");
        assert!(shown.contains("<set>"));
    }
}
