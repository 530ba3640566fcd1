-- Outbound webhooks (issue 26; src/jobs/store/deliveries.rs, src/webhooks/). Only additions, so the
-- build before it runs on this schema (it never reads these, and stores jobs without a webhook).
-- Written for PostgreSQL; SQLite gets `INTEGER PRIMARY KEY AUTOINCREMENT` for `BIGSERIAL PRIMARY KEY`.
-- A job's webhook: the URL, checked at submit, and the events it asked for (`start`, `progress`,
-- `completed`, comma-separated); both NULL for a job without one.
ALTER TABLE jobs ADD COLUMN webhook TEXT;
ALTER TABLE jobs ADD COLUMN webhook_events TEXT;
-- One message to send: written in the transaction that stored the job's state it tells of, so a
-- crash between the two cannot lose it. `id` is the Standard Webhooks `webhook-id`, the same on
-- every attempt; `body` the job as it was then. `status`: pending (due at `next_at`), delivered,
-- failed (the retry schedule ran out) or gone (the receiver answered 410). A sender claims a due
-- row with `claim` until `claimed_until`, so two replicas never send one attempt.
CREATE TABLE webhook_deliveries (
    seq BIGSERIAL PRIMARY KEY,
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
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id, seq);
-- Each attempt of a delivery: when, how long, the receiver's answer code or why there was none.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    code BIGINT,
    error TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
