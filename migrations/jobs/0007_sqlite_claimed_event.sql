-- SQLite only (as 0005; a no-op on PostgreSQL, whose insert writes its events itself): a sync
-- job is stored already claimed by the process that runs it (status 'processing',
-- src/jobs/store/submit.rs), so its first two events, 'queued' then 'processing', come from one
-- trigger inside the job's own INSERT: one statement on SQLite's one writer, in order. A queued
-- job still gets only its 'queued' event, as before; a previous build only ever inserts those.
DROP TRIGGER jobs_queued_event;
CREATE TRIGGER jobs_new_event AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, at, kind, data)
    VALUES (NEW.id, NEW.created_at, 'queued', '{"status":"queued"}');
    INSERT INTO job_events (job_id, at, kind, data)
    SELECT NEW.id, NEW.created_at, 'processing', '{"attempts":1,"status":"processing","takeovers":0}'
    WHERE NEW.status = 'processing';
END;
