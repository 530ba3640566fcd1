-- Sync endpoints as submit-and-wait (src/generation/driver.rs): a job may carry its own attempt
-- limit (a sync job is never retried behind its caller's back). NULL: the engine's default.
ALTER TABLE jobs ADD COLUMN max_attempts BIGINT;
