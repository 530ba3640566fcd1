-- Durable generation jobs (src/jobs/store.rs). Times are Unix milliseconds; JSON is TEXT. Written for
-- PostgreSQL; SQLite gets `INTEGER PRIMARY KEY AUTOINCREMENT` for `BIGSERIAL PRIMARY KEY` (store::migrator).
CREATE TABLE jobs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    plan TEXT NOT NULL,
    config_flavor TEXT NOT NULL,
    project_id TEXT,
    sequence BIGINT,
    output TEXT,
    error_code TEXT,
    error_message TEXT,
    error_status BIGINT,
    error_details TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    progress_stage TEXT,
    progress_upstream_status TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    heartbeat_at BIGINT,
    claim TEXT,
    run_after BIGINT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_runnable ON jobs (status, run_after);
CREATE INDEX jobs_project ON jobs (project_id, seq);
CREATE TABLE job_runs (
    job_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    slot BIGINT NOT NULL,
    upstream_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_id, provider, slot)
);
CREATE TABLE job_events (
    id BIGSERIAL PRIMARY KEY,
    job_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, id);
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    job_id TEXT,
    created_at BIGINT NOT NULL
);
