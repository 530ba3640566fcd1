//! The shape of a compiled flavor, shared by the compiler, the generated table and the server.
//!
//! Every string is a `Cow<'static, str>` so that one type serves both worlds: build.rs emits
//! `Cow::Borrowed` literals into a `static` table (no allocation, no parsing at run time), while the
//! CLI's `--configs DIR` compiles the same types with owned strings.

use std::borrow::Cow;
use std::fmt;

use super::schema::{ImageParams, ImagePrompts, Parameters, ScenePrompts};
use super::template::Template;

/// Text in a compiled flavor.
pub type Text = Cow<'static, str>;

/// The files a flavor directory may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    Parameters,
    ScenePrompts,
    ImageParams,
    ImagePrompts,
    Meta,
}

impl FileKind {
    /// Every allowed file, settings files first.
    pub const ALL: [FileKind; 5] =
        [FileKind::Parameters, FileKind::ScenePrompts, FileKind::ImageParams, FileKind::ImagePrompts, FileKind::Meta];

    pub const fn file_name(self) -> &'static str {
        match self {
            FileKind::Parameters => "parameters.yaml",
            FileKind::ScenePrompts => "scene_prompts.yaml",
            FileKind::ImageParams => "image_params.yaml",
            FileKind::ImagePrompts => "image_prompts.yaml",
            FileKind::Meta => "flavor.yaml",
        }
    }

    pub fn from_file_name(name: &str) -> Option<FileKind> {
        FileKind::ALL.into_iter().find(|k| k.file_name() == name)
    }
}

/// Where a resolved value was written: the flavor whose file set it, and the position of the value.
/// A value no file set (a key's built-in default) has line and column 0: positions in files are
/// 1-based, so 0 never names one, and the generated table keeps one plain shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub flavor: Text,
    pub file: FileKind,
    pub line: u32,
    pub col: u32,
}

impl Origin {
    /// The origin of a built-in default for a key of `file`. It belongs to the default flavor, the
    /// root every other flavor inherits from.
    pub fn builtin(file: FileKind) -> Origin {
        Origin { flavor: std::borrow::Cow::Borrowed(super::DEFAULT_FLAVOR), file, line: 0, col: 0 }
    }

    /// True when no file set the value: it is the key's built-in default.
    pub fn is_builtin(&self) -> bool {
        self.line == 0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_builtin() {
            write!(f, "built-in default (not set in any {})", self.file.file_name())
        } else {
            write!(f, "{}/{}:{}:{}", self.flavor, self.file.file_name(), self.line, self.col)
        }
    }
}

/// A resolved value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

/// A fully resolved flavor: every key has a value, own or inherited.
#[derive(Debug, Clone, PartialEq)]
pub struct Flavor {
    pub name: Text,
    pub label: Option<Text>,
    pub description: Option<Text>,
    /// The parent keys were inherited from; `None` only for `default`.
    pub extends: Option<Text>,
    /// The content hash of the resolved settings (`hash.rs`): equal for equal content, whatever
    /// the files looked like.
    pub hash: Text,
    pub parameters: Parameters,
    pub scene_prompts: ScenePrompts,
    pub image_params: ImageParams,
    pub image_prompts: ImagePrompts,
}

impl Flavor {
    /// Every resolved key, file by file, in schema order.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        let mut all = self.parameters.entries();
        all.extend(self.scene_prompts.entries());
        all.extend(self.image_params.entries());
        all.extend(self.image_prompts.entries());
        all
    }

    /// The resolved value of `key` in `file`.
    pub fn entry(&self, file: FileKind, key: &str) -> Option<Entry<'_>> {
        self.entries().into_iter().find(|e| e.file == file && e.key == key)
    }

    /// The human name: the label when set, else the flavor name.
    pub fn display_label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }
}

/// A config key: its file and its name. Only the schema (`config_file!` in `schema.rs`) makes them,
/// one associated constant per key (`Parameters::video_type`), so code naming a key that was
/// renamed or removed does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub file: FileKind,
    pub name: &'static str,
}

impl Entry<'_> {
    /// Whether this entry is the value of `key`.
    pub fn is(&self, key: Key) -> bool {
        self.file == key.file && self.key == key.name
    }
}

/// One resolved key, for listing, diffing, explaining and debug logs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry<'a> {
    pub file: FileKind,
    pub key: &'static str,
    pub value: ValueRef<'a>,
    pub origin: &'a Origin,
}

/// A borrowed view of any resolved value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Text(&'a str),
    Int(u32),
    Bool(bool),
    /// An enum value: its wire spelling and, for generated code, its Rust path.
    Choice {
        wire: &'static str,
        rust_path: &'static str,
    },
    Template(&'a Template),
}

impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::Text(s) => f.write_str(s),
            ValueRef::Int(n) => write!(f, "{n}"),
            ValueRef::Bool(b) => write!(f, "{b}"),
            ValueRef::Choice { wire, .. } => f.write_str(wire),
            ValueRef::Template(t) => f.write_str(&t.source),
        }
    }
}

/// Anything a schema key can hold knows how to show itself generically.
pub trait View {
    fn view(&self) -> ValueRef<'_>;
}

impl View for Text {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Text(self)
    }
}

impl View for u32 {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Int(*self)
    }
}

impl View for bool {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Bool(*self)
    }
}

impl View for Template {
    fn view(&self) -> ValueRef<'_> {
        ValueRef::Template(self)
    }
}

/// A closed set of wire values (an enum in the schema).
pub trait Choice: Sized + Copy + 'static {
    /// Every variant with its spelling in YAML and on the wire.
    const ALL: &'static [(&'static str, Self)];
    /// The Rust path of the variant, for generated code.
    fn rust_path(self) -> &'static str;
    fn as_str(self) -> &'static str;
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(name, _)| *name == s).map(|(_, v)| *v)
    }
    /// Every spelling, quoted and comma-separated, for "expected one of ..." messages.
    fn spellings() -> String {
        Self::ALL.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
    }
}

macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl Choice for $name {
            const ALL: &'static [(&'static str, Self)] = &[$(($wire, $name::$variant)),*];
            fn rust_path(self) -> &'static str {
                match self { $($name::$variant => concat!(stringify!($name), "::", stringify!($variant))),* }
            }
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),* }
            }
        }

        impl View for $name {
            fn view(&self) -> ValueRef<'_> {
                ValueRef::Choice { wire: self.as_str(), rust_path: self.rust_path() }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice!(
    /// Image aspect ratios the image model accepts.
    AspectRatio { Square = "1:1", Landscape = "16:9", Portrait = "9:16", Classic = "4:3", ClassicPortrait = "3:4" }
);
choice!(
    /// How strictly the image model filters unsafe content.
    // The names mirror the wire values, which all start with "block".
    #[allow(clippy::enum_variant_names)]
    SafetyFilterLevel {
        LowAndAbove = "block_low_and_above",
        MediumAndAbove = "block_medium_and_above",
        HighAndAbove = "block_high_and_above",
        Off = "block_none",
    }
);
choice!(
    /// Whether the image model may draw people.
    PersonGeneration { AllowAdult = "allow_adult", DontAllow = "dont_allow" }
);
choice!(
    /// Image file format.
    OutputFormat { Png = "png", Jpg = "jpg", Webp = "webp" }
);
choice!(
    /// Video aspect ratios the video model accepts.
    VideoAspectRatio { Landscape = "16:9", Portrait = "9:16", Square = "1:1" }
);
choice!(
    /// Whether the video model may show people.
    VideoPersonGeneration { AllowAll = "allow_all", DontAllow = "dont_allow" }
);
