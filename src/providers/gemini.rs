//! The Gemini scene writer: one `generateContent` call in JSON mode with a response schema, and
//! the decoding of its answer into exactly the number of scenes asked for.
//!
//! Wire shapes follow `shared/reference/providers.md`. Retries and transport errors are handled by
//! [`super::http`]; this file owns the request body, the answer's decoding and its error body.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::body::{ReadError, human_bytes, read_limited};
use super::config::{ProviderConfig, RetryPolicy};
use super::retry::{Repeat, parse_retry_after, send_with_retry};
use super::upstream_error::{transport_error, upstream_error};
use super::{BoxFuture, ProviderError, Scene, SceneRequest, SceneWriter};
use crate::media::snippet;

const PROVIDER: &str = "gemini";

/// A JSON answer far beyond any scene list is a fault, not something to buffer.
const MAX_ANSWER_BYTES: u64 = 8 * 1024 * 1024;

/// Writes scenes with Gemini (`backend() == "gemini"`).
pub struct GeminiClient {
    http: reqwest::Client,
    base_url: Url,
    api_key: String,
    /// The key as a header value marked sensitive, so it is masked wherever headers get logged.
    key_header: HeaderValue,
    retry: RetryPolicy,
    timeout: Duration,
}

impl GeminiClient {
    /// A client for `config.gemini_base_url` with `config.gemini_api_key`; fails when the key is
    /// unset (or mocking is forced) or the base URL is unusable.
    pub fn new(config: &ProviderConfig, http: reqwest::Client) -> Result<Self, String> {
        let api_key = config.gemini_key().ok_or("GEMINI_API_KEY is not set")?.to_owned();
        let base_url = Url::parse(&config.gemini_base_url).map_err(|e| format!("GEMINI_BASE_URL: {e}"))?;
        let key_header = key_header(&api_key)?;
        Ok(GeminiClient { http, base_url, api_key, key_header, retry: config.retry, timeout: config.request_timeout })
    }

    async fn generate(&self, request: &SceneRequest) -> Result<Vec<Scene>, ProviderError> {
        let url = endpoint(&self.base_url, &request.model)?;
        // Serialised once; every retry sends the same bytes (a `Bytes` clone shares them).
        let body = request_body(&request.prompt)?;
        let mut response = send_with_retry(PROVIDER, &self.retry, self.timeout, Repeat::Safe, || {
            self.http
                .post(url.clone())
                .header("x-goog-api-key", self.key_header.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await?;
        let status = response.status();
        let bytes = match read_limited(&mut response, MAX_ANSWER_BYTES).await {
            Ok(bytes) => bytes,
            Err(ReadError::TooLarge) => {
                return Err(malformed(format!("answer larger than {}", human_bytes(MAX_ANSWER_BYTES))));
            }
            Err(ReadError::Transport(e)) => return Err(transport_error(PROVIDER, &e, self.timeout)),
        };
        if !status.is_success() {
            let retry_after = parse_retry_after(response.headers());
            return Err(error_from_answer(status, &bytes, retry_after, &self.api_key));
        }
        let scenes = parse_answer(&bytes, request.number_of_scenes)?;
        tracing::debug!(model = %request.model, scenes = scenes.len(), "gemini wrote scenes");
        Ok(scenes)
    }
}

/// The key as an `x-goog-api-key` value, marked sensitive so it is masked wherever headers get
/// logged.
pub(super) fn key_header(api_key: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(api_key)
        .map_err(|_| "GEMINI_API_KEY contains characters that cannot be sent in a header".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

impl SceneWriter for GeminiClient {
    fn backend(&self) -> &'static str {
        PROVIDER
    }

    fn write_scenes<'a>(&'a self, request: &'a SceneRequest) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>> {
        Box::pin(self.generate(request))
    }
}

/// `{base}/v1beta/models/{model}:generateContent`, with the model as one escaped path segment so
/// a model name can never reach another endpoint.
fn endpoint(base: &Url, model: &str) -> Result<Url, ProviderError> {
    model_method_url(base, model, "generateContent")
}

/// `{base}/v1beta/models/{model}:{method}` (also used by the Veo client for `predictLongRunning`).
pub(super) fn model_method_url(base: &Url, model: &str, method: &str) -> Result<Url, ProviderError> {
    let model = model.trim().strip_prefix("models/").unwrap_or(model.trim());
    if model.is_empty() || model == "." || model == ".." {
        return Err(malformed(format!("model name {model:?} is not usable")));
    }
    let mut url = base.clone();
    url.path_segments_mut().map_err(|()| malformed("base URL cannot take a path".to_owned()))?.pop_if_empty().extend([
        "v1beta",
        "models",
        &format!("{model}:{method}"),
    ]);
    Ok(url)
}

/// The `generateContent` body: the prompt as one user turn, and JSON mode with the scenes schema
/// so the model cannot answer in prose. Written straight from the borrowed prompt and the schema
/// built once: as a JSON tree built per request (the prompt copied into it, the schema rebuilt)
/// and then serialised, it was some seventy allocations of every `create_scenes`.
pub fn request_body(prompt: &str) -> Result<Bytes, ProviderError> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct GenerateContent<'a> {
        contents: [Turn<'a>; 1],
        generation_config: GenerationConfig,
    }
    #[derive(Serialize)]
    struct Turn<'a> {
        role: &'static str,
        parts: [Part<'a>; 1],
    }
    #[derive(Serialize)]
    struct Part<'a> {
        text: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct GenerationConfig {
        response_mime_type: &'static str,
        response_schema: &'static Value,
    }
    static RESPONSE_SCHEMA: LazyLock<Value> = LazyLock::new(response_schema);
    let body = GenerateContent {
        contents: [Turn { role: "user", parts: [Part { text: prompt }] }],
        generation_config: GenerationConfig {
            response_mime_type: "application/json",
            response_schema: &RESPONSE_SCHEMA,
        },
    };
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| malformed(format!("request body: {e}")))
}

/// The OpenAPI-subset schema Gemini enforces on its JSON answer.
pub fn response_schema() -> Value {
    json!({
        "type": "OBJECT",
        "properties": {
            "scenes": {
                "type": "ARRAY",
                "items": {
                    "type": "OBJECT",
                    "properties": {
                        "description": {"type": "STRING"},
                        "negative_description": {"type": "STRING"}
                    },
                    "required": ["description", "negative_description"]
                }
            }
        },
        "required": ["scenes"]
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    candidates: Vec<Candidate>,
    prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    text: Option<String>,
    /// Thought summaries (thinking models) are not part of the answer.
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize)]
struct ScenesPayload {
    scenes: Vec<Scene>,
}

/// Finish reasons meaning the model declined for content reasons, not that it broke.
const REFUSAL_REASONS: &[&str] = &["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"];

/// Decodes a 200 answer into exactly `expected` scenes.
pub fn parse_answer(body: &[u8], expected: u32) -> Result<Vec<Scene>, ProviderError> {
    let answer: Answer = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("answer is not a generateContent response ({e}): {}", snippet(body))))?;
    let Some(candidate) = answer.candidates.into_iter().next() else {
        return Err(match answer.prompt_feedback.and_then(|f| f.block_reason) {
            Some(reason) => {
                ProviderError::Refused { provider: PROVIDER, message: format!("prompt blocked ({reason})") }
            }
            None => malformed("answer has no candidates".to_owned()),
        });
    };
    let finish = candidate.finish_reason.as_deref().unwrap_or("");
    if REFUSAL_REASONS.contains(&finish) {
        return Err(ProviderError::Refused { provider: PROVIDER, message: format!("answer stopped ({finish})") });
    }
    if finish == "MAX_TOKENS" {
        return Err(malformed("answer was cut off at the output token limit (MAX_TOKENS)".to_owned()));
    }
    let text: String = candidate
        .content
        .map(|c| c.parts.into_iter().filter(|p| !p.thought).filter_map(|p| p.text).collect())
        .unwrap_or_default();
    if text.trim().is_empty() {
        return Err(malformed(format!("answer has no text (finishReason {finish:?})")));
    }
    let payload: ScenesPayload = serde_json::from_str(strip_code_fence(&text)).map_err(|e| {
        malformed(format!("scenes text is not {{\"scenes\": [...]}} JSON ({e}): {}", snippet(text.as_bytes())))
    })?;
    check_scenes(payload.scenes, expected)
}

fn check_scenes(scenes: Vec<Scene>, expected: u32) -> Result<Vec<Scene>, ProviderError> {
    if scenes.len() != expected as usize {
        return Err(malformed(format!("asked for {expected} scenes, got {}", scenes.len())));
    }
    if let Some(i) = scenes.iter().position(|s| s.description.trim().is_empty()) {
        return Err(malformed(format!("scene {} has an empty description", i + 1)));
    }
    Ok(scenes)
}

/// JSON mode should never fence its answer, but a model that does still said what we asked.
fn strip_code_fence(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(inner) = trimmed.strip_prefix("```") else { return trimmed };
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    inner.strip_suffix("```").unwrap_or(inner).trim()
}

/// Maps a non-2xx answer: the upstream's own `error.message` when it sent its error body. Every
/// Generative Language API method answers errors this way, so the Veo client uses it too.
pub(super) fn error_from_answer(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
    api_key: &str,
) -> ProviderError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return ProviderError::RateLimited { provider: PROVIDER, retry_after };
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: Option<String>,
        status: Option<String>,
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => error.message.filter(|m| !m.trim().is_empty()).or(error.status),
        Err(_) => None,
    };
    upstream_error(PROVIDER, status, message, body, api_key)
}

fn malformed(message: String) -> ProviderError {
    ProviderError::Malformed { provider: PROVIDER, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_with_text(text: &str, finish: &str) -> Vec<u8> {
        json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": finish}],
            "modelVersion": "gemini-2.5-flash"
        })
        .to_string()
        .into_bytes()
    }

    fn scenes_json(n: usize) -> String {
        let scenes: Vec<_> =
            (1..=n).map(|i| json!({"description": format!("scene {i}"), "negative_description": "blur"})).collect();
        json!({ "scenes": scenes }).to_string()
    }

    fn message(err: ProviderError) -> String {
        match err {
            ProviderError::Malformed { message, .. } | ProviderError::Refused { message, .. } => message,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parts_are_concatenated() {
        let text = scenes_json(2);
        let (a, b) = text.split_at(10);
        let body = json!({"candidates": [{"content": {"parts": [{"text": a}, {"text": b}]}, "finishReason": "STOP"}]});
        let scenes = parse_answer(body.to_string().as_bytes(), 2).unwrap();
        assert_eq!(scenes[1], Scene { description: "scene 2".into(), negative_description: "blur".into() });
    }

    #[test]
    fn thought_parts_are_skipped() {
        let body = json!({"candidates": [{"content": {"parts": [
            {"text": "let me think", "thought": true}, {"text": scenes_json(1)}
        ]}}]});
        assert_eq!(parse_answer(body.to_string().as_bytes(), 1).unwrap().len(), 1);
    }

    #[test]
    fn wrong_count_says_what_was_asked() {
        let err = parse_answer(&answer_with_text(&scenes_json(4), "STOP"), 6).unwrap_err();
        assert_eq!(message(err), "asked for 6 scenes, got 4");
    }

    #[test]
    fn blocked_prompt_is_refused() {
        let body = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        let err = parse_answer(body.to_string().as_bytes(), 3).unwrap_err();
        assert!(matches!(&err, ProviderError::Refused { .. }), "{err:?}");
        assert!(message(err).contains("SAFETY"));
    }

    #[test]
    fn safety_and_recitation_stops_are_refused() {
        for reason in ["SAFETY", "RECITATION"] {
            let err = parse_answer(&answer_with_text("", reason), 3).unwrap_err();
            assert!(matches!(err, ProviderError::Refused { .. }), "{reason}: {err:?}");
        }
    }

    #[test]
    fn max_tokens_is_malformed_and_says_so() {
        let err = parse_answer(&answer_with_text("{\"scenes\": [{\"descr", "MAX_TOKENS"), 3).unwrap_err();
        assert!(message(err).contains("MAX_TOKENS"));
    }

    #[test]
    fn non_json_and_wrong_shapes_are_malformed() {
        let cases: [(&[u8], &str); 5] = [
            (b"<html>oops</html>", "not a generateContent response"),
            (&answer_with_text("Sure! Here are your scenes:", "STOP"), "scenes text is not"),
            (&answer_with_text("{\"shots\": []}", "STOP"), "scenes text is not"),
            (&answer_with_text("{\"scenes\": [{\"description\": 3}]}", "STOP"), "scenes text is not"),
            (b"{\"candidates\": []}", "no candidates"),
        ];
        for (body, expected) in cases {
            let text = message(parse_answer(body, 1).unwrap_err());
            assert!(text.contains(expected), "{text:?} should contain {expected:?}");
        }
    }

    #[test]
    fn empty_descriptions_are_malformed() {
        let text = json!({"scenes": [{"description": " ", "negative_description": ""}]}).to_string();
        assert_eq!(
            message(parse_answer(&answer_with_text(&text, "STOP"), 1).unwrap_err()),
            "scene 1 has an empty description"
        );
    }

    #[test]
    fn fenced_json_is_accepted() {
        let fenced = format!("```json\n{}\n```", scenes_json(2));
        assert_eq!(parse_answer(&answer_with_text(&fenced, "STOP"), 2).unwrap().len(), 2);
    }

    #[test]
    fn upstream_error_body_gives_its_message() {
        let body =
            br#"{"error": {"code": 400, "message": "API key not valid. key=AIza-1", "status": "INVALID_ARGUMENT"}}"#;
        let err = error_from_answer(StatusCode::BAD_REQUEST, body, None, "AIza-1");
        assert_eq!(
            err,
            ProviderError::Upstream {
                provider: "gemini",
                status: 400,
                message: "API key not valid. key=[redacted]".into()
            }
        );
        let err = error_from_answer(StatusCode::BAD_GATEWAY, b"", None, "k");
        assert!(matches!(err, ProviderError::Upstream { status: 502, ref message, .. } if message == "Bad Gateway"));
    }

    #[test]
    fn final_429_is_rate_limited() {
        let err = error_from_answer(StatusCode::TOO_MANY_REQUESTS, b"{}", Some(Duration::from_secs(5)), "k");
        assert_eq!(err, ProviderError::RateLimited { provider: "gemini", retry_after: Some(Duration::from_secs(5)) });
    }

    #[test]
    fn endpoint_escapes_the_model() {
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            endpoint(&base, "gemini-2.5-flash").unwrap().as_str(),
            "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
        );
        assert_eq!(
            endpoint(&base, "models/gemini-2.5-pro").unwrap().path(),
            "/v1beta/models/gemini-2.5-pro:generateContent"
        );
        assert_eq!(endpoint(&base, "../x").unwrap().path(), "/v1beta/models/..%2Fx:generateContent");
        assert!(endpoint(&base, "").is_err());
    }

    #[test]
    fn body_carries_schema_and_json_mode() {
        let body: Value = serde_json::from_slice(&request_body("write").unwrap()).unwrap();
        assert_eq!(body["contents"][0]["parts"][0]["text"], "write");
        assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
        assert_eq!(body["generationConfig"]["responseSchema"]["required"], json!(["scenes"]));
    }
}
