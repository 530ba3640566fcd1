//! What a compiled flavor is at run time, and how its templates render: the types the generated
//! flavor table is made of and every request path reads.
//!
//! This is the bottom layer of the flavor half of the crate (as chrono-tz keeps its parser, its
//! generator and its runtime types apart): `compiler` builds these values from a configs directory,
//! build.rs writes them into the `static` table `flavor` serves, and the HTTP, generation and
//! provider code reads them. Nothing here imports the compiler, so nothing on the run-time path does.
//! build.rs includes this module by path next to the compiler, so files here refer to each other
//! with `super::` and use only std.
//!
//! - [`settings`]: every settings key, declared once, and the resolved structs it builds;
//! - [`flavor`]: a resolved [`Flavor`];
//! - [`template`]: prompt templates (parsed at build time, and at run time for a request's own
//!   `video_rules_template`) and their rendering;
//! - [`choice`], [`value`], [`key`], [`origin`]: enum values, resolved values, typed keys, provenance;
//! - [`suggest`]: the "did you mean" hint shared by diagnostics and error messages.

pub mod choice;
pub mod flavor;
pub mod key;
pub mod origin;
pub mod settings;
pub mod suggest;
pub mod template;
pub mod value;

pub use choice::{
    AspectRatio, Choice, OutputFormat, PersonGeneration, SafetyFilterLevel, VideoAspectRatio, VideoPersonGeneration,
};
pub use flavor::Flavor;
pub use key::{Entry, Key};
pub use origin::{DEFAULT_FLAVOR, FileKind, MAX_FLAVOR_NAME_CHARS, Origin, Sourced};
pub use settings::{ImageParams, ImagePrompts, NUMBER_OF_SCENES, Parameters, ScenePrompts, VIDEO_DURATION};
pub use suggest::{did_you_mean, nearest};
pub use template::{Segment, Template, TemplateError, Var};
pub use value::{Text, ValueRef, View};
