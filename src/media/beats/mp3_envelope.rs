//! The onset envelope of an MP3 read off its coded spectrum, one frame per granule (576 samples,
//! 13.1 ms at 44.1 kHz), with no decoding to samples: each granule's MDCT line magnitudes below
//! 5 kHz (`mp3_spectrum`) are summed into `onset`'s log-spaced bands and their log flux taken as
//! for a decoded song. symphonia's full decode of a 4-minute MP3 was 70 % of the analysis' CPU,
//! most of it the half this skips (alias reduction, IMDCT, the polyphase filterbank), and the
//! Huffman data above 5 kHz is not even read.

use std::io::Read;

use super::BeatError;
use super::mp3_frames::{self, Bits, GRANULE, Granule, Mp3Error};
use super::mp3_spectrum;
use super::onset::{self, BANDS, Envelope, Flux};

/// Line magnitudes to the scale of `onset`'s FFT bins (a 512-point Hann window at ~11 kHz), so
/// `onset::GAIN` compresses both alike: measured on the benchmark set's MP3s, the mean band
/// magnitude of the two paths over each whole song.
const MAGNITUDE_SCALE: f32 = 200.0;
/// How much of the neighbours' difference counts as the MDST (see `State::add`).
const MDST_WEIGHT: f32 = 0.25;
/// Sum of squared line magnitudes to the sum of squared samples of the granule's time span,
/// for the silence level.
const ENERGY_SCALE: f64 = 272.0;
/// The time a frame's flux stands for, from its granule's first coded sample, in samples (the
/// priming a player drops is taken off after): measured, as the median offset of the beats found
/// on the benchmark set's MP3s against those found on the same tracks' M4As by the decoded path
/// (1 216 beats; 576 put them 16 ms early).
const GRANULE_TIME: f64 = 1280.0;

/// How the walk went (as `decode::Decoded`).
pub struct Walk {
    pub envelope: Envelope,
    pub seconds: f64,
    pub capped: bool,
}

/// The envelope of the MP3 in `source`, up to `max_seconds`. `Unsupported` (as
/// `BeatError::NoDecoder`'s words) when the walker does not read this kind of MP3, so the caller
/// can decode it with symphonia instead.
pub fn envelope(source: &mut dyn Read, max_seconds: f64) -> Result<Walk, Mp3Error> {
    let mut state: Option<State> = None;
    let mut capped = false;
    let mut bad_granules = 0u64;
    let mut max_granules = u64::MAX;
    let blank = Granule::default();
    let walked = mp3_frames::walk(source, &mut |frame| {
        let header = frame.header;
        let st = state.get_or_insert_with(|| {
            max_granules = (max_seconds * f64::from(header.sample_rate) / GRANULE as f64).ceil() as u64;
            State::new(header.sample_rate)
        });
        let total_bits = frame.main_data.len() * 8;
        let mut bits = Bits::new(frame.main_data);
        let scfsi = [frame.scfsi(0), frame.scfsi(1)];
        let side = frame.side;
        for gr in 0..2 {
            if st.granules >= max_granules {
                capped = true;
                return false;
            }
            st.bands.fill(0.0);
            let mut ok = true;
            for ch in 0..header.channels {
                let start = bits.pos;
                let end = start + side.granules[gr][ch].part2_3_length;
                // The mid channel of mid/side stereo is the mono mix (times √2); the side
                // channel is left unread, its bits skipped.
                let wanted = ch == 0 || !header.mid_side;
                if end > total_bits {
                    ok = false;
                } else if wanted {
                    let (first, second) = side.granules.split_at_mut(1);
                    let (g, previous) =
                        if gr == 0 { (&mut first[0][ch], &blank) } else { (&mut second[0][ch], &first[0][ch]) };
                    mp3_frames::read_scalefactors(&mut bits, g, &scfsi[ch], gr, previous);
                    match mp3_spectrum::decode(&mut bits, end, g, header.sample_rate, st.max_line, &mut st.lines) {
                        Ok(_) => st.add(
                            side.granules[gr][ch].short(),
                            if header.mid_side {
                                std::f32::consts::FRAC_1_SQRT_2
                            } else {
                                1.0 / header.channels as f32
                            },
                        ),
                        Err(_) => ok = false,
                    }
                }
                bits.pos = end;
            }
            if !ok {
                bad_granules += 1;
                // A damaged granule repeats the last one's bands: no onset is invented there.
                st.bands.copy_from_slice(&st.last);
            }
            // Each frame is two granules' bands summed: a 39 ms span, near the decoded path's
            // 46 ms window, where one granule's 26 ms let each line's swing through (mean F
            // on the benchmark set's MP3s 0.887 with one granule, 0.907 with two).
            let mut both = st.bands;
            for (b, last) in both.iter_mut().zip(&st.last) {
                *b += last;
            }
            st.flux.push(&both);
            st.last.copy_from_slice(&st.bands);
            st.granules += 1;
        }
        true
    })?;
    let Some(st) = state else { return Err(Mp3Error::Unsupported("no MPEG audio frame was found")) };
    walked.refuse_if_damaged(bad_granules)?;
    let rate = f64::from(walked.sample_rate);
    let samples = (st.granules * GRANULE as u64).saturating_sub(walked.priming) as f64;
    let seconds = (samples / rate).min(max_seconds);
    Ok(Walk {
        envelope: Envelope {
            fps: rate / GRANULE as f64,
            offset: (GRANULE_TIME - walked.priming as f64) / rate,
            rms: if samples < 1.0 { 0.0 } else { (st.energy * ENERGY_SCALE / samples).sqrt() },
            flux: st.flux.flux,
            bass: st.flux.bass,
        },
        seconds,
        capped,
    })
}

impl From<Mp3Error> for BeatError {
    fn from(e: Mp3Error) -> BeatError {
        match e {
            Mp3Error::Io(io) => BeatError::Io(io),
            Mp3Error::Unsupported(what) => BeatError::NoDecoder(what),
            Mp3Error::Damaged(detail) => BeatError::Undecodable { detail },
        }
    }
}

/// The walk's running state.
struct State {
    /// MDCT line → band (`usize::MAX`: outside the bands).
    band_of: Vec<usize>,
    /// Lines below the top band's edge; those above are not decoded.
    max_line: usize,
    lines: [f32; GRANULE],
    bands: [f32; BANDS],
    last: [f32; BANDS],
    flux: Flux,
    energy: f64,
    granules: u64,
}

impl State {
    fn new(sample_rate: u32) -> State {
        let rate = f64::from(sample_rate);
        let high = (rate / 2.0).min(onset::HIGH_HZ);
        // Line i of a granule is centred on (i + ½) · rate / 1152 Hz.
        let hz = |i: usize| (i as f64 + 0.5) * rate / (2 * GRANULE) as f64;
        let max_line = (0..GRANULE).find(|&i| hz(i) > high).unwrap_or(GRANULE);
        State {
            band_of: (0..max_line).map(|i| onset::band_of(hz(i), high).unwrap_or(usize::MAX)).collect(),
            max_line,
            lines: [0.0; GRANULE],
            bands: [0.0; BANDS],
            last: [0.0; BANDS],
            flux: Flux::new(onset::bass_bands(high)),
            energy: 0.0,
            granules: 0,
        }
    }

    /// Adds the decoded channel in `lines`, weighted by `weight`, to the granule's bands.
    ///
    /// An MDCT line is the real part of a sinusoid's phasor, so a steady tone's line swings from
    /// granule to granule with its phase, which the flux would take for onsets. Its neighbours'
    /// difference stands in for the missing imaginary part (the MDST), so the magnitude of the
    /// pair holds steady. Neighbours are a line apart in long blocks, three in short blocks
    /// (whose windows are interleaved).
    fn add(&mut self, short: bool, weight: f32) {
        let stride = if short { 3 } else { 1 };
        let x = &self.lines;
        for (k, &band) in self.band_of.iter().enumerate() {
            let re = x[k];
            let im = x.get(k + stride).copied().unwrap_or(0.0) - if k >= stride { x[k - stride] } else { 0.0 };
            self.energy += f64::from(re * re) * f64::from(weight * weight);
            if band != usize::MAX {
                let m = (re * re + MDST_WEIGHT * im * im).sqrt();
                self.bands[band] += m * weight * MAGNITUDE_SCALE;
            }
        }
    }
}
