//! mvgen: a music-video generation backend whose prompt templates and model parameters come in
//! named **config flavors**, compiled into the binary and chosen per request.
//!
//! Data flows one way, and no two modules at any level import each other (README "Code map";
//! `tests/compiler/layering.rs` checks every level with a Rust parser):
//!
//! ```text
//! configs/ ─▶ compiler ─▶ (build.rs) flavor table ─▶ generation ─▶ jobs ─▶ api (HTTP edge) ◀── server ◀── cli
//!                │              │                        │
//!                └──▶ model ◀───┘                        └──▶ prompts, providers ─▶ storage
//! ```
//!
//! The crate, one line a module (a request: api → generation plans → jobs → generation runs →
//! providers → storage):
//!
//! ```text
//! model/          what a compiled flavor is: settings, typed keys, choices, templates (std only)
//! compiler/       configs dir → checked, resolved flavors, with file:line:col diagnostics
//! flavor          the embedded phf table and the per-request choice of flavor
//! live_configs    the table compiled from a watched dir instead (`serve --configs DIR`)
//! pinned_flavor   a project's flavor as it was when the project was made, restored from its content
//! json_schema     JSON Schemas of the configs files, from the compiler's definitions
//! prompts         a flavor plus request inputs → exactly what is sent upstream
//! media/          the stored file types, and sniffing a type from first bytes
//!   cut             the final cut's MP4 planned from clips' headers: tracks, trims, pieces to copy
//!   song/           a song's format and duration, its coded frames as one MP4 audio track
//!   beats/          a song's tempo, beats and downbeats: decoded as read, onset envelope, tracker
//!                   (mp3_*: an MP3's envelope from its coded spectrum, measured, not served)
//! error           ApiError: every failure's kind, status and JSON body
//! limits          request bounds and the generation slots
//! json_body       a JSON body parsed into a type (400 syntax, 422 shape)
//! state           AppState: what every handler shares
//! debug_log       MV_DEBUG_MODE provenance lines
//! generation/     the kinds of generation and what runs them
//!   kind            the one list of kinds (scenes, character_reference, video, final_cut)
//!   scenes, character, video   one kind each: body, validation, plan, run, answer
//!   final_cut       clips and a song remuxed into one stored video (reads and writes the store)
//!   driver          request → plan: text bounds, flavor choice, strict mode, slot
//!   report          FlavorReport, what an answer says of the flavor
//!   stored          a plan as the job engine stores it and runs it later
//!   inputs, backend the checks bodies share; the video backend choice
//! jobs/           durable generation jobs
//!   state           job status and event kinds, their words written once
//!   view            a job as the API and a webhook's body show it
//!   store/          the database, one file per concept (rows, submit, claims, runs, events, finish,
//!                   projects, deliveries, project_deliveries, …)
//!   engine/         submit and cancel (mod), workers (worker), the sync endpoints' wait (sync),
//!                   the queue's gauges for /metrics (queue_metrics)
//!   pipeline        what the engine needs of generation, and the real adapter
//! projects/       music-video projects over the jobs database: their answers (answer), statuses
//!                 (words), finished jobs' results written in (settle), scenes planned on the
//!                 song's beats (beat_plan, planning), their webhook (hooks)
//! providers/      Gemini, Replicate, Veo and the labelled mocks (mock_clip: the mock video as long as asked)
//!   client, retry, body, upstream_error, cancel   the HTTP plumbing they share
//!   run, upstream_run, output, outbound           run context, saved runs, outputs, downloads
//! storage/        where outputs live: the trait (mod), local files, S3 (object), checks, URLs,
//!                 blocking (a stored file as a sync Read + Seek)
//! api/            every route on one screen (mod) and its handlers: generate, files, flavors,
//!                 jobs, audio (songs), projects, openapi, health, readiness; extract (body and path
//!                 extractors), send_file; routed (the router with its route templates, for metrics)
//! server          settings from the environment, and the middleware around api's routes
//! serving/        connections: accept, watchdog, per-request limits, signals, drain
//! api_keys, request_id, telemetry, page, background   auth, X-Request-Id, /metrics, the create page, detached work
//!                 (and the one boxed type cold tasks are spawned as)
//! key_check, cors  the API key check and CORS's constant headers, plain services around the router
//! log_fields      the text log's field formatter: a request span's id written in one piece
//! trace_export    OpenTelemetry spans over OTLP/HTTP, built only when OTEL_EXPORTER_OTLP_ENDPOINT is set
//! tls             one rustls setup (ring, Mozilla's roots) for every HTTPS client mvgen builds
//! trace_context   W3C traceparent/tracestate: a request's parent, a job's stored context, outgoing calls
//! webhooks/       outbound webhooks: signatures (signature), the URL checked at submit (target),
//!                 each process's sender of due deliveries (sender)
//! cli/            the mvgen subcommands: serve, worker, migrate, render, check/show/diff, golden, healthcheck
//! ```

pub mod api;
pub mod api_keys;
pub mod background;
pub mod cli;
pub mod compiler;
pub mod cors;
mod debug_log;
pub mod error;
pub mod flavor;
pub mod generation;
pub mod jobs;
pub mod json_body;
pub mod json_schema;
pub mod key_check;
pub mod limits;
pub mod live_configs;
pub mod log_fields;
pub mod media;
pub mod model;
pub mod page;
pub mod pinned_flavor;
pub mod projects;
pub mod prompts;
pub mod providers;
pub mod request_id;
pub mod server;
pub mod serving;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod trace_context;
pub mod trace_export;
pub mod webhooks;
