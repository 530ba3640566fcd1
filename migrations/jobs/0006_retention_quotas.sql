-- Retention and quotas (src/jobs/store/retention.rs, src/jobs/store/quota.rs). Only added columns
-- and indexes, so the previous build still runs against this schema (it never reads the column and
-- leaves it NULL: its jobs count as keyless).
-- `api_key_scope`: a short SHA-256 of the API key that submitted the job (never the key), for the
-- per-key queued count (MVGEN_MAX_QUEUED_PER_KEY); NULL without API keys.
ALTER TABLE jobs ADD COLUMN api_key_scope TEXT;
CREATE INDEX jobs_scope_queued ON jobs (api_key_scope, status);
-- The purge of finished jobs past MVGEN_JOB_RETENTION reads a range per final status.
CREATE INDEX jobs_finished ON jobs (status, completed_at);
-- ... and deletes the idempotency keys bound to the jobs it purged.
CREATE INDEX idempotency_job ON idempotency (job_id);
