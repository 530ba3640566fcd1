//! End to end: the real `mvgen` binary (or the real server with the real provider clients), against
//! fake upstreams on 127.0.0.1. One test binary, one module per concern.
//!
//! Belongs here: whole runs that cross the server, the provider clients and the process itself
//! (`server`: what upstream receives equals `mvgen render`, startup, logs, shutdown;
//! `live_configs`: `serve --configs DIR`; `mixed_flavors`: many parallel requests across flavors,
//! plus the 10 000-request load run behind `MVGEN_LOAD_TEST=1`; `static_binary`: the static build
//! in an empty root; `durable_jobs`: jobs surviving SIGKILL, replica takeover on PostgreSQL, 200 jobs
//! run exactly once, a lost database; `replicas_storage`: replicas on one PostgreSQL and one S3 store,
//! a takeover mid-download, the store lost mid-job). A feature that spans a request from client to upstream and
//! back, such as a job resumed after a restart, goes here; HTTP-only behaviour in `tests/http/`, one client
//! against its fake in `tests/providers/`.
//!
//! `stored_uploads`: a video's uploaded reference image stored as a file at submit and named by
//! id in its plan, never carried in the database or echoed; listings without plans.
//!
//! `sync_statements`: what one sync `create_scenes` asks of the jobs database (SQLite and
//! PostgreSQL), read from the binary's own statement log: the job's INSERT and one finishing
//! statement, no heartbeat, no idle worker woken into a claim; its events as before.
//!
//! `job_cancel`, beside `durable_jobs`: a canceled job's upstream run cancelled when no live call
//! holds it, and a cancel or SIGTERM while a create is in flight.
//!
//! `retention`: finished jobs purged after `MVGEN_JOB_RETENTION`, the queue limits
//! (`MVGEN_MAX_QUEUED_JOBS`, `MVGEN_MAX_QUEUED_PER_KEY`) and idempotency keys scoped per API key.
//!
//! `schema_migrations`: `mvgen migrate` applying every missing migration in one transaction, a
//! fresh database and an upgraded one ending identical, a fresh SQLite file built whole.
//!
//! `postgres_ops`: PostgreSQL as it is run for real: TLS, `mvgen migrate` and a runtime role
//! without DDL rights, the schema check at start, `application_name`.
//!
//! `load_balancer`: docs/nginx/mvgen.conf run by Debian's nginx in front of two replicas, and the
//! documented rolling restart under load with no request failing.
//!
//! `projects`: a project driven as the Python service's project UI drives it, from create to the
//! downloaded final cut, its edits, ETags, listing and deletion. `projects_attack`: the same routes
//! attacked (a create form cut short after its song, a song two projects share, edits and
//! `generate`s racing, scene clips cut short or whose header lies, oversized form parts, odd ids
//! and query values).
//!
//! `job_observability`: each step of a job logged at info with its id, kind, flavor and upstream
//! run, and counted in `/metrics` (`serve`'s, and a worker's `--metrics-addr`).
//!
//! `compose_file`: deploy/compose.yaml as `docker-compose config` resolves it.
//!
//! `replicate_webhooks`: Replicate's signed `completed` webhook finishing a render at once, with
//! polling as the backstop, and polls and latency measured with and without it.
//!
//! `webhooks`: outbound webhooks sent to a receiver on 127.0.0.1, signed, retried, stopped by a
//! 410, never redirected, refused at submit for private targets, and owed across a SIGKILL.
//!
//! `deploy_from_zero`: deploy/from-zero.sh, docs/deploy.md followed from zero on one host (TLS
//! PostgreSQL, two roles, SeaweedFS, two replicas and a worker behind the documented nginx).
//!
//! `binary_layout`: how the binary is linked (build.rs, link/README.md): relocations packed,
//! start-up functions first in `.text`.
//!
//! One binary per area, so the crate is linked once per area rather than once per file.

#[path = "../support/mod.rs"]
mod support;

mod beat_cuts;
mod binary_layout;
mod compose_file;
mod database_faults;
mod deploy_from_zero;
mod durable_jobs;
mod final_cut;
mod job_cancel;
mod job_observability;
mod live_configs;
mod load_balancer;
mod mixed_flavors;
mod postgres_ops;
mod project_webhooks;
mod projects;
mod projects_attack;
mod replicas_storage;
mod replicate_webhooks;
mod retention;
mod schema_migrations;
mod server;
mod static_binary;
mod stored_uploads;
mod sync_jobs;
mod sync_statements;
mod traces;
mod webhooks;
