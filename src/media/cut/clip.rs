//! A clip as the cut reads it: where its `moov` is, and each track's samples (where they are in
//! the clip's file, how long, which are keyframes) from its sample tables. Only the header is read
//! here; the samples' bytes are copied later, range by range, without being looked at.

use mp4_atom::{Codec, Decode, FourCC, Moov, StszSamples, Trak};

use super::CutError;

/// The most a clip's `moov` may be. A clip of a minute at 60 fps has a few hundred KiB of tables;
/// this bounds what one bad file can make the cut hold.
pub const MAX_MOOV_BYTES: u64 = 16 * 1024 * 1024;

/// Where a top-level box is in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxAt {
    pub kind: [u8; 4],
    /// Where the box (its header) starts.
    pub start: u64,
    /// The whole box, header included.
    pub len: u64,
}

/// Reads the top-level box header at `start` of a file `file_len` long from `bytes` (at least
/// 16 bytes from `start`, or to the end of the file). A box running past the file is an error:
/// the clip is truncated.
pub fn box_at(bytes: &[u8], start: u64, file_len: u64) -> Result<BoxAt, CutError> {
    let corrupt = |why: &str| CutError::Clip(format!("its box at byte {start} {why}"));
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let size = word(0).ok_or_else(|| corrupt("is cut short"))?;
    let mut kind = [0; 4];
    kind.copy_from_slice(bytes.get(4..8).ok_or_else(|| corrupt("is cut short"))?);
    let len = match size {
        0 => file_len - start,
        1 => {
            let high = word(8).ok_or_else(|| corrupt("is cut short"))?;
            let low = word(12).ok_or_else(|| corrupt("is cut short"))?;
            (u64::from(high) << 32) | u64::from(low)
        }
        size => u64::from(size),
    };
    if len < 8 || start.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(corrupt(&format!("says it is {len} bytes in a file of {file_len}: the clip is truncated")));
    }
    Ok(BoxAt { kind, start, len })
}

/// One sample of a track, in decode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Where its bytes are in the clip's file.
    pub offset: u64,
    pub size: u32,
    /// Its decode duration, in the track's timescale.
    pub delta: u32,
    /// Composition minus decode time (B-frames), in the track's timescale.
    pub cts: i64,
    /// A keyframe: decoding may start here.
    pub sync: bool,
    /// Which of the track's sample entries describes it (0-based).
    pub entry: usize,
}

/// A track's samples and what describes them.
#[derive(Debug, Clone)]
pub struct Track {
    pub entries: Vec<Codec>,
    pub timescale: u32,
    pub samples: Vec<Sample>,
    /// Where presentation starts in the media (the edit list's first media time: a video's
    /// B-frame delay, an audio encoder's priming), in the track's timescale.
    pub media_start: u64,
}

impl Track {
    /// The decode time of each sample, from 0.
    pub fn decode_times(&self) -> impl Iterator<Item = u64> + '_ {
        self.samples.iter().scan(0u64, |t, s| {
            let at = *t;
            *t += u64::from(s.delta);
            Some(at)
        })
    }

    /// The track's length, in its timescale: the sum of its decode durations.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.delta)).sum()
    }
}

/// What the cut takes from a clip: its video track, and its first audio track if it has one.
#[derive(Debug, Clone)]
pub struct ClipTracks {
    pub video: Track,
    pub audio: Option<Track>,
}

impl ClipTracks {
    /// Samples in both tracks: what the clip holds in memory, one entry each.
    pub fn samples(&self) -> u64 {
        (self.video.samples.len() + self.audio.as_ref().map_or(0, |a| a.samples.len())) as u64
    }

    /// Reads the tracks from a clip's `moov` box (its bytes, header included) in a file of
    /// `file_len` bytes. Every sample must lie in the file: a clip cut short after its header (an
    /// upload that stopped early reads as whole when its `moov` comes first) is refused here, and
    /// so is a table claiming more samples than the file has bytes (4 billion frames in a few
    /// kilobytes), before anything is allocated for them.
    pub fn from_moov(bytes: &[u8], file_len: u64) -> Result<ClipTracks, CutError> {
        let moov = Moov::decode(&mut std::io::Cursor::new(bytes))
            .map_err(|e| CutError::Clip(format!("its header (moov) could not be read: {e}")))?;
        let handler = |trak: &Trak| trak.mdia.hdlr.handler;
        let video = moov.trak.iter().find(|t| handler(t) == FourCC::new(b"vide"));
        let video = video.ok_or_else(|| CutError::Clip("it has no video track".into()))?;
        let audio = moov.trak.iter().find(|t| handler(t) == FourCC::new(b"soun"));
        let video = track(video, "video", file_len)?;
        Ok(ClipTracks { video, audio: audio.map(|a| track(a, "audio", file_len)).transpose()? })
    }
}

/// The most samples one track of a clip may have: 72 minutes of 60 fps video, 93 of 48 kHz AAC
/// (a clip is seconds long; a final cut of 64 one-minute clips, cut again, has 230 400 frames).
/// Each is expanded to an entry of about 40 bytes (and ~17 more while its tables are read), so a
/// file of a few MB of 1-byte samples could otherwise ask for gigabytes; with a final cut's
/// `HEADERS_AT_ONCE` clips read at once, this bounds what the reads hold to ~240 MB.
pub const MAX_TRACK_SAMPLES: u64 = 1 << 18;

/// What a clip whose samples are not all in the file is.
const CUT_SHORT: &str = "it is cut short (an upload that stopped early?) or its header is wrong";

/// A track's sample tables, expanded to one entry per sample, each sample inside the file's
/// `file_len` bytes.
fn track(trak: &Trak, what: &str, file_len: u64) -> Result<Track, CutError> {
    let bad = |why: String| CutError::Clip(format!("its {what} track {why}"));
    let stbl = &trak.mdia.minf.stbl;
    let timescale = trak.mdia.mdhd.timescale;
    if timescale == 0 {
        return Err(bad("has a timescale of 0".into()));
    }

    // Samples hold a byte at least and never share one: a count the file cannot hold is a lie,
    // refused before one entry per sample is made (a table of a few bytes may claim 2^32 of them).
    let claimed = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => u64::from(*count) * u64::from((*size).max(1)),
        StszSamples::Different { sizes } => sizes.iter().map(|&s| u64::from(s.max(1))).sum(),
    };
    if claimed > file_len {
        return Err(bad(format!("claims {claimed} bytes of samples, more than the file's {file_len}: {CUT_SHORT}")));
    }
    let count = match &stbl.stsz.samples {
        StszSamples::Identical { count, .. } => u64::from(*count),
        StszSamples::Different { sizes } => sizes.len() as u64,
    };
    if count > MAX_TRACK_SAMPLES {
        return Err(bad(format!("has {count} samples, more than the {MAX_TRACK_SAMPLES} a clip may have")));
    }
    let sizes: Vec<u32> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => vec![*size; *count as usize],
        StszSamples::Different { sizes } => sizes.clone(),
    };
    let count = sizes.len();
    if count == 0 {
        return Err(bad("has no samples".into()));
    }

    let deltas = expand(stbl.stts.entries.iter().map(|e| (e.sample_count, e.sample_delta)), count);
    if deltas.len() != count {
        return Err(bad(format!("times {} samples of its {count}", deltas.len())));
    }
    let cts = match &stbl.ctts {
        Some(ctts) => expand(ctts.entries.iter().map(|e| (e.sample_count, e.sample_offset)), count),
        None => vec![0; count],
    };
    if cts.len() != count {
        return Err(bad(format!("has composition offsets for {} samples of its {count}", cts.len())));
    }
    let sync: Vec<bool> = match &stbl.stss {
        Some(stss) => {
            let mut sync = vec![false; count];
            for &n in &stss.entries {
                if let Some(flag) = (n as usize).checked_sub(1).and_then(|i| sync.get_mut(i)) {
                    *flag = true;
                }
            }
            sync
        }
        // No sync sample table: every sample is a keyframe (audio).
        None => vec![true; count],
    };

    let chunk_offsets: Vec<u64> = match (&stbl.co64, &stbl.stco) {
        (Some(co64), _) => co64.entries.clone(),
        (None, Some(stco)) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, None) => return Err(bad("has no chunk offsets".into())),
    };
    let entries = stbl.stsd.codecs.clone();
    let mut samples = Vec::with_capacity(count);
    let stsc = &stbl.stsc.entries;
    for (i, run) in stsc.iter().enumerate() {
        let first = run.first_chunk as usize;
        let end = stsc.get(i + 1).map_or(chunk_offsets.len() + 1, |next| next.first_chunk as usize);
        let entry = (run.sample_description_index as usize).checked_sub(1).filter(|&e| e < entries.len());
        let entry = entry.ok_or_else(|| bad(format!("names sample entry {}", run.sample_description_index)))?;
        if first == 0 || end < first || end > chunk_offsets.len() + 1 {
            return Err(bad("has a broken sample-to-chunk table".into()));
        }
        for &chunk_offset in &chunk_offsets[first - 1..end - 1] {
            let mut offset = chunk_offset;
            for _ in 0..run.samples_per_chunk {
                let n = samples.len();
                if n == count {
                    return Err(bad("places more samples than it has".into()));
                }
                samples.push(Sample { offset, size: sizes[n], delta: deltas[n], cts: cts[n], sync: sync[n], entry });
                offset = offset.saturating_add(u64::from(sizes[n]));
            }
        }
    }
    if samples.len() != count {
        return Err(bad(format!("places {} of its {count} samples", samples.len())));
    }
    let end = samples.iter().map(|s| s.offset.saturating_add(u64::from(s.size))).max().unwrap_or(0);
    if end > file_len {
        return Err(bad(format!("runs to byte {end}, past the file's {file_len}: {CUT_SHORT}")));
    }

    // The first edit that shows media says where presentation starts; an empty edit before it
    // (a delay) is not kept: the cut starts each clip at once.
    let media_start = trak
        .edts
        .as_ref()
        .and_then(|edts| edts.elst.as_ref())
        .and_then(|elst| elst.entries.iter().find_map(|e| e.media_time))
        .unwrap_or(0);
    Ok(Track { entries, timescale, samples, media_start })
}

/// Run-length entries `(count, value)` expanded to one value per sample, at most `limit` of them
/// (a table saying more than the track has is cut, and then caught by the caller's length check).
fn expand<T: Copy, V: Into<T>>(runs: impl Iterator<Item = (u32, V)>, limit: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(limit);
    for (n, value) in runs {
        // One past the limit is enough for the caller to see the table is wrong.
        let room = limit + 1 - out.len();
        if room == 0 {
            break;
        }
        out.extend(std::iter::repeat_n(value.into(), (n as usize).min(room)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mock_clip_reads_as_a_video_and_an_audio_track() {
        let clip = crate::providers::mock::MOCK_CLIP;
        let len = clip.len() as u64;
        let mut at = 0;
        let mut moov = None;
        while at < len {
            let b = box_at(&clip[at as usize..], at, len).expect("a box");
            if &b.kind == b"moov" {
                moov = Some(b);
            }
            at += b.len;
        }
        let moov = moov.expect("a moov");
        let moov = &clip[moov.start as usize..(moov.start + moov.len) as usize];
        let tracks = ClipTracks::from_moov(moov, len).expect("read");
        assert_eq!(tracks.video.samples.len(), 24);
        assert!(tracks.video.samples[0].sync);
        let audio = tracks.audio.expect("the mock clip has a tone");
        assert_eq!(audio.timescale, 44100);
        assert!(audio.media_start > 0, "AAC priming is hidden by an edit");
        for s in tracks.video.samples.iter().chain(&audio.samples) {
            assert!(s.offset + u64::from(s.size) <= len);
        }
    }

    /// The mock clip's `moov`, and the clip's length.
    fn mock_moov() -> (Vec<u8>, u64) {
        let clip = crate::providers::mock::MOCK_CLIP;
        let len = clip.len() as u64;
        let mut at = 0;
        loop {
            let b = box_at(&clip[at as usize..], at, len).expect("a box");
            if &b.kind == b"moov" {
                return (clip[b.start as usize..(b.start + b.len) as usize].to_vec(), len);
            }
            at += b.len;
        }
    }

    #[test]
    fn samples_past_the_end_of_the_file_are_a_clip_cut_short() {
        let (moov, len) = mock_moov();
        assert!(ClipTracks::from_moov(&moov, len).is_ok());
        let Err(refused) = ClipTracks::from_moov(&moov, len - 1) else { panic!("the last byte is missing") };
        assert!(refused.to_string().contains("cut short"), "{refused}");
    }

    #[test]
    fn a_table_claiming_more_samples_than_the_file_holds_is_refused_before_they_are_made() {
        // stsz "4 billion samples of 100 bytes" in 20 bytes (the old table's room left as `free`):
        // before the check this allocated 16 GiB for the sizes alone.
        let (mut moov, len) = mock_moov();
        let at = moov.windows(4).position(|w| w == b"stsz").expect("stsz") - 4;
        let size = u32::from_be_bytes(moov[at..at + 4].try_into().expect("4 bytes")) as usize;
        let mut table =
            [&20u32.to_be_bytes()[..], b"stsz", &[0; 4], &100u32.to_be_bytes(), &u32::MAX.to_be_bytes()].concat();
        table.extend_from_slice(&(size as u32 - 20).to_be_bytes());
        table.extend_from_slice(b"free");
        table.resize(size, 0);
        moov[at..at + size].copy_from_slice(&table);
        let Err(refused) = ClipTracks::from_moov(&moov, len) else { panic!("a lie") };
        assert!(refused.to_string().contains("429496729500 bytes of samples"), "{refused}");
    }

    #[test]
    fn a_track_of_more_samples_than_a_clip_may_have_is_refused() {
        // 2^18 + 1 one-byte samples: a file that big holds them, but no clip has that many.
        let (mut moov, _) = mock_moov();
        let at = moov.windows(4).position(|w| w == b"stsz").expect("stsz") - 4;
        let size = u32::from_be_bytes(moov[at..at + 4].try_into().expect("4 bytes")) as usize;
        let count = (MAX_TRACK_SAMPLES + 1) as u32;
        let mut table =
            [&20u32.to_be_bytes()[..], b"stsz", &[0; 4], &1u32.to_be_bytes(), &count.to_be_bytes()].concat();
        table.extend_from_slice(&(size as u32 - 20).to_be_bytes());
        table.extend_from_slice(b"free");
        table.resize(size, 0);
        moov[at..at + size].copy_from_slice(&table);
        let Err(refused) = ClipTracks::from_moov(&moov, 64 << 20) else { panic!("too many samples") };
        assert!(refused.to_string().contains(&format!("{count} samples")), "{refused}");
    }

    #[test]
    fn a_box_running_past_the_file_is_a_truncated_clip() {
        let bytes = [0, 0, 0x10, 0, b'm', b'd', b'a', b't'];
        let refused = box_at(&bytes, 0, 100).expect_err("truncated");
        assert!(refused.to_string().contains("truncated"), "{refused}");
        assert_eq!(box_at(&bytes, 0, 4096).expect("fits").len, 4096);
    }
}
