//! mvgen: a music-video generation backend whose prompt templates and model parameters come in
//! named **config flavors**, compiled into the binary and chosen per request.
//!
//! Data flows one way, and no two top-level modules import each other (README "Code map";
//! `tests/compiler/layering.rs` checks it):
//!
//! ```text
//! configs/ ──compiler──▶ build.rs ──▶ flavor table (phf, &'static) ──▶ api handlers ──▶ providers, storage
//! ```
//!
//! - [`model`]: what a compiled flavor is and how its templates render, the types of the flavor
//!   table and of every request path; [`compiler`]: reads and checks a configs directory, resolves
//!   inheritance into those types (used by build.rs, the CLI's `--configs` and `live_configs` only).
//! - [`flavor`]: the embedded table and the per-request choice of flavor; [`live_configs`]: the
//!   table compiled from a watched directory instead (`mvgen serve --configs DIR`).
//! - [`prompts`]: turns a flavor plus request inputs into exactly what is sent upstream.
//! - [`generation`]: one type per generation kind (validated input, serialisable plan, provider
//!   call) and the one driver that runs them for the endpoints, `mvgen render` and jobs.
//! - [`error`] (`ApiError`), [`limits`], [`state`] (`AppState`), [`json_body`]: what the pipeline and the
//!   job engine share with the HTTP edge, kept below both so neither imports [`api`] (it re-exports them).
//! - [`api`]: the `/api/mv` handlers; [`server`] wires them with auth ([`api_keys`]) and CORS; [`serving`] runs the
//!   connections (timeouts, connection cap, bounded shutdown drain).
//! - [`providers`]: Gemini, Replicate and the offline mock; [`storage`]: generated files on disk.
//! - [`cli`]: the `mvgen` subcommands for prompt authors and CI.
//! - [`json_schema`]: JSON Schemas of the configs files, from the compiler's definitions.
//! - [`telemetry`]: `GET /metrics` (Prometheus); [`request_id`]: `X-Request-Id` on every request.
//! - [`jobs`]: durable generation jobs; [`jobs::JobPipeline`] is what they need from the pipeline.
//! - [`page`]: the create page (`page/`), embedded and served at `/` and `/create`.

pub mod api;
pub mod api_keys;
pub mod background;
pub mod cli;
pub mod compiler;
mod debug_log;
pub mod error;
pub mod flavor;
pub mod generation;
pub mod jobs;
pub mod json_body;
pub mod json_schema;
pub mod limits;
pub mod live_configs;
pub mod media;
pub mod model;
pub mod page;
pub mod prompts;
pub mod providers;
pub mod request_id;
pub mod server;
pub mod serving;
pub mod state;
pub mod storage;
pub mod telemetry;
