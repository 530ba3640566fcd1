//! Durable generation jobs (issue 12): a generation submitted, stored, run by a worker and watched.
//!
//! `pipeline` is the seam between the job engine and the generation pipeline: the engine stores and
//! runs what the pipeline plans, by its `generation::Kind`, and knows nothing of what a kind makes
//! (tests and benches plug in pipelines of their own). `store` is the
//! database (SQLite embedded, PostgreSQL for replicas), `engine` the submit path and the workers,
//! `state` the words a job's status and events are stored and answered in, `view` a job as
//! the API (and a webhook's body) shows it.

pub mod engine;
pub mod pipeline;
pub mod state;
pub mod store;
pub mod view;

pub use engine::{EngineConfig, Jobs, SubmitKey, Submitted};
pub use pipeline::{Generations, JobPipeline};
