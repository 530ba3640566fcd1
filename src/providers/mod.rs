//! The upstream models behind the API: who writes scenes, draws images and renders videos.
//!
//! Handlers turn a flavor plus a request into the plain request structs below, so real and mock
//! providers see exactly the same inputs and can be tested alone. Providers know nothing about
//! flavors or HTTP handlers; what they make is an [`Output`] stream the generation hands to
//! storage. Retries live inside each provider, bounded and with backoff (a download's only before
//! its first byte is read); handlers never retry.

pub mod body;
pub mod cancel;
pub mod client;
pub mod config;
pub mod gemini;
pub mod gemini_video;
pub mod mock;
pub mod mock_clip;
pub mod outbound;
pub mod output;
pub mod replicate;
pub mod retry;
pub mod run;
pub mod upstream_error;
pub mod upstream_run;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use config::{ProviderConfig, RetryPolicy};
pub use output::Output;
pub use run::{RunContext, RunObserver, UpstreamRun};

/// A boxed future, so providers can sit behind `Arc<dyn Trait>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the scene writer is asked: the prompt, byte for byte, and how many scenes it must answer.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SceneRequest {
    /// Borrowed from an embedded flavor (no copy per request); owned when read back from a job.
    pub model: Cow<'static, str>,
    pub prompt: String,
    pub number_of_scenes: u32,
}

/// The values a scene prompt was rendered from. A model reads the prompt and never sees these; the
/// mock, which has no model to read it, writes its scenes from them (see
/// [`SceneWriter::write_scenes_from`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SceneBrief {
    pub idea: String,
    pub character_description: String,
    // The request's text, or the flavor's: borrowed from an embedded flavor, as `model` is.
    pub character_characteristics: Cow<'static, str>,
    pub video_type: Cow<'static, str>,
    pub video_characteristics: Cow<'static, str>,
    pub camera_angle: Cow<'static, str>,
}

/// One scene as the LLM wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scene {
    pub description: String,
    pub negative_description: String,
}

/// One image to draw. Enum values are already their wire spellings.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ImageRequest {
    // The flavor's values are borrowed from an embedded flavor, as in `SceneRequest`.
    pub model: Cow<'static, str>,
    pub prompt: String,
    pub aspect_ratio: Cow<'static, str>,
    pub safety_filter_level: Cow<'static, str>,
    pub person_generation: Cow<'static, str>,
    pub output_format: Cow<'static, str>,
    pub negative_prompt: Option<String>,
    pub seed: Option<i64>,
}

/// One video to render.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct VideoRequest {
    // The flavor's values are borrowed from an embedded flavor, as in `SceneRequest`.
    pub model: Cow<'static, str>,
    pub prompt: String,
    pub aspect_ratio: Cow<'static, str>,
    pub duration: u32,
    pub generate_audio: bool,
    pub person_generation: Cow<'static, str>,
    pub negative_prompt: Option<String>,
    pub seed: Option<i64>,
    /// The picked character reference, sent to the model for subject consistency. Not part of a
    /// stored plan: a job keeps where the image comes from and reads it when it runs.
    #[serde(skip)]
    pub reference_image: Option<Media>,
}

/// A file in memory: a reference image sent to a model. (What a model makes comes as an
/// [`Output`], streamed into storage.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub bytes: Vec<u8>,
    /// e.g. `image/png`, `video/mp4`.
    pub content_type: String,
}

/// Why an upstream call failed. Display texts name the provider and never include a key or token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("{provider} did not answer within {after:?}")]
    Timeout { provider: &'static str, after: Duration },
    #[error("{provider} could not be reached: {message}")]
    Unreachable { provider: &'static str, message: String },
    #[error("{provider} is rate limiting requests{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited { provider: &'static str, retry_after: Option<Duration> },
    #[error("{provider} answered {status}: {message}")]
    Upstream { provider: &'static str, status: u16, message: String },
    /// The upstream accepted the job but the run itself failed (a failed or canceled prediction).
    #[error("{provider}: {message}")]
    RunFailed { provider: &'static str, message: String },
    #[error("{provider} sent an unusable answer: {message}")]
    Malformed { provider: &'static str, message: String },
    #[error("{provider} refused the request: {message}")]
    Refused { provider: &'static str, message: String },
}

/// Writes scenes from a prompt.
pub trait SceneWriter: Send + Sync {
    /// `"gemini"`, `"mock"`, ...: reported as `backend_used`.
    fn backend(&self) -> &'static str;
    fn is_mock(&self) -> bool {
        false
    }
    fn write_scenes<'a>(&'a self, request: &'a SceneRequest) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>>;
    /// Writes scenes for a request whose prompt was rendered from `brief`. A model reads only the
    /// prompt, so by default the brief is not used (what goes upstream is `request` alone); the
    /// mock overrides this to build its scenes from the brief.
    fn write_scenes_from<'a>(
        &'a self,
        request: &'a SceneRequest,
        _brief: &'a SceneBrief,
    ) -> BoxFuture<'a, Result<Vec<Scene>, ProviderError>> {
        self.write_scenes(request)
    }
}

/// Draws one image per call.
pub trait ImageMaker: Send + Sync {
    fn backend(&self) -> &'static str;
    fn is_mock(&self) -> bool {
        false
    }

    /// Cancels a run this maker started earlier and a job saved (`run.id`), when no live call
    /// holds it: the job was cancelled while queued, released by a shutdown, or its worker died.
    /// Cancelling a run that already ended is harmless upstream. A maker whose runs live nowhere
    /// but in the call says so with an error.
    fn cancel_run<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { Err(cannot_cancel(self.backend(), run)) })
    }
    fn make_image<'a>(
        &'a self,
        request: &'a ImageRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>>;
}

/// Renders one video per call.
pub trait VideoMaker: Send + Sync {
    fn backend(&self) -> &'static str;
    fn is_mock(&self) -> bool {
        false
    }

    /// Cancels a run this maker started earlier and a job saved (`run.id`), when no live call
    /// holds it: the job was cancelled while queued, released by a shutdown, or its worker died.
    /// Cancelling a run that already ended is harmless upstream. A maker whose runs live nowhere
    /// but in the call says so with an error.
    fn cancel_run<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move { Err(cannot_cancel(self.backend(), run)) })
    }
    fn make_video<'a>(
        &'a self,
        request: &'a VideoRequest,
        ctx: RunContext<'a>,
    ) -> BoxFuture<'a, Result<Output, ProviderError>>;
}

/// The error of a maker that cannot cancel a saved run.
fn cannot_cancel(provider: &'static str, run: &UpstreamRun) -> ProviderError {
    ProviderError::Refused { provider, message: format!("{provider} cannot cancel the saved run {}", run.id) }
}

/// The providers a server uses.
#[derive(Clone)]
pub struct Providers {
    pub scenes: Arc<dyn SceneWriter>,
    pub images: Arc<dyn ImageMaker>,
    /// Videos on the default backend (`backend: "replicate"`).
    pub videos: Arc<dyn VideoMaker>,
    /// Videos with `backend: "gemini"`: Veo through the Gemini API.
    pub gemini_videos: Arc<dyn VideoMaker>,
}

impl Providers {
    /// Real providers where `config` has a key (Gemini key: scenes and `backend: "gemini"` videos;
    /// Replicate token: images and videos), the offline mocks elsewhere or everywhere when `config.force_mock` is set.
    /// Fails when the settings are unusable or the HTTP client cannot be set up.
    pub fn from_config(config: &ProviderConfig) -> anyhow::Result<Providers> {
        config.check()?;
        let mock = Providers::mock();
        if config.gemini_key().is_none() && config.replicate_token().is_none() {
            return Ok(mock);
        }
        // The clients' constructors keep their plain-text errors; this is where they meet the edge.
        let client = client::build_client(config).map_err(anyhow::Error::msg)?;
        let (scenes, gemini_videos): (Arc<dyn SceneWriter>, Arc<dyn VideoMaker>) = match config.gemini_key() {
            Some(_) => (
                Arc::new(gemini::GeminiClient::new(config, client.clone()).map_err(anyhow::Error::msg)?),
                Arc::new(gemini_video::GeminiVideoClient::new(config, client.clone()).map_err(anyhow::Error::msg)?),
            ),
            None => (mock.scenes, mock.gemini_videos),
        };
        let (images, videos): (Arc<dyn ImageMaker>, Arc<dyn VideoMaker>) = match config.replicate_token() {
            Some(_) => {
                let replicate = Arc::new(replicate::ReplicateClient::new(config, client).map_err(anyhow::Error::msg)?);
                (replicate.clone(), replicate)
            }
            None => (mock.images, mock.videos),
        };
        Ok(Providers { scenes, images, videos, gemini_videos })
    }

    /// Cancels a saved run (see [`ImageMaker::cancel_run`]) through the maker whose backend
    /// started it; the Replicate client makes both images and videos, so either may answer.
    pub async fn cancel_run(&self, run: &UpstreamRun) -> Result<(), String> {
        let result = if self.images.backend() == run.provider {
            self.images.cancel_run(run).await
        } else if self.videos.backend() == run.provider {
            self.videos.cancel_run(run).await
        } else if self.gemini_videos.backend() == run.provider {
            self.gemini_videos.cancel_run(run).await
        } else {
            return Err(format!(
                "no configured provider is {:?}, so its run {} cannot be cancelled",
                run.provider, run.id
            ));
        };
        result.map_err(|e| e.to_string())
    }

    /// All offline mocks.
    pub fn mock() -> Providers {
        Providers {
            scenes: Arc::new(mock::MockScenes),
            images: Arc::new(mock::MockImages),
            videos: Arc::new(mock::MockVideos),
            gemini_videos: Arc::new(mock::MockGeminiVideos),
        }
    }

    /// One line for the startup log, e.g.
    /// `providers: scenes=gemini images=mock videos=mock gemini_videos=gemini (mock: images, videos)`.
    pub fn summary(&self) -> String {
        let parts = [
            ("scenes", self.scenes.backend(), self.scenes.is_mock()),
            ("images", self.images.backend(), self.images.is_mock()),
            ("videos", self.videos.backend(), self.videos.is_mock()),
            ("gemini_videos", self.gemini_videos.backend(), self.gemini_videos.is_mock()),
        ];
        let chosen: Vec<String> = parts.iter().map(|(role, backend, _)| format!("{role}={backend}")).collect();
        let mocked: Vec<&str> = parts.iter().filter(|(_, _, is_mock)| *is_mock).map(|(role, _, _)| *role).collect();
        let note = if mocked.is_empty() { "no mocks".to_owned() } else { format!("mock: {}", mocked.join(", ")) };
        format!("providers: {} ({note})", chosen.join(" "))
    }
}

impl std::fmt::Debug for Providers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.summary())
    }
}
