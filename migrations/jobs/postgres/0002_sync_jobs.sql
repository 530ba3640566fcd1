-- Sync endpoints as submit-and-wait (src/generation/driver.rs): a failed job keeps the whole error
-- answer (`details`, e.g. `retry_after_seconds`), and a job may carry its own attempt limit (a sync
-- job is never retried behind its caller's back). NULL: the engine's default.
ALTER TABLE jobs ADD COLUMN error_details TEXT;
ALTER TABLE jobs ADD COLUMN max_attempts BIGINT;
