//! The settings files' keys: one declaration of every key of every file (`settings_files!`), and the
//! resolved structs built from it, the form a compiled flavor holds at run time.
//!
//! The declaration is written once and expanded twice. Here it becomes each file's resolved struct
//! (every key set, with its origin), one typed [`Key`] constant per key, the key list and the built-in
//! defaults. The compiler (`compiler/schema.rs`) expands the same declaration into what only
//! compiling needs: the partial struct one flavor's file sets, the per-key check and inheritance
//! step, and the key schemas `mvgen schema` writes. The check column (`= AnyText`, `= OneOf`, ...)
//! names the compiler's checks; this expansion never reads it, so nothing here depends on the
//! compiler. Adding a key means adding one line to `settings_files!`.
//!
//! A key may carry a built-in default (`key: T = Check => default "text",`): the value used when not
//! even the default flavor sets it, shown by `mvgen show --explain` as coming from the built-in
//! default. Only keys mvgen added over the service it replaces get one, so configs written for that
//! service compile untouched; every key they always had stays required in `default`.

use super::choice::{
    AspectRatio, OutputFormat, PersonGeneration, SafetyFilterLevel, VideoAspectRatio, VideoPersonGeneration,
};
use super::key::{Entry, Key};
use super::origin::{FileKind, Sourced};
use super::template::Template;
use super::value::{Text, View};

/// How many scenes a flavor or a request may ask for (the API and CLI use the same bounds).
pub const NUMBER_OF_SCENES: (u32, u32) = (1, 32);
/// How long a scene video may be, in seconds.
pub const VIDEO_DURATION: (u32, u32) = (1, 60);

/// Every settings file, declared once: `$then!` is invoked with each file's declaration. Item names
/// in the check column resolve where `$then` expands (the compiler's schema module).
macro_rules! settings_files {
    ($then:ident) => {
        $then! {
            /// `parameters.yaml`: what the scene writer is asked for.
            Parameters / PartialParameters = Parameters {
                character_characteristics: Text = AnyText,
                video_type: Text = AnyText,
                video_characteristics: Text = AnyText,
                camera_angle: Text = AnyText,
                number_of_scenes: u32 = IntIn(NUMBER_OF_SCENES.0, NUMBER_OF_SCENES.1),
                /// The Gemini model that writes the scenes. The service mvgen replaces had no such key (its
                /// model was a constant in code), hence the built-in default.
                scene_model: Text = GeminiModel => default "gemini-2.5-pro",
            }
        }

        $then! {
            /// `scene_prompts.yaml`: the prompt the scene writer receives.
            ScenePrompts / PartialScenePrompts = ScenePrompts {
                scene_generation_prompt: Template = TemplateOf { allowed: SCENE_VARS, required: &[Var::Idea] },
            }
        }

        $then! {
            /// `image_params.yaml`: image and video model settings.
            ImageParams / PartialImageParams = ImageParams {
                model: Text = ReplicateModel,
                aspect_ratio: AspectRatio = OneOf,
                safety_filter_level: SafetyFilterLevel = OneOf,
                person_generation: PersonGeneration = OneOf,
                output_format: OutputFormat = OneOf,
                video_model: Text = ReplicateModel,
                /// The Veo model used when a request asks for `backend: "gemini"` (a Gemini API model name,
                /// never the Replicate one).
                gemini_video_model: Text = GeminiModel => default "veo-3.1-generate-preview",
                video_aspect_ratio: VideoAspectRatio = OneOf,
                /// Seconds.
                video_duration: u32 = IntIn(VIDEO_DURATION.0, VIDEO_DURATION.1),
                video_generate_audio: bool = Flag,
                video_person_generation: VideoPersonGeneration = OneOf,
                /// Appended to every video prompt, after a blank line.
                video_rules_template: Template = TemplateOf { allowed: &[Var::AspectRatio], required: &[] },
            }
        }

        $then! {
            /// `image_prompts.yaml`: the character reference prompt.
            ImagePrompts / PartialImagePrompts = ImagePrompts {
                character_reference_prompt: Template =
                    TemplateOf { allowed: &[Var::CharacterDescription], required: &[Var::CharacterDescription] },
            }
        }
    };
}
pub(crate) use settings_files;

/// The run-time half of a settings file: its resolved struct, its typed keys and key list.
macro_rules! resolved_file {
    (
        $(#[$doc:meta])*
        $name:ident / $partial:ident = $kind:ident {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $check:expr $(=> default $default:literal)?, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[$fdoc])* pub $field: Sourced<$ty>, )*
        }

        impl $name {
            pub const FILE: FileKind = FileKind::$kind;
            $(
                #[doc = concat!("The key `", stringify!($field), "`.")]
                #[allow(non_upper_case_globals)]
                pub const $field: Key = Key { file: FileKind::$kind, name: stringify!($field) };
            )*
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];
            /// The keys that may be left out even in `default`, with their built-in values as written
            /// in YAML.
            pub const BUILTIN_DEFAULTS: &'static [(&'static str, &'static str)] =
                &[$($((stringify!($field), $default),)?)*];

            /// Every key with its value and origin, in schema order.
            pub fn entries(&self) -> Vec<Entry<'_>> {
                vec![$(
                    Entry {
                        file: FileKind::$kind,
                        key: stringify!($field),
                        value: self.$field.value.view(),
                        origin: &self.$field.origin,
                    },
                )*]
            }

            /// The key named `name`, with its value and origin; found without listing them all,
            /// because a plan looks up every key it uses (debug provenance).
            pub fn entry(&self, name: &str) -> Option<Entry<'_>> {
                match name {
                    $(stringify!($field) => Some(Entry {
                        file: FileKind::$kind,
                        key: stringify!($field),
                        value: self.$field.value.view(),
                        origin: &self.$field.origin,
                    }),)*
                    _ => None,
                }
            }
        }
    };
}

settings_files!(resolved_file);
