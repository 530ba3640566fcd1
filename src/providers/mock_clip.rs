//! The mock video as long as a render asks: the embedded 2 s clip repeated and the last copy
//! trimmed, put together by the final cut's own planner (frames copied, nothing encoded), so a
//! project planned on its song's beats gets clips long enough to cut on them, as from Veo.

use std::sync::Mutex;

use bytes::Bytes;

use crate::media::cut::{self, BoxAt, ClipIn, ClipTracks, Piece, Sound, box_at};

/// The clip every mock video render is made from (how it was made: `assets/README.md`): 2 s.
pub static MOCK_CLIP: &[u8] = include_bytes!("../../assets/mock-clip.mp4");

/// The longest clip made (a request's `duration` is at most 60 s).
const MAX_SECONDS: u32 = 60;

/// The mock clip lasting `seconds` (1..=60); the embedded clip itself when that is what is asked
/// or when it cannot be planned (it always can: it is the cut's own test clip).
pub fn mock_clip(seconds: u32) -> Bytes {
    static MADE: Mutex<Vec<(u32, Bytes)>> = Mutex::new(Vec::new());
    let seconds = seconds.clamp(1, MAX_SECONDS);
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, bytes)) = made.iter().find(|(s, _)| *s == seconds) {
        return bytes.clone();
    }
    let bytes = repeated(seconds).unwrap_or_else(|why| {
        tracing::warn!(seconds, why, "the mock clip could not be lengthened; the 2 s clip is returned");
        Bytes::from_static(MOCK_CLIP)
    });
    made.push((seconds, bytes.clone()));
    bytes
}

fn repeated(seconds: u32) -> Result<Bytes, String> {
    let tracks = tracks()?;
    let clip_seconds = tracks.video.duration() as f64 / f64::from(tracks.video.timescale.max(1));
    let wanted = f64::from(seconds);
    if (clip_seconds - wanted).abs() < 1e-6 {
        return Ok(Bytes::from_static(MOCK_CLIP));
    }
    let copies = (wanted / clip_seconds).ceil().max(1.0) as usize;
    let clips: Vec<ClipIn> = (0..copies)
        .map(|i| ClipIn {
            name: format!("mock-{i}"),
            tracks: tracks.clone(),
            in_seconds: None,
            out_seconds: None,
            end_at: (i + 1 == copies).then_some(wanted),
        })
        .collect();
    let planned = cut::plan(&clips, &Sound::Clips).map_err(|e| e.to_string())?;
    let mut file = planned.header.clone();
    for piece in &planned.pieces {
        match piece {
            Piece::Copy { start, len, .. } => file.extend_from_slice(
                MOCK_CLIP.get(*start as usize..(start + len) as usize).ok_or("a piece past the clip")?,
            ),
            Piece::Bytes(bytes) => file.extend_from_slice(bytes),
            Piece::Song { .. } => return Err("a song piece in a cut without a song".into()),
        }
    }
    Ok(Bytes::from(file))
}

/// The embedded clip's tracks, from its `moov`.
pub(crate) fn tracks() -> Result<ClipTracks, String> {
    let len = MOCK_CLIP.len() as u64;
    let mut at = 0u64;
    while at < len {
        let found: BoxAt = box_at(&MOCK_CLIP[at as usize..], at, len).map_err(|e| e.to_string())?;
        if &found.kind == b"moov" {
            return ClipTracks::from_moov(&MOCK_CLIP[at as usize..(at + found.len) as usize], len)
                .map_err(|e| e.to_string());
        }
        at += found.len.max(8);
    }
    Err("the mock clip has no moov".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(bytes: &[u8]) -> f64 {
        let len = bytes.len() as u64;
        let mut at = 0u64;
        loop {
            let found = box_at(&bytes[at as usize..], at, len).expect("a box");
            if &found.kind == b"moov" {
                let tracks =
                    ClipTracks::from_moov(&bytes[at as usize..(at + found.len) as usize], len).expect("tracks");
                return tracks.video.duration() as f64 / f64::from(tracks.video.timescale);
            }
            at += found.len;
        }
    }

    #[test]
    fn the_mock_clip_lasts_what_was_asked() {
        for seconds in [1, 2, 4, 5, 6, 8, 60] {
            let clip = mock_clip(seconds);
            assert!((length(&clip) - f64::from(seconds)).abs() < 1e-9, "{seconds} s: {}", length(&clip));
        }
        assert_eq!(&mock_clip(2)[..], MOCK_CLIP, "the embedded clip is 2 s");
        assert_eq!(mock_clip(8), mock_clip(8), "the same bytes every time");
    }
}
