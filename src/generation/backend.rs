//! The `backend` field of `generate_video`: which service renders the video, and which model it is
//! asked for. Each backend has its own model setting, so a Replicate model name (`google/veo-3.1`)
//! never reaches the Gemini API (the service mvgen replaces made that mistake).

use std::sync::Arc;

use serde_json::json;

use crate::error::{ApiError, ErrorKind};
use crate::model::{Flavor, ImageParams};
use crate::prompts::{Consumed, Rendered};
use crate::providers::{Providers, VideoMaker, VideoRequest};

/// The backends a request may name, as the error for any other value says them.
pub const SUPPORTED_BACKENDS: &str = "Supported backends: 'replicate', 'gemini'";

/// Where a video is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoBackend {
    /// Replicate's official model from the flavor's `video_model`.
    #[default]
    Replicate,
    /// Veo through the Gemini API, with the flavor's Gemini video model.
    Gemini,
}

impl VideoBackend {
    /// `"replicate"` or `"gemini"`, surrounding whitespace ignored; absent, null, `""` or blank is
    /// the default (as the original service took them). Anything else is a 400 naming the field.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.map(str::trim) {
            None | Some("" | "replicate") => Ok(VideoBackend::Replicate),
            Some("gemini") => Ok(VideoBackend::Gemini),
            Some(other) => Err(ApiError::new(
                ErrorKind::ValidationError,
                format!("Invalid backend: {other}"),
                json!({"field": "backend", "supported": ["replicate", "gemini"], "message": SUPPORTED_BACKENDS}),
            )),
        }
    }

    /// The provider rendering for this backend (a mock when its key is not set).
    pub fn maker(self, providers: &Providers) -> &Arc<dyn VideoMaker> {
        match self {
            VideoBackend::Replicate => &providers.videos,
            VideoBackend::Gemini => &providers.gemini_videos,
        }
    }

    /// Points `plan` at this backend's model. The plan is made for Replicate; for Gemini the
    /// flavor's `gemini_video_model` replaces `video_model`, in the debug record too, so the log
    /// never claims the unused Replicate name.
    pub fn retarget<'f>(self, flavor: &'f Flavor, plan: &mut Rendered<'f, VideoRequest>) {
        if self == VideoBackend::Replicate {
            return;
        }
        plan.request.model = flavor.image_params.gemini_video_model.value.clone();
        let target = "video_generator.model";
        plan.consumed.retain(|c| c.target != target);
        let entry = flavor.entry_for(ImageParams::gemini_video_model);
        plan.consumed.extend(entry.map(|entry| Consumed { entry, target }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn replicate_is_the_default_for_absent_empty_and_blank() {
        for value in [None, Some(""), Some("  \t"), Some("replicate"), Some(" replicate\n")] {
            assert_eq!(VideoBackend::parse(value).unwrap(), VideoBackend::Replicate, "{value:?}");
        }
        assert_eq!(VideoBackend::parse(Some(" gemini ")).unwrap(), VideoBackend::Gemini);
    }

    #[test]
    fn other_values_are_a_400_listing_both() {
        for value in ["vertex", "Gemini", "REPLICATE", "gemini-mock"] {
            let err = VideoBackend::parse(Some(value)).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert_eq!(err.kind, "ValidationError");
            assert_eq!(err.message, format!("Invalid backend: {value}"));
            assert_eq!(err.details["field"], "backend");
            assert_eq!(err.details["message"], SUPPORTED_BACKENDS);
        }
    }

    #[test]
    fn gemini_never_gets_the_replicate_model() {
        let flavor = crate::flavor::default();
        let inputs = crate::prompts::VideoInputs { prompt: "p".into(), ..Default::default() };
        let mut plan = crate::prompts::video_plan(flavor, &inputs);
        VideoBackend::Replicate.retarget(flavor, &mut plan);
        assert_eq!(plan.model, &*flavor.image_params.video_model.value);
        VideoBackend::Gemini.retarget(flavor, &mut plan);
        assert_eq!(plan.model, "veo-3.1-generate-preview");
        let models: Vec<_> = plan.consumed.iter().filter(|c| c.target == "video_generator.model").collect();
        assert_eq!(models.len(), 1);
        assert_eq!(models[0].entry.key, "gemini_video_model");
    }
}
