-- The purge of projects' ended webhook deliveries (src/jobs/store/retention.rs): finds them by
-- when they ended without scanning every job's delivery. Partial, so a job's delivery (most rows)
-- costs no index entry; both engines use it for `WHERE subject = 'project' AND completed_at < $1`.
-- Only an addition: the build before it never reads it.
CREATE INDEX webhook_deliveries_project_ended ON webhook_deliveries (completed_at) WHERE subject = 'project';
