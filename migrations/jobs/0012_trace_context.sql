-- The W3C trace context (`traceparent`) a job was submitted under (issue 26, point 3), so whichever
-- replica claims it, first or after a takeover, continues the same trace. NULL when traces are not
-- exported, and on rows a previous build wrote; nothing but the trace export reads it, so the build
-- before this one runs on it unchanged.
ALTER TABLE jobs ADD COLUMN trace_context TEXT;
