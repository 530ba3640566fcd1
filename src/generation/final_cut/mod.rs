//! The final cut (`POST /api/mv/stitch-videos`, kind `final_cut`): stored scene clips, in order and
//! optionally trimmed, and a stored song under them, remuxed into one new stored video. Nothing is
//! decoded or encoded: [`crate::media::cut`] plans the file from the clips' headers and the song's
//! frame table, and [`copy`] streams its bytes from the store back into the store.
//!
//! The body is the Python service's (`video_ids`, `audio_overlay_id`, `suppress_video_audio`), plus
//! `clips` (ids with trims) and `loop_audio`. Its answer keeps their field names.

mod copy;
mod read;
mod song;

use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::video::{CutClip, VideoRecord};
use super::{Generation, Kind, Plan, Run};
use crate::error::{ApiError, ErrorKind};
use crate::media::cut::{self, ClipIn, CutError, Sound};
use crate::model::Flavor;
use crate::prompts::Consumed;
use crate::providers::BoxFuture;
use crate::state::AppState;
use crate::storage::{self, Collection, Storage, StorageError};

/// The most clips one cut takes: a project has at most 32 scenes, and a stitch of a few more
/// (alternate takes) is still one video.
pub const MAX_CLIPS: usize = 64;

/// Clip headers read at once (each a few small requests; the tables they hold are kept anyway).
const HEADERS_AT_ONCE: usize = 8;

/// The most samples one cut's clips may hold together, one entry of ~40 bytes each (~84 MB):
/// 64 clips each at `MAX_TRACK_SAMPLES` would be 1.4 GB; 64 one-minute 60 fps clips with their
/// sound are ~410 000.
const MAX_CUT_SAMPLES: u64 = 1 << 21;

pub use read::ReadError;

/// How long stored video `id` plays: its video track's length from its header (one ranged read).
pub async fn clip_length(storage: &dyn crate::storage::Storage, id: &str) -> Result<std::time::Duration, ReadError> {
    let tracks = read::clip_tracks(storage, id).await?;
    let video = &tracks.video;
    let units = video.duration().saturating_sub(video.media_start);
    Ok(std::time::Duration::from_secs_f64(units as f64 / f64::from(video.timescale.max(1))))
}

/// What to cut: the clips in order (`video_ids`, or `clips` with trims), and the song.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StitchVideosBody {
    /// Stored video ids, in order (as the Python service took them). Give this or `clips`.
    #[schema(max_items = 64)]
    pub video_ids: Option<Vec<String>>,
    /// Stored video ids with trims, in order. Give this or `video_ids`.
    #[schema(max_items = 64)]
    pub clips: Option<Vec<ClipBody>>,
    /// A song from `upload_audio`: it starts at 0:00 and replaces the clips' audio. An id that is
    /// not stored is a warning (`audio_overlay_applied: false`), not an error.
    #[schema(max_length = 20000)]
    pub audio_overlay_id: Option<String>,
    /// Drop the clips' own audio (without a song the cut is silent).
    pub suppress_video_audio: Option<bool>,
    /// Start the song again when it ends before the video (default false, as stitch-videos did).
    pub loop_audio: Option<bool>,
    #[schema(max_length = 20000)]
    pub config_flavor: Option<String>,
}

body!(StitchVideosBody: audio_overlay_id, config_flavor);

/// One clip of a cut.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClipBody {
    #[schema(max_length = 20000)]
    pub video_id: String,
    /// Where the clip starts, in seconds of the clip; moved back to the keyframe at or before it.
    #[schema(minimum = 0)]
    pub in_seconds: Option<f64>,
    /// Where the clip ends, in seconds of the clip: frames shown from there on are dropped.
    #[schema(minimum = 0)]
    pub out_seconds: Option<f64>,
    /// Where in the cut this clip should end (a beat of the song), in seconds from the cut's
    /// start: its last frame is chosen so the cut lands as near there as the clip's frames
    /// allow, however long the clips before it came out, so cuts do not drift. Replaces
    /// `out_seconds`; ignored when the clip starts at or after it (it then plays to its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub end_at_seconds: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StitchVideosResponse {
    pub video_id: String,
    /// `/api/mv/get_video/{id}` (supports Range).
    pub video_url: String,
    /// Whether the song is under the cut.
    pub audio_overlay_applied: bool,
    /// Why a requested song is not (it is not stored, or could not be read).
    pub audio_overlay_warning: Option<String>,
    pub metadata: StitchMetadata,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StitchMetadata {
    pub input_video_ids: Vec<String>,
    pub num_videos_stitched: usize,
    pub stitched_video_id: String,
    pub video_duration_seconds: f64,
    /// How long the song plays under the video (the audio track's length), when there is audio.
    pub audio_duration_seconds: Option<f64>,
    /// Each clip as cut: its effective trims (an in point moves back to a keyframe) and where it
    /// starts in the cut.
    pub clips: Vec<CutClip>,
    pub audio_overlay_id: Option<String>,
    pub suppress_video_audio: bool,
    pub loop_audio: bool,
    pub size_bytes: u64,
    pub merge_time_seconds: f64,
    pub total_processing_time_seconds: f64,
    pub generation_timestamp: String,
    pub storage_backend: String,
    pub config_flavor: super::FlavorReport,
}

/// A valid cut request: the clips, the song, and what to do with the clips' audio.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinalCut {
    pub clips: Vec<ClipBody>,
    pub audio_id: Option<String>,
    pub suppress_video_audio: bool,
    pub loop_audio: bool,
}

impl Generation for FinalCut {
    const KIND: Kind = Kind::FinalCut;
    type Input = StitchVideosBody;
    type Request = FinalCut;
    type Kept = ();
    type Parameters = serde_json::Value;
    type Answer = StitchVideosResponse;

    fn validate(body: StitchVideosBody) -> Result<Self, ApiError> {
        let clips = match (body.video_ids, body.clips) {
            (Some(ids), None) => ids
                .into_iter()
                .map(|video_id| ClipBody { video_id, in_seconds: None, out_seconds: None, end_at_seconds: None })
                .collect(),
            (None, Some(clips)) => clips,
            (Some(_), Some(_)) => return Err(ApiError::invalid("clips", "give video_ids or clips, not both")),
            (None, None) => return Err(ApiError::invalid("video_ids", "the clips to cut are required")),
        };
        if clips.is_empty() {
            return Err(ApiError::invalid("video_ids", "at least one video id is required"));
        }
        if clips.len() > MAX_CLIPS {
            return Err(ApiError::invalid("video_ids", format!("at most {MAX_CLIPS} clips ({} given)", clips.len())));
        }
        for (i, clip) in clips.iter().enumerate() {
            storage::parse_id(&clip.video_id).map_err(|_| {
                ApiError::new(
                    ErrorKind::InvalidId,
                    format!("Invalid video_id format: {}", short(&clip.video_id)),
                    json!({ "field": format!("clips[{i}].video_id") }),
                )
            })?;
            let times = [
                ("in_seconds", clip.in_seconds),
                ("out_seconds", clip.out_seconds),
                ("end_at_seconds", clip.end_at_seconds),
            ];
            for (field, value) in times {
                if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                    return Err(ApiError::invalid(&format!("clips[{i}].{field}"), "must be 0 or more seconds"));
                }
            }
            if let (Some(a), Some(b)) = (clip.in_seconds, clip.out_seconds)
                && b <= a
            {
                return Err(ApiError::invalid(&format!("clips[{i}].out_seconds"), "must be after in_seconds"));
            }
            if clip.out_seconds.is_some() && clip.end_at_seconds.is_some() {
                return Err(ApiError::invalid(
                    &format!("clips[{i}].end_at_seconds"),
                    "give out_seconds or end_at_seconds, not both: each says where the clip ends",
                ));
            }
        }
        let audio_id = super::inputs::optional(body.audio_overlay_id);
        if let Some(id) = &audio_id {
            storage::parse_id(id).map_err(|_| {
                ApiError::new(
                    ErrorKind::InvalidId,
                    format!("Invalid audio_overlay_id format: {}", short(id)),
                    json!({ "field": "audio_overlay_id" }),
                )
            })?;
        }
        Ok(FinalCut {
            clips,
            audio_id,
            suppress_video_audio: body.suppress_video_audio.unwrap_or(false),
            loop_audio: body.loop_audio.unwrap_or(false),
        })
    }

    fn plan<'f>(self, _flavor: &'f Flavor) -> (Plan<FinalCut, ()>, Vec<Consumed<'f>>) {
        // A cut takes nothing from the flavor; its answer still reports which one was chosen.
        (Plan { request: self, kept: () }, Vec::new())
    }

    fn parameters(plan: &Plan<FinalCut, ()>) -> serde_json::Value {
        let cut = &plan.request;
        json!({
            "clips": cut.clips,
            "audio_overlay_id": cut.audio_id,
            "suppress_video_audio": cut.suppress_video_audio,
            "loop_audio": cut.loop_audio,
        })
    }

    fn prompt(_request: &FinalCut) -> &str {
        ""
    }

    /// Every clip must be stored before the cut is accepted: an unknown id is a 404 naming it,
    /// before any work. (A song that is not stored is only a warning, when the cut runs.)
    fn check_inputs<'a>(plan: &'a Plan<FinalCut, ()>, state: &'a AppState) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            for (i, clip) in plan.request.clips.iter().enumerate() {
                match state.storage.find(Collection::Video, &clip.video_id).await {
                    Ok(_) => {}
                    Err(StorageError::NotFound(_)) => return Err(missing_clip(i, &clip.video_id)),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        })
    }

    fn run<'a>(plan: &'a Plan<FinalCut, ()>, run: Run<'a>) -> BoxFuture<'a, Result<StitchVideosResponse, ApiError>> {
        Box::pin(cut_and_store(&plan.request, run))
    }
}

async fn cut_and_store(request: &FinalCut, run: Run<'_>) -> Result<StitchVideosResponse, ApiError> {
    let started = Instant::now();
    let storage = &run.state.storage;
    run.ctx.progress("reading clips", None);
    // Up to HEADERS_AT_ONCE headers are read at a time: on S3 each costs a HEAD and a ranged GET,
    // whose round trips would otherwise add up clip after clip.
    let reads: Vec<_> = request.clips.iter().enumerate().map(|(i, clip)| clip_in(storage, i, clip)).collect();
    let mut reading = futures_util::stream::iter(reads).buffered(HEADERS_AT_ONCE);
    let (mut clips, mut held) = (Vec::with_capacity(request.clips.len()), 0);
    while let Some(clip) = reading.try_next().await? {
        held = hold(held, clips.len(), &clip)?;
        clips.push(clip);
    }

    let (song, audio_overlay_warning) = match &request.audio_id {
        Some(id) => match song::frames(storage, id, request.loop_audio).await? {
            Ok(song) => (Some(song), None),
            Err(warning) => (None, Some(warning)),
        },
        None => (None, None),
    };
    let audio_overlay_applied = song.is_some();
    let sound = match song {
        Some(plan) => Sound::Song(Box::new(plan)),
        None if request.suppress_video_audio => Sound::None,
        None => Sound::Clips,
    };
    let planned = cut::plan(&clips, &sound).map_err(|e| cut_error(e, None))?;

    run.ctx.progress("writing the cut", None);
    let merge_started = Instant::now();
    let put = copy::store(storage, &planned, &clips, request.audio_id.as_deref()).await?;
    let merge_time_seconds = merge_started.elapsed().as_secs_f64();

    let cut_clips: Vec<CutClip> = request
        .clips
        .iter()
        .zip(&planned.clips)
        .map(|(clip, span)| CutClip {
            video_id: clip.video_id.clone(),
            in_seconds: round_ms(span.in_seconds),
            out_seconds: round_ms(span.out_seconds),
            starts_at: round_ms(span.starts_at),
        })
        .collect();
    let created = super::inputs::timestamp();
    let record = VideoRecord {
        created: created.clone(),
        backend: "final_cut".into(),
        model: "remux".into(),
        is_mock: false,
        config_flavor: run.flavor.used.clone(),
        config_flavor_hash: run.flavor.hash.clone(),
        project_id: None,
        sequence: None,
        character_reference_id: None,
        has_reference_image: false,
        duration_seconds: Some(round_ms(planned.duration_seconds)),
        cut_from: Some(cut_clips.clone()),
    };
    // The record only adds to `info`: a cut stored without it is still the answer.
    match serde_json::to_vec(&record) {
        Ok(bytes) => {
            if let Err(e) = storage.put_record(Collection::Video, &put.id, &bytes).await {
                tracing::warn!(video = %put.id, error = %e, "the final cut's record was not stored");
            }
        }
        Err(e) => tracing::warn!(video = %put.id, error = %e, "the final cut's record could not be written"),
    }

    Ok(StitchVideosResponse {
        video_url: format!("/api/mv/get_video/{}", put.id),
        audio_overlay_applied,
        audio_overlay_warning,
        metadata: StitchMetadata {
            input_video_ids: request.clips.iter().map(|c| c.video_id.clone()).collect(),
            num_videos_stitched: request.clips.len(),
            stitched_video_id: put.id.clone(),
            video_duration_seconds: round_ms(planned.duration_seconds),
            audio_duration_seconds: planned.audio_seconds.map(round_ms),
            clips: cut_clips,
            audio_overlay_id: request.audio_id.clone(),
            suppress_video_audio: request.suppress_video_audio,
            loop_audio: request.loop_audio,
            size_bytes: put.len,
            merge_time_seconds,
            total_processing_time_seconds: started.elapsed().as_secs_f64(),
            generation_timestamp: created,
            storage_backend: storage.describe(),
            config_flavor: run.flavor.clone(),
        },
        video_id: put.id,
    })
}

/// The samples a cut holds once clip `i` is added to the `held` before it; a cut past
/// [`MAX_CUT_SAMPLES`] is refused (422), naming the clip that passed it.
fn hold(held: u64, i: usize, clip: &ClipIn) -> Result<u64, ApiError> {
    let now = held + clip.tracks.samples();
    if now > MAX_CUT_SAMPLES {
        return Err(ApiError::new(
            ErrorKind::ClipsIncompatible,
            format!(
                "the clips up to clip {} hold {now} samples (frames) together, more than the {MAX_CUT_SAMPLES} one cut may hold: cut fewer or shorter clips",
                short(&clip.name)
            ),
            json!({ "field": format!("clips[{i}].video_id") }),
        ));
    }
    Ok(now)
}

/// Clip `i` of a cut, its header read from the store.
async fn clip_in(storage: &Arc<dyn Storage>, i: usize, clip: &ClipBody) -> Result<ClipIn, ApiError> {
    let tracks = read::clip_tracks(&**storage, &clip.video_id).await.map_err(|e| match e {
        read::ReadError::Storage(StorageError::NotFound(_)) => missing_clip(i, &clip.video_id),
        read::ReadError::Storage(e) => e.into(),
        read::ReadError::Cut(e) => cut_error(e, Some((i, &clip.video_id))),
    })?;
    Ok(ClipIn {
        name: clip.video_id.clone(),
        tracks,
        in_seconds: clip.in_seconds,
        out_seconds: clip.out_seconds,
        end_at: clip.end_at_seconds,
    })
}

/// Seconds to the millisecond, as answers show them.
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn missing_clip(i: usize, id: &str) -> ApiError {
    ApiError::not_found(format!("no stored video with id {id}"), json!({ "field": format!("clips[{i}].video_id") }))
}

/// A cut that can't be made: the clips' fault (422 naming them) or a trim (400).
fn cut_error(e: CutError, clip: Option<(usize, &str)>) -> ApiError {
    let field = clip.map(|(i, _)| format!("clips[{i}].video_id"));
    match e {
        CutError::Clip(why) => ApiError::new(
            ErrorKind::ClipsIncompatible,
            match clip {
                Some((_, id)) => format!("clip {id} can't be cut: {why}"),
                None => why,
            },
            json!({ "field": field }),
        ),
        CutError::Mismatch(why) => ApiError::new(ErrorKind::ClipsIncompatible, why, json!({ "field": "clips" })),
        CutError::Trim(why) => ApiError::invalid("clips", why),
        CutError::Header(why) => ApiError::internal(why),
    }
}

/// An id as a message quotes it: at most 80 characters.
fn short(id: &str) -> String {
    id.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mock_clip() -> ClipIn {
        let tracks = crate::providers::mock_clip::tracks().expect("the mock clip's tracks");
        ClipIn { name: "mock".into(), tracks, in_seconds: None, out_seconds: None, end_at: None }
    }

    #[test]
    fn a_cut_holding_more_samples_than_it_may_is_refused_naming_the_clip_that_passed_it() {
        let clip = mock_clip();
        let each = clip.tracks.samples();
        assert!(each > 0);
        assert_eq!(hold(0, 0, &clip).expect("one clip"), each);
        assert_eq!(hold(MAX_CUT_SAMPLES - each, 3, &clip).expect("exactly full"), MAX_CUT_SAMPLES);
        let refused = hold(MAX_CUT_SAMPLES - each + 1, 3, &clip).expect_err("one sample over");
        assert_eq!(refused.kind, ErrorKind::ClipsIncompatible);
        assert_eq!(refused.details["field"], "clips[3].video_id");
        assert!(refused.message.contains(&format!("{} samples", MAX_CUT_SAMPLES + 1)), "{}", refused.message);
    }
}
