//! The whole cut planned: the video track (every clip's kept frames, gapless), the audio track
//! (the song, the clips' audio, or none), the chunks they are stored in, and the pieces the file's
//! bytes are copied from, in order.
//!
//! Each clip's samples are copied in the order they sit in its file, one chunk per run of samples
//! that are next to each other there, so writing a clip is one forward read of it. The song's
//! frames for a clip's stretch of the video follow that clip's chunks: the two tracks are
//! interleaved clip by clip, and a player fetching the start of the file gets both.

use super::clip::Track;
use super::header::{self, Chunk, OutTrack};
use super::in_band;
use super::silence::{AAC_FRAME, silent_frame};
use super::timeline::{self, ClipIn, ClipSpan, End, Kept, Sound};
use super::{CutError, rescale};

/// A planned cut: the header, and where every byte after it comes from.
#[derive(Debug)]
pub struct Cut {
    /// `ftyp`, `moov` and the `mdat` header: the file's first bytes.
    pub header: Vec<u8>,
    /// The `mdat`'s contents, in order.
    pub pieces: Vec<Piece>,
    /// The whole file's length.
    pub len: u64,
    /// Where each clip went, in the order given.
    pub clips: Vec<ClipSpan>,
    pub duration_seconds: f64,
    /// How long the audio plays, when there is an audio track.
    pub audio_seconds: Option<f64>,
}

/// Bytes of the cut's `mdat`.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// `len` bytes from `start` in clip `clip`'s file.
    Copy { clip: usize, start: u64, len: u64 },
    /// The song's next `frames` frames (`len` bytes), starting it again from its first frame when
    /// it ends and the song is looped.
    Song { frames: usize, len: u64 },
    /// Bytes made here: silent audio frames.
    Bytes(Vec<u8>),
}

impl Piece {
    /// How many bytes of the cut it is.
    pub fn size(&self) -> u64 {
        match self {
            Piece::Copy { len, .. } | Piece::Song { len, .. } => *len,
            Piece::Bytes(bytes) => bytes.len() as u64,
        }
    }
}

/// Plans the cut of `clips`, in order, with `sound`.
pub fn plan(clips: &[ClipIn], sound: &Sound) -> Result<Cut, CutError> {
    timeline::check_compatible(clips)?;
    // Every trim checked before anything is planned; a clip ending at a cut time is trimmed
    // again below, once where it starts is known.
    let mut kept = clips
        .iter()
        .map(|c| timeline::trim(&c.name, &c.tracks.video, c.in_seconds, End::Out(c.out_seconds)))
        .collect::<Result<Vec<_>, _>>()?;
    let vts = clips[0].tracks.video.timescale;

    let mut video = OutTrack::new(vts);
    let mut audio = AudioOut::new(clips, sound)?;
    let mut mdat = Mdat::default();
    let mut spans = Vec::with_capacity(clips.len());
    // Where the next clip starts, in the cut's video timescale.
    let mut at: u64 = 0;
    let mut raw_cts = Vec::new();
    // The video's sample entry so far: where the next clip's differs, its parameter sets go in-band.
    let mut last_entry: Option<u32> = None;

    for (k, clip) in clips.iter().enumerate() {
        let source = &clip.tracks.video;
        let starts = at as f64 / f64::from(vts);
        if let Some(end_at) = clip.end_at.filter(|&t| t > starts) {
            kept[k] = timeline::trim(&clip.name, source, clip.in_seconds, End::Length(end_at - starts))?;
        }
        let kept = &kept[k];
        let rescale = |t: u64| rescale(t, source.timescale, vts);
        // The video samples, with composition offsets relative to the clip's first shown frame.
        let decode_times: Vec<u64> = source.decode_times().collect();
        let first_dts = decode_times[kept.first];
        let first_out = video.sizes.len();
        for (s, &decoded) in source.samples[kept.first..kept.end].iter().zip(&decode_times[kept.first..kept.end]) {
            let dts = decoded - first_dts;
            let shown = (decoded as i64 + s.cts - source.media_start as i64 - kept.start) as u64;
            video.deltas.push((rescale(dts + u64::from(s.delta)) - rescale(dts)) as u32);
            raw_cts.push(rescale(shown) as i64 - rescale(dts) as i64);
            video.sizes.push(s.size);
            video.sync.push(s.sync);
        }
        let clip_length = rescale(kept.duration);
        let end = at + clip_length;
        spans.push(ClipSpan {
            in_seconds: kept.start.max(0) as f64 / f64::from(source.timescale),
            out_seconds: (kept.start.max(0) as u64 + kept.duration) as f64 / f64::from(source.timescale),
            starts_at: at as f64 / f64::from(vts),
        });

        // This clip's runs of samples, video and its own audio, in file order.
        let video_runs = video_runs(&mut video, source, clips, k, kept)?;
        let mut switch = switch_prefix(&video, &video_runs, last_entry);
        last_entry = video_runs.last().map(|r| r.entry).or(last_entry);
        let audio_runs = audio.clip_runs(clip, k, kept, source.timescale, (end, vts))?;
        for run in in_file_order(video_runs, audio_runs) {
            let track = if run.audio { audio.track_mut() } else { Some(&mut video) };
            if let Some(track) = track {
                track.chunks.push(Chunk { count: run.count, entry: run.entry, offset: mdat.len });
            }
            // The clip's first video sample carries its entry's parameter sets ahead of its own
            // bytes, where the entry changes.
            if !run.audio
                && let Some(prefix) = switch.take()
            {
                video.sizes[first_out] += prefix.len() as u32;
                mdat.push(Piece::Bytes(prefix));
            }
            mdat.copy(k, run.start, run.len);
        }
        // The sound for the rest of this clip's stretch: the song's frames, or silence.
        audio.fill(&mut mdat, (end, vts))?;
        at = end;
    }

    // B-frames shown before they are decoded give negative offsets: shift them all up, and start
    // presentation that much later with the edit list, as encoders do.
    let delay = raw_cts.iter().map(|&c| -c).max().unwrap_or(0).max(0);
    video.cts = raw_cts.into_iter().map(|c| c + delay).collect();
    video.media_start = delay as u64;
    video.shown = at;

    let audio = audio.finish(at, vts);
    let audio_seconds = audio.as_ref().map(|a| a.shown as f64 / f64::from(a.timescale));
    let header = header::write(&mut video, audio, mdat.len)?;
    let len = header.len() as u64 + mdat.len;
    Ok(Cut {
        header,
        pieces: mdat.pieces,
        len,
        clips: spans,
        duration_seconds: at as f64 / f64::from(vts),
        audio_seconds,
    })
}

/// A run of samples next to each other in a clip's file, stored as one chunk of the cut.
struct Run {
    audio: bool,
    count: u32,
    /// Its sample entry in the cut's track (1-based).
    entry: u32,
    start: u64,
    len: u64,
}

/// Groups samples `range` of `source` into runs that are contiguous in the file and share a
/// sample entry.
fn runs_of(
    source: &Track,
    range: std::ops::Range<usize>,
    audio: bool,
    mut entry_of: impl FnMut(usize) -> u32,
) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for s in &source.samples[range] {
        let entry = entry_of(s.entry);
        match runs.last_mut() {
            Some(run) if run.start + run.len == s.offset && run.entry == entry => {
                run.count += 1;
                run.len += u64::from(s.size);
            }
            _ => runs.push(Run { audio, count: 1, entry, start: s.offset, len: u64::from(s.size) }),
        }
    }
    runs
}

/// The runs of a clip's kept video frames, their sample entries added to the cut's.
fn video_runs(
    video: &mut OutTrack,
    source: &Track,
    clips: &[ClipIn],
    k: usize,
    kept: &Kept,
) -> Result<Vec<Run>, CutError> {
    let mut entries = Vec::with_capacity(source.entries.len());
    for entry in &source.entries {
        entries.push(video.entry(entry));
    }
    if entries.is_empty() {
        return Err(CutError::Clip(format!("clip {}: its video track has no sample entry", clips[k].name)));
    }
    Ok(runs_of(source, kept.first..kept.end, false, |e| entries[e.min(entries.len() - 1)]))
}

/// The parameter sets to put before a clip's first video sample when its entry is not the one
/// the video had until then (the first clip needs none: its entry is the track's first).
fn switch_prefix(video: &OutTrack, runs: &[Run], last_entry: Option<u32>) -> Option<Vec<u8>> {
    let entry = runs.first()?.entry;
    if last_entry.is_none_or(|last| last == entry) {
        return None;
    }
    in_band::parameter_sets(video.entries.get(entry as usize - 1)?)
}

/// Two tracks' runs merged in the order they sit in the clip's file, each track's own order kept
/// (a chunk holds the track's next samples, so a track's runs must never swap).
fn in_file_order(a: Vec<Run>, b: Vec<Run>) -> Vec<Run> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.start <= y.start,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return merged,
        };
        merged.extend(if take_a { a.next() } else { b.next() });
    }
}

/// The cut's `mdat` as it is planned: its pieces and length.
#[derive(Default)]
struct Mdat {
    pieces: Vec<Piece>,
    len: u64,
}

impl Mdat {
    fn copy(&mut self, clip: usize, start: u64, len: u64) {
        self.len += len;
        if let Some(Piece::Copy { clip: c, start: s, len: l }) = self.pieces.last_mut()
            && *c == clip
            && *s + *l == start
        {
            *l += len;
            return;
        }
        self.pieces.push(Piece::Copy { clip, start, len });
    }

    fn push(&mut self, piece: Piece) {
        self.len += piece.size();
        self.pieces.push(piece);
    }
}

/// The audio track as it is planned, whichever sound the cut has.
enum AudioOut<'a> {
    None,
    Clips {
        track: OutTrack,
        /// Audio planned so far, in the track's timescale, from the start of the cut (negative
        /// while inside the first clip's pre-roll).
        at: i64,
        /// A silent frame for clips without audio, when the audio can have one.
        silence: Option<Vec<u8>>,
        /// The first clip with audio, for messages.
        first: &'a str,
    },
    Song {
        track: OutTrack,
        at: i64,
        frames: &'a [(u32, u32)],
        next: usize,
        looped: bool,
    },
}

impl<'a> AudioOut<'a> {
    fn new(clips: &'a [ClipIn], sound: &'a Sound) -> Result<AudioOut<'a>, CutError> {
        Ok(match sound {
            Sound::None => AudioOut::None,
            Sound::Song(song) => {
                let mut track = OutTrack::new(song.timescale);
                track.entry(&song.entry);
                track.media_start = u64::from(song.priming);
                AudioOut::Song {
                    track,
                    at: -i64::from(song.priming),
                    frames: &song.frames,
                    next: 0,
                    looped: song.looped,
                }
            }
            Sound::Clips => {
                let with_audio: Vec<(&ClipIn, &Track)> =
                    clips.iter().filter_map(|c| c.tracks.audio.as_ref().map(|a| (c, a))).collect();
                let Some(&(first, first_audio)) = with_audio.first() else { return Ok(AudioOut::None) };
                for (clip, audio) in &with_audio[1..] {
                    if audio.timescale != first_audio.timescale {
                        return Err(CutError::Mismatch(format!(
                            "clips {} and {} cannot share one audio track: {} Hz audio, not {} Hz",
                            first.name, clip.name, audio.timescale, first_audio.timescale
                        )));
                    }
                }
                let mut track = OutTrack::new(first_audio.timescale);
                let silence = first_audio.entries.first().and_then(|e| {
                    track.entry(e);
                    silent_frame(e)
                });
                AudioOut::Clips { track, at: 0, silence, first: &first.name }
            }
        })
    }

    fn track_mut(&mut self) -> Option<&mut OutTrack> {
        match self {
            AudioOut::None => None,
            AudioOut::Clips { track, .. } | AudioOut::Song { track, .. } => Some(track),
        }
    }

    /// With the clips' own audio: clip `k`'s audio frames from its (effective) in point until the
    /// audio reaches `until` (a time in the video's timescale), as runs in its file.
    fn clip_runs(
        &mut self,
        clip: &ClipIn,
        k: usize,
        kept: &Kept,
        clip_timescale: u32,
        until: (u64, u32),
    ) -> Result<Vec<Run>, CutError> {
        let AudioOut::Clips { track, at, .. } = self else { return Ok(Vec::new()) };
        let Some(source) = &clip.tracks.audio else { return Ok(Vec::new()) };
        let ats = source.timescale;
        // The in point in the audio's media time, and the frame before the one it falls in, so
        // the decoder has its overlap (AAC frames depend on the one before).
        let in_media = rescale(kept.start.max(0) as u64, clip_timescale, ats) + source.media_start;
        let times: Vec<u64> = source.decode_times().collect();
        let inside = times.iter().zip(&source.samples).position(|(&t, s)| t + u64::from(s.delta) > in_media);
        let Some(inside) = inside else { return Ok(Vec::new()) };
        let first = inside.saturating_sub(1);
        if k == 0 {
            // The cut's audio starts with that pre-roll, hidden by the edit list.
            let pre_roll = in_media - times[first];
            track.media_start = pre_roll;
            *at = -(pre_roll as i64);
        }
        let mut end = first;
        while end < source.samples.len() && before(*at, ats, until) {
            *at += i64::from(source.samples[end].delta);
            end += 1;
        }
        let mut entries = Vec::new();
        for entry in &source.entries {
            entries.push(track.entry(entry));
        }
        for s in &source.samples[first..end] {
            track.sizes.push(s.size);
            track.deltas.push(s.delta);
        }
        let last = entries.len().saturating_sub(1);
        Ok(runs_of(source, first..end, true, |e| entries.get(e.min(last)).copied().unwrap_or(1)))
    }

    /// The rest of a clip's stretch, until `until`: the song's frames, or silence when the clips'
    /// audio ran short or the clip has none.
    fn fill(&mut self, mdat: &mut Mdat, until: (u64, u32)) -> Result<(), CutError> {
        match self {
            AudioOut::None => Ok(()),
            AudioOut::Song { track, at, frames, next, looped } => {
                let ats = track.timescale;
                let (mut count, mut len) = (0, 0);
                while before(*at, ats, until) {
                    if *next == frames.len() {
                        if !*looped || frames.is_empty() {
                            break;
                        }
                        *next = 0;
                    }
                    let (size, duration) = frames[*next];
                    *next += 1;
                    track.sizes.push(size);
                    track.deltas.push(duration);
                    *at += i64::from(duration);
                    count += 1;
                    len += u64::from(size);
                }
                if count > 0 {
                    track.chunks.push(Chunk { count: count as u32, entry: 1, offset: mdat.len });
                    mdat.push(Piece::Song { frames: count, len });
                }
                Ok(())
            }
            AudioOut::Clips { track, at, silence, first } => {
                let ats = track.timescale;
                if !before(*at, ats, until) {
                    return Ok(());
                }
                let Some(frame) = silence else {
                    let codec = timeline::codec_name(track.entries.first());
                    return Err(CutError::Mismatch(format!(
                        "a clip's audio is shorter than its video, or missing, and the clips' audio ({codec}, as in \
                         clip {first}) can't be filled with silence: only AAC-LC mono or stereo can; cut with \
                         suppress_video_audio or a song"
                    )));
                };
                let first_out = track.sizes.len();
                let mut bytes = Vec::new();
                while before(*at, ats, until) {
                    bytes.extend_from_slice(frame);
                    track.sizes.push(frame.len() as u32);
                    track.deltas.push(AAC_FRAME);
                    *at += i64::from(AAC_FRAME);
                }
                let count = (track.sizes.len() - first_out) as u32;
                track.chunks.push(Chunk { count, entry: 1, offset: mdat.len });
                mdat.push(Piece::Bytes(bytes));
                Ok(())
            }
        }
    }

    /// The finished audio track: shown from its media start until the video ends or it does.
    fn finish(self, video_end: u64, vts: u32) -> Option<OutTrack> {
        let (mut track, at) = match self {
            AudioOut::None => return None,
            AudioOut::Clips { track, at, .. } | AudioOut::Song { track, at, .. } => (track, at),
        };
        if track.sizes.is_empty() {
            return None;
        }
        let video_end = rescale(video_end, vts, track.timescale);
        track.shown = (at.max(0) as u64).min(video_end);
        track.sync = Vec::new();
        Some(track)
    }
}

/// Whether audio planned up to `at` (in `ats`) ends before `until` (a time in its own timescale).
fn before(at: i64, ats: u32, until: (u64, u32)) -> bool {
    let (t, ts) = until;
    i128::from(at) * i128::from(ts) < i128::from(t) * i128::from(ats)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::media::cut::clip::{ClipTracks, box_at};
    use crate::providers::mock::MOCK_CLIP;

    fn mock_tracks() -> ClipTracks {
        let len = MOCK_CLIP.len() as u64;
        let mut at = 0;
        loop {
            let b = box_at(&MOCK_CLIP[at as usize..], at, len).expect("a box");
            if &b.kind == b"moov" {
                return ClipTracks::from_moov(&MOCK_CLIP[at as usize..(at + b.len) as usize], len).expect("tracks");
            }
            at += b.len;
        }
    }

    fn clip(name: &str, out: Option<f64>) -> ClipIn {
        ClipIn { name: name.into(), tracks: mock_tracks(), in_seconds: None, out_seconds: out, end_at: None }
    }

    /// The file a cut of mock clips is, written from its pieces.
    fn written(cut: &Cut) -> Vec<u8> {
        let mut file = cut.header.clone();
        for piece in &cut.pieces {
            match piece {
                Piece::Copy { start, len, .. } => {
                    file.extend_from_slice(&MOCK_CLIP[*start as usize..(start + len) as usize])
                }
                Piece::Bytes(bytes) => file.extend_from_slice(bytes),
                Piece::Song { .. } => panic!("no song in these cuts"),
            }
        }
        assert_eq!(file.len() as u64, cut.len);
        file
    }

    /// What ffprobe says of `file`'s stream `stream` (`v:0`, `a:0`), or `None` without ffprobe
    /// (a failure under CI=true, which installs it).
    fn probe(file: &[u8], stream: &str, entry: &str) -> Option<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cut.mp4");
        std::fs::write(&path, file).expect("write");
        let Ok(decoded) =
            Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&path).args(["-f", "null", "-"]).output()
        else {
            assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI installs ffmpeg");
            eprintln!("ffmpeg not installed: the cut is not checked");
            return None;
        };
        assert_eq!(String::from_utf8_lossy(&decoded.stderr), "", "ffmpeg decodes the cut without a word");
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", stream, "-show_entries"])
            .arg(format!("stream={entry}"))
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe runs");
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    #[test]
    fn clips_ending_at_cut_times_land_within_a_frame_of_each_without_drift() {
        // Cut times between frames (12 fps: a frame is 83 ms), one clip trimmed by hand between
        // them: each later clip still ends on its own time, not on the sum of rounded lengths.
        let ends = [1.3, 2.9, 4.2, 6.01];
        let mut clips: Vec<ClipIn> = ends
            .iter()
            .enumerate()
            .map(|(i, &at)| ClipIn { end_at: Some(at), ..clip(&format!("c{i}"), None) })
            .collect();
        clips[1] = ClipIn { end_at: None, ..clip("by-hand", Some(1.0)) };
        let cut = plan(&clips, &Sound::Clips).expect("planned");
        let frame = 1.0 / 12.0;
        let landed: Vec<f64> = cut.clips[1..].iter().map(|c| c.starts_at).chain([cut.duration_seconds]).collect();
        for (k, (&at, &end)) in landed.iter().zip(&ends).enumerate() {
            if k == 1 {
                assert!((at - (cut.clips[1].starts_at + 1.0)).abs() < 1e-9, "the hand trim kept: {:?}", cut.clips);
                continue;
            }
            assert!((at - end).abs() <= frame / 2.0 + 1e-9, "clip {k} ends at {at}, not within half a frame of {end}");
        }
        // A cut time the clips before already passed is ignored: the clip plays whole.
        let late = [clip("a", None), ClipIn { end_at: Some(1.0), ..clip("b", None) }];
        assert_eq!(plan(&late, &Sound::Clips).expect("planned").duration_seconds, 4.0);
    }

    #[test]
    fn three_clips_with_their_audio_are_one_gapless_file() {
        let clips = [clip("a", None), clip("b", Some(1.0)), clip("c", None)];
        let cut = plan(&clips, &Sound::Clips).expect("planned");
        assert_eq!(cut.duration_seconds, 5.0);
        assert_eq!(cut.clips[1], ClipSpan { in_seconds: 0.0, out_seconds: 1.0, starts_at: 2.0 });
        let file = written(&cut);
        let moov = box_at(&file[32..], 32, file.len() as u64).expect("the box after ftyp");
        assert_eq!(&moov.kind, b"moov", "faststart: moov before mdat");
        let Some(frames) = probe(&file, "v:0", "nb_read_frames") else { return };
        assert_eq!(frames, "60", "24 + 12 + 24 frames");
        let audio: f64 = probe(&file, "a:0", "duration").and_then(|d| d.parse().ok()).expect("an audio duration");
        assert!((audio - 5.0).abs() <= 1024.0 / 44100.0, "audio {audio} s against 5 s of video");
    }

    #[test]
    fn a_clip_without_audio_between_clips_with_audio_gets_silence() {
        let mut silent = clip("b", None);
        silent.tracks.audio = None;
        let clips = [clip("a", None), silent, clip("c", None)];
        let cut = plan(&clips, &Sound::Clips).expect("planned");
        assert!(cut.pieces.iter().any(|p| matches!(p, Piece::Bytes(_))), "silence was made");
        let file = written(&cut);
        let Some(frames) = probe(&file, "v:0", "nb_read_frames") else { return };
        assert_eq!(frames, "72");
        let audio: f64 = probe(&file, "a:0", "duration").and_then(|d| d.parse().ok()).expect("an audio duration");
        assert!((audio - 6.0).abs() <= 1024.0 / 44100.0, "audio {audio} s against 6 s of video");
    }

    #[test]
    fn suppressed_audio_leaves_a_video_only_file() {
        let cut = plan(&[clip("a", None), clip("b", None)], &Sound::None).expect("planned");
        assert_eq!(cut.audio_seconds, None);
        let file = written(&cut);
        let Some(frames) = probe(&file, "v:0", "nb_read_frames") else { return };
        assert_eq!(frames, "48");
        assert_eq!(probe(&file, "a", "codec_name").as_deref(), Some(""), "no audio stream");
    }
}
