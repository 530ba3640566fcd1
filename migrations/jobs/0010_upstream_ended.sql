-- Inbound Replicate webhooks (issue 26, point 2; src/jobs/store/runs.rs). Only additions: the
-- build before it never reads the column and keeps polling as it did.
-- `ended_at`: when a signed webhook said the saved upstream run ended (Unix ms); the worker waiting
-- on the run fetches it at once instead of at its next poll, on whichever replica it runs.
ALTER TABLE job_runs ADD COLUMN ended_at BIGINT;
-- A webhook names the run by its upstream id alone.
CREATE INDEX job_runs_upstream ON job_runs (provider, upstream_id);
