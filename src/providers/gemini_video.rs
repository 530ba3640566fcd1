//! The Veo video maker on the Gemini API (`backend: "gemini"`): start a `predictLongRunning`
//! operation, poll it until it is done or a deadline passes (then cancel it), and download the
//! generated video with the key header.
//!
//! Wire shapes follow `shared/reference/providers.md`. Retries and transport errors are handled by
//! [`super::http`], URL building and error bodies are shared with the scene writer in
//! [`super::gemini`]; this file owns the request body, the operation's life cycle and the download.
//! The key goes only to the configured base URL's origin, never to the file host a download
//! redirects to.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderValue, LOCATION};
use reqwest::{Response, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::{Instant, timeout_at};
use tracing::Instrument as _;

use super::body::{ReadError, read_limited};
use super::cancel::{CancelOnDrop, send_cancel};
use super::client::build_download_client;
use super::config::{ProviderConfig, RetryPolicy};
use super::gemini::{error_from_answer, key_header, model_method_url};
use super::outbound::OutboundPolicy;
use super::retry::{Repeat, parse_retry_after, send_with_retry};
use super::upstream_error::{clean_message, describe, transport_error};
use super::upstream_run;
use super::{BoxFuture, Output, ProviderError, RunContext, VideoMaker, VideoRequest};
use crate::media::snippet;

const PROVIDER: &str = "gemini";

/// Operation JSON is small; anything bigger is not an operation.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// Cancelling is a courtesy after we already gave up, so it gets a short leash.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

/// The upstream status progress reports for an operation with `done: false`, and with `done: true`.
const RUNNING: &str = "running";
const DONE: &str = "done";

/// Renders videos with Veo through the Gemini API (`backend() == "gemini"`).
pub struct GeminiVideoClient {
    http: reqwest::Client,
    /// For the file host's link: no redirects, and only addresses downloads may reach.
    downloads: reqwest::Client,
    outbound: OutboundPolicy,
    base_url: Url,
    api_key: String,
    key_header: HeaderValue,
    retry: RetryPolicy,
    request_timeout: Duration,
    poll_interval: Duration,
    deadline: Duration,
    download_timeout: Duration,
    max_bytes: u64,
}

impl GeminiVideoClient {
    /// A client for `config.gemini_base_url` with `config.gemini_api_key`; fails when the key is
    /// unset (or mocking is forced) or the base URL is unusable.
    pub fn new(config: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let api_key = config.gemini_key().ok_or("GEMINI_API_KEY is not set")?.to_owned();
        let base_url = Url::parse(&config.gemini_base_url).map_err(|e| format!("GEMINI_BASE_URL: {e}"))?;
        Ok(GeminiVideoClient {
            http,
            downloads: build_download_client(config, &config.gemini_base_url)?,
            outbound: OutboundPolicy::new(&config.gemini_base_url),
            base_url,
            key_header: key_header(&api_key)?,
            api_key,
            retry: config.retry,
            request_timeout: config.request_timeout,
            poll_interval: config.gemini_poll_interval,
            deadline: config.video_deadline,
            download_timeout: config.download_timeout,
            max_bytes: config.max_video_bytes,
        })
    }

    /// Runs one operation to its downloaded video. An operation `ctx` saved before is resumed
    /// (never started twice); a new one is saved through `ctx` before anything waits on it.
    async fn render(&self, request: &VideoRequest, ctx: RunContext<'_>) -> Result<Output, ProviderError> {
        let url = model_method_url(&self.base_url, &request.model, "predictLongRunning")?;
        let body = request_body(request);
        let deadline = Instant::now() + self.deadline;
        let timeout = ProviderError::Timeout { provider: PROVIDER, after: self.deadline };

        let start = async { timeout_at(deadline, self.start(url, &body)).await.map_err(|_| timeout.clone())? };
        let (name, started) = upstream_run::resume_or_start(
            ctx,
            PROVIDER,
            start,
            |op: &Operation| &op.name,
            |name| async move { self.cancel(&name).await },
        )
        .await?;
        // From here on Veo renders (and bills) until the operation ends or is cancelled: if polling
        // fails or the request is dropped, the guard cancels it (unless `ctx` keeps it for a resume).
        let guard = CancelOnDrop::new(PROVIDER, self.cancel_request(&name)?, ctx);
        let waited = async {
            let first = match started {
                Some(operation) => operation,
                None => self.fetch_resumed(&name).await?,
            };
            self.wait_until_done(first, ctx).await.map_err(|error| (error, false))
        };
        let waited = waited.instrument(upstream_run::poll_span(PROVIDER, &name));
        let done = match timeout_at(deadline, waited).await {
            Ok(Ok(done)) => done,
            Ok(Err((error, gone))) => {
                if gone {
                    guard.disarm();
                }
                return Err(error);
            }
            Err(_) => {
                guard.disarm();
                self.cancel(&name).await;
                return Err(timeout);
            }
        };
        guard.disarm();
        let uri = video_uri(&done, &self.api_key)?;
        tracing::debug!(model = %request.model, operation = %name, "veo operation succeeded");
        ctx.progress(upstream_run::DOWNLOADING, Some(DONE));
        self.download(&uri).instrument(upstream_run::download_span(PROVIDER, &name)).await
    }

    /// The current state of a saved operation, at once; `true` with the error when the API no
    /// longer knows it (404), which fails for good rather than starting a second run.
    async fn fetch_resumed(&self, name: &str) -> Result<Operation, (ProviderError, bool)> {
        match self.get_operation(name).await {
            Ok(operation) => Ok(operation),
            Err(ProviderError::Upstream { status: 404, .. }) => Err((upstream_run::gone(PROVIDER, name), true)),
            Err(error) => Err((error, false)),
        }
    }

    async fn start(&self, url: Url, body: &Value) -> Result<Operation, ProviderError> {
        let response = send_with_retry(PROVIDER, &self.retry, self.request_timeout, Repeat::CreatesWork, || {
            self.http.post(url.clone()).header("x-goog-api-key", self.key_header.clone()).json(body)
        })
        .await?;
        self.read_operation(response).await
    }

    /// Polls until the operation is done. Veo has no status word, only `done`: progress reports
    /// `running` for `done: false`.
    async fn wait_until_done(&self, mut operation: Operation, ctx: RunContext<'_>) -> Result<Operation, ProviderError> {
        let mut progress = upstream_run::StatusReporter::new(ctx);
        while !operation.done {
            progress.waiting(RUNNING);
            tokio::time::sleep(self.poll_interval).await;
            operation = self.get_operation(&operation.name).await?;
        }
        Ok(operation)
    }

    async fn get_operation(&self, name: &str) -> Result<Operation, ProviderError> {
        // Polled on our own base URL by the name it gave, so the key only ever goes there.
        let url = self.operation_url(name, "")?;
        let response = send_with_retry(PROVIDER, &self.retry, self.request_timeout, Repeat::Safe, || {
            self.http.get(url.clone()).header("x-goog-api-key", self.key_header.clone())
        })
        .await?;
        self.read_operation(response).await
    }

    fn cancel_request(&self, name: &str) -> Result<reqwest::RequestBuilder, ProviderError> {
        let url = self.operation_url(name, ":cancel")?;
        Ok(self
            .http
            .post(url)
            .header("x-goog-api-key", self.key_header.clone())
            .json(&json!({}))
            .timeout(CANCEL_TIMEOUT.min(self.request_timeout)))
    }

    /// Best effort: the operation runs on (and bills) until cancelled, but our caller already has
    /// its answer, so failures are only logged.
    async fn cancel(&self, name: &str) {
        let Ok(request) = self.cancel_request(name) else { return };
        match request.send().await {
            Ok(response) if response.status().is_success() => tracing::info!(operation = name, "cancelled operation"),
            Ok(response) => tracing::warn!(operation = name, status = response.status().as_u16(), "cancel refused"),
            Err(err) => tracing::warn!(operation = name, error = %describe(&err), "cancel failed"),
        }
    }

    async fn read_operation(&self, mut response: Response) -> Result<Operation, ProviderError> {
        let status = response.status();
        let bytes = match read_limited(&mut response, MAX_ANSWER_BYTES).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge) => return Err(malformed("operation answer is too large".to_owned())),
            Err(ReadError::Transport(e)) => return Err(transport_error(PROVIDER, &e, self.request_timeout)),
        };
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers());
            return Err(error_from_answer(status, &bytes, retry_after, &self.api_key));
        }
        let operation: Operation = serde_json::from_slice(&bytes)
            .map_err(|e| malformed(format!("answer is not an operation ({e}): {}", snippet(&bytes))))?;
        if operation.name.trim().is_empty() {
            return Err(malformed("operation has no name".to_owned()));
        }
        Ok(operation)
    }

    /// `{base}/v1beta/{name}{suffix}`, each segment of the upstream-given name escaped and checked,
    /// so an operation name cannot point the key at another endpoint.
    fn operation_url(&self, name: &str, suffix: &str) -> Result<Url, ProviderError> {
        let segments: Vec<&str> = name.trim().split('/').collect();
        if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            return Err(malformed(format!("operation name {name:?} is not usable")));
        }
        let mut url = self.base_url.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| malformed("base URL cannot take a path".to_owned()))?;
            path.pop_if_empty().push("v1beta");
            let (last, rest) = segments.split_last().unwrap_or((&"", &[]));
            path.extend(rest).push(&format!("{last}{suffix}"));
        }
        Ok(url)
    }

    /// GETs the video with the key when it lives on the API's own origin. The shared client stops
    /// at a redirect from there to another host (it would forward the key); the file host's
    /// pre-signed link is then followed here without the key, by the download client, and only to
    /// an address downloads may reach (the same rules as Replicate's outputs). Only the answer's
    /// status and first bytes are awaited here: the body streams when stored.
    async fn download(&self, uri: &str) -> Result<Output, ProviderError> {
        let url = Url::parse(uri).map_err(|e| malformed(format!("video URI {uri:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(malformed(format!("video URI scheme {:?} is not http(s)", url.scheme())));
        }
        let keyed = url.origin() == self.base_url.origin();
        let mut response = if keyed { self.get(&url, true).await? } else { self.get_unkeyed(&url).await? };
        if response.status().is_redirection() {
            let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok());
            let next = location
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| malformed("video download redirected without a usable Location".to_owned()))?;
            response = self.get_unkeyed(&next).await?;
        }
        let status = response.status();
        if !status.is_success() {
            return Err(ProviderError::Upstream {
                provider: PROVIDER,
                status: status.as_u16(),
                message: "downloading the generated video failed".to_owned(),
            });
        }
        Output::download(PROVIDER, "video", "video", response, self.max_bytes, self.download_timeout).await
    }

    /// A GET of a link the operation chose: checked against the outbound rules, never redirected.
    async fn get_unkeyed(&self, url: &Url) -> Result<Response, ProviderError> {
        self.outbound.check_url(url).map_err(malformed)?;
        send_with_retry(PROVIDER, &self.retry, self.download_timeout, Repeat::Safe, || self.downloads.get(url.clone()))
            .await
    }

    /// A GET on the API's own origin, with the key when `with_key`.
    async fn get(&self, url: &Url, with_key: bool) -> Result<Response, ProviderError> {
        send_with_retry(PROVIDER, &self.retry, self.download_timeout, Repeat::Safe, || {
            let request = self.http.get(url.clone());
            if with_key { request.header("x-goog-api-key", self.key_header.clone()) } else { request }
        })
        .await
    }
}

impl VideoMaker for GeminiVideoClient {
    fn backend(&self) -> &'static str {
        PROVIDER
    }

    fn make_video<'a>(
        &'a self,
        request: &'a VideoRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>> {
        Box::pin(self.render(request, ctx))
    }

    fn cancel_run<'a>(&'a self, run: &'a super::UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { send_cancel(PROVIDER, self.cancel_request(&run.id)?).await })
    }
}

/// The `predictLongRunning` body: the full prompt (scene text plus the flavor's rules, as sent to
/// Replicate), the character reference as the start frame, and the flavor's parameters.
///
/// `generate_audio` is not sent: the Gemini API's Veo has no such parameter (Veo 3 always renders
/// sound).
pub fn request_body(request: &VideoRequest) -> Value {
    let mut instance = Map::new();
    instance.insert("prompt".into(), json!(request.prompt));
    if let Some(image) = &request.reference_image {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&image.bytes);
        instance.insert("image".into(), json!({"bytesBase64Encoded": encoded, "mimeType": image.content_type}));
    }
    let mut parameters = Map::new();
    parameters.insert("aspectRatio".into(), json!(request.aspect_ratio));
    parameters.insert("personGeneration".into(), json!(request.person_generation));
    if let Some(negative) = request.negative_prompt.as_deref().filter(|n| !n.trim().is_empty()) {
        parameters.insert("negativePrompt".into(), json!(negative));
    }
    parameters.insert("durationSeconds".into(), json!(request.duration));
    if let Some(seed) = request.seed {
        parameters.insert("seed".into(), json!(seed));
    }
    json!({"instances": [Value::Object(instance)], "parameters": Value::Object(parameters)})
}

#[derive(Debug, Deserialize)]
struct Operation {
    #[serde(default)]
    name: String,
    #[serde(default)]
    done: bool,
    error: Option<OperationError>,
    response: Option<OperationResponse>,
}

#[derive(Debug, Deserialize)]
struct OperationError {
    code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationResponse {
    generate_video_response: Option<GeneratedVideos>,
}

/// Veo's `generateVideoResponse`: the videos made, and how many the safety filter removed and why.
/// Not the API's `GenerateVideoResponse` (`generation::video`): only what Veo answers, read here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeneratedVideos {
    #[serde(default)]
    generated_samples: Vec<Sample>,
    #[serde(default)]
    rai_media_filtered_reasons: Vec<String>,
    rai_media_filtered_count: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Sample {
    video: Option<Video>,
}

#[derive(Debug, Deserialize)]
struct Video {
    uri: Option<String>,
}

/// gRPC's RESOURCE_EXHAUSTED: the operation ended on a quota, which is worth retrying later.
const RESOURCE_EXHAUSTED: i64 = 8;

/// The video URI of a done operation, or why there is none: its `error`, a safety filter, or an
/// answer without samples.
fn video_uri(operation: &Operation, api_key: &str) -> Result<String, ProviderError> {
    if let Some(error) = &operation.error {
        let reason = error.message.as_deref().filter(|m| !m.trim().is_empty()).unwrap_or("no reason given");
        let reason = clean_message(reason, api_key);
        if error.code == Some(RESOURCE_EXHAUSTED) {
            return Err(ProviderError::RateLimited { provider: PROVIDER, retry_after: None });
        }
        if looks_like_content_refusal(&reason) {
            return Err(ProviderError::Refused { provider: PROVIDER, message: reason });
        }
        let code = error.code.map(|c| format!(" (code {c})")).unwrap_or_default();
        let message = format!("operation {} failed: {reason}{code}", operation.name);
        return Err(ProviderError::RunFailed { provider: PROVIDER, message });
    }
    let answer = operation.response.as_ref().and_then(|r| r.generate_video_response.as_ref());
    let uri = answer
        .and_then(|a| a.generated_samples.first())
        .and_then(|s| s.video.as_ref())
        .and_then(|v| v.uri.as_deref())
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(uri) = uri {
        return Ok(uri.to_owned());
    }
    match answer {
        Some(a) if !a.rai_media_filtered_reasons.is_empty() || a.rai_media_filtered_count.is_some_and(|n| n > 0) => {
            let reasons = a.rai_media_filtered_reasons.join("; ");
            let reasons = if reasons.trim().is_empty() { "no reason given".to_owned() } else { reasons };
            let message = format!("the video was blocked by the safety filter: {}", clean_message(&reasons, api_key));
            Err(ProviderError::Refused { provider: PROVIDER, message })
        }
        _ => Err(malformed(format!("operation {} is done without a video", operation.name))),
    }
}

/// Veo reports some refusals as an operation error whose text names the policy it hit.
fn looks_like_content_refusal(reason: &str) -> bool {
    let lower = reason.to_ascii_lowercase();
    ["safety", "usage guidelines", "responsible ai", "sensitive", "prohibited"].iter().any(|w| lower.contains(w))
}

fn malformed(message: String) -> ProviderError {
    ProviderError::Malformed { provider: PROVIDER, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Media;

    fn operation(value: Value) -> Operation {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn body_has_the_prompt_start_frame_and_parameters() {
        let request = VideoRequest {
            model: "veo-3.1-generate-preview".into(),
            prompt: "dance\n\nrules".into(),
            aspect_ratio: "9:16".into(),
            duration: 8,
            generate_audio: true,
            person_generation: "allow_all".into(),
            negative_prompt: Some("blur".into()),
            seed: Some(42),
            reference_image: Some(Media { bytes: b"abc".to_vec(), content_type: "image/png".into() }),
        };
        assert_eq!(
            request_body(&request),
            json!({
                "instances": [{"prompt": "dance\n\nrules", "image": {"bytesBase64Encoded": "YWJj", "mimeType": "image/png"}}],
                "parameters": {"aspectRatio": "9:16", "personGeneration": "allow_all", "negativePrompt": "blur",
                               "durationSeconds": 8, "seed": 42}
            })
        );
    }

    #[test]
    fn optional_values_are_left_out_when_not_given() {
        let request = VideoRequest {
            prompt: "p".into(),
            aspect_ratio: "16:9".into(),
            duration: 4,
            person_generation: "dont_allow".into(),
            negative_prompt: Some("  ".into()),
            ..Default::default()
        };
        assert_eq!(
            request_body(&request),
            json!({"instances": [{"prompt": "p"}],
                   "parameters": {"aspectRatio": "16:9", "personGeneration": "dont_allow", "durationSeconds": 4}})
        );
    }

    #[test]
    fn done_operations_give_the_uri_or_say_why_not() {
        let ok = operation(json!({"name": "op", "done": true, "response": {"generateVideoResponse":
            {"generatedSamples": [{"video": {"uri": "https://x/v1beta/files/a:download?alt=media"}}]}}}));
        assert_eq!(video_uri(&ok, "k").unwrap(), "https://x/v1beta/files/a:download?alt=media");

        let failed = operation(json!({"name": "op", "done": true, "error": {"code": 3, "message": "bad key=AIza-1"}}));
        assert_eq!(
            video_uri(&failed, "AIza-1").unwrap_err(),
            ProviderError::RunFailed {
                provider: "gemini",
                message: "operation op failed: bad key=[redacted] (code 3)".into()
            }
        );
        let quota = operation(json!({"name": "op", "done": true, "error": {"code": 8, "message": "quota"}}));
        assert!(matches!(video_uri(&quota, "k").unwrap_err(), ProviderError::RateLimited { .. }));
        let policy = operation(json!({"name": "op", "done": true,
            "error": {"code": 3, "message": "The prompt violates our usage guidelines"}}));
        assert!(matches!(video_uri(&policy, "k").unwrap_err(), ProviderError::Refused { .. }));

        let blocked = operation(json!({"name": "op", "done": true, "response": {"generateVideoResponse":
            {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": ["Contains a celebrity likeness."]}}}));
        let err = video_uri(&blocked, "k").unwrap_err();
        assert!(matches!(&err, ProviderError::Refused { message, .. } if message.contains("celebrity")), "{err:?}");

        for empty in [json!({"name": "op", "done": true}), json!({"name": "op", "done": true, "response": {}})] {
            assert!(matches!(video_uri(&operation(empty), "k").unwrap_err(), ProviderError::Malformed { .. }));
        }
    }

    #[test]
    fn operation_names_stay_under_v1beta() {
        let config = ProviderConfig {
            gemini_api_key: Some("k".into()),
            gemini_base_url: "http://127.0.0.1:9/".into(),
            ..ProviderConfig::default()
        };
        crate::tls::install_crypto_provider();
        let client = GeminiVideoClient::new(&config, reqwest::Client::new()).unwrap();
        let url = client.operation_url("models/veo-3.1-generate-preview/operations/abc", ":cancel").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:9/v1beta/models/veo-3.1-generate-preview/operations/abc:cancel");
        assert_eq!(client.operation_url("operations/a?b#c", "").unwrap().path(), "/v1beta/operations/a%3Fb%23c");
        for bad in ["", "models/../x", "a//b", "/a", "a/."] {
            assert!(client.operation_url(bad, "").is_err(), "{bad:?}");
        }
    }
}
