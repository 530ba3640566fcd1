//! From a flavor plus a request's inputs to exactly what is sent upstream: the rendered prompt, the
//! model and its parameters, and a record of which config values were consumed.
//!
//! Both the HTTP handlers and `mvgen render` go through here, so the prompt a provider receives is,
//! byte for byte, what `mvgen render` prints. Request values override flavor values key by key.

use std::borrow::Cow;
use std::ops::Deref;

use serde::Serialize;
use serde_json::Value;

use crate::model::template::{Template, Var};
use crate::model::{
    AspectRatio, Choice, Entry, Flavor, ImageParams, ImagePrompts, Key, OutputFormat, Parameters, PersonGeneration,
    SafetyFilterLevel, ScenePrompts, VideoAspectRatio,
};
use crate::providers::{ImageRequest, SceneBrief, SceneRequest, VideoRequest};

/// A config value a plan used, and the variable it was loaded into (for debug logs).
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'f> {
    pub entry: Entry<'f>,
    pub target: &'static str,
}

/// What a plan function renders: the request a provider is sent (no other struct in between, so
/// a value is copied once), what else the prompt was rendered from that a kind keeps (`B`), and
/// the config values used. It reads as its request: `plan.prompt`.
#[derive(Debug, Clone)]
pub struct Rendered<'f, R, B = ()> {
    pub request: R,
    pub brief: B,
    pub consumed: Vec<Consumed<'f>>,
}

impl<R, B> Deref for Rendered<'_, R, B> {
    type Target = R;

    fn deref(&self) -> &R {
        &self.request
    }
}

/// The values a request sends besides its prompt, by name: what an image or video answer reports
/// as `parameters_used`.
pub fn request_parameters<R: Serialize>(request: &R) -> Value {
    // The provider requests are plain structs of strings, numbers and options: serialising one
    // cannot fail.
    let mut parameters = serde_json::to_value(request).unwrap_or_default();
    if let Some(fields) = parameters.as_object_mut() {
        fields.remove("prompt");
    }
    parameters
}

/// Request inputs for scene writing; `None` means "use the flavor's value".
#[derive(Debug, Clone, Default)]
pub struct SceneInputs {
    pub idea: String,
    pub character_description: String,
    pub character_characteristics: Option<String>,
    pub number_of_scenes: Option<u32>,
    pub video_type: Option<String>,
    pub video_characteristics: Option<String>,
    pub camera_angle: Option<String>,
}

/// The values a scene plan settled besides its prompt and the request's own text, as a scenes
/// answer reports them in `parameters_used`. Built when answering, not stored with the plan: it is
/// all in the plan already. The fields are in alphabetical order because the answer lists them so
/// (it was a `serde_json` map, which sorts its keys, until it got a type); the texts are
/// `Cow<'static, str>` like the plan's, so an embedded flavor's stay borrowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SceneParameters {
    pub camera_angle: Cow<'static, str>,
    pub character_characteristics: Cow<'static, str>,
    pub model: Cow<'static, str>,
    pub number_of_scenes: u32,
    pub video_characteristics: Cow<'static, str>,
    pub video_type: Cow<'static, str>,
}

impl SceneParameters {
    pub fn of(request: &SceneRequest, brief: &SceneBrief) -> Self {
        SceneParameters {
            camera_angle: brief.camera_angle.clone(),
            character_characteristics: brief.character_characteristics.clone(),
            model: request.model.clone(),
            number_of_scenes: request.number_of_scenes,
            video_characteristics: brief.video_characteristics.clone(),
            video_type: brief.video_type.clone(),
        }
    }
}

impl Rendered<'_, SceneRequest, SceneBrief> {
    /// The values actually used, by name (the prompt and the request's own text aside).
    pub fn parameters(&self) -> SceneParameters {
        SceneParameters::of(&self.request, &self.brief)
    }
}

/// Collects the flavor values a plan reads, so debug logs can say where each came from.
struct Reader<'f> {
    flavor: &'f Flavor,
    consumed: Vec<Consumed<'f>>,
}

impl<'f> Reader<'f> {
    fn new(flavor: &'f Flavor) -> Self {
        // A plan notes up to eight keys.
        Reader { flavor, consumed: Vec::with_capacity(8) }
    }

    /// Records that `key` was loaded into `target`.
    fn note(&mut self, key: Key, target: &'static str) {
        if let Some(entry) = self.flavor.entry_for(key) {
            self.consumed.push(Consumed { entry, target });
        }
    }

    /// The request's value when given, else the flavor's (which is then recorded as consumed).
    /// `config` is borrowed so the flavor's value is copied only when used, and a text is a
    /// `Cow<'static, str>`, which for an embedded flavor borrows the binary's own bytes.
    fn pick<T: Clone>(&mut self, given: Option<T>, config: &T, key: Key, target: &'static str) -> T {
        match given {
            Some(v) => v,
            None => {
                self.note(key, target);
                config.clone()
            }
        }
    }
}

/// `pick!(r, "video_generator", inputs.duration, ImageParams::video_duration, ip)`:
/// [`Reader::pick`] of the request's `inputs.duration` or else the flavor's `ip.video_duration`,
/// noted as loaded into `video_generator.duration`. Each name is said once, so a value can't be
/// logged under another key or target. The request's value is moved out of owned inputs (a
/// scene's texts) and copied out of borrowed ones (the image and video choices are `Copy`).
macro_rules! pick {
    ($r:ident, $stage:literal, $inputs:ident.$input:ident, $section:ident::$field:ident, $values:ident) => {
        $r.pick(
            $inputs.$input.map(Into::into),
            &$values.$field.value,
            $section::$field,
            concat!($stage, ".", stringify!($input)),
        )
    };
}

/// Renders the scene prompt for `flavor` with the request's overrides. The inputs are taken, not
/// borrowed: the plan keeps the idea and character description it was rendered from, moved rather
/// than copied.
pub fn scene_plan<'f>(flavor: &'f Flavor, inputs: SceneInputs) -> Rendered<'f, SceneRequest, SceneBrief> {
    let p = &flavor.parameters;
    let mut r = Reader::new(flavor);
    let character_characteristics =
        pick!(r, "scene_generator", inputs.character_characteristics, Parameters::character_characteristics, p);
    let video_type = pick!(r, "scene_generator", inputs.video_type, Parameters::video_type, p);
    let video_characteristics =
        pick!(r, "scene_generator", inputs.video_characteristics, Parameters::video_characteristics, p);
    let camera_angle = pick!(r, "scene_generator", inputs.camera_angle, Parameters::camera_angle, p);
    let number_of_scenes = pick!(r, "scene_generator", inputs.number_of_scenes, Parameters::number_of_scenes, p);
    r.note(Parameters::scene_model, "scene_generator.model");
    r.note(ScenePrompts::scene_generation_prompt, "scene_generator.prompt_template");
    let count = number_of_scenes.to_string();
    let prompt = flavor.scene_prompts.scene_generation_prompt.value.render(|var| match var {
        Var::Idea => &inputs.idea,
        Var::CharacterDescription => &inputs.character_description,
        Var::CharacterCharacteristics => &character_characteristics,
        Var::NumberOfScenes => &count,
        Var::VideoType => &video_type,
        Var::VideoCharacteristics => &video_characteristics,
        Var::CameraAngle => &camera_angle,
        // Not in the scene template's allowed set, so never asked for.
        Var::AspectRatio => "",
    });
    Rendered {
        request: SceneRequest { model: p.scene_model.value.clone(), prompt, number_of_scenes },
        brief: SceneBrief {
            idea: inputs.idea,
            character_description: inputs.character_description,
            character_characteristics,
            video_type,
            video_characteristics,
            camera_angle,
        },
        consumed: r.consumed,
    }
}

/// Request inputs for character reference images.
#[derive(Debug, Clone, Default)]
pub struct CharacterInputs {
    pub character_description: String,
    pub aspect_ratio: Option<AspectRatio>,
    pub safety_filter_level: Option<SafetyFilterLevel>,
    pub person_generation: Option<PersonGeneration>,
    pub output_format: Option<OutputFormat>,
    pub negative_prompt: Option<String>,
    pub seed: Option<i64>,
}

/// Renders the character reference prompt (trimmed, as the original service did) and settles the
/// image parameters.
pub fn image_plan<'f>(flavor: &'f Flavor, inputs: &CharacterInputs) -> Rendered<'f, ImageRequest> {
    let ip = &flavor.image_params;
    let mut r = Reader::new(flavor);
    r.note(ImagePrompts::character_reference_prompt, "image_generator.prompt_template");
    r.note(ImageParams::model, "image_generator.model");
    let aspect_ratio = pick!(r, "image_generator", inputs.aspect_ratio, ImageParams::aspect_ratio, ip);
    let safety_filter_level =
        pick!(r, "image_generator", inputs.safety_filter_level, ImageParams::safety_filter_level, ip);
    let person_generation = pick!(r, "image_generator", inputs.person_generation, ImageParams::person_generation, ip);
    let output_format = pick!(r, "image_generator", inputs.output_format, ImageParams::output_format, ip);
    let rendered = flavor.image_prompts.character_reference_prompt.value.render(|var| match var {
        Var::CharacterDescription => &inputs.character_description,
        _ => "",
    });
    let request = ImageRequest {
        model: ip.model.value.clone(),
        prompt: py_strip(&rendered).to_string(),
        aspect_ratio: aspect_ratio.as_str().into(),
        safety_filter_level: safety_filter_level.as_str().into(),
        person_generation: person_generation.as_str().into(),
        output_format: output_format.as_str().into(),
        negative_prompt: inputs.negative_prompt.clone(),
        seed: inputs.seed,
    };
    Rendered { request, brief: (), consumed: r.consumed }
}

/// The placeholders a video rules template may use (also for per-request templates).
pub const VIDEO_RULES_VARS: &[Var] = &[Var::AspectRatio];

/// Request inputs for one scene video.
#[derive(Debug, Clone, Default)]
pub struct VideoInputs {
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub aspect_ratio: Option<VideoAspectRatio>,
    pub duration: Option<u32>,
    pub generate_audio: Option<bool>,
    pub seed: Option<i64>,
    /// A per-request replacement for the flavor's rules template, already parsed.
    pub video_rules_template: Option<Template>,
}

/// The video prompt is the scene text, a blank line, then the rendered rules template.
pub fn video_plan<'f>(flavor: &'f Flavor, inputs: &VideoInputs) -> Rendered<'f, VideoRequest> {
    let ip = &flavor.image_params;
    let mut r = Reader::new(flavor);
    r.note(ImageParams::video_model, "video_generator.model");
    let aspect_ratio = pick!(r, "video_generator", inputs.aspect_ratio, ImageParams::video_aspect_ratio, ip);
    let duration = pick!(r, "video_generator", inputs.duration, ImageParams::video_duration, ip);
    let generate_audio = pick!(r, "video_generator", inputs.generate_audio, ImageParams::video_generate_audio, ip);
    r.note(ImageParams::video_person_generation, "video_generator.person_generation");
    let rules = match &inputs.video_rules_template {
        Some(t) => t,
        None => {
            r.note(ImageParams::video_rules_template, "video_generator.rules_template");
            &ip.video_rules_template.value
        }
    };
    let rendered_rules = rules.render(|var| match var {
        Var::AspectRatio => aspect_ratio.as_str(),
        _ => "",
    });
    let request = VideoRequest {
        model: ip.video_model.value.clone(),
        prompt: format!("{}\n\n{}", inputs.prompt, rendered_rules),
        aspect_ratio: aspect_ratio.as_str().into(),
        duration,
        generate_audio,
        person_generation: ip.video_person_generation.value.as_str().into(),
        negative_prompt: inputs.negative_prompt.clone(),
        seed: inputs.seed,
        // Not the plan's: a job keeps where the image comes from and the run attaches it.
        reference_image: None,
    };
    Rendered { request, brief: (), consumed: r.consumed }
}

/// Python's `str.strip()`: trims Unicode whitespace plus the ASCII separators \x1c-\x1f, which
/// Python also counts as whitespace, so prompts stay byte-identical to the original service.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flavor;

    #[test]
    fn request_values_override_flavor_values_and_are_not_logged_as_consumed() {
        let inputs = SceneInputs {
            idea: "a {idea} with braces".into(),
            character_description: "a fox".into(),
            camera_angle: Some("top-down".into()),
            number_of_scenes: Some(3),
            ..Default::default()
        };
        let plan = scene_plan(flavor::default(), inputs);
        assert!(plan.prompt.contains("Idea: a {idea} with braces"), "values stay verbatim");
        assert!(plan.prompt.contains("Camera: top-down."));
        assert!(plan.prompt.contains("exactly\n3 scenes"));
        assert_eq!(plan.parameters().camera_angle, "top-down");
        assert!(plan.consumed.iter().all(|c| c.entry.key != "camera_angle"));
        assert!(plan.consumed.iter().any(|c| c.target == "scene_generator.video_type"));
    }

    #[test]
    fn scene_parameters_serialize_as_the_map_they_replaced() {
        let plan = scene_plan(
            flavor::default(),
            SceneInputs {
                video_type: Some("a \"quoted\" type".into()),
                number_of_scenes: Some(2),
                ..Default::default()
            },
        );
        let p = plan.parameters();
        // Byte for byte what the `json!` map gave (keys sorted): answers and stored scenes files
        // keep their order.
        let expected = format!(
            r#"{{"camera_angle":{},"character_characteristics":{},"model":{},"number_of_scenes":2,"video_characteristics":{},"video_type":"a \"quoted\" type"}}"#,
            serde_json::json!(p.camera_angle),
            serde_json::json!(p.character_characteristics),
            serde_json::json!(p.model),
            serde_json::json!(p.video_characteristics),
        );
        assert_eq!(serde_json::to_string(&p).ok(), Some(expected));
    }

    #[test]
    fn video_prompt_is_scene_text_blank_line_rules() {
        let plan = video_plan(flavor::default(), &VideoInputs { prompt: "Scene one.".into(), ..Default::default() });
        assert!(plan.prompt.starts_with("Scene one.\n\nRender one continuous shot in 16:9"), "{}", plan.prompt);
    }

    #[test]
    fn character_prompt_is_trimmed() {
        let plan = image_plan(
            flavor::default(),
            &CharacterInputs { character_description: "a tall woman".into(), ..Default::default() },
        );
        assert!(plan.prompt.starts_with("A full-body character reference photo of a tall woman."));
        assert!(!plan.prompt.ends_with('\n'));
    }

    #[test]
    fn py_strip_matches_python() {
        assert_eq!(py_strip("\x1c\t a b \u{3000}\n"), "a b");
    }
}
