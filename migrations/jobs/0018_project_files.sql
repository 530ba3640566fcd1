-- Every stored video a project has named (a scene's clip, a final cut), kept when a newer take
-- replaces it or its scene is deleted, so that deleting the project deletes them all
-- (src/api/projects). Only an addition: the build before it never reads it; a take it writes
-- while this build is deployed beside it is not recorded, and is deleted with its project only
-- while the project still names it, as before.
CREATE TABLE project_files (
    project_id TEXT NOT NULL,
    video_id TEXT NOT NULL,
    PRIMARY KEY (project_id, video_id)
);
