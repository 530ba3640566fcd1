//! The onset envelope of an MP3 read off its coded spectrum, one frame per granule (576 samples,
//! 13.1 ms at 44.1 kHz), without the decoder's synthesis: each granule's MDCT lines below 5 kHz
//! (`mp3_spectrum`) are turned back into the samples of the lowest subbands (`mp3_lowband`'s
//! alias reduction and IMDCT, never its polyphase synthesis), and a short FFT of each subband's
//! last samples gives its part of the spectrum, bins 21.5 Hz apart (at 44.1 kHz), as the decoded
//! path's are. Those bins are summed into `onset`'s log-spaced bands and their log flux taken as
//! for a decoded song. The Huffman data above 5 kHz is not even read.
//!
//! The MDCT lines themselves were the first envelope tried (BENCHMARKS.md, issue 25): a line is
//! a phasor's real part, so a steady tone's line swings from granule to granule with its phase,
//! and 38 Hz lines left the bass bands a line or two wide; on the benchmark set's 40 MP3s that
//! lost a tenth of the mean beat F-measure. The subbands' FFTs do not have either fault.

use std::io::Read;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::BeatError;
use super::mp3_frames::{self, Bits, GRANULE, Granule, Mp3Error};
use super::mp3_lowband::{LINES, LowBand};
use super::mp3_spectrum;
use super::onset::{self, BANDS, Envelope, Flux};

/// A subband's window, in its samples (at rate/32: 46 ms at 44.1 kHz, the decoded path's
/// window, and bins rate/2048 = 21.5 Hz apart, its bins' spacing).
const WINDOW: usize = 64;
/// Subbands from this one on are windowed over their last `WINDOW / 2` samples (23 ms, bins
/// 43 Hz apart), where the bands are wide. Chosen on the benchmark set's tuning half (mean F
/// 0.9614 with the long window everywhere, 0.9623 from subband 1 on, 0.9599 with the short one
/// everywhere; BENCHMARKS.md, issue 25).
const SHORT_FROM: usize = 1;
/// A bin's magnitude to the scale of `onset`'s (a 512-point Hann window at ~11 kHz), so
/// `onset::GAIN` compresses both alike: a sine of amplitude A is 128·A there and 16·A here, and
/// subband 0's samples measured 0.82 of the decoded signal's level on a set track.
const BIN_SCALE: f32 = 10.0;
/// The short window's bins, on the long one's scale: half the window, half a sine's magnitude,
/// and a noise band's sum 2^1.5 less; between the two.
const SHORT_BIN_SCALE: f32 = 2.38;
/// Sum of squared line magnitudes to the sum of squared samples of the granule's time span,
/// for the silence level.
const ENERGY_SCALE: f64 = 272.0;
/// The time a frame's flux stands for, from its granule's first coded sample, in samples (the
/// priming a player drops is taken off after). A granule's subband samples come out of the
/// IMDCT's overlap one granule late, so this is the MDCT-line envelope's measured 1280 (the
/// median offset of 1 216 beats against the decoded path's on the same tracks' M4As) less a
/// granule; the beats then fall 5 ms after the decoded path's (median over 1 916 beats), within
/// a frame.
const FRAME_TIME: f64 = 1280.0 - GRANULE as f64;

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
        // The mid channel of mid/side stereo is the mono mix (times √2); the side channel is
        // left unread, its bits skipped (its blocks are taken to be the mid's: LAME switches
        // both together).
        let weight = if header.mid_side { std::f32::consts::FRAC_1_SQRT_2 } else { 1.0 / header.channels as f32 };
        for gr in 0..2 {
            if st.granules >= max_granules {
                capped = true;
                return false;
            }
            st.low.begin();
            let mut ok = true;
            for ch in 0..header.channels {
                let start = bits.pos;
                let end = start + side.granules[gr][ch].part2_3_length;
                let wanted = ch == 0 || !header.mid_side;
                if end > total_bits {
                    ok = false;
                } else if wanted {
                    let (first, second) = side.granules.split_at_mut(1);
                    let (g, previous) =
                        if gr == 0 { (&mut first[0][ch], &blank) } else { (&mut second[0][ch], &first[0][ch]) };
                    mp3_frames::read_scalefactors(&mut bits, g, &scfsi[ch], gr, previous);
                    match mp3_spectrum::decode(
                        &mut bits,
                        end,
                        g,
                        header.sample_rate,
                        st.max_line,
                        &mut st.lines[..st.used],
                    ) {
                        Ok(_) => {
                            st.energy += f64::from(weight * weight) * energy(&st.lines[..st.max_line]);
                            st.low.add(&st.lines, g, weight);
                        }
                        Err(_) => ok = false,
                    }
                }
                bits.pos = end;
            }
            if !ok {
                bad_granules += 1;
            }
            st.granule(ok);
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
            offset: (FRAME_TIME - walked.priming as f64) / rate,
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

/// The sum of squares of `lines`, in eight independent lanes (one chain of dependent adds was
/// a few percent of the walk).
fn energy(lines: &[f32]) -> f64 {
    let mut lanes = [0.0f32; 8];
    let chunks = lines.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v * v;
        }
    }
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(rest)
}

/// The walk's running state.
struct State {
    /// Lines below the top band's edge; those above are not decoded.
    max_line: usize,
    /// Lines the subbands' IMDCTs read (those up to `max_line`, the rest zero); those above
    /// are never written.
    used: usize,
    lines: [f32; GRANULE],
    flux: Flux,
    energy: f64,
    granules: u64,
    /// The subbands the bands span, decoded to samples (IMDCT and overlap only), and the last
    /// [`WINDOW`] samples of each.
    low: LowBand,
    rings: Vec<Ring>,
    /// The FFT of subband 0's window, and the shorter one of every other subband's.
    long: SubbandFft,
    short: SubbandFft,
    /// Per subband, its FFT bins by band: runs of consecutive bins in one band, in bin order.
    runs: Vec<Vec<Run>>,
    bands: [f32; BANDS],
}

/// Bins `from..to` of a subband's FFT, all in `band`.
struct Run {
    band: usize,
    from: usize,
    to: usize,
}

/// Each bin's band (`usize::MAX`: outside the bands) as runs of consecutive bins in one band.
fn runs(band_of: &[usize]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (bin, &band) in band_of.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.band == band && run.to == bin => run.to += 1,
            _ if band >= BANDS => {}
            _ => runs.push(Run { band, from: bin, to: bin + 1 }),
        }
    }
    runs
}

/// A subband's samples, the last [`WINDOW`] at the end of `data[..len]`: a granule's are
/// appended, and the last window moved to the front only when the buffer is full (shifting the
/// window by a granule every granule was a `memmove` call per subband).
struct Ring {
    data: [f32; RING],
    len: usize,
}

/// A ring's room: the window and 8 granules more.
const RING: usize = WINDOW + 8 * LINES;

impl Ring {
    /// A window of silence.
    fn new() -> Ring {
        Ring { data: [0.0; RING], len: WINDOW }
    }

    fn push(&mut self, samples: &[f32; LINES]) {
        if self.len + LINES > RING {
            self.data.copy_within(self.len - (WINDOW - LINES)..self.len, 0);
            self.len = WINDOW - LINES;
        }
        self.data[self.len..self.len + LINES].copy_from_slice(samples);
        self.len += LINES;
    }

    /// The last [`WINDOW`] samples.
    fn window(&self) -> &[f32] {
        &self.data[self.len - WINDOW..self.len]
    }
}

/// A Hann window and real FFT of a subband's last `n` samples, and its bins' scale to `onset`'s.
struct SubbandFft {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Each bin's magnitude.
    magnitude: Vec<f32>,
    scale: f32,
}

impl SubbandFft {
    fn new(n: usize, scale: f32) -> SubbandFft {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let (spectrum, scratch) = (fft.make_output_vec(), fft.make_scratch_vec());
        SubbandFft {
            fft,
            window: (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos()).collect(),
            input: vec![0.0; n],
            magnitude: vec![0.0; spectrum.len()],
            spectrum,
            scratch,
            scale,
        }
    }

    /// Adds the magnitudes of the bins of `ring`'s last `n` samples to their `bands`.
    fn add(&mut self, ring: &[f32], runs: &[Run], bands: &mut [f32; BANDS]) {
        let n = self.input.len();
        for ((x, s), w) in self.input.iter_mut().zip(&ring[WINDOW - n..]).zip(&self.window) {
            *x = s * w;
        }
        // The lengths are the planner's own, so this cannot fail.
        if self.fft.process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch).is_err() {
            return;
        }
        // Every magnitude first (in lanes; those up to the last bin in a band), then each
        // band's bins summed in a register, in bin order (one loop over the bins adding each to
        // its band in memory waited on the last store to the same band: a third of the walk's
        // own time).
        let used = runs.last().map_or(0, |r| r.to);
        for (m, c) in self.magnitude.iter_mut().zip(&self.spectrum).take(used) {
            *m = c.norm_sqr().sqrt();
        }
        for run in runs {
            let (Some(band), Some(bins)) = (bands.get_mut(run.band), self.magnitude.get(run.from..run.to)) else {
                continue;
            };
            let mut sum = *band;
            for &m in bins {
                sum += m * self.scale;
            }
            *band = sum;
        }
    }
}

impl State {
    fn new(sample_rate: u32) -> State {
        let rate = f64::from(sample_rate);
        let high = (rate / 2.0).min(onset::HIGH_HZ);
        // Line i of a granule is centred on (i + ½) · rate / 1152 Hz.
        let hz = |i: usize| (i as f64 + 0.5) * rate / (2 * GRANULE) as f64;
        let max_line = (0..GRANULE).find(|&i| hz(i) > high).unwrap_or(GRANULE);
        // Subband k spans k · rate/64 to (k + 1) · rate/64 Hz.
        let subbands = ((high / (rate / 64.0)).ceil() as usize).clamp(1, 32);
        let width = |sb: usize| if sb < SHORT_FROM { WINDOW } else { WINDOW / 2 };
        let low = LowBand::new(sample_rate, 0, 1, subbands);
        State {
            max_line,
            used: low.lines_read().max(max_line),
            lines: [0.0; GRANULE],
            flux: Flux::new(onset::bass_bands(high)),
            energy: 0.0,
            granules: 0,
            low,
            rings: (0..subbands).map(|_| Ring::new()).collect(),
            long: SubbandFft::new(WINDOW, BIN_SCALE),
            short: SubbandFft::new(WINDOW / 2, BIN_SCALE * SHORT_BIN_SCALE),
            // Bin b of an n-point FFT of subband k's samples (before frequency inversion, so its
            // spectrum runs upright) is at (k + 2b/n) · rate/64 Hz; bin n/2 is the next
            // subband's bin 0, so it is left out.
            runs: (0..subbands)
                .map(|sb| {
                    let n = width(sb);
                    let band_of: Vec<usize> = (0..n / 2)
                        .map(|b| {
                            let hz = (sb as f64 + 2.0 * b as f64 / n as f64) * rate / 64.0;
                            if hz < high { onset::band_of(hz, high).unwrap_or(usize::MAX) } else { usize::MAX }
                        })
                        .collect();
                    runs(&band_of)
                })
                .collect(),
            bands: [0.0; BANDS],
        }
    }

    /// Ends a granule: each subband's 18 new samples into its window, the bands from their FFTs
    /// (a damaged granule keeps the last bands, so no onset is invented there), and the frame's
    /// flux.
    fn granule(&mut self, ok: bool) {
        let samples = self.low.finish_subbands();
        for (ring, samples) in self.rings.iter_mut().zip(samples) {
            ring.push(samples);
        }
        if ok {
            self.bands.fill(0.0);
            for (sb, ring) in self.rings.iter().enumerate() {
                let fft = if sb < SHORT_FROM { &mut self.long } else { &mut self.short };
                fft.add(ring.window(), &self.runs[sb], &mut self.bands);
            }
        }
        self.flux.push(&self.bands);
        self.granules += 1;
    }
}
