-- Idempotency keys (src/jobs/store.rs, begin_key): a replay sends the first answer as it was sent
-- (`answer_status`, `answer_body`, stored with the job in one transaction); `owner` is the token of
-- the submission holding a pending key, so one that took over a key left by a crashed submission is
-- never overwritten by it; keys expire by `created_at` (MVGEN_IDEMPOTENCY_TTL).
ALTER TABLE idempotency ADD COLUMN answer_status BIGINT;
ALTER TABLE idempotency ADD COLUMN answer_body TEXT;
ALTER TABLE idempotency ADD COLUMN owner TEXT;
CREATE INDEX idempotency_created ON idempotency (created_at);
