//! The closed sets of wire values a settings key may hold (aspect ratios, safety levels, ...).

use std::fmt;

use super::value::{ValueRef, View};

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
