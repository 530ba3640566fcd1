-- Music-video projects (src/jobs/store/projects.rs, src/projects/). New tables only, so the previous
-- build runs against this schema untouched. Times are Unix milliseconds, durations and trim points
-- whole milliseconds (exact on both engines through sqlx's `Any` driver, unlike floats).
-- A project pins its flavor: `flavor_content` is the resolved flavor as JSON (src/projects/pin.rs),
-- so its generations use what it was created with after a live edit or the flavor's removal.
-- `version` is bumped by every change: the ETag of every project answer.
-- `drive` = 1 while `POST /projects/{id}/generate` is making the whole video server-side; one process
-- at a time advances it, holding the lease `drive_lease` until `drive_until` (src/projects/drive.rs).
-- `*_job_id` columns name a job whose result is not yet written into the project; whoever reads
-- the project next writes it ("settles" it) and clears the column, so a caller who hung up loses
-- nothing and retention (which skips the jobs named here) never purges an unsettled result.
CREATE TABLE projects (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    concept_prompt TEXT NOT NULL,
    character_description TEXT,
    character_image_id TEXT,
    product_description TEXT,
    product_image_id TEXT,
    director_config TEXT,
    audio_id TEXT,
    flavor_name TEXT NOT NULL,
    flavor_hash TEXT NOT NULL,
    flavor_content TEXT NOT NULL,
    scenes_job_id TEXT,
    character_job_id TEXT,
    final_job_id TEXT,
    final_video_id TEXT,
    error_message TEXT,
    version BIGINT NOT NULL,
    api_key_scope TEXT,
    drive BIGINT NOT NULL DEFAULT 0,
    drive_lease TEXT,
    drive_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX projects_status ON projects (status, seq);
CREATE INDEX projects_driven ON projects (drive, drive_until);
CREATE TABLE project_scenes (
    project_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    display_sequence BIGINT NOT NULL,
    status TEXT NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT,
    duration_ms BIGINT NOT NULL,
    reference_image_id TEXT,
    video_job_id TEXT,
    last_job_id TEXT,
    video_id TEXT,
    clip_ms BIGINT,
    trim_in_ms BIGINT,
    trim_out_ms BIGINT,
    error_message TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, sequence)
);
CREATE INDEX project_scenes_job ON project_scenes (video_job_id);
