-- SQLite only (as 0005 and 0007; a no-op on PostgreSQL, whose finishing statement writes its event
-- in a data-modifying CTE): a claim's final event ('succeeded', 'failed' or 'canceled') is written
-- by this trigger inside the job's own finishing UPDATE, so ending a job without a webhook is one
-- statement on SQLite's one writer connection instead of four (BEGIN, UPDATE, the event's INSERT,
-- COMMIT), each a round trip to that connection's thread (src/jobs/store/finish.rs).
--
-- It fires only for an UPDATE that names `heartbeat_at` and moves a job from 'processing' to an
-- end: only this build's one-statement finish does both (it stores the end as the claim's last
-- beat). A claim, a heartbeat or a takeover names `heartbeat_at` but leaves the job processing;
-- the transaction finish (kept for jobs with a webhook, whose delivery is written in Rust) and a
-- previous build's finish never name it and insert their event themselves, so a rolling deploy or
-- a rollback never writes one event twice. The data are the JSON the Rust side writes, keys sorted
-- as serde_json sorts them.
CREATE TRIGGER jobs_final_event AFTER UPDATE OF heartbeat_at ON jobs
WHEN OLD.status = 'processing' AND NEW.status IN ('succeeded', 'failed', 'canceled')
BEGIN
    INSERT INTO job_events (job_id, at, kind, data)
    VALUES (
        NEW.id,
        NEW.completed_at,
        NEW.status,
        CASE NEW.status
            WHEN 'failed' THEN json_object(
                'error', json_object('code', NEW.error_code, 'message', NEW.error_message),
                'status', 'failed'
            )
            ELSE json_object('status', NEW.status)
        END
    );
END;
