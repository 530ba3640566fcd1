-- SQLite only (store::migrator runs a no-op in its place on PostgreSQL, whose insert statement
-- writes the event itself): a new job's first event is written by this trigger, inside the job's
-- own INSERT, so a submission is one statement on SQLite's one writer connection instead of four
-- (BEGIN, two inserts, COMMIT), each a round trip to that connection's thread.
CREATE TRIGGER jobs_queued_event AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, at, kind, data)
    VALUES (NEW.id, NEW.created_at, 'queued', '{"status":"queued"}');
END;
