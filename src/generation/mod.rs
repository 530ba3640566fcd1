//! The generation pipeline: every kind of generation (scenes, character reference images, a scene
//! video) has the same shape, the way every mini-redis command does, and one driver runs them all.
//!
//! A kind is one type implementing [`Generation`] in its own file: its request body (one struct the
//! HTTP endpoint, `mvgen render` and the job engine all take), the validated request made from it,
//! the serialisable plan a flavor turns it into (what the provider is sent, and nothing of the
//! flavor), and the provider call that runs a plan. [`driver`] owns everything around that: flavor
//! choice, strict mode, debug logs, the `config_flavor` report and headers, the generation slot, and
//! the job engine's [`crate::jobs::JobPipeline`].
//!
//! Adding a kind: a new file here implementing [`Generation`], its line in [`driver::KINDS`] (for
//! jobs), and its route in `api`.

pub mod backend;
pub mod character;
pub mod driver;
pub mod inputs;
pub mod scenes;
pub mod video;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::model::Flavor;
use crate::prompts::Consumed;
use crate::providers::{BoxFuture, Output, ProviderError, RunContext};
use crate::state::AppState;
use crate::storage::{Kind, Put};

pub use driver::{FlavorReport, Pipeline, respond};

/// One kind of generation, from request body to answer.
pub trait Generation: Sized + Send + Sync + 'static {
    /// Its name for jobs, metrics and debug logs: `scenes`, `character_reference`, `video`.
    const KIND: &'static str;
    /// The request body (also the `mvgen render` arguments).
    type Input: DeserializeOwned + Send;
    /// What a run needs, owned and serialisable: a job stores it and may run it in another build.
    type Plan: Serialize + DeserializeOwned + Send + Sync;
    /// The answer body.
    type Answer: Serialize + Send;

    /// The body's text fields by name, for the per-request length bound
    /// ([`crate::api::limits::bounded_texts`]) the driver applies before `validate`; `mvgen render`
    /// is not bounded.
    fn texts(input: &Self::Input) -> Vec<(&'static str, Option<&str>)>;

    /// Normalises and checks a body: every other 4xx a caller's values can earn, before any flavor.
    fn validate(input: Self::Input) -> Result<Self, ApiError>;

    /// The flavor the request names, if any.
    fn config_flavor(&self) -> Option<&str>;

    /// Renders the plan for `flavor`, with the config values it used (for debug logs).
    fn plan<'f>(&self, flavor: &'f Flavor) -> (Self::Plan, Vec<Consumed<'f>>);

    /// The prompt a plan sends, byte for byte.
    fn prompt(plan: &Self::Plan) -> &str;

    /// The values a plan uses besides the prompt, as `parameters_used` reports them.
    fn parameters(plan: &Self::Plan) -> &Value;

    /// The project a plan belongs to, and its place in it.
    fn project(_plan: &Self::Plan) -> (Option<String>, Option<u32>) {
        (None, None)
    }

    /// Runs a plan: the provider calls, storing what they made, the answer.
    fn run<'a>(plan: &'a Self::Plan, run: Run<'a>) -> BoxFuture<'a, Result<Self::Answer, ApiError>>;
}

/// What a running plan may use.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub state: &'a AppState,
    /// The flavor the plan was made with, as the answer reports it.
    pub flavor: &'a FlavorReport,
    /// Where upstream ids and progress go (detached on the sync path).
    pub ctx: RunContext<'a>,
}

impl Run<'_> {
    /// A provider call of kind `G`, counted and timed in the metrics.
    pub async fn call<G: Generation, T>(
        &self,
        backend: &'static str,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ApiError> {
        Ok(crate::telemetry::generation(G::KIND, &self.flavor.used, backend, call).await?)
    }

    /// A provider call of kind `G` whose output streams into storage as a new file of `kind`: the
    /// download is part of the call (timed with it, its faults the provider's errors), and no
    /// output is ever whole in memory. A store's fault is a storage error.
    pub async fn store<G: Generation>(
        &self,
        backend: &'static str,
        kind: Kind,
        call: impl Future<Output = Result<Output, ProviderError>>,
    ) -> Result<Put, ApiError> {
        let storage = &*self.state.storage;
        Ok(self.call::<G, _>(backend, async move { call.await?.store(storage, kind).await }).await??)
    }
}
