//! `mvgen render`: prints exactly what would be sent upstream for a request, through the same
//! validation and plans the server uses. Its arguments are defined here, one struct per
//! generation kind, and convert into that kind's API request body, so the generation layer knows
//! nothing of the command line.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Outcome;
use crate::generation::Generation;
use crate::generation::character::{Character, CharacterReferenceBody};
use crate::generation::scenes::{CreateScenesBody, Scenes};
use crate::generation::video::{GenerateVideoBody, Video};
use crate::model::{
    AspectRatio, Choice, Flavor, NUMBER_OF_SCENES, OutputFormat, PersonGeneration, SafetyFilterLevel, VIDEO_DURATION,
    VideoAspectRatio,
};

/// A request to render: one subcommand per generation kind, whose arguments are the kind's API
/// request body's (checked as the server checks them).
#[derive(Debug, Subcommand)]
pub enum RenderWhat {
    /// The scene writer's prompt
    Scenes(ScenesArgs),
    /// The character reference image prompt
    Character(CharacterArgs),
    /// A scene video prompt
    Video(VideoArgs),
}

// The argument structs carry no doc comment of their own: the subcommand's help line is the
// variant's above, and a struct's would replace it.

#[derive(Debug, Args)]
pub struct ScenesArgs {
    /// The video idea (required, not blank).
    #[arg(long)]
    idea: String,
    /// Who the main character is (required, not blank).
    #[arg(long)]
    character_description: String,
    #[arg(long)]
    character_characteristics: Option<String>,
    /// 1..=32.
    #[arg(long, value_parser = clap::value_parser!(i64).range(i64::from(NUMBER_OF_SCENES.0)..=i64::from(NUMBER_OF_SCENES.1)))]
    number_of_scenes: Option<i64>,
    #[arg(long)]
    video_type: Option<String>,
    #[arg(long)]
    video_characteristics: Option<String>,
    #[arg(long)]
    camera_angle: Option<String>,
}

impl From<ScenesArgs> for CreateScenesBody {
    fn from(a: ScenesArgs) -> Self {
        CreateScenesBody {
            idea: a.idea,
            character_description: a.character_description,
            character_characteristics: a.character_characteristics,
            number_of_scenes: a.number_of_scenes,
            video_type: a.video_type,
            video_characteristics: a.video_characteristics,
            camera_angle: a.camera_angle,
            config_flavor: None,
            project_id: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct CharacterArgs {
    /// Required, not blank.
    #[arg(long)]
    character_description: String,
    /// `1:1`, `16:9`, `9:16`, `4:3`, `3:4`.
    #[arg(long, value_parser = spelling::<AspectRatio>)]
    aspect_ratio: Option<String>,
    #[arg(long, value_parser = spelling::<SafetyFilterLevel>)]
    safety_filter_level: Option<String>,
    #[arg(long, value_parser = spelling::<PersonGeneration>)]
    person_generation: Option<String>,
    /// `png`, `jpg`, `webp`.
    #[arg(long, value_parser = spelling::<OutputFormat>)]
    output_format: Option<String>,
    #[arg(long)]
    negative_prompt: Option<String>,
    /// 0..=4294967295.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=i64::from(u32::MAX)))]
    seed: Option<i64>,
}

impl From<CharacterArgs> for CharacterReferenceBody {
    fn from(a: CharacterArgs) -> Self {
        CharacterReferenceBody {
            character_description: a.character_description,
            num_images: None,
            aspect_ratio: a.aspect_ratio,
            safety_filter_level: a.safety_filter_level,
            person_generation: a.person_generation,
            output_format: a.output_format,
            negative_prompt: a.negative_prompt,
            seed: a.seed,
            config_flavor: None,
        }
    }
}

#[derive(Debug, Args)]
pub struct VideoArgs {
    /// The scene description (required, not blank).
    #[arg(long)]
    prompt: String,
    #[arg(long)]
    negative_prompt: Option<String>,
    /// `16:9`, `9:16`, `1:1`.
    #[arg(long, value_parser = spelling::<VideoAspectRatio>)]
    aspect_ratio: Option<String>,
    /// Seconds, 1..=60.
    #[arg(long, value_parser = clap::value_parser!(i64).range(i64::from(VIDEO_DURATION.0)..=i64::from(VIDEO_DURATION.1)))]
    duration: Option<i64>,
    #[arg(long)]
    generate_audio: Option<bool>,
    /// 0..=4294967295.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..=i64::from(u32::MAX)))]
    seed: Option<i64>,
    /// Replaces the flavor's video rules for this request; may use `{aspect_ratio}`.
    #[arg(long)]
    video_rules_template: Option<String>,
}

impl From<VideoArgs> for GenerateVideoBody {
    fn from(a: VideoArgs) -> Self {
        GenerateVideoBody {
            prompt: a.prompt,
            negative_prompt: a.negative_prompt,
            aspect_ratio: a.aspect_ratio,
            duration: a.duration,
            generate_audio: a.generate_audio,
            seed: a.seed,
            character_reference_id: None,
            video_rules_template: a.video_rules_template,
            config_flavor: None,
            backend: None,
            project_id: None,
            sequence: None,
            reference_image_base64: None,
        }
    }
}

/// An enum value's wire spelling, checked as the server checks it, so clap refuses a bad one as
/// it parses.
fn spelling<T: Choice>(s: &str) -> Result<String, String> {
    T::parse(s).map(|_| s.to_string()).ok_or_else(|| format!("expected one of {}", T::spellings()))
}

/// Prints the prompt exactly as sent (no added newline), or the JSON form.
pub fn render(flavor: &Flavor, what: RenderWhat, json: bool) -> anyhow::Result<Outcome> {
    let (prompt, parameters) = plan(flavor, what).map_err(anyhow::Error::msg)?;
    if json {
        let out: Value = json!({ "flavor": flavor.name, "prompt": prompt, "parameters": parameters });
        outln!("{out}")?;
    } else {
        out!("{prompt}")?;
    }
    Ok(Outcome::Success)
}

/// The prompt and parameters sent upstream for `what`, through the server's own validation and
/// plans (strings stripped; an empty optional one is not given). Not bounded in length: the
/// per-request text bound is the HTTP edge's.
pub fn plan(flavor: &Flavor, what: RenderWhat) -> Result<(String, Value), String> {
    match what {
        RenderWhat::Scenes(args) => preview::<Scenes>(flavor, args.into()),
        RenderWhat::Character(args) => preview::<Character>(flavor, args.into()),
        RenderWhat::Video(args) => preview::<Video>(flavor, args.into()),
    }
}

/// The prompt, byte for byte, and the parameters sent with it, for a body of kind `G`.
fn preview<G: Generation>(flavor: &Flavor, body: G::Input) -> Result<(String, Value), String> {
    let (plan, _) = G::validate(body).map_err(|e| e.message)?.plan(flavor);
    let parameters = serde_json::to_value(G::parameters(&plan)).map_err(|e| e.to_string())?;
    Ok((G::prompt(&plan.request).to_string(), parameters))
}
