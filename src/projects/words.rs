//! The words a project and a scene are in, as their UI reads them (`types/project.ts`).

/// A project's status. `composing` is set only by the compose; callers may set the others.
pub const PENDING: &str = "pending";
pub const PROCESSING: &str = "processing";
pub const COMPOSING: &str = "composing";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";

/// What a caller may set a project's status to (`PATCH /projects/{id}`): not `composing`.
pub const SETTABLE: [&str; 4] = [PENDING, PROCESSING, COMPLETED, FAILED];

/// The modes their create page offers; a project without one is a music video.
pub const MODES: [&str; 2] = ["music-video", "ad-creative"];
pub const MUSIC_VIDEO: &str = "music-video";

/// What a project's drive (`projects::drive`) is making: nothing, the whole video, or only the
/// scenes' missing clips (after a scene is added; their UI composes itself).
pub const DRIVE_OFF: i64 = 0;
pub const DRIVE_WHOLE: i64 = 1;
pub const DRIVE_CLIPS: i64 = 2;
