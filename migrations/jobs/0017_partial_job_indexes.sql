-- The jobs table's secondary indexes hold only the rows their queries look for. Each index entry a
-- job has is a page that its INSERT or its finishing UPDATE writes again, and on SQLite every page
-- written is a WAL frame (a 4 kB write and a checksum): a sync job changed 25 pages, most of them
-- entries nothing ever reads (a finished job in the runnable index, a keyless one in the per-key
-- queue count, a job without a project in the project index). BENCHMARKS.md, issue 22.
--
-- - jobs_runnable: claims and the queue depth read queued and processing jobs only; the rest of
--   the table (finished jobs, most of it) is no longer in it, so it stays a page or two.
-- - jobs_finished: the purge reads finished jobs by `completed_at`; an unfinished job (NULL) has
--   no entry, so a job's end adds one rather than moving one. The queued count reads
--   jobs_runnable now.
-- - jobs_scope_queued: the per-key queued count reads queued jobs only.
-- - jobs_project: a project's jobs; most jobs have none.
--
-- Each query that used the old shape names the index's condition (`status = 'queued'`,
-- `completed_at < $1`, `project_id = $1`), which both engines take as proof that the partial index
-- holds every row it needs (`cargo test --lib query_plans`; tests/engines for PostgreSQL). Replacing
-- an index changes no query's answer, so the build before this one runs on this schema as before
-- (docs/deploy.md, "Schema changes"); its queue-depth query, written as `IN`, reads the table.
DROP INDEX jobs_runnable;
CREATE INDEX jobs_runnable ON jobs (status, run_after) WHERE status = 'queued' OR status = 'processing';
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs (status, completed_at) WHERE completed_at IS NOT NULL;
DROP INDEX jobs_scope_queued;
CREATE INDEX jobs_scope_queued ON jobs (api_key_scope, status) WHERE status = 'queued';
DROP INDEX jobs_project;
CREATE INDEX jobs_project ON jobs (project_id, seq) WHERE project_id IS NOT NULL;
