//! What the job engine needs from the generation pipeline, and nothing more: plan a kind's input
//! when it is submitted, run a stored plan, cancel a saved upstream run. [`Generations`] is the
//! real one; tests and benches plug in their own.
//!
//! A job is planned when it is submitted, so a bad input is a 4xx and never queued, and a queued job
//! runs exactly what was submitted even if a newer build with changed flavors picks it up. The plan
//! is JSON because it is stored in the jobs database and may be read back by another replica.

use serde_json::Value;

use crate::error::ApiError;
use crate::generation::Kind;
use crate::generation::stored::{self, StoredPlan};
use crate::providers::{BoxFuture, RunContext, UpstreamRun};
use crate::state::AppState;

/// The generation pipeline as the job engine sees it. `input` is the body the kind's sync
/// endpoint takes.
pub trait JobPipeline: Send + Sync + 'static {
    /// Validates `input` and renders its plan (a bad input is the same 4xx the sync endpoint
    /// gives).
    fn plan<'a>(&'a self, kind: Kind, input: Value) -> BoxFuture<'a, Result<StoredPlan, ApiError>>;

    /// Runs a stored plan; the output is the sync endpoint's answer body. Upstream ids and progress
    /// go through `ctx` (see `providers::run`).
    fn run<'a>(&'a self, kind: Kind, plan: &'a Value, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Value, ApiError>>;

    /// Cancels a run a job saved when no live call holds it (the job was cancelled while queued or
    /// released, or its worker died); an error says why it could not be. A pipeline whose runs
    /// live nowhere upstream (a benchmark's) keeps the default, which says so.
    fn cancel_run<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { Err(format!("this pipeline cannot cancel the saved run {}", run.id)) })
    }

    /// Writes to the store what job `id`'s answer `output` keeps only in the job's row, before the
    /// purge deletes the row (a scenes answer keeps its scenes there, see `generation::scenes`),
    /// so every URL it answered stays readable. A pipeline whose answers keep nothing in the row
    /// (a benchmark's) keeps the default.
    fn keep_output<'a>(&'a self, _kind: Kind, _id: &'a str, _output: &'a Value) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The generation pipeline itself, over the same state the endpoints use.
#[derive(Clone)]
pub struct Generations {
    state: AppState,
}

impl Generations {
    pub fn new(state: AppState) -> Self {
        Generations { state }
    }
}

impl JobPipeline for Generations {
    fn plan<'a>(&'a self, kind: Kind, input: Value) -> BoxFuture<'a, Result<StoredPlan, ApiError>> {
        Box::pin(stored::plan(&self.state, kind, input))
    }

    fn run<'a>(&'a self, kind: Kind, plan: &'a Value, ctx: RunContext<'a>) -> BoxFuture<'a, Result<Value, ApiError>> {
        stored::run(&self.state, kind, plan, ctx)
    }

    fn cancel_run<'a>(&'a self, run: &'a UpstreamRun) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(self.state.providers.cancel_run(run))
    }

    fn keep_output<'a>(&'a self, kind: Kind, id: &'a str, output: &'a Value) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { stored::keep_output(&self.state, kind, id, output).await.map_err(|e| e.to_string()) })
    }
}
