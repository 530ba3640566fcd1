-- A takeover names the worker it took the job from (issue 27, point 5): the claim a takeover
-- replaced, kept by the claim's UPDATE (src/jobs/store/claims.rs), since RETURNING gives new
-- values only. NULL for a job never taken over, and on rows a previous build claimed: nothing
-- reads it but the takeover's log line, so the build before this one runs on it unchanged.
ALTER TABLE jobs ADD COLUMN previous_claim TEXT;
