//! Where each clip's frames land in the cut: its trims turned into a run of samples in decode
//! order, and the checks that the clips can share one video track.
//!
//! Times inside a clip are in its video track's timescale; the cut's video track takes the first
//! clip's timescale. A clip is presented from its first kept frame, so clip `k` starts where clip
//! `k - 1`'s frames end: gapless whatever the clips' own edit lists said.

use mp4_atom::Codec;

use super::CutError;
use super::clip::{ClipTracks, Track};

/// A clip given to the cut, with its trims in seconds of its own presentation.
#[derive(Debug, Clone)]
pub struct ClipIn {
    /// How messages name it (its video id).
    pub name: String,
    pub tracks: ClipTracks,
    pub in_seconds: Option<f64>,
    pub out_seconds: Option<f64>,
    /// Where in the cut this clip should end (a scene's beat), in seconds from the cut's start:
    /// its last frame is chosen so the cut lands as near there as its frames allow, whatever the
    /// clips before it came to. Overrides `out_seconds`; ignored when the clip starts at or after
    /// it.
    pub end_at: Option<f64>,
}

/// What sound the cut has.
#[derive(Debug, Clone)]
pub enum Sound {
    /// No audio track (the clips' audio suppressed, and no song).
    None,
    /// The clips' own audio, one after the other; silence for a clip without any.
    Clips,
    /// A song from 0:00, replacing the clips' audio.
    Song(Box<SongPlan>),
}

/// A song as the plan needs it: its sample entry and every frame's size and length, read in a
/// first pass; the bytes are read again in order when the cut is written.
#[derive(Debug, Clone)]
pub struct SongPlan {
    pub entry: Codec,
    pub timescale: u32,
    /// Samples at the start that are not part of the song (Opus pre-skip): hidden by the edit list.
    pub priming: u32,
    /// Each frame's size in bytes and length in `timescale` units, in order.
    pub frames: Vec<(u32, u32)>,
    /// Start the song again when it ends before the video.
    pub looped: bool,
}

/// Where a clip went: its effective trims (a start moves back to a keyframe, an end to a frame)
/// and where it starts in the cut, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipSpan {
    pub in_seconds: f64,
    pub out_seconds: f64,
    pub starts_at: f64,
}

/// A clip's kept video frames: `first..end` in decode order.
#[derive(Debug, Clone, Copy)]
pub struct Kept {
    pub first: usize,
    pub end: usize,
    /// The presentation time of the first kept frame (the effective in), in the clip's timescale.
    pub start: i64,
    /// The kept frames' decode duration, in the clip's timescale.
    pub duration: u64,
}

/// How a trim ends a clip.
#[derive(Debug, Clone, Copy)]
pub enum End {
    /// Every frame shown at or after this time of the clip (seconds) is dropped; `None`: none is.
    Out(Option<f64>),
    /// The kept frames last as near this many seconds as the clip's cut points allow.
    Length(f64),
}

/// The frames of `video` a trim keeps. `in` moves back to the keyframe at or before it, so the
/// first frame decodes without anything before it; the end drops frames from the back, cutting
/// the decode order only where no kept frame depends on a dropped one (after a B-frame group).
pub fn trim(name: &str, video: &Track, in_seconds: Option<f64>, end: End) -> Result<Kept, CutError> {
    let out_seconds = match end {
        End::Out(out) => out,
        End::Length(_) => None,
    };
    let scale = f64::from(video.timescale);
    let pts: Vec<i64> = video
        .decode_times()
        .zip(&video.samples)
        .map(|(dts, s)| dts as i64 + s.cts - video.media_start as i64)
        .collect();
    let shown_until = pts.iter().zip(&video.samples).map(|(&p, s)| p + i64::from(s.delta)).max().unwrap_or(0);
    let length = shown_until as f64 / scale;
    let bad = |why: String| CutError::Trim(format!("clip {name}: {why}"));
    for (field, value) in [("in_seconds", in_seconds), ("out_seconds", out_seconds)] {
        if let Some(v) = value
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(bad(format!("{field} must be a number of seconds, 0 or more (got {v})")));
        }
    }
    let wanted_in = in_seconds.unwrap_or(0.0);
    if wanted_in >= length {
        return Err(bad(format!("in_seconds {wanted_in} is not before the clip's end ({length:.3} s)")));
    }
    if let Some(out) = out_seconds
        && out <= wanted_in
    {
        return Err(bad(format!("out_seconds {out} must be after in_seconds {wanted_in}")));
    }

    // The keyframe shown at or before `in` (the first keyframe when none is).
    let in_ticks = (wanted_in * scale).round() as i64;
    let keyframes = || (0..video.samples.len()).filter(|&i| video.samples[i].sync);
    let first = keyframes().filter(|&i| pts[i] <= in_ticks).max_by_key(|&i| pts[i]);
    let first = first.or_else(|| keyframes().next()).unwrap_or(0);

    // Cut points: `end` such that every frame before it is shown before every frame from it.
    let out_ticks = out_seconds.map_or(i64::MAX, |out| (out * scale).round() as i64);
    let n = pts.len();
    let mut later_min = vec![i64::MAX; n + 1];
    for i in (first..n).rev() {
        later_min[i] = later_min[i + 1].min(pts[i]);
    }
    let mut ends = Vec::new();
    let mut shown_max = i64::MIN;
    for i in first..n {
        shown_max = shown_max.max(pts[i]);
        if shown_max >= out_ticks {
            break;
        }
        if shown_max < later_min[i + 1] {
            ends.push(i + 1);
        }
    }
    let kept_ticks = |end: usize| video.samples[first..end].iter().map(|s| i64::from(s.delta)).sum::<i64>();
    let end = match end {
        End::Out(_) => ends.last().copied(),
        // The cut point nearest the length wanted, before or after it.
        End::Length(seconds) => {
            let wanted = (seconds * scale).round() as i64;
            ends.iter().copied().min_by_key(|&end| (kept_ticks(end) - wanted).abs())
        }
    };
    let end = end.unwrap_or(first);
    if end == first {
        return Err(bad(format!(
            "out_seconds {} leaves no frame after the keyframe at {:.3} s, where the clip must start",
            out_seconds.unwrap_or(length),
            pts[first] as f64 / scale
        )));
    }
    let start = pts[first..end].iter().copied().min().unwrap_or(0);
    let duration = kept_ticks(end) as u64;
    Ok(Kept { first, end, start, duration })
}

/// Checks the clips can share one video track: one codec, one frame size, one frame rate. The
/// message names the first clip that differs from the first clip, and how.
pub fn check_compatible(clips: &[ClipIn]) -> Result<(), CutError> {
    let Some(first) = clips.first() else {
        return Err(CutError::Trim("no clips to cut".into()));
    };
    let look = |clip: &ClipIn| -> Result<(String, (u16, u16), f64), CutError> {
        let entry = clip.tracks.video.entries.first();
        let visual = entry.and_then(Codec::visual);
        let visual =
            visual.ok_or_else(|| CutError::Clip(format!("clip {}: its video track is not video", clip.name)))?;
        Ok((codec_name(entry), (visual.width, visual.height), frame_rate(&clip.tracks.video)))
    };
    let (codec, size, rate) = look(first)?;
    for clip in &clips[1..] {
        let (c, s, r) = look(clip)?;
        let differs = if c != codec {
            Some(format!("codec {c}, not {codec}"))
        } else if s != size {
            Some(format!("{}x{}, not {}x{}", s.0, s.1, size.0, size.1))
        } else if (r - rate).abs() > rate * 0.001 {
            Some(format!("{r:.3} fps, not {rate:.3}"))
        } else {
            None
        };
        if let Some(how) = differs {
            return Err(CutError::Mismatch(format!(
                "clips {} and {} cannot share one video track: {} is {how} as {} is",
                first.name, clip.name, clip.name, first.name
            )));
        }
    }
    Ok(())
}

/// A sample entry's four-character code, e.g. `avc1`.
pub fn codec_name(entry: Option<&Codec>) -> String {
    let Some(entry) = entry else { return "none".into() };
    let name = match entry {
        Codec::Avc1(_) => "avc1",
        Codec::Avc3(_) => "avc3",
        Codec::Hev1(_) => "hev1",
        Codec::Hvc1(_) => "hvc1",
        Codec::Vp09(_) => "vp09",
        Codec::Av01(_) => "av01",
        Codec::Mp4a(_) => "mp4a",
        Codec::Opus(_) => "Opus",
        Codec::Flac(_) => "fLaC",
        Codec::Mp3(_) => ".mp3",
        Codec::Unknown(kind, _) => return kind.to_string(),
        _ => "another codec",
    };
    name.into()
}

/// The track's usual frame rate: its timescale over its most common frame duration.
fn frame_rate(track: &Track) -> f64 {
    let mut counts: Vec<(u32, usize)> = Vec::new();
    for s in &track.samples {
        match counts.iter_mut().find(|(d, _)| *d == s.delta) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.delta, 1)),
        }
    }
    let delta = counts.iter().max_by_key(|(_, n)| *n).map_or(1, |(d, _)| (*d).max(1));
    f64::from(track.timescale) / f64::from(delta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::cut::clip::Sample;

    /// Frames in decode order I P B B P B B with the B-frames shown before the P after them.
    fn b_frames() -> Track {
        let cts = [1, 3, 0, 0, 3, 0, 0];
        let samples = cts
            .iter()
            .enumerate()
            .map(|(i, &c)| Sample { offset: i as u64, size: 1, delta: 1, cts: c, sync: i == 0, entry: 0 })
            .collect();
        Track { entries: vec![], timescale: 1, samples, media_start: 1 }
    }

    #[test]
    fn an_out_point_cuts_the_decode_order_after_a_whole_b_frame_group() {
        let track = b_frames();
        // Shown in order: I(0) B(1) B(2) P(3) B(4) B(5) P(6).
        let kept = trim("c", &track, None, End::Out(Some(5.0))).expect("trim");
        assert_eq!((kept.first, kept.end), (0, 4), "I P B B: shown 0..4, nothing kept depends on a dropped frame");
        let kept = trim("c", &track, None, End::Out(Some(1.0))).expect("trim");
        assert_eq!((kept.first, kept.end), (0, 1));
        assert_eq!(kept.duration, 1);
        // A length wanted: the nearest cut point, after it or before it.
        let kept = trim("c", &track, None, End::Length(2.9)).expect("trim");
        assert_eq!(kept.end, 4, "4 frames is nearer 2.9 than 1");
        let kept = trim("c", &track, None, End::Length(2.0)).expect("trim");
        assert_eq!(kept.end, 1, "1 frame is nearer 2 than 4");
    }

    #[test]
    fn trims_outside_the_clip_are_refused_with_the_clip_named() {
        let track = b_frames();
        let refused = trim("c1", &track, Some(9.0), End::Out(None)).expect_err("past the end");
        assert!(refused.to_string().starts_with("clip c1: in_seconds 9"), "{refused}");
        let refused = trim("c1", &track, Some(2.0), End::Out(Some(1.0))).expect_err("backwards");
        assert!(refused.to_string().contains("must be after"), "{refused}");
        let refused = trim("c1", &track, None, End::Out(Some(f64::NAN))).expect_err("not a number");
        assert!(refused.to_string().contains("out_seconds"), "{refused}");
    }
}
