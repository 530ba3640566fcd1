//! The generation pipeline: every kind of generation (scenes, character reference images, a scene
//! video) has the same shape, the way every mini-redis command does, and one driver plans them all.
//!
//! A kind is one type implementing [`Generation`] in its own file: its request body (one struct
//! the HTTP endpoint and the job engine take, and `mvgen render`'s arguments convert into), the
//! validated request made from it, the serialisable plan a flavor turns it into (what the provider
//! is sent, and nothing of the flavor), and the provider call that runs a plan. Around the kinds:
//! - [`kind`]: the one list of kinds ([`Kind`]), and their names on the wire and in the database;
//! - [`driver`]: request to plan (text bounds, flavor choice, strict mode, debug logs, the
//!   generation slot); the flavor is spent there, and a plan carries a [`FlavorReport`] instead;
//! - [`stored`]: a plan as the job engine stores it and runs it later, reached by [`Kind`];
//! - [`inputs`], [`backend`]: the checks bodies share, and the video backend choice.
//!
//! This layer knows nothing of HTTP routes, jobs or the command line: `api::generate` answers the
//! endpoints (running each request as a job), `jobs::pipeline` hands stored plans to the engine,
//! and `cli::render` prints a plan.
//!
//! Adding a kind `foo` touches, besides its tests:
//! - `generation/foo.rs` (new): the body (`Deserialize`, `utoipa::ToSchema`, a `body!` line naming
//!   its text fields), the answer, the validated type and its `impl Generation`; its `pub mod` line
//!   below;
//! - `generation/kind.rs`: its variant and name; the compiler then points at the two arms to add
//!   in `generation/stored.rs`;
//! - `api/generate.rs` (its handler in a `generation_endpoint!`), `api/mod.rs` (its route),
//!   `api/openapi.rs` (its handler in `paths`);
//! - `cli/render.rs`: its arguments, subcommand and arm in `plan`, if `mvgen render` shows it;
//! - with a prompt of its own: its plan function in `prompts.rs`, and its config keys in
//!   `model/settings.rs` and `configs/default/`;
//! - with an upstream of its own: its request type and trait in `providers/mod.rs`, the real
//!   client in `providers/`, the labelled mock in `providers/mock.rs`, and its fake in
//!   `tests/support/fake_upstream.rs`;
//! - with an output of its own: its kind of stored file in `storage/mod.rs` (and `media.rs` for a
//!   new file type), and its download route in `api/files.rs` and `api/mod.rs`.

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
pub mod final_cut;
pub mod inputs;
pub mod kind;
pub mod report;
pub mod scenes;
pub mod stored;
pub mod video;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::model::Flavor;
use crate::prompts::Consumed;
use crate::providers::{BoxFuture, Output, ProviderError, RunContext};
use crate::state::AppState;
use crate::storage::{Collection, Put};

pub use kind::Kind;
pub use report::FlavorReport;

/// One kind of generation, from request body to answer.
pub trait Generation: Sized + Send + Sync + 'static {
    /// Which kind it is.
    const KIND: Kind;
    /// The request body (the HTTP endpoint's and a job's input; `mvgen render`'s arguments convert
    /// into it).
    type Input: Body + DeserializeOwned + Send;
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

    /// Checks what the plan names in the store exists (a final cut's clips), so a request naming
    /// a file that is not there is refused before it is stored as a job. Most kinds name none.
    fn check_inputs<'a>(
        _plan: &'a Plan<Self::Request, Self::Kept>,
        _state: &'a AppState,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async { Ok(()) })
    }

    /// Puts what the request uploaded (a video's `reference_image_base64`) in the store, so the
    /// plan names it by id rather than carrying its bytes into the jobs database and into every
    /// answer that shows the plan. Called once a request is valid and planned, before its plan is
    /// stored ([`stored::to_store`]); most kinds upload nothing.
    fn store_uploads<'a>(
        _plan: &'a mut Plan<Self::Request, Self::Kept>,
        _state: &'a AppState,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async { Ok(()) })
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
    /// ([`crate::limits::bounded_texts`]) the driver applies before `validate`; `mvgen render`
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
/// answer reports (see [`stored`]); they are derived from the request and the kept values
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
        Ok(crate::telemetry::generation(G::KIND.as_str(), &self.flavor.used, backend, call).await?)
    }

    /// A provider call of kind `G` whose output streams into storage as a new file of `kind`: the
    /// download is part of the call (timed with it, its faults the provider's errors), and no
    /// output is ever whole in memory. A store's fault is a storage error.
    pub async fn store<G: Generation>(
        &self,
        backend: &'static str,
        kind: Collection,
        call: impl Future<Output = Result<Output, ProviderError>>,
    ) -> Result<Put, ApiError> {
        let storage = &*self.state.storage;
        Ok(self.call::<G, _>(backend, async move { call.await?.store(storage, kind).await }).await??)
    }
}
