-- Projects' outbound webhooks (issue 26; src/jobs/store/project_deliveries.rs). Only additions, so
-- the build before it runs on this schema: it never reads these columns, and the rows below are
-- ones it already knows how to send (its sender claims any pending delivery and posts its body).
-- A project's webhook, as a job's (migration 9): the URL, checked at create or PATCH, and the events
-- it asked for (`start`, `progress`, `completed`, comma-separated); both NULL without one.
ALTER TABLE projects ADD COLUMN webhook TEXT;
ALTER TABLE projects ADD COLUMN webhook_events TEXT;
-- What a delivery tells of: `job` (every row written before this migration) or `project`; its
-- `job_id` column then holds the project's id. A new column rather than a renamed one, so the
-- previous build's statements (`WHERE job_id = $1`) still run; job and project ids are distinct
-- UUIDs, so a job's listing never shows a project's delivery.
ALTER TABLE webhook_deliveries ADD COLUMN subject TEXT NOT NULL DEFAULT 'job';
CREATE INDEX webhook_deliveries_subject ON webhook_deliveries (subject, job_id, seq);
