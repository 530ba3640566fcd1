-- Restarts do not consume a job's retry budget (src/jobs/store.rs, claim_where): a takeover after a
-- dead worker, and the claim after a graceful release (`resume` = 1), continue the interrupted
-- attempt instead of starting one. `takeovers` counts takeovers, bounded on its own
-- (MVGEN_JOB_MAX_TAKEOVERS) so a job that keeps crashing its worker still ends.
ALTER TABLE jobs ADD COLUMN takeovers BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN resume BIGINT NOT NULL DEFAULT 0;
