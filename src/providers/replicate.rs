//! The Replicate image and video maker: create a prediction on an official model, poll it until it
//! ends or a deadline passes (then cancel it), and download its output within a size limit.
//!
//! Wire shapes follow `shared/reference/providers.md`. Retries and transport errors are handled by
//! [`super::http`]; this file owns the model inputs, the prediction life cycle and the download.
//! The API token is sent to the configured base URL only, never to the host serving the output.

use std::time::Duration;

use base64::Engine as _;
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::{Instant, timeout_at};
use tracing::Instrument as _;

use super::body::{ReadError, human_bytes, read_limited};
use super::cancel::{CancelOnDrop, send_cancel};
use super::client::build_download_client;
use super::config::{ProviderConfig, RetryPolicy};
use super::outbound::OutboundPolicy;
use super::retry::{Repeat, parse_retry_after, send_with_retry};
use super::upstream_error::{clean_message, describe, transport_error, upstream_error};
use super::upstream_run;
use super::{BoxFuture, ImageMaker, ImageRequest, Media, Output, ProviderError, RunContext, VideoMaker, VideoRequest};
use crate::media::{checked_media_type, snippet};

const PROVIDER: &str = "replicate";

/// Veo's resolution. mvgen's flavors have no setting for it yet, and 720p keeps runs short and
/// cheap; 1080p is the other value the model takes.
const VIDEO_RESOLUTION: &str = "720p";

/// Prediction JSON is small; anything bigger is not a prediction.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// Cancelling is a courtesy after we already gave up, so it gets a short leash.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes images and videos with Replicate (`backend() == "replicate"`).
pub struct ReplicateClient {
    http: reqwest::Client,
    /// For output files only: no redirects, checked addresses.
    downloads: reqwest::Client,
    base_url: Url,
    token: String,
    retry: RetryPolicy,
    request_timeout: Duration,
    wait: Duration,
    poll_interval: Duration,
    /// Where Replicate is asked to send a `completed` webhook (`MVGEN_PUBLIC_URL`), if anywhere.
    webhook_url: Option<String>,
    /// The pause between polls when a webhook was asked for: a backstop for a lost webhook.
    backstop_poll: Duration,
    download_timeout: Duration,
    image: Limits,
    video: Limits,
    /// Where output downloads may connect.
    outbound: OutboundPolicy,
}

/// How long one kind of prediction may take and how big its output may be.
#[derive(Debug, Clone, Copy)]
struct Limits {
    deadline: Duration,
    max_bytes: u64,
}

impl ReplicateClient {
    /// A client for `config.replicate_base_url` with `config.replicate_api_token`; fails when the
    /// token is unset (or mocking is forced) or the base URL is unusable.
    pub fn new(config: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let token = config.replicate_token().ok_or("REPLICATE_API_TOKEN is not set")?.to_owned();
        let base_url = Url::parse(&config.replicate_base_url).map_err(|e| format!("REPLICATE_BASE_URL: {e}"))?;
        Ok(ReplicateClient {
            http,
            downloads: build_download_client(config, &config.replicate_base_url)?,
            base_url,
            token,
            retry: config.retry,
            request_timeout: config.request_timeout,
            wait: config.replicate_wait,
            poll_interval: config.poll_interval,
            webhook_url: config.replicate_webhook_url.clone(),
            backstop_poll: config.replicate_backstop_poll,
            download_timeout: config.download_timeout,
            image: Limits { deadline: config.image_deadline, max_bytes: config.max_image_bytes },
            video: Limits { deadline: config.video_deadline, max_bytes: config.max_video_bytes },
            outbound: OutboundPolicy::new(&config.replicate_base_url),
        })
    }

    /// Runs one prediction to its output, which must be a file of the `expected` kind (`"image"`
    /// or `"video"`), as its first bytes say; the rest streams when the caller stores it. A
    /// prediction `ctx` saved before is resumed (never created twice); a new one is saved through
    /// `ctx` before anything waits on it.
    async fn run(
        &self,
        model: &str,
        input: Value,
        limits: Limits,
        expected: &str,
        ctx: RunContext<'_>,
    ) -> Result<Output, ProviderError> {
        let url = self.api_url(&model_path(model)?)?;
        let deadline = Instant::now() + limits.deadline;
        let timeout = ProviderError::Timeout { provider: PROVIDER, after: limits.deadline };

        // A run meant to outlive this call must have its id saved at once: `Prefer: wait` would
        // hold the id back for up to a minute, and a crash then loses a paid run.
        let wait = if ctx.cancel_on_drop() { self.wait } else { Duration::ZERO };
        let create = async { timeout_at(deadline, self.create(url, &input, wait)).await.map_err(|_| timeout.clone())? };
        let (id, created) = upstream_run::resume_or_start(
            ctx,
            PROVIDER,
            create,
            |p: &Prediction| &p.id,
            |id| async move { self.cancel(&id).await },
        )
        .await?;
        // From here on the prediction runs (and bills) until it ends or is cancelled: if polling
        // fails or the request is dropped, the guard cancels it (unless `ctx` keeps it for a resume).
        let guard = CancelOnDrop::new(PROVIDER, self.cancel_request(&id)?, ctx);
        let waited = async {
            let first = match created {
                Some(prediction) => prediction,
                None => self.fetch_resumed(&id).await?,
            };
            self.wait_until_done(first, ctx).await
        };
        let waited = waited.instrument(upstream_run::poll_span(PROVIDER, &id));
        let finished = match timeout_at(deadline, waited).await {
            Ok(result) => result,
            Err(_) => {
                guard.disarm();
                self.cancel(&id).await;
                return Err(timeout);
            }
        };
        let finished = match finished {
            Ok(prediction) => {
                guard.disarm();
                prediction
            }
            Err(e) if e.ended_upstream => {
                guard.disarm();
                return Err(e.error);
            }
            Err(e) => return Err(e.error),
        };
        let output = output_url(&finished)?;
        tracing::debug!(model, prediction = %id, "replicate prediction succeeded");
        ctx.progress(upstream_run::DOWNLOADING, Some(&finished.status));
        self.download(&output, limits.max_bytes, expected).instrument(upstream_run::download_span(PROVIDER, &id)).await
    }

    /// The current state of a saved prediction, at once. A 404 means Replicate no longer has it:
    /// that fails for good rather than starting a second run.
    async fn fetch_resumed(&self, id: &str) -> Result<Prediction, WaitError> {
        match self.get_prediction(id).await {
            Ok(prediction) => Ok(prediction),
            Err(ProviderError::Upstream { status: 404, .. }) => {
                Err(WaitError { error: upstream_run::gone(PROVIDER, id), ended_upstream: true })
            }
            Err(error) => Err(WaitError { error, ended_upstream: false }),
        }
    }

    async fn create(&self, url: Url, input: &Value, wait: Duration) -> Result<Prediction, ProviderError> {
        // With a public URL, Replicate calls back when the prediction ends (signed, checked by
        // `api::replicate_webhook`), and the poller below wakes at once.
        let body = match &self.webhook_url {
            Some(webhook) => json!({ "input": input, "webhook": webhook, "webhook_events_filter": ["completed"] }),
            None => json!({ "input": input }),
        };
        // `Prefer: wait` holds the answer back for up to N seconds, so the attempt may take that long.
        let attempt_timeout = self.request_timeout + wait;
        let prefer = prefer_header(wait);
        let response = send_with_retry(PROVIDER, &self.retry, attempt_timeout, Repeat::CreatesWork, || {
            let request = self.http.post(url.clone()).bearer_auth(&self.token).json(&body);
            match &prefer {
                Some(value) => request.header("Prefer", value),
                None => request,
            }
        })
        .await?;
        self.read_prediction(response, attempt_timeout).await
    }

    async fn wait_until_done(&self, mut prediction: Prediction, ctx: RunContext<'_>) -> Result<Prediction, WaitError> {
        let mut progress = upstream_run::StatusReporter::new(ctx);
        // A webhook's word is taken once: after it, polls keep their pace (a prediction that
        // still says `processing` right after its webhook must not be fetched in a busy loop).
        let mut heard = false;
        loop {
            match prediction.status.as_str() {
                "succeeded" => return Ok(prediction),
                "failed" | "canceled" | "aborted" => {
                    return Err(WaitError { error: prediction.failure(&self.token), ended_upstream: true });
                }
                status => progress.waiting(status),
            }
            let id = prediction.id.clone();
            prediction =
                self.poll(&id, ctx, &mut heard).await.map_err(|error| WaitError { error, ended_upstream: false })?;
        }
    }

    /// One poll: after the poll interval, or the backstop interval when a webhook was asked
    /// for, or at once when it arrived (`heard` records that it did).
    async fn poll(&self, id: &str, ctx: RunContext<'_>, heard: &mut bool) -> Result<Prediction, ProviderError> {
        match &self.webhook_url {
            Some(_) if !*heard => {
                tokio::select! {
                    _ = tokio::time::sleep(self.backstop_poll) => {}
                    _ = ctx.upstream_ended(PROVIDER, id) => {
                        *heard = true;
                        tracing::debug!(prediction = id, "replicate webhook: fetching the prediction now");
                    }
                }
            }
            Some(_) => tokio::time::sleep(self.poll_interval.max(self.backstop_poll / 10)).await,
            None => tokio::time::sleep(self.poll_interval).await,
        }
        self.get_prediction(id).await
    }

    async fn get_prediction(&self, id: &str) -> Result<Prediction, ProviderError> {
        // Polled by id on our own base URL rather than via `urls.get`, so the token only ever goes
        // to the host we were configured with.
        let url = self.api_url(&["v1", "predictions", id])?;
        let response = send_with_retry(PROVIDER, &self.retry, self.request_timeout, Repeat::Safe, || {
            self.http.get(url.clone()).bearer_auth(&self.token)
        })
        .await?;
        self.read_prediction(response, self.request_timeout).await
    }

    /// Best effort: the prediction runs on (and bills) until cancelled, but our caller already has
    /// its answer, so failures are only logged.
    async fn cancel(&self, id: &str) {
        let Ok(request) = self.cancel_request(id) else { return };
        match request.send().await {
            Ok(response) if response.status().is_success() => tracing::info!(prediction = id, "cancelled prediction"),
            Ok(response) => tracing::warn!(prediction = id, status = response.status().as_u16(), "cancel refused"),
            Err(err) => tracing::warn!(prediction = id, error = %describe(&err), "cancel failed"),
        }
    }

    fn cancel_request(&self, id: &str) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = self.api_url(&["v1", "predictions", id, "cancel"])?;
        Ok(self.http.post(url).bearer_auth(&self.token).timeout(CANCEL_TIMEOUT.min(self.request_timeout)))
    }

    async fn read_prediction(
        &self,
        mut response: reqwest::Response,
        timeout: Duration,
    ) -> Result<Prediction, ProviderError> {
        let status = response.status();
        let bytes = match read_limited(&mut response, MAX_ANSWER_BYTES).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge) => return Err(malformed("prediction answer is too large".to_owned())),
            Err(ReadError::Transport(e)) => return Err(transport_error(PROVIDER, &e, timeout)),
        };
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers());
            return Err(error_from_answer(status, &bytes, retry_after, &self.token));
        }
        parse_prediction(&bytes)
    }

    /// A plain GET without the token: output links are pre-signed and live on another host. No
    /// redirect is followed, and the host must be one downloads may reach (see [`OutboundPolicy`]).
    /// Only the answer's status (retried on 5xx) and its first bytes are awaited here; the body
    /// streams when stored, bounded by `download_timeout` as a whole and never retried once begun.
    async fn download(&self, url: &str, max_bytes: u64, expected: &str) -> Result<Output, ProviderError> {
        if let Some(data) = url.strip_prefix("data:") {
            let bytes = decode_data_uri(data, max_bytes)?;
            return Ok(Output::from_bytes(PROVIDER, checked_type(&bytes, expected)?, bytes));
        }
        let parsed = Url::parse(url).map_err(|e| malformed(format!("output {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(malformed(format!("output URL scheme {:?} is not http(s)", parsed.scheme())));
        }
        self.outbound.check_url(&parsed).map_err(malformed)?;
        let response = send_with_retry(PROVIDER, &self.retry, self.download_timeout, Repeat::Safe, || {
            self.downloads.get(parsed.clone())
        })
        .await?;
        let status = response.status();
        if status.is_redirection() {
            return Err(malformed(format!("the output URL redirected ({status}); redirects are not followed")));
        }
        if !status.is_success() {
            return Err(ProviderError::Upstream {
                provider: PROVIDER,
                status: status.as_u16(),
                message: "downloading the prediction output failed".to_owned(),
            });
        }
        Output::download(PROVIDER, "output", expected, response, max_bytes, self.download_timeout).await
    }

    /// `segments` appended to the base URL, each escaped, so an id or model name cannot change
    /// which endpoint is called.
    fn api_url(&self, segments: &[&str]) -> Result<Url, ProviderError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| malformed("base URL cannot take a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }
}

impl ImageMaker for ReplicateClient {
    fn backend(&self) -> &'static str {
        PROVIDER
    }

    fn make_image<'a>(
        &'a self,
        request: &'a ImageRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(self.run(&request.model, image_input(request), self.image, "image", ctx))
    }

    fn cancel_run<'a>(&'a self, run: &'a super::UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { send_cancel(PROVIDER, self.cancel_request(&run.id)?).await })
    }
}

impl VideoMaker for ReplicateClient {
    fn backend(&self) -> &'static str {
        PROVIDER
    }

    fn make_video<'a>(
        &'a self,
        request: &'a VideoRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(self.run(&request.model, video_input(request), self.video, "video", ctx))
    }

    fn cancel_run<'a>(&'a self, run: &'a super::UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { send_cancel(PROVIDER, self.cancel_request(&run.id)?).await })
    }
}

/// The `input` object for an image model (google/imagen-4 and alikes).
pub fn image_input(request: &ImageRequest) -> Value {
    let mut input = Map::new();
    input.insert("prompt".into(), json!(request.prompt));
    input.insert("aspect_ratio".into(), json!(request.aspect_ratio));
    input.insert("output_format".into(), json!(request.output_format));
    input.insert("safety_filter_level".into(), json!(request.safety_filter_level));
    input.insert("person_generation".into(), json!(request.person_generation));
    insert_optional(&mut input, request.seed, request.negative_prompt.as_deref());
    Value::Object(input)
}

/// The `input` object for a video model (google/veo-3.1 and alikes).
///
/// `person_generation` is not sent: veo's input schema has no such field and some models reject
/// unknown fields.
pub fn video_input(request: &VideoRequest) -> Value {
    let mut input = Map::new();
    input.insert("prompt".into(), json!(request.prompt));
    input.insert("aspect_ratio".into(), json!(request.aspect_ratio));
    input.insert("duration".into(), json!(request.duration));
    input.insert("resolution".into(), json!(VIDEO_RESOLUTION));
    input.insert("generate_audio".into(), json!(request.generate_audio));
    insert_optional(&mut input, request.seed, request.negative_prompt.as_deref());
    if let Some(reference) = &request.reference_image {
        input.insert("reference_images".into(), json!([data_uri(reference)]));
    }
    Value::Object(input)
}

fn insert_optional(input: &mut Map<String, Value>, seed: Option<i64>, negative_prompt: Option<&str>) {
    if let Some(seed) = seed {
        input.insert("seed".into(), json!(seed));
    }
    if let Some(negative) = negative_prompt.filter(|n| !n.trim().is_empty()) {
        input.insert("negative_prompt".into(), json!(negative));
    }
}

/// A reference image inline, which spares an upload round trip for the small files we send.
pub fn data_uri(media: &Media) -> String {
    format!("data:{};base64,{}", media.content_type, base64::engine::general_purpose::STANDARD.encode(&media.bytes))
}

/// `owner/name` as the path of the official-model predictions endpoint.
fn model_path(model: &str) -> Result<[&str; 5], ProviderError> {
    let bad = || malformed(format!("model {model:?} is not of the form owner/name"));
    let (owner, name) = model.trim().split_once('/').ok_or_else(bad)?;
    let usable = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('/');
    if !usable(owner) || !usable(name) {
        return Err(bad());
    }
    Ok(["v1", "models", owner, name, "predictions"])
}

/// `wait=N` in whole seconds (at least 1), or no header when waiting is switched off.
fn prefer_header(wait: Duration) -> Option<String> {
    (!wait.is_zero()).then(|| format!("wait={}", wait.as_secs().clamp(1, 60)))
}

#[derive(Debug, Deserialize)]
struct Prediction {
    id: String,
    status: String,
    #[serde(default)]
    output: Value,
    #[serde(default)]
    error: Value,
}

impl Prediction {
    /// The error for a prediction that ended without success.
    fn failure(&self, token: &str) -> ProviderError {
        let reason = match &self.error {
            Value::String(s) if !s.trim().is_empty() => s.clone(),
            Value::Null => "no reason given".to_owned(),
            other => other.to_string(),
        };
        let reason = clean_message(&reason, token);
        if self.status != "failed" {
            let message = format!("prediction {} was {}: {reason}", self.id, self.status);
            return ProviderError::RunFailed { provider: PROVIDER, message };
        }
        if looks_like_content_refusal(&reason) {
            return ProviderError::Refused { provider: PROVIDER, message: reason };
        }
        let message = format!("prediction {} failed: {reason}", self.id);
        ProviderError::RunFailed { provider: PROVIDER, message }
    }
}

/// A prediction answer, checked for shape: an object with an id and a status Replicate documents.
/// serde would read a JSON array into the struct by position, and an unknown status would be polled
/// until the deadline; both are an unusable answer at once.
fn parse_prediction(bytes: &[u8]) -> Result<Prediction, ProviderError> {
    let not_a_prediction = |why: String| malformed(format!("answer is not a prediction ({why}): {}", snippet(bytes)));
    let object = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => object,
        Ok(other) => return Err(not_a_prediction(format!("a JSON {} instead of an object", json_kind(&other)))),
        Err(e) => return Err(not_a_prediction(e.to_string())),
    };
    let prediction: Prediction =
        serde_json::from_value(Value::Object(object)).map_err(|e| not_a_prediction(e.to_string()))?;
    if prediction.id.trim().is_empty() {
        return Err(malformed("prediction has no id".to_owned()));
    }
    if !PREDICTION_STATUSES.contains(&prediction.status.as_str()) {
        return Err(not_a_prediction(format!("unknown status {:?}", prediction.status)));
    }
    Ok(prediction)
}

/// Every status a Replicate prediction can have.
const PREDICTION_STATUSES: [&str; 6] = ["starting", "processing", "succeeded", "failed", "canceled", "aborted"];

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Safety filters report through the prediction's error text (Replicate's E005 "flagged as
/// sensitive", Google's safety messages); a refusal is the user's to fix, not an outage.
fn looks_like_content_refusal(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    ["e005", "sensitive", "safety", "nsfw", "flagged"].iter().any(|w| lower.contains(w))
}

/// The first output file of a succeeded prediction: `output` is a URL or a list of URLs.
fn output_url(prediction: &Prediction) -> Result<String, ProviderError> {
    let first = match &prediction.output {
        Value::String(url) => Some(url.as_str()),
        Value::Array(items) => items.first().and_then(Value::as_str),
        _ => None,
    };
    match first {
        Some(url) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        _ => Err(malformed(format!("prediction {} succeeded without an output URL", prediction.id))),
    }
}

/// A `data:` output (Replicate may inline small files), decoded within the same size limit. Its
/// declared type is ignored like a download's header: the bytes say what the file is.
fn decode_data_uri(data: &str, max_bytes: u64) -> Result<Vec<u8>, ProviderError> {
    let (meta, payload) = data.split_once(',').ok_or_else(|| malformed("output data URI has no comma".to_owned()))?;
    if !meta.ends_with(";base64") {
        return Err(malformed("output data URI is not base64".to_owned()));
    }
    // base64 is 4 characters per 3 bytes; checked before decoding so nothing oversized is allocated.
    if (payload.len() as u64 / 4).saturating_mul(3) > max_bytes {
        return Err(malformed(format!("output larger than {}", human_bytes(max_bytes))));
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| malformed(format!("output data URI is not valid base64: {e}")))
}

/// The stored type of an output, from its bytes (see [`checked_media_type`]).
fn checked_type(bytes: &[u8], expected: &str) -> Result<&'static str, ProviderError> {
    checked_media_type(bytes, expected).map_err(malformed)
}

/// Maps a non-2xx API answer: the `detail` of Replicate's problem+json when present.
fn error_from_answer(status: StatusCode, body: &[u8], retry_after: Option<Duration>, token: &str) -> ProviderError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ProviderError::RateLimited { provider: PROVIDER, retry_after };
    }
    #[derive(Deserialize)]
    struct Problem {
        title: Option<String>,
        detail: Option<String>,
    }
    let message = match serde_json::from_slice::<Problem>(body) {
        Ok(Problem { detail, title }) => detail.filter(|d| !d.trim().is_empty()).or(title),
        Err(_) => None,
    };
    upstream_error(PROVIDER, status, message, body, token)
}

fn malformed(message: String) -> ProviderError {
    ProviderError::Malformed { provider: PROVIDER, message }
}

/// Why waiting for a prediction stopped without success: `ended_upstream` when Replicate itself
/// ended it (failed, canceled), so there is nothing left to cancel.
struct WaitError {
    error: ProviderError,
    ended_upstream: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(status: &str, output: Value, error: Value) -> Prediction {
        Prediction { id: "p1".into(), status: status.into(), output, error }
    }

    #[test]
    fn image_input_sends_optional_fields_only_when_given() {
        let mut request = ImageRequest {
            model: "google/imagen-4".into(),
            prompt: "a cat".into(),
            aspect_ratio: "1:1".into(),
            safety_filter_level: "block_medium_and_above".into(),
            person_generation: "allow_adult".into(),
            output_format: "png".into(),
            ..Default::default()
        };
        let input = image_input(&request);
        assert_eq!(
            input,
            json!({"prompt": "a cat", "aspect_ratio": "1:1", "output_format": "png",
                   "safety_filter_level": "block_medium_and_above", "person_generation": "allow_adult"})
        );
        request.seed = Some(-7);
        request.negative_prompt = Some("blur".into());
        let input = image_input(&request);
        assert_eq!(input["seed"], json!(-7));
        assert_eq!(input["negative_prompt"], json!("blur"));
    }

    #[test]
    fn video_input_has_no_person_generation_and_inlines_the_reference() {
        let request = VideoRequest {
            model: "google/veo-3.1".into(),
            prompt: "dance".into(),
            aspect_ratio: "16:9".into(),
            duration: 8,
            generate_audio: true,
            person_generation: "allow_all".into(),
            reference_image: Some(Media { bytes: b"abc".to_vec(), content_type: "image/png".into() }),
            ..Default::default()
        };
        let input = video_input(&request);
        assert_eq!(
            input,
            json!({"prompt": "dance", "aspect_ratio": "16:9", "duration": 8, "resolution": "720p",
                   "generate_audio": true, "reference_images": ["data:image/png;base64,YWJj"]})
        );
    }

    #[test]
    fn model_must_be_owner_slash_name() {
        assert_eq!(model_path("google/veo-3.1").unwrap(), ["v1", "models", "google", "veo-3.1", "predictions"]);
        for bad in ["imagen", "a/b/c", "/x", "x/", "../x", "a/.."] {
            assert!(model_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefer_header_is_whole_seconds_within_replicate_limits() {
        assert_eq!(prefer_header(Duration::ZERO), None);
        assert_eq!(prefer_header(Duration::from_millis(300)).as_deref(), Some("wait=1"));
        assert_eq!(prefer_header(Duration::from_secs(60)).as_deref(), Some("wait=60"));
    }

    #[test]
    fn output_is_a_string_or_the_first_of_a_list() {
        let single = prediction("succeeded", json!("https://x/a.png"), Value::Null);
        assert_eq!(output_url(&single).unwrap(), "https://x/a.png");
        let list = prediction("succeeded", json!(["https://x/1.mp4", "https://x/2.mp4"]), Value::Null);
        assert_eq!(output_url(&list).unwrap(), "https://x/1.mp4");
        for empty in [Value::Null, json!([]), json!(""), json!({"url": 1})] {
            assert!(output_url(&prediction("succeeded", empty, Value::Null)).is_err());
        }
    }

    #[test]
    fn only_objects_with_a_known_status_are_predictions() {
        let ok = parse_prediction(br#"{"id": "p1", "status": "starting"}"#).expect("prediction");
        assert_eq!((ok.id.as_str(), ok.status.as_str()), ("p1", "starting"));
        for bad in [&br#"["p1", "starting"]"#[..], br#""p1""#, b"null", br#"{"id": "p1", "status": "queued"}"#] {
            let err = parse_prediction(bad).expect_err("not a prediction");
            assert!(matches!(err, ProviderError::Malformed { .. }), "{err:?}");
        }
    }

    #[test]
    fn failures_carry_replicates_message() {
        let failed = prediction("failed", Value::Null, json!("CUDA out of memory"));
        assert_eq!(
            failed.failure("tok"),
            ProviderError::RunFailed {
                provider: "replicate",
                message: "prediction p1 failed: CUDA out of memory".into()
            }
        );
        let flagged = prediction("failed", Value::Null, json!("Output flagged as sensitive (E005)"));
        assert!(matches!(flagged.failure("tok"), ProviderError::Refused { .. }));
        let canceled = prediction("canceled", Value::Null, Value::Null);
        assert!(
            matches!(canceled.failure("tok"), ProviderError::RunFailed { message, .. } if message.contains("was canceled"))
        );
    }

    #[test]
    fn problem_json_detail_is_used() {
        let body = br#"{"title": "Invalid input", "detail": "aspect_ratio: must be one of 1:1, 16:9", "status": 422}"#;
        let err = error_from_answer(StatusCode::UNPROCESSABLE_ENTITY, body, None, "tok");
        assert_eq!(
            err,
            ProviderError::Upstream {
                provider: "replicate",
                status: 422,
                message: "aspect_ratio: must be one of 1:1, 16:9".into()
            }
        );
        let err = error_from_answer(StatusCode::UNAUTHORIZED, br#"{"title": "Unauthenticated"}"#, None, "tok");
        assert!(matches!(err, ProviderError::Upstream { status: 401, message, .. } if message == "Unauthenticated"));
    }

    #[test]
    fn output_types_come_from_the_bytes() {
        assert_eq!(checked_type(b"RIFF\0\0\0\0WEBPVP8 ", "image").unwrap(), "image/webp");
        assert_eq!(checked_type(b"\x00\x00\x00\x18ftypqt  ", "video").unwrap(), "video/mp4");
        assert_eq!(checked_type(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F], "video").unwrap(), "video/webm");
        assert!(checked_type(b"\x89PNG\r\n\x1a\n....", "video").is_err(), "an image is not a video");
        let err = checked_type(b"<html>oops</html>", "image").unwrap_err();
        assert!(matches!(&err, ProviderError::Malformed { message, .. } if message.contains("<html>")), "{err:?}");
    }

    #[test]
    fn data_uris_decode_within_the_limit() {
        assert_eq!(decode_data_uri("image/png;base64,YWJj", 10).unwrap(), b"abc");
        assert!(decode_data_uri("image/png;base64,YWJjYWJjYWJj", 3).is_err());
        assert!(decode_data_uri("image/png,abc", 10).is_err());
    }

    #[test]
    fn reference_images_become_data_uris() {
        let media = Media { bytes: vec![0xff, 0x00], content_type: "image/jpeg".into() };
        assert_eq!(data_uri(&media), "data:image/jpeg;base64,/wA=");
    }
}
