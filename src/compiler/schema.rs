//! How a YAML value is checked and turned into a settings key's type.
//!
//! The keys themselves are declared once, in `model/settings.rs` (`settings_files!`), which also
//! builds the resolved structs the run time uses. This module expands the same declaration into what
//! only compiling needs: a partial struct per file (what one flavor's file sets), the per-key check
//! and inheritance step, and the key schemas `mvgen schema` writes.

use std::borrow::Cow;

use super::yaml::Scalar;
use crate::model::template::{Template, Var};
use crate::model::{
    AspectRatio, Choice, FileKind, ImageParams, ImagePrompts, NUMBER_OF_SCENES, Origin, OutputFormat, Parameters,
    PersonGeneration, SafetyFilterLevel, ScenePrompts, Sourced, Text, VIDEO_DURATION, VideoAspectRatio,
    VideoPersonGeneration,
};

/// Why one key's value was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub message: String,
    /// For template faults: the brace the problem starts at, as (brace, how many of that brace come
    /// before it in the value), so the caller can find it in the file.
    pub brace: Option<(char, usize)>,
}

impl Fault {
    pub fn new(message: impl Into<String>) -> Fault {
        Fault { message: message.into(), brace: None }
    }
}

/// Why `set` refused a key.
#[derive(Debug, Clone, PartialEq)]
pub enum SetError {
    UnknownKey,
    Bad(Fault),
}

impl From<Fault> for SetError {
    fn from(f: Fault) -> Self {
        SetError::Bad(f)
    }
}

/// Turns a YAML value into a key's type, or says why it can't.
pub trait Check<T> {
    fn check(&self, value: &Scalar) -> Result<T, Fault>;
    /// What `check` accepts, as data (`mvgen schema` turns it into JSON Schema).
    fn shape(&self) -> Shape;
}

/// What a key accepts, described by the check that enforces it, so the JSON Schemas `mvgen schema`
/// writes come from the same definitions as the compiler.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Any string.
    Text,
    /// A string matching `pattern` (written for both ECMA-262 and Python regexes); `what` says in
    /// words what it is.
    Pattern { pattern: &'static str, what: &'static str },
    /// An integer in `min..=max`.
    Int { min: u32, max: u32 },
    /// `true` or `false`.
    Bool,
    /// One of these spellings.
    OneOf(Vec<&'static str>),
    /// A prompt template with these placeholders.
    Template { allowed: &'static [Var], required: &'static [Var] },
}

/// One key of a settings file, for `mvgen schema`.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySchema {
    pub key: &'static str,
    /// The key's doc comment as attribute source, e.g. `doc = " Seconds."`, one per line.
    pub docs: &'static [&'static str],
    pub shape: Shape,
}

/// A Gemini model name, as [`GeminiModel`] checks it.
pub const GEMINI_MODEL_PATTERN: &str = "^[A-Za-z0-9._-]+$";
/// A Replicate `owner/name`, as [`ReplicateModel`] checks it.
pub const REPLICATE_MODEL_PATTERN: &str = "^[a-z0-9._-]+/[a-z0-9._-]+$";

/// Any string.
pub struct AnyText;

impl Check<Text> for AnyText {
    fn check(&self, value: &Scalar) -> Result<Text, Fault> {
        match value {
            Scalar::Str(s) => Ok(Cow::Owned(s.clone())),
            Scalar::Int(_) | Scalar::Float(_) | Scalar::Bool(_) => Err(Fault::new(format!(
                "expected a string, found {}: put it in quotes if you mean the text",
                value.describe()
            ))),
            other => Err(Fault::new(format!("expected a string, found {}", other.describe()))),
        }
    }

    fn shape(&self) -> Shape {
        Shape::Text
    }
}

/// A Gemini model name. It becomes part of the request URL path, so only name characters are allowed.
pub struct GeminiModel;

impl Check<Text> for GeminiModel {
    fn check(&self, value: &Scalar) -> Result<Text, Fault> {
        let s = AnyText.check(value)?;
        let ok = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if ok {
            Ok(s)
        } else {
            Err(Fault::new(format!(
                "expected a Gemini model name such as \"gemini-2.5-flash\" (letters, digits, '-', '.', '_'), found {}",
                value.describe()
            )))
        }
    }

    fn shape(&self) -> Shape {
        Shape::Pattern { pattern: GEMINI_MODEL_PATTERN, what: "a Gemini model name such as \"gemini-2.5-flash\"" }
    }
}

/// A Replicate model as `owner/name`. It becomes part of the request URL path.
pub struct ReplicateModel;

impl Check<Text> for ReplicateModel {
    fn check(&self, value: &Scalar) -> Result<Text, Fault> {
        let s = AnyText.check(value)?;
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
        };
        match s.split_once('/') {
            Some((owner, name)) if part_ok(owner) && part_ok(name) => Ok(s),
            _ => Err(Fault::new(format!(
                "expected a Replicate model as \"owner/name\" such as \"google/imagen-4\" (lowercase), found {}",
                value.describe()
            ))),
        }
    }

    fn shape(&self) -> Shape {
        Shape::Pattern { pattern: REPLICATE_MODEL_PATTERN, what: "a Replicate model as \"owner/name\", lowercase" }
    }
}

/// An integer in `min..=max`.
pub struct IntIn(pub u32, pub u32);

impl Check<u32> for IntIn {
    fn check(&self, value: &Scalar) -> Result<u32, Fault> {
        match value {
            Scalar::Int(n) if (i64::from(self.0)..=i64::from(self.1)).contains(n) => {
                u32::try_from(*n).map_err(|_| Fault::new("out of range"))
            }
            other => {
                Err(Fault::new(format!("expected an integer in {}..={}, found {}", self.0, self.1, other.describe())))
            }
        }
    }

    fn shape(&self) -> Shape {
        Shape::Int { min: self.0, max: self.1 }
    }
}

/// `true` or `false`.
pub struct Flag;

impl Check<bool> for Flag {
    fn check(&self, value: &Scalar) -> Result<bool, Fault> {
        match value {
            Scalar::Bool(b) => Ok(*b),
            other => Err(Fault::new(format!("expected true or false, found {}", other.describe()))),
        }
    }

    fn shape(&self) -> Shape {
        Shape::Bool
    }
}

/// One of an enum's spellings.
pub struct OneOf;

impl<T: Choice> Check<T> for OneOf {
    fn check(&self, value: &Scalar) -> Result<T, Fault> {
        let names: Vec<&str> = T::ALL.iter().map(|(n, _)| *n).collect();
        let found = match value {
            Scalar::Str(s) => match T::parse(s) {
                Some(v) => return Ok(v),
                None => s.as_str(),
            },
            _ => "",
        };
        let hint = match crate::model::nearest(found, &names) {
            Some(n) if !found.is_empty() => format!(" (did you mean \"{n}\"?)"),
            _ => String::new(),
        };
        Err(Fault::new(format!("expected one of {}, found {}{hint}", T::spellings(), value.describe())))
    }

    fn shape(&self) -> Shape {
        Shape::OneOf(T::ALL.iter().map(|(n, _)| *n).collect())
    }
}

/// A prompt template using only `allowed` placeholders and every one of `required`.
pub struct TemplateOf {
    pub allowed: &'static [Var],
    pub required: &'static [Var],
}

impl Check<Template> for TemplateOf {
    fn check(&self, value: &Scalar) -> Result<Template, Fault> {
        let Scalar::Str(source) = value else {
            return Err(Fault::new(format!("expected a template string, found {}", value.describe())));
        };
        Template::parse(source, self.allowed, self.required).map_err(|e| {
            let brace = source.chars().nth(e.offset).filter(|c| matches!(c, '{' | '}')).map(|c| {
                let before = source.chars().take(e.offset).filter(|x| *x == c).count();
                (c, before)
            });
            Fault { message: e.message, brace }
        })
    }

    fn shape(&self) -> Shape {
        Shape::Template { allowed: self.allowed, required: self.required }
    }
}

/// The compile-time half of a settings file (the run-time half is `resolved_file!` in
/// `model/settings.rs`): the partial struct, its checks and inheritance step, and the key schemas.
macro_rules! checked_file {
    (
        $(#[$doc:meta])*
        $name:ident / $partial:ident = $kind:ident {
            $( $(#[$fdoc:meta])* $field:ident : $ty:ty = $check:expr $(=> default $default:literal)?, )*
        }
    ) => {
        impl $name {
            /// The file's doc comment as attribute source, for `mvgen schema`.
            pub const DOCS: &'static [&'static str] = &[$(stringify!($doc)),*];

            /// What each key accepts, in schema order, for `mvgen schema`.
            pub fn key_schemas() -> Vec<KeySchema> {
                vec![$(
                    KeySchema {
                        key: stringify!($field),
                        docs: &[$(stringify!($fdoc)),*],
                        shape: Check::<$ty>::shape(&$check),
                    },
                )*]
            }
        }

        /// The keys one flavor's file sets.
        #[derive(Debug, Clone, Default)]
        pub struct $partial {
            $( $field: Option<Sourced<$ty>>, )*
        }

        impl $partial {
            /// Checks one key's value and records it.
            pub fn set(&mut self, key: &str, value: &Scalar, origin: Origin) -> Result<(), SetError> {
                match key {
                    $( stringify!($field) => {
                        let value = $check.check(value)?;
                        self.$field = Some(Sourced { value, origin });
                        Ok(())
                    } )*
                    _ => Err(SetError::UnknownKey),
                }
            }

            /// This file's keys over `parent`'s: the per-key inheritance rule. Without a parent (the
            /// default flavor) every key must be set unless it has a built-in default; the error lists
            /// the missing ones.
            pub fn resolve(&self, parent: Option<&$name>) -> Result<$name, Vec<&'static str>> {
                let mut missing = Vec::new();
                $(
                    let $field = self.$field.clone().or_else(|| parent.map(|p| p.$field.clone()))
                        $(.or_else(|| builtin(&$check, $default, FileKind::$kind)))?;
                    if $field.is_none() {
                        missing.push(stringify!($field));
                    }
                )*
                match ($($field,)*) {
                    ($(Some($field),)*) => Ok($name { $($field,)* }),
                    _ => Err(missing),
                }
            }
        }
    };
}

/// A built-in default, checked like a value from a file. A default its own check refuses would be a
/// bug in this file; it then counts as missing (and the schema tests fail) rather than panicking.
fn builtin<T>(check: &impl Check<T>, text: &str, file: FileKind) -> Option<Sourced<T>> {
    let value = check.check(&Scalar::Str(text.to_string())).ok()?;
    Some(Sourced { value, origin: Origin::builtin(file) })
}

const SCENE_VARS: &[Var] = &[
    Var::Idea,
    Var::CharacterDescription,
    Var::CharacterCharacteristics,
    Var::NumberOfScenes,
    Var::VideoType,
    Var::VideoCharacteristics,
    Var::CameraAngle,
];

crate::model::settings::settings_files!(checked_file);

/// What each `flavor.yaml` key accepts (layer.rs checks them), for `mvgen schema`.
pub fn meta_key_schemas() -> Vec<KeySchema> {
    let flavor_name = Shape::Pattern {
        pattern: super::FLAVOR_NAME_PATTERN,
        what: "a flavor name: lowercase letters, digits, '_' and '-'",
    };
    vec![
        KeySchema { key: "label", docs: &["doc = \" The human name pickers show.\""], shape: Shape::Text },
        KeySchema { key: "description", docs: &["doc = \" One or two sentences for pickers.\""], shape: Shape::Text },
        KeySchema {
            key: "extends",
            docs: &["doc = \" The parent flavor every key left out is inherited from (default when omitted).\""],
            shape: flavor_name,
        },
    ]
}

/// The keys allowed in `file`, for did-you-mean.
pub fn keys_of(file: FileKind) -> &'static [&'static str] {
    match file {
        FileKind::Parameters => Parameters::KEYS,
        FileKind::ScenePrompts => ScenePrompts::KEYS,
        FileKind::ImageParams => ImageParams::KEYS,
        FileKind::ImagePrompts => ImagePrompts::KEYS,
        FileKind::Meta => &["label", "description", "extends"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { flavor: Cow::Borrowed("t"), file: FileKind::Parameters, line: 1, col: 1 }
    }

    #[test]
    fn int_range_message_names_the_range_and_the_value() {
        let f = IntIn(1, 32).check(&Scalar::Str("six".into())).expect_err("string");
        assert_eq!(f.message, "expected an integer in 1..=32, found \"six\"");
        assert!(IntIn(1, 32).check(&Scalar::Int(33)).is_err());
        assert!(IntIn(1, 32).check(&Scalar::Float(6.0)).is_err());
        assert_eq!(IntIn(1, 32).check(&Scalar::Int(32)), Ok(32));
    }

    #[test]
    fn enums_suggest_the_nearest_spelling() {
        let f = Check::<OutputFormat>::check(&OneOf, &Scalar::Str("jpeg".into())).expect_err("jpeg");
        assert!(f.message.contains("did you mean \"jpg\""), "{}", f.message);
    }

    #[test]
    fn template_faults_name_the_brace() {
        let t = TemplateOf { allowed: &[Var::Idea], required: &[] };
        let f = t.check(&Scalar::Str("{idea} and {ideaz}".into())).expect_err("unknown");
        assert_eq!(f.brace, Some(('{', 1)));
    }

    #[test]
    fn model_names_are_path_safe() {
        assert!(GeminiModel.check(&Scalar::Str("gemini-2.5-flash".into())).is_ok());
        assert!(GeminiModel.check(&Scalar::Str("../x".into())).is_err());
        assert!(ReplicateModel.check(&Scalar::Str("google/veo-3.1".into())).is_ok());
        assert!(ReplicateModel.check(&Scalar::Str("google/veo/3".into())).is_err());
    }

    #[test]
    fn keys_with_a_builtin_default_may_be_left_out_of_default() {
        let missing = PartialParameters::default().resolve(None).expect_err("incomplete");
        assert!(!missing.contains(&"scene_model") && missing.contains(&"number_of_scenes"), "{missing:?}");
        let mut own = PartialParameters::default();
        for (key, value) in [
            ("character_characteristics", Scalar::Str("c".into())),
            ("video_type", Scalar::Str("t".into())),
            ("video_characteristics", Scalar::Str("v".into())),
            ("camera_angle", Scalar::Str("a".into())),
            ("number_of_scenes", Scalar::Int(3)),
        ] {
            own.set(key, &value, origin()).expect("valid");
        }
        let resolved = own.resolve(None).expect("complete without scene_model");
        assert_eq!(resolved.scene_model.value, "gemini-2.5-pro");
        assert!(resolved.scene_model.origin.is_builtin());
        assert_eq!(Parameters::BUILTIN_DEFAULTS, &[("scene_model", "gemini-2.5-pro")]);
        assert_eq!(ImageParams::BUILTIN_DEFAULTS, &[("gemini_video_model", "veo-3.1-generate-preview")]);
        assert!(ScenePrompts::BUILTIN_DEFAULTS.is_empty() && ImagePrompts::BUILTIN_DEFAULTS.is_empty());
        // A value from a file still wins over the built-in one.
        own.set("scene_model", &Scalar::Str("gemini-2.5-flash".into()), origin()).expect("valid");
        let resolved = own.resolve(None).expect("complete");
        assert_eq!(
            (resolved.scene_model.value.as_ref(), resolved.scene_model.origin.is_builtin()),
            ("gemini-2.5-flash", false)
        );
    }

    #[test]
    fn resolve_takes_own_keys_over_the_parent_and_reports_missing_ones() {
        let mut own = PartialParameters::default();
        own.set("video_type", &Scalar::Str("own".into()), origin()).expect("valid");
        let missing = own.resolve(None).expect_err("incomplete");
        assert!(missing.contains(&"camera_angle") && !missing.contains(&"video_type"));
        assert_eq!(own.set("video_typo", &Scalar::Null, origin()), Err(SetError::UnknownKey));
    }
}
