//! What the job engine needs from the generation pipeline, and nothing more.
//!
//! A job is planned when it is submitted, so a bad input is a 4xx and never queued, and a queued job
//! runs exactly what was submitted even if a newer build with changed flavors picks it up. The plan
//! is JSON because it is stored in the jobs database and may be read back by another replica.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::providers::{BoxFuture, RunContext};

/// A validated, planned generation, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// The rendered plan: prompt, model, parameters, flavor name and the flavor's content that
    /// matter to the provider. `JobPipeline::run` takes it back.
    pub plan: Value,
    /// The `config_flavor` report of the sync endpoints (name, hash, fallback, ...).
    pub config_flavor: Value,
    pub project_id: Option<String>,
    pub sequence: Option<u32>,
}

/// The generation pipeline as the job engine sees it. `kind` is one of [`JobPipeline::kinds`];
/// `input` is the body the kind's sync endpoint takes.
pub trait JobPipeline: Send + Sync + 'static {
    /// The kinds a job may have, as the jobs API lists them (the pipeline decides what each
    /// means; the engine only refuses any other).
    fn kinds(&self) -> &[&'static str];

    /// Validates `input` and renders its plan (an unknown kind or a bad input is the same 4xx the
    /// sync endpoint gives).
    fn plan<'a>(&'a self, kind: &'a str, input: Value) -> BoxFuture<'a, Result<Planned, ApiError>>;

    /// Runs a stored plan; the output is the sync endpoint's answer body. Upstream ids and progress
    /// go through `ctx` (see `providers::run`).
    fn run<'a>(&'a self, kind: &'a str, plan: &'a Value, ctx: RunContext<'a>)
    -> BoxFuture<'a, Result<Value, ApiError>>;

    /// Cancels a run a job saved when no live call holds it (the job was cancelled while queued or
    /// released, or its worker died); an error says why it could not be. A pipeline whose runs
    /// live nowhere upstream (a benchmark's) keeps the default, which says so.
    fn cancel_run<'a>(&'a self, run: &'a crate::providers::UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Err(format!("this pipeline cannot cancel the saved run {}", run.id)) })
    }
}
