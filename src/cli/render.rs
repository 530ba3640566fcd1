//! `mvgen render`: prints exactly what would be sent upstream for a request, through the same
//! `prompts` code the server uses.

use clap::Subcommand;
use serde_json::{Value, json};

use super::Outcome;
use crate::api::inputs::{optional, text};
use crate::compiler::template::Template;
use crate::compiler::{
    AspectRatio, Choice, Flavor, NUMBER_OF_SCENES, OutputFormat, PersonGeneration, SafetyFilterLevel, VIDEO_DURATION,
    VideoAspectRatio,
};
use crate::prompts::{self, CharacterInputs, SceneInputs, VideoInputs};

#[derive(Debug, Subcommand)]
pub enum RenderWhat {
    /// The scene writer's prompt.
    Scenes {
        #[arg(long)]
        idea: String,
        #[arg(long)]
        character_description: String,
        #[arg(long)]
        character_characteristics: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(i64::from(NUMBER_OF_SCENES.0)..=i64::from(NUMBER_OF_SCENES.1)))]
        number_of_scenes: Option<u32>,
        #[arg(long)]
        video_type: Option<String>,
        #[arg(long)]
        video_characteristics: Option<String>,
        #[arg(long)]
        camera_angle: Option<String>,
    },
    /// The character reference image prompt.
    Character {
        #[arg(long)]
        character_description: String,
        #[arg(long, value_parser = choice::<AspectRatio>)]
        aspect_ratio: Option<AspectRatio>,
        #[arg(long, value_parser = choice::<SafetyFilterLevel>)]
        safety_filter_level: Option<SafetyFilterLevel>,
        #[arg(long, value_parser = choice::<PersonGeneration>)]
        person_generation: Option<PersonGeneration>,
        #[arg(long, value_parser = choice::<OutputFormat>)]
        output_format: Option<OutputFormat>,
        #[arg(long)]
        negative_prompt: Option<String>,
        /// 0..=4294967295, as the API accepts.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=i64::from(u32::MAX)))]
        seed: Option<i64>,
    },
    /// A scene video prompt.
    Video {
        #[arg(long)]
        prompt: String,
        #[arg(long)]
        negative_prompt: Option<String>,
        #[arg(long, value_parser = choice::<VideoAspectRatio>)]
        aspect_ratio: Option<VideoAspectRatio>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(i64::from(VIDEO_DURATION.0)..=i64::from(VIDEO_DURATION.1)))]
        duration: Option<u32>,
        #[arg(long)]
        generate_audio: Option<bool>,
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..=i64::from(u32::MAX)))]
        seed: Option<i64>,
        /// Replaces the flavor's video rules template for this render.
        #[arg(long)]
        video_rules_template: Option<String>,
    },
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

/// The prompt and parameters sent upstream for `what`, through the server's own `prompts` plans and
/// its input normalisation (strings stripped; an empty optional one is not given).
pub fn plan(flavor: &Flavor, what: RenderWhat) -> Result<(String, Value), String> {
    Ok(match what {
        RenderWhat::Scenes {
            idea,
            character_description,
            character_characteristics,
            number_of_scenes,
            video_type,
            video_characteristics,
            camera_angle,
        } => {
            let inputs = SceneInputs {
                idea: text(idea),
                character_description: text(character_description),
                character_characteristics: optional(character_characteristics),
                number_of_scenes,
                video_type: optional(video_type),
                video_characteristics: optional(video_characteristics),
                camera_angle: optional(camera_angle),
            };
            let plan = prompts::scene_plan(flavor, &inputs);
            let parameters = plan.parameters();
            (plan.prompt, parameters)
        }
        RenderWhat::Character {
            character_description,
            aspect_ratio,
            safety_filter_level,
            person_generation,
            output_format,
            negative_prompt,
            seed,
        } => {
            let inputs = CharacterInputs {
                character_description: text(character_description),
                aspect_ratio,
                safety_filter_level,
                person_generation,
                output_format,
                negative_prompt: optional(negative_prompt),
                seed,
            };
            let plan = prompts::image_plan(flavor, &inputs);
            let parameters = plan.parameters();
            (plan.prompt, parameters)
        }
        RenderWhat::Video {
            prompt,
            negative_prompt,
            aspect_ratio,
            duration,
            generate_audio,
            seed,
            video_rules_template,
        } => {
            let video_rules_template = optional(video_rules_template)
                .map(|src| Template::parse(&src, prompts::VIDEO_RULES_VARS, &[]))
                .transpose()
                .map_err(|e| format!("--video-rules-template: {e}"))?;
            let inputs = VideoInputs {
                prompt: text(prompt),
                negative_prompt: optional(negative_prompt),
                aspect_ratio,
                duration,
                generate_audio,
                seed,
                video_rules_template,
            };
            let plan = prompts::video_plan(flavor, &inputs);
            let parameters = plan.parameters();
            (plan.prompt, parameters)
        }
    })
}

fn choice<T: Choice>(s: &str) -> Result<T, String> {
    T::parse(s).ok_or_else(|| format!("expected one of {}", T::spellings()))
}
