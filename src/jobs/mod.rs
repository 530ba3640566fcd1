//! Durable generation jobs (issue 12): a generation submitted, stored, run by a worker and watched.
//!
//! `pipeline` is the seam between the job engine and the generation pipeline: the engine stores and
//! runs what the pipeline plans, and knows nothing about scenes, images or videos.

pub mod pipeline;

pub use pipeline::{JobPipeline, Planned};
