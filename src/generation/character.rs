//! Character reference images: full-body pictures of the main character, drawn by the image model
//! with the flavor's prompt and parameters, one upstream run per image, each stored as it arrives.

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};

use super::inputs::{choice, in_range, optional, required, seed};
use super::{Generation, Kind, Plan, Run};
use crate::error::ApiError;
use crate::model::Flavor;
use crate::prompts::{self, CharacterInputs, Consumed};
use crate::providers::{BoxFuture, ImageRequest};
use crate::storage::Collection;

/// How many images one request may ask for; the default is the most.
pub const NUM_IMAGES: (u32, u32) = (1, 4);

/// Who to draw. Optional values default to the flavor's. Strings are stripped of surrounding
/// whitespace; an optional string that is null, empty or blank is not given.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacterReferenceBody {
    /// Required, not blank.
    #[schema(max_length = 20000, min_length = 1, pattern = r"\S")]
    pub character_description: String,
    /// 1..=4, default 4.
    #[schema(minimum = 1, maximum = 4)]
    pub num_images: Option<i64>,
    /// `1:1`, `16:9`, `9:16`, `4:3`, `3:4`.
    #[schema(max_length = 20000)]
    pub aspect_ratio: Option<String>,
    #[schema(max_length = 20000)]
    pub safety_filter_level: Option<String>,
    #[schema(max_length = 20000)]
    pub person_generation: Option<String>,
    /// `png`, `jpg`, `webp`.
    #[schema(max_length = 20000)]
    pub output_format: Option<String>,
    #[schema(max_length = 20000)]
    pub negative_prompt: Option<String>,
    /// 0..=4294967295.
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub seed: Option<i64>,
    #[schema(max_length = 20000)]
    pub config_flavor: Option<String>,
}

body!(
    CharacterReferenceBody: character_description,
    aspect_ratio,
    safety_filter_level,
    person_generation,
    output_format,
    negative_prompt,
    config_flavor,
);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CharacterReferenceResponse {
    pub images: Vec<ImageOut>,
    pub metadata: CharacterMetadata,
}

/// A stored image.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImageOut {
    pub id: String,
    /// Where to fetch it: `/api/mv/get_character_reference/{id}`.
    pub url: String,
    pub content_type: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CharacterMetadata {
    pub character_description: String,
    pub model_used: String,
    pub num_images_requested: u32,
    pub num_images_generated: u32,
    /// Why some images are missing, when fewer were generated than requested.
    pub errors: Vec<String>,
    #[schema(value_type = Object)]
    pub parameters_used: serde_json::Value,
    pub config_flavor: super::FlavorReport,
    pub backend_used: String,
    pub is_mock: bool,
    /// When the images were made, RFC 3339 in UTC.
    pub generation_timestamp: String,
}

/// A valid character reference request.
#[derive(Debug, Clone, Default)]
pub struct Character {
    pub inputs: CharacterInputs,
    pub num_images: u32,
}

/// What the image model is sent (once per image), and what the answer reports of it.
pub type CharacterPlan = Plan<ImageRequest, CharacterKept>;

/// What a character reference answer needs besides the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CharacterKept {
    pub num_images: u32,
    pub character_description: String,
}

impl Generation for Character {
    const KIND: Kind = Kind::CharacterReference;
    type Input = CharacterReferenceBody;
    type Request = ImageRequest;
    type Kept = CharacterKept;
    type Parameters = serde_json::Value;
    type Answer = CharacterReferenceResponse;

    fn validate(body: CharacterReferenceBody) -> Result<Self, ApiError> {
        let character_description = required("character_description", body.character_description)?;
        let num_images = in_range("num_images", body.num_images, NUM_IMAGES)?.unwrap_or(NUM_IMAGES.1);
        let inputs = CharacterInputs {
            character_description,
            aspect_ratio: choice("aspect_ratio", body.aspect_ratio)?,
            safety_filter_level: choice("safety_filter_level", body.safety_filter_level)?,
            person_generation: choice("person_generation", body.person_generation)?,
            output_format: choice("output_format", body.output_format)?,
            negative_prompt: optional(body.negative_prompt),
            seed: seed(body.seed)?,
        };
        Ok(Character { inputs, num_images })
    }

    fn plan<'f>(self, flavor: &'f Flavor) -> (CharacterPlan, Vec<Consumed<'f>>) {
        let rendered = prompts::image_plan(flavor, &self.inputs);
        let kept =
            CharacterKept { num_images: self.num_images, character_description: self.inputs.character_description };
        (Plan { request: rendered.request, kept }, rendered.consumed)
    }

    fn parameters(plan: &CharacterPlan) -> serde_json::Value {
        prompts::request_parameters(&plan.request)
    }

    fn prompt(request: &ImageRequest) -> &str {
        &request.prompt
    }

    fn run<'a>(plan: &'a CharacterPlan, run: Run<'a>) -> BoxFuture<'a, Result<CharacterReferenceResponse, ApiError>> {
        Box::pin(async move {
            // One prediction per image, all at once; each is stored as soon as it arrives.
            let maker = &run.state.providers.images;
            // With a seed, image i gets seed + i: the same seed for all would draw one picture N times.
            let requests: Vec<ImageRequest> = (0..plan.kept.num_images)
                .map(|i| ImageRequest {
                    seed: plan.request.seed.map(|s| (s + i64::from(i)) % (i64::from(u32::MAX) + 1)),
                    ..plan.request.clone()
                })
                .collect();
            let attempts = join_all(requests.iter().zip(0..).map(|(request, slot)| async move {
                let made = maker.make_image(request, run.ctx.slot(slot));
                let put = run.store::<Self>(maker.backend(), Collection::CharacterReference, made).await?;
                Ok::<_, ApiError>(ImageOut {
                    url: format!("/api/mv/get_character_reference/{}", put.id),
                    id: put.id,
                    content_type: put.content_type.to_owned(),
                })
            }))
            .await;
            let mut images = Vec::new();
            let mut failures = Vec::new();
            for attempt in attempts {
                match attempt {
                    Ok(image) => images.push(image),
                    Err(e) => failures.push(e),
                }
            }
            if images.is_empty() {
                // Every attempt failed: the first failure is as good an explanation as any.
                return Err(failures
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| ApiError::internal("no image was generated")));
            }
            Ok(CharacterReferenceResponse {
                metadata: CharacterMetadata {
                    character_description: plan.kept.character_description.clone(),
                    model_used: plan.request.model.to_string(),
                    num_images_requested: plan.kept.num_images,
                    num_images_generated: u32::try_from(images.len()).unwrap_or(u32::MAX),
                    errors: failures.into_iter().map(|e| e.message).collect(),
                    parameters_used: Self::parameters(plan),
                    config_flavor: run.flavor.clone(),
                    backend_used: maker.backend().to_string(),
                    is_mock: maker.is_mock(),
                    generation_timestamp: super::inputs::timestamp(),
                },
                images,
            })
        })
    }
}
