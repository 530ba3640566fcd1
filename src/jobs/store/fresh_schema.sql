-- Generated from migrations/jobs by `MVGEN_WRITE_SCHEMA=1 cargo test --lib fresh_schema`: the
-- schema they leave on SQLite, which a fresh file is built from (src/jobs/store/migrate.rs).
-- Do not edit; add a migration and write this again.

CREATE TABLE _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
);

CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
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
, max_attempts BIGINT, takeovers BIGINT NOT NULL DEFAULT 0, resume BIGINT NOT NULL DEFAULT 0, api_key_scope TEXT, webhook TEXT, webhook_events TEXT, previous_claim TEXT, trace_context TEXT);

CREATE TABLE job_runs (
    job_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    slot BIGINT NOT NULL,
    upstream_id TEXT NOT NULL,
    at BIGINT NOT NULL, ended_at BIGINT,
    PRIMARY KEY (job_id, provider, slot)
);

CREATE TABLE job_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
, answer_status BIGINT, answer_body TEXT, owner TEXT);

CREATE INDEX idempotency_created ON idempotency (created_at);

CREATE INDEX idempotency_job ON idempotency (job_id);

CREATE TRIGGER jobs_new_event AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, at, kind, data)
    VALUES (NEW.id, NEW.created_at, 'queued', '{"status":"queued"}');
    INSERT INTO job_events (job_id, at, kind, data)
    SELECT NEW.id, NEW.created_at, 'processing', '{"attempts":1,"status":"processing","takeovers":0}'
    WHERE NEW.status = 'processing';
END;

CREATE TABLE projects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    concept_prompt TEXT NOT NULL,
    character_description TEXT,
    character_image_id TEXT,
    product_description TEXT,
    product_image_id TEXT,
    director_config TEXT,
    audio_id TEXT,
    flavor_name TEXT NOT NULL,
    flavor_hash TEXT NOT NULL,
    flavor_content TEXT NOT NULL,
    scenes_job_id TEXT,
    character_job_id TEXT,
    final_job_id TEXT,
    final_video_id TEXT,
    error_message TEXT,
    version BIGINT NOT NULL,
    api_key_scope TEXT,
    drive BIGINT NOT NULL DEFAULT 0,
    drive_lease TEXT,
    drive_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
, scenes_asked BIGINT, beat_plan TEXT, webhook TEXT, webhook_events TEXT);

CREATE INDEX projects_status ON projects (status, seq);

CREATE INDEX projects_driven ON projects (drive, drive_until);

CREATE TABLE project_scenes (
    project_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    display_sequence BIGINT NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT,
    duration_ms BIGINT NOT NULL,
    reference_image_id TEXT,
    video_job_id TEXT,
    last_job_id TEXT,
    video_id TEXT,
    clip_ms BIGINT,
    trim_in_ms BIGINT,
    trim_out_ms BIGINT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL, on_beat BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, sequence)
);

CREATE INDEX project_scenes_job ON project_scenes (video_job_id);

CREATE TABLE webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT,
    claim TEXT,
    claimed_until BIGINT,
    last_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT
, subject TEXT NOT NULL DEFAULT 'job');

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);

CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, seq);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    code BIGINT,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE INDEX job_runs_upstream ON job_runs (provider, upstream_id);

CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (subject, job_id, seq);

CREATE TRIGGER jobs_final_event AFTER UPDATE OF heartbeat_at ON jobs
WHEN OLD.status = 'processing' AND NEW.status IN ('succeeded', 'failed', 'canceled')
BEGIN
    INSERT INTO job_events (job_id, at, kind, data)
    VALUES (
        NEW.id,
        NEW.completed_at,
        NEW.status,
        CASE NEW.status
            WHEN 'failed' THEN json_object(
                'error', json_object('code', NEW.error_code, 'message', NEW.error_message),
                'status', 'failed'
            )
            ELSE json_object('status', NEW.status)
        END
    );
END;

CREATE INDEX webhook_deliveries_project_ended ON webhook_deliveries (completed_at) WHERE subject = 'project';

CREATE INDEX jobs_runnable ON jobs (status, run_after) WHERE status = 'queued' OR status = 'processing';

CREATE INDEX jobs_finished ON jobs (status, completed_at) WHERE completed_at IS NOT NULL;

CREATE INDEX jobs_scope_queued ON jobs (api_key_scope, status) WHERE status = 'queued';

CREATE INDEX jobs_project ON jobs (project_id, seq) WHERE project_id IS NOT NULL;

CREATE TABLE project_files (
    project_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    PRIMARY KEY (project_id, video_id)
);

