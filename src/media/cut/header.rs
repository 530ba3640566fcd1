//! The cut's first bytes: `ftyp`, the `moov` with every sample table, and the `mdat` header,
//! encoded with `mp4-atom`. Chunk offsets are 64-bit (`co64`) so the `moov`'s size does not depend
//! on them: it is encoded once to learn its size, then again with the real offsets.

use mp4_atom::{
    Co64, Codec, Ctts, CttsEntry, Dinf, Dref, DrefEntry, Edts, Elst, ElstEntry, Encode, FixedPoint, FourCC, Ftyp, Hdlr,
    Mdhd, Mdia, Minf, Moov, Mvhd, Smhd, Stbl, Stsc, StscEntry, Stsd, Stss, Stsz, StszSamples, Stts, SttsEntry, Tkhd,
    Trak, Url, Vmhd,
};

use super::{CutError, rescale};

/// One chunk of a track: its next `count` samples, described by entry `entry` (1-based), at
/// `offset` from the start of the `mdat`'s contents.
#[derive(Debug, Clone, Copy)]
pub struct Chunk {
    pub count: u32,
    pub entry: u32,
    pub offset: u64,
}

/// A track of the cut as it is planned: one value per sample, and its chunks.
#[derive(Debug)]
pub struct OutTrack {
    pub entries: Vec<Codec>,
    pub timescale: u32,
    pub sizes: Vec<u32>,
    pub deltas: Vec<u32>,
    /// Composition offsets (video); empty when there are none.
    pub cts: Vec<i64>,
    /// Keyframes (video); empty when every sample is one (audio).
    pub sync: Vec<bool>,
    pub chunks: Vec<Chunk>,
    /// Where presentation starts in the media, in the track's timescale.
    pub media_start: u64,
    /// How long it is shown from there, in the track's timescale.
    pub shown: u64,
}

impl OutTrack {
    pub fn new(timescale: u32) -> OutTrack {
        OutTrack {
            entries: Vec::new(),
            timescale,
            sizes: Vec::new(),
            deltas: Vec::new(),
            cts: Vec::new(),
            sync: Vec::new(),
            chunks: Vec::new(),
            media_start: 0,
            shown: 0,
        }
    }

    /// The 1-based index of `entry` among the track's sample entries, added when new: clips made
    /// with the same encoder settings share one entry, and any other keeps its own.
    pub fn entry(&mut self, entry: &Codec) -> u32 {
        let index = match self.entries.iter().position(|e| e == entry) {
            Some(i) => i,
            None => {
                self.entries.push(entry.clone());
                self.entries.len() - 1
            }
        };
        index as u32 + 1
    }
}

/// `ftyp`, `moov` and the header of an `mdat` of `mdat_len` bytes.
pub fn write(video: &mut OutTrack, audio: Option<OutTrack>, mdat_len: u64) -> Result<Vec<u8>, CutError> {
    let ftyp = Ftyp {
        major_brand: FourCC::new(b"isom"),
        minor_version: 512,
        compatible_brands: [b"isom", b"iso2", b"avc1", b"mp41"].into_iter().map(FourCC::new).collect(),
    };
    let mut head = encode(&ftyp)?;
    let tracks: Vec<(&OutTrack, bool)> =
        std::iter::once((&*video, true)).chain(audio.as_ref().map(|a| (a, false))).collect();
    let movie_timescale = video.timescale;
    // Once with the offsets from 0 to learn the moov's size (co64 keeps it the same), then for real.
    let sized = encode(&moov(&tracks, movie_timescale, 0))?.len() as u64;
    let data_start = head.len() as u64 + sized + 16;
    let moov = encode(&moov(&tracks, movie_timescale, data_start))?;
    if moov.len() as u64 != sized {
        return Err(CutError::Header(format!("the moov was {sized} bytes, then {}", moov.len())));
    }
    head.extend_from_slice(&moov);
    // A 64-bit mdat header whatever its size, so the layout never depends on it.
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(b"mdat");
    head.extend_from_slice(&(mdat_len + 16).to_be_bytes());
    Ok(head)
}

fn encode(atom: &impl Encode) -> Result<Vec<u8>, CutError> {
    let mut bytes = Vec::new();
    atom.encode(&mut bytes).map_err(|e| CutError::Header(e.to_string()))?;
    Ok(bytes)
}

fn moov(tracks: &[(&OutTrack, bool)], timescale: u32, data_start: u64) -> Moov {
    let in_movie = |track: &OutTrack| rescale(track.shown, track.timescale, timescale);
    let duration = tracks.iter().map(|(t, _)| in_movie(t)).max().unwrap_or(0);
    let trak = tracks
        .iter()
        .enumerate()
        .map(|(i, (track, is_video))| trak(track, *is_video, i as u32 + 1, in_movie(track), data_start))
        .collect();
    Moov {
        mvhd: Mvhd {
            timescale,
            duration,
            rate: FixedPoint::new(1, 0),
            volume: FixedPoint::new(1, 0),
            next_track_id: tracks.len() as u32 + 1,
            ..Mvhd::default()
        },
        trak,
        ..Moov::default()
    }
}

fn trak(track: &OutTrack, is_video: bool, track_id: u32, shown_in_movie: u64, data_start: u64) -> Trak {
    let (width, height) = track.entries.first().and_then(Codec::visual).map_or((0, 0), |v| (v.width, v.height));
    let stbl = Stbl {
        stsd: Stsd { codecs: track.entries.clone() },
        stts: Stts {
            entries: runs(&track.deltas).map(|(n, d)| SttsEntry { sample_count: n, sample_delta: d }).collect(),
        },
        ctts: (track.cts.iter().any(|&c| c != 0)).then(|| Ctts {
            entries: runs(&track.cts).map(|(n, c)| CttsEntry { sample_count: n, sample_offset: c }).collect(),
        }),
        stss: (!track.sync.is_empty() && track.sync.iter().any(|s| !s)).then(|| Stss {
            entries: track.sync.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i as u32 + 1).collect(),
        }),
        stsc: Stsc { entries: sample_to_chunk(&track.chunks) },
        stsz: Stsz { samples: StszSamples::Different { sizes: track.sizes.clone() } },
        co64: Some(Co64 { entries: track.chunks.iter().map(|c| data_start + c.offset).collect() }),
        ..Stbl::default()
    };
    Trak {
        tkhd: Tkhd {
            track_id,
            duration: shown_in_movie,
            enabled: true,
            in_movie: true,
            volume: if is_video { FixedPoint::default() } else { FixedPoint::new(1, 0) },
            width: FixedPoint::new(width, 0),
            height: FixedPoint::new(height, 0),
            ..Tkhd::default()
        },
        edts: Some(Edts {
            elst: Some(Elst {
                entries: vec![ElstEntry {
                    segment_duration: shown_in_movie,
                    media_time: Some(track.media_start),
                    media_rate: FixedPoint::new(1, 0),
                }],
            }),
        }),
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: track.timescale,
                duration: track.deltas.iter().map(|&d| u64::from(d)).sum(),
                language: "und".into(),
                ..Mdhd::default()
            },
            hdlr: Hdlr {
                handler: FourCC::new(if is_video { b"vide" } else { b"soun" }),
                name: if is_video { "VideoHandler" } else { "SoundHandler" }.into(),
            },
            minf: Minf {
                vmhd: is_video.then(Vmhd::default),
                smhd: (!is_video).then(Smhd::default),
                dinf: Dinf { dref: Dref { entries: vec![DrefEntry::Url(Url { location: String::new() })] } },
                stbl,
                ..Minf::default()
            },
        },
        ..Trak::default()
    }
}

/// The sample-to-chunk table: one entry wherever the samples per chunk or the entry change.
fn sample_to_chunk(chunks: &[Chunk]) -> Vec<StscEntry> {
    let mut entries: Vec<StscEntry> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let same = entries
            .last()
            .is_some_and(|e| e.samples_per_chunk == chunk.count && e.sample_description_index == chunk.entry);
        if !same {
            entries.push(StscEntry {
                first_chunk: i as u32 + 1,
                samples_per_chunk: chunk.count,
                sample_description_index: chunk.entry,
            });
        }
    }
    entries
}

/// Run-length encoding: `(count, value)` for each run of equal values.
fn runs<T: Copy + PartialEq>(values: &[T]) -> impl Iterator<Item = (u32, T)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let value = *values.get(i)?;
        let n = values[i..].iter().take_while(|&&v| v == value).count();
        i += n;
        Some((n as u32, value))
    })
}
