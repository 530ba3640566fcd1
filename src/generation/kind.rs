//! The one list of generation kinds. HTTP (a job's `kind`, the listing's filter) and the job engine
//! (the stored `kind` column, which kind runs a plan) name a kind with this enum; its text form, on
//! the wire and in the jobs database, is written here (`as_str`) and nowhere else. `mvgen render`'s
//! subcommands are one per kind too (`cli/render.rs`), under the CLI's older names (`character` for
//! `character_reference`), kept so scripts and golden request files go on working.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ApiError;

/// A kind of generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `create_scenes`: scene descriptions from an idea.
    Scenes,
    /// `generate_character_reference`: images of the main character.
    CharacterReference,
    /// `generate_video`: one scene rendered as a video.
    Video,
    /// `stitch-videos`: clips and a song remuxed into one video.
    FinalCut,
}

impl Kind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [Kind; 4] = [Kind::Scenes, Kind::CharacterReference, Kind::Video, Kind::FinalCut];

    /// Every kind's name, in the order of [`Kind::ALL`].
    const NAMES: [&'static str; 4] =
        [Kind::Scenes.as_str(), Kind::CharacterReference.as_str(), Kind::Video.as_str(), Kind::FinalCut.as_str()];

    /// Its name for jobs, metrics and debug logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Scenes => "scenes",
            Kind::CharacterReference => "character_reference",
            Kind::Video => "video",
            Kind::FinalCut => "final_cut",
        }
    }

    /// The kind named `name`, or `None`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// Every kind's name, comma-separated, for messages that list them.
    pub fn names() -> String {
        Kind::NAMES.join(", ")
    }

    /// The kind a request names in its `kind` field (a job's body, the jobs listing's query): any
    /// other name is a 400 naming the field and listing the kinds.
    pub fn from_field(name: &str) -> Result<Kind, ApiError> {
        Kind::parse(name).ok_or_else(|| ApiError::invalid("kind", format!("{name:?} is not one of {}", Kind::names())))
    }
}

// Through `as_str`, so the wire and the database spell a kind the same way by construction.
impl Serialize for Kind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Kind::parse(&name).ok_or_else(|| D::Error::unknown_variant(&name, &Kind::NAMES))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text form is the serde form, so a kind reads back as it was written wherever it is kept.
    #[test]
    fn every_kind_reads_back_from_its_name_and_its_json() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_value(kind).expect("serialisable");
            assert_eq!(json, kind.as_str());
            assert_eq!(serde_json::from_value::<Kind>(json).expect("readable"), kind);
        }
        assert_eq!(Kind::parse("character"), None, "the CLI's subcommand name is not a kind");
        let refused = Kind::from_field("song").expect_err("not a kind");
        assert_eq!(refused.message, r#"kind: "song" is not one of scenes, character_reference, video, final_cut"#);
    }
}
