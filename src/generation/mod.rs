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
//! Adding a kind touches:
//! - a new file here (`foo.rs`): the request body (deriving `Deserialize`, `clap::Args`,
//!   `utoipa::ToSchema`, plus a `body!` line naming its text fields), the answer, the validated
//!   type and its `impl Generation`; and its `pub mod foo;` line below;
//! - its line in the route table's `generate::endpoints!` (`src/api/mod.rs`): that one line makes
//!   the handler, its route and OpenAPI operation, and its entry in `api::KINDS`. The binary hands
//!   that list to the job pipeline ([`Pipeline::new`]; this module does not import the HTTP edge),
//!   which tells the job engine ([`crate::jobs::JobPipeline::kinds`]), so jobs accept the kind and
//!   the jobs API filters by it; `mvgen render` offers its subcommand ([`Generation::COMMAND`]).

/// Implements [`Body`] for a request body: `body!(CreateScenesBody: idea, camera_angle, ...)` names
/// its free-text fields (`String` or `Option<String>`) in the order they are checked; every body has
/// a `config_flavor` field, which is one of them.
macro_rules! body {
    ($body:ty: $($field:ident),+ $(,)?) => {
        impl $crate::generation::Body for $body {
            fn texts(&self) -> Vec<(&'static str, Option<&str>)> {
                vec![$((stringify!($field), $crate::generation::Text::text(&self.$field))),+]
            }

            fn config_flavor(&self) -> Option<&str> {
                self.config_flavor.as_deref()
            }
        }
    };
}

pub mod backend;
pub mod character;
pub mod driver;
pub mod inputs;
pub mod scenes;
pub mod video;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    /// Its `mvgen render` subcommand (`scenes`, `character`, `video`), and that command's help line.
    const COMMAND: &'static str;
    const RENDERS: &'static str;
    /// The request body (also the `mvgen render` arguments).
    type Input: Body + clap::Args + DeserializeOwned + Send;
    /// What its provider is sent.
    type Request: Serialize + DeserializeOwned + Send + Sync;
    /// What its answer needs of the request besides the provider request (the idea, the number of
    /// images, where a reference image comes from, ...).
    type Kept: Serialize + DeserializeOwned + Send + Sync;
    /// What its answer reports as `parameters_used`: the values the plan settled besides its
    /// prompt.
    type Parameters: Serialize;
    /// The answer body.
    type Answer: Serialize + Send;

    /// Normalises and checks a body: every other 4xx a caller's values can earn, before any flavor.
    /// The driver has bounded the body's texts and taken its `config_flavor` already.
    fn validate(input: Self::Input) -> Result<Self, ApiError>;

    /// Renders the plan for `flavor`, with the config values it used (for debug logs). The plan
    /// takes what it keeps of the request, so nothing is copied twice.
    fn plan<'f>(self, flavor: &'f Flavor) -> (Plan<Self::Request, Self::Kept>, Vec<Consumed<'f>>);

    /// The values `plan` settled besides its prompt (its answer's `parameters_used`, and what
    /// `mvgen render` prints), read from the plan when they are reported rather than stored in it.
    fn parameters(plan: &Plan<Self::Request, Self::Kept>) -> Self::Parameters;

    /// The prompt a request sends, byte for byte.
    fn prompt(request: &Self::Request) -> &str;

    /// The project a plan belongs to, and its place in it.
    fn project(_plan: &Plan<Self::Request, Self::Kept>) -> (Option<String>, Option<u32>) {
        (None, None)
    }

    /// Runs a plan: the provider calls, storing what they made, the answer.
    fn run<'a>(
        plan: &'a Plan<Self::Request, Self::Kept>,
        run: Run<'a>,
    ) -> BoxFuture<'a, Result<Self::Answer, ApiError>>;
}

/// A request body as the driver reads it before its kind does (derived with `body!`).
pub trait Body {
    /// The free-text fields by name, for the per-request length bound
    /// ([`crate::api::limits::bounded_texts`]) the driver applies before `validate`; `mvgen render`
    /// is not bounded.
    fn texts(&self) -> Vec<(&'static str, Option<&str>)>;

    /// The flavor the body names, as given.
    fn config_flavor(&self) -> Option<&str>;
}

/// A text field's value as [`Body::texts`] lists it.
pub trait Text {
    fn text(&self) -> Option<&str>;
}

impl Text for String {
    fn text(&self) -> Option<&str> {
        Some(self)
    }
}

impl Text for Option<String> {
    fn text(&self) -> Option<&str> {
        self.as_deref()
    }
}

/// A kind's plan: what a run needs, owned and serialisable (a job stores it and may run it in
/// another build), and nothing of the flavor. A stored plan also carries the `parameters` its
/// answer reports (see `driver::planned`); they are derived from the request and the kept values
/// when answering, and the stored copy is ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan<R, K> {
    /// What the provider is sent.
    pub request: R,
    /// What the answer needs besides.
    pub kept: K,
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
