-- Scenes planned on the song's beats (issue 25, src/projects/beat_plan.rs). New nullable or
-- defaulted columns only, so the build before this one runs on this schema unchanged.
-- `scenes_asked`: the project's `numberOfScenes`, when its creator gave one (else the song decides).
-- `beat_plan`: the plan as JSON (the song's length and tempo, the clip lengths, one cut per scene),
-- written with the scenes it planned.
-- `on_beat` = 1 while a scene follows the plan: its clip is rendered to cover its place and the
-- compose ends it on its cut; a user's trim sets it to 0 (the trim then decides).
ALTER TABLE projects ADD COLUMN scenes_asked BIGINT;
ALTER TABLE projects ADD COLUMN beat_plan TEXT;
ALTER TABLE project_scenes ADD COLUMN on_beat BIGINT NOT NULL DEFAULT 0;
