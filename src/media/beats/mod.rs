//! A song's tempo, beats and downbeats, for cutting scenes on the music (issue 25).
//!
//! The song is decoded as it is read (`decode`: symphonia, mono, ~11 kHz) into an onset-strength
//! envelope (`onset`: spectral flux, about 86 values a second), so memory is the envelope, never
//! the song's PCM. Then `tempo` finds the beat period by autocorrelation, and around it the local
//! period every second (a song may speed up or slow down), `track` places the beats by dynamic
//! programming on the local period, and `bars` picks the downbeats. Knows nothing of HTTP or storage: the
//! caller hands in a `MediaSource` from a blocking thread, as for `media::song`.
//!
//! A song without a clear pulse (silence, speech, a drone) gets no beats and a note saying why,
//! never invented ones. A pulse is told by two things onsets at random times lack: the envelope
//! repeats at one period in both halves of the song (the period chosen on one half, the repeat
//! measured on the other, so the choice's luck does not count: `tempo::Tempo::held_out_clarity`),
//! and it keeps its phase two to four beats on along the local tempo (`tempo::coherence`). Opus,
//! which symphonia demuxes but cannot decode, is decoded by `opus`.
//!
//! An MP3 is not decoded: `mp3_frames`, `mp3_huffman` (with `mp3_tables`), `mp3_spectrum` and
//! `mp3_envelope` read its onset envelope off its coded spectrum, the lowest subbands' samples
//! rebuilt without the decoder's synthesis, in a quarter to a sixth of the CPU, with beats as good
//! on the benchmark set ([`analyse_mp3_coded`]; BENCHMARKS.md, issue 25). Where that envelope has
//! no clear beat, `mp3_lowband` decodes the MP3 only as far as the analysis needs (the lowest
//! subbands, straight to the analysis rate) into the same envelope as a decoded song
//! ([`analyse_mp3_lowband`]); an MP3 neither reads (MPEG-2/2.5, free format, layers 1-2) is
//! decoded by symphonia.

mod bars;
mod decode;
mod mp3_envelope;
mod mp3_frames;
mod mp3_huffman;
mod mp3_lowband;
mod mp3_spectrum;
mod mp3_tables;
mod onset;
mod opus;
mod tempo;
mod track;

use serde::Serialize;
use symphonia::core::io::MediaSource;

use super::song::{SongCodec, SongInfo};

/// Bumped whenever the algorithm changes what it finds, so stored analyses can be told apart
/// (0 is a song stored before there was any analysis). 5: an MP3's envelope is read off its coded
/// spectrum, not its decoded samples; an MP3 without a Xing header is analysed to its end; and a
/// song is refused as beatless on a held-out clarity and a coherence (`MIN_CLARITY`,
/// `MIN_COHERENCE`), so speech and onsets at random times that version 4 gave invented beats now
/// get none (every song of the benchmark set keeps the beats that rule change alone would find).
pub const ANALYSIS_VERSION: u32 = 5;

/// The default of `MV_MAX_SONG_SECONDS`: how much of a song is analysed (15 minutes).
pub const DEFAULT_MAX_SONG_SECONDS: u32 = 900;

/// Below this clarity (`tempo::Tempo::held_out_clarity`) the envelope does not repeat at one
/// period beyond chance. Every piece of the benchmark set that has beats measures 0.228 or more
/// (the one refused, a madrigal whose tempo steps by a quarter, -0.02), clicks near 2. Drawn 250
/// times each at 30 s (BENCHMARKS.md, issue 25; tests.rs makes them): onsets at random times
/// measure 0.005 at the median, 0.14 at the 98th centile, speech-like syllables -0.006 and 0.11,
/// white noise -0.004 and 0.03. The clarity the period was chosen on, this without the hold-out,
/// measured 0.06 to 0.09 at the median and 0.16 to 0.22 at the 98th centile on the same draws, so
/// a floor of 0.12 on it gave beats to 19 % of the random onsets and 13 % of the speech.
const MIN_CLARITY: f64 = 0.12;

/// Below this coherence (`tempo::coherence`) the envelope's repeats do not hold their phase two
/// to four beats on. Every piece of the set that has beats measures 0.064 or more (a madrigal
/// ramping from 174 to 143 BPM; the next is 0.114), clicks near 0.95; the 250 draws at 30 s of
/// random onsets 0.002 at the median and 0.072 at the 98th centile, of speech -0.007 and 0.053,
/// of noise 0.014 at most. With `MIN_CLARITY`, 2 of the 250 random-onset draws at 30 s get
/// beats, none of speech or noise, none of any kind at 120 s. It undervalues a loosely played
/// pulse whose local tempo wanders: clicks at 128 BPM each up to 50 ms off the beat measure 0.056,
/// and under a layer of onsets at random times they are refused (BENCHMARKS.md).
const MIN_COHERENCE: f64 = 0.05;

/// Root-mean-square level under which a song is silence (-70 dBFS).
const SILENCE_RMS: f64 = 3.2e-4;

/// What the analysis found (the song's record keeps each field: `api::audio::AudioInfo`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BeatAnalysis {
    /// The tempo in beats per minute; null without beats.
    pub tempo_bpm: Option<f64>,
    /// Beat times in seconds from the start of the song, ascending.
    pub beats: Vec<f64>,
    /// The beats that start a bar (a subset of `beats`).
    pub downbeats: Vec<f64>,
    /// Beats in a bar (3 or 4); null without downbeats.
    pub beats_per_bar: Option<u8>,
    /// How many seconds of the song were analysed: all of it, or the first `MV_MAX_SONG_SECONDS`.
    pub analysed_seconds: f64,
    /// Why `beats` is empty, or that only the start of a long song was analysed; null otherwise.
    pub analysis_note: Option<String>,
}

/// A song the analysis could not read.
#[derive(Debug, thiserror::Error)]
pub enum BeatError {
    /// The frames are there (the probe read them) but the audio in them cannot be decoded.
    #[error("the song's audio cannot be decoded: {detail}")]
    Undecodable { detail: String },
    /// The source itself failed (a store that stopped answering).
    #[error("the song could not be read: {0}")]
    Io(std::io::Error),
    /// No built-in decoder reads the song's codec or layout, saying which (answered as a note,
    /// never an error to a caller).
    #[error("beat analysis is not available for {0}")]
    NoDecoder(&'static str),
}

/// Analyses a song the song probe accepted (`song` is what it found), up to `max_seconds` of it:
/// an MP3 from its coded spectrum ([`analyse_mp3_coded`]: 4-6× less CPU, its beats as good on
/// the benchmark set, BENCHMARKS.md issue 25), every other song decoded ([`analyse_decoded`]).
pub fn analyse(source: Box<dyn MediaSource>, song: &SongInfo, max_seconds: u32) -> Result<BeatAnalysis, BeatError> {
    match song.codec {
        SongCodec::Mp3 => analyse_mp3_coded(source, song, max_seconds).map(|(analysis, _, _)| analysis),
        _ => analyse_decoded(source, song, max_seconds),
    }
}

/// The analysis of a song decoded whole (symphonia, or `opus`): how every codec but MP3 is
/// analysed, and an MP3 the coded-spectrum path does not read; the benchmark's baseline for MP3.
pub fn analyse_decoded(
    source: Box<dyn MediaSource>,
    song: &SongInfo,
    max_seconds: u32,
) -> Result<BeatAnalysis, BeatError> {
    let mut envelope = onset::OnsetEnvelope::new();
    // Beats are timed as a player presents the song, so the samples a player skips are dropped:
    // the priming an M4A's edit list declares, which symphonia does not apply (it trims an MP3's
    // LAME-tag delay itself; measured against ffmpeg's decoding of the benchmark set, the two
    // then agree to 0.2 ms, and an M4A was 23 ms late without this).
    let skip = match (song.codec, song.container) {
        (SongCodec::Aac, "mp4") => u64::from(song.priming),
        // Opus' pre-skip, which symphonia leaves to its decoder, and ours is not symphonia's.
        (SongCodec::Opus, _) => u64::from(song.priming),
        _ => 0,
    };
    let sink = &mut |rate, samples: &[f32]| envelope.push(rate, samples);
    let decoded = match decode::decode(source, song.content_type, skip, f64::from(max_seconds), sink) {
        Ok(decoded) => decoded,
        Err(e @ BeatError::NoDecoder(_)) => return Ok(without_beats(0.0, &e.to_string())),
        Err(e) => return Err(e),
    };
    Ok(with_cap(from_envelope(&envelope.finish(decoded.seconds), decoded.seconds), decoded.capped, max_seconds))
}

/// The analysis of an MP3 from its coded spectrum alone (`mp3_envelope`), without the fallback
/// [`analyse_mp3_coded`] has: for the benchmark. A kind of MP3 the frame walker does not read
/// (MPEG-2/2.5, free format, layers 1-2) is `BeatError::NoDecoder`.
pub fn analyse_mp3_spectrum(mut source: Box<dyn MediaSource>, max_seconds: u32) -> Result<BeatAnalysis, BeatError> {
    let walked = mp3_envelope::envelope(&mut source, f64::from(max_seconds))?;
    Ok(with_cap(from_envelope(&walked.envelope, walked.seconds), walked.capped, max_seconds))
}

/// Which way [`analyse_mp3_coded`] went.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mp3Path {
    /// The coded spectrum's envelope.
    Spectrum,
    /// Its beat was unclear, so the song was decoded ([`analyse_mp3_lowband`]) after all.
    Fallback,
}

/// How an MP3 is analysed ([`analyse`]): the onset envelope read off its coded spectrum
/// (`mp3_envelope`: no synthesis), falling back to [`analyse_mp3_lowband`] when that envelope has
/// no clear beat (refused as any song is: `MIN_CLARITY`, `MIN_COHERENCE`), and to
/// [`analyse_decoded`] for an MP3 the frame walker does not read; with the way it went and the
/// held-out clarity it found.
pub fn analyse_mp3_coded(
    mut source: Box<dyn MediaSource>,
    song: &SongInfo,
    max_seconds: u32,
) -> Result<(BeatAnalysis, Mp3Path, Option<f64>), BeatError> {
    let walked = match mp3_envelope::envelope(&mut source, f64::from(max_seconds)) {
        Ok(walked) => walked,
        Err(mp3_frames::Mp3Error::Unsupported(_)) => {
            return Ok((analyse_decoded(rewound(source)?, song, max_seconds)?, Mp3Path::Fallback, None));
        }
        Err(e) => return Err(e.into()),
    };
    let (analysis, clarity) = from_envelope_clarity(&walked.envelope, walked.seconds);
    // Neither silent nor too short, yet no beats: the rule every song answers to found no clear
    // beat in this envelope, so the song is decoded and asked again.
    if clarity.is_some() && analysis.beats.is_empty() {
        return Ok((analyse_mp3_lowband(rewound(source)?, song, max_seconds)?, Mp3Path::Fallback, clarity));
    }
    Ok((with_cap(analysis, walked.capped, max_seconds), Mp3Path::Spectrum, clarity))
}

/// The analysis of an MP3 decoded only as far as the analysis needs (`mp3_lowband`: the lowest
/// subbands, straight to the analysis rate), into the same onset envelope as [`analyse_decoded`]. A kind
/// of MP3 the low-band decoder does not read (MPEG-2/2.5, free format, layers 1-2, intensity
/// stereo) is decoded by symphonia ([`analyse_decoded`]).
pub fn analyse_mp3_lowband(
    mut source: Box<dyn MediaSource>,
    song: &SongInfo,
    max_seconds: u32,
) -> Result<BeatAnalysis, BeatError> {
    let mut envelope = onset::OnsetEnvelope::new();
    let sink = &mut |rate, samples: &[f32]| envelope.push(rate, samples);
    match mp3_lowband::decode(&mut source, f64::from(max_seconds), sink) {
        Ok(decoded) => {
            Ok(with_cap(from_envelope(&envelope.finish(decoded.seconds), decoded.seconds), decoded.capped, max_seconds))
        }
        Err(mp3_frames::Mp3Error::Unsupported(_)) => analyse_decoded(rewound(source)?, song, max_seconds),
        Err(e) => Err(e.into()),
    }
}

/// `source` back at its start, for another path to read the song again.
fn rewound(mut source: Box<dyn MediaSource>) -> Result<Box<dyn MediaSource>, BeatError> {
    use std::io::Seek;
    source.seek(std::io::SeekFrom::Start(0)).map_err(BeatError::Io)?;
    Ok(source)
}

/// Notes that only the first `max_seconds` were analysed, when that is so.
fn with_cap(mut analysis: BeatAnalysis, capped: bool, max_seconds: u32) -> BeatAnalysis {
    if capped {
        let cap = format!(
            "only the first {max_seconds} s were analysed (MV_MAX_SONG_SECONDS); there are no beats after that"
        );
        analysis.analysis_note = Some(match analysis.analysis_note {
            Some(note) => format!("{note}; {cap}"),
            None => cap,
        });
    }
    analysis
}

/// Analyses mono samples at `rate` already in memory (tests, and the benchmark's synthetic input).
pub fn analyse_samples(rate: f64, samples: &[f32]) -> BeatAnalysis {
    let mut envelope = onset::OnsetEnvelope::new();
    envelope.push(rate, samples);
    let seconds = samples.len() as f64 / rate;
    from_envelope(&envelope.finish(seconds), seconds)
}

fn from_envelope(envelope: &onset::Envelope, seconds: f64) -> BeatAnalysis {
    from_envelope_clarity(envelope, seconds).0
}

/// [`from_envelope`], and the held-out clarity of the envelope's tempo (None when silent or too
/// short).
fn from_envelope_clarity(envelope: &onset::Envelope, seconds: f64) -> (BeatAnalysis, Option<f64>) {
    if envelope.rms < SILENCE_RMS {
        return (without_beats(seconds, "the song is silent: there are no beats to cut on"), None);
    }
    let fps = envelope.fps;
    let Some(tempo) = tempo::estimate(&envelope.flux, fps) else {
        return (without_beats(seconds, "the song is too short to find a tempo in (it needs about 6 s)"), None);
    };
    (from_tempo(envelope, seconds, &tempo), Some(tempo.held_out_clarity))
}

fn from_tempo(envelope: &onset::Envelope, seconds: f64, tempo: &tempo::Tempo) -> BeatAnalysis {
    let fps = envelope.fps;
    let unclear = "no clear beat was found (speech, ambient or free-time music): cut anywhere";
    if tempo.held_out_clarity < MIN_CLARITY {
        return without_beats(seconds, unclear);
    }
    let periods = tempo::local_periods(&envelope.flux, fps, tempo.period);
    if tempo::coherence(&envelope.flux, fps, &periods) < MIN_COHERENCE {
        return without_beats(seconds, unclear);
    }
    let normalised = normalise(&envelope.flux, fps);
    let frames = track::onset_starts(&track::track(&normalised, &periods), &envelope.flux);
    if frames.len() < 4 {
        return without_beats(seconds, unclear);
    }
    let time = |frame: usize| round_ms(envelope.frame_time(frame).clamp(0.0, seconds));
    let bars = bars::bars(&frames, &envelope.bass, &envelope.flux);
    BeatAnalysis {
        tempo_bpm: Some((played_bpm(&frames, fps).unwrap_or(tempo.bpm) * 100.0).round() / 100.0),
        beats: frames.iter().map(|&f| time(f)).collect(),
        downbeats: bars.as_ref().map(|b| b.downbeats.iter().map(|&i| time(frames[i])).collect()).unwrap_or_default(),
        beats_per_bar: bars.map(|b| b.beats_per_bar),
        analysed_seconds: round_ms(seconds),
        analysis_note: None,
    }
}

/// Beats a span covers when `played_bpm` measures the tempo: one gap carries the placement error
/// of two beats (each on a whole hop, then moved to its onset's start), four gaps a quarter of it.
const SPAN_BEATS: usize = 4;

/// The tempo the beats are played at most. Which tempo: the median gap between beats, so for a
/// song that speeds up or slows down (whose beats follow the local tempo) it is the side with
/// more beats, not the blur of both the whole song's autocorrelation would give. How fast
/// exactly: the mean period of the spans of [`SPAN_BEATS`] beats within a tenth of that gap.
/// Single gaps jitter by as much as that tenth, so a window around the median cut their spread
/// off on one side and biased the mean (on the benchmark set a piece stepping from 100 to 125
/// BPM, its beats right, was reported at 119); spans jitter a quarter as much and fall inside
/// it whole. A median of the spans themselves would not do: around a step they take every
/// value between the two tempos, and one of those became the median of an even step.
fn played_bpm(frames: &[usize], fps: f64) -> Option<f64> {
    let mut gaps: Vec<f64> = frames.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
    gaps.sort_by(f64::total_cmp);
    let median = *gaps.get(gaps.len() / 2)?;
    let near = |p: &f64| (p / median - 1.0).abs() <= 0.1;
    let span = SPAN_BEATS.min(gaps.len());
    let mut periods: Vec<f64> =
        frames.windows(span + 1).map(|w| (w[span] - w[0]) as f64 / span as f64).filter(near).collect();
    if periods.is_empty() {
        // No span steady enough: the gaps near the median, as a fallback.
        periods = gaps.into_iter().filter(near).collect();
    }
    let mean = periods.iter().sum::<f64>() / periods.len() as f64;
    (mean > 0.0).then(|| 60.0 * fps / mean)
}

/// The onset envelope less its local mean, in units of its standard deviation, for the tracker.
fn normalise(flux: &[f32], fps: f64) -> Vec<f64> {
    let x = tempo::detrend(flux, fps as usize);
    let sd = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
    if sd <= f64::EPSILON {
        return x;
    }
    x.into_iter().map(|v| (v / sd).max(0.0)).collect()
}

fn without_beats(seconds: f64, note: &str) -> BeatAnalysis {
    BeatAnalysis {
        tempo_bpm: None,
        beats: Vec::new(),
        downbeats: Vec::new(),
        beats_per_bar: None,
        analysed_seconds: round_ms(seconds),
        analysis_note: Some(note.to_string()),
    }
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod mp3_tests;
#[cfg(test)]
mod tests;
