//! The engines mvgen stores its work in, each tested for real: the job engine on SQLite and on a
//! throwaway PostgreSQL cluster (`jobs_engine`: claims, takeovers, retries, cancel, `job_cancel`: saved runs of canceled jobs, with the fake
//! pipeline of `tests/support/job_pipeline.rs`; `jobs_api`: the `/api/mv/jobs` routes, SSE,
//! idempotency, replicas), and outputs in an S3-compatible store (`object_storage`: SeaweedFS;
//! `store_deadlines`: a hung, missing or refusing store, and the public URL of presigned links).
//!
//! Belongs here: behaviour that needs a database or an object store. Those tests print a skip line
//! without the engine under plain `cargo test` and fail under `CI=true` (`.ci/run` installs them).
//! Durable jobs through the real binary and the real provider clients are in `tests/e2e/`.
//!
//! Its own binary, apart from `tests/http/`: starting PostgreSQL clusters and SeaweedFS is heavy,
//! and the connection tests there are timing-sensitive.

#[path = "../support/mod.rs"]
mod support;

mod job_cancel;
mod jobs_api;
mod jobs_engine;
mod object_storage;
mod project_changes;
mod readiness;
mod store_deadlines;
mod webhook_order;
