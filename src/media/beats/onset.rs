//! The onset-strength envelope: how much the spectrum rises from one 11.6 ms hop to the next
//! (log-compressed spectral flux over log-spaced bands, summed), one value per hop. Fed the mono
//! signal in runs as it is decoded, it keeps one window of samples; the envelope (about 86 values
//! a second, 300 KiB for 15 minutes) is all that grows.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Window length in samples at the ~11 kHz analysis rate (46 ms: long enough to resolve a bass
/// note, short enough to place an onset).
pub const WINDOW: usize = 512;
/// Hop between windows (11.6 ms at 11 025 Hz): an onset is placed to within half of it.
pub const HOP: usize = 128;
/// Bands the flux is summed over: log-spaced, so a kick and a hi-hat count alike.
pub const BANDS: usize = 36;
/// The bands span this range of frequencies (up to the Nyquist frequency when that is lower).
const LOW_HZ: f64 = 30.0;
pub const HIGH_HZ: f64 = 5_000.0;
/// log(1 + GAIN·magnitude): compresses loudness so a quiet onset after a loud one still counts.
/// A band's magnitude runs to about 100 for a full-scale tone; a larger gain lifts the hiss of
/// quiet bands (and the codec's noise in them) into the flux, and hid the pulse of soft-attack
/// pieces in the benchmark set (gain 1000: mean F 0.76; gain 1: 0.89).
const GAIN: f32 = 1.0;
/// Below this frequency a band's energy is "bass", the accent downbeats are told by.
const BASS_HZ: f64 = 200.0;
/// See [`OnsetEnvelope::frame_time`].
const LEAD_SECONDS: f64 = 0.0145;

pub struct OnsetEnvelope {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// The last WINDOW samples, a ring whose oldest sample is at `at`.
    ring: Vec<f32>,
    at: usize,
    /// Samples pushed so far.
    seen: usize,
    input: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    scratch: Vec<realfft::num_complex::Complex<f32>>,
    /// FFT bin → band (`usize::MAX`: below the bands), set when the rate is known.
    band_of: Vec<usize>,
    bands: Vec<f32>,
    rate: f64,
    flux: Flux,
    /// Sum of squares of every sample, to tell silence.
    energy: f64,
}

/// The onset envelope, however it was made (`OnsetEnvelope` from samples, `mp3_envelope` from an
/// MP3's coded spectrum): what the tempo, the tracker and the bars are found on.
pub struct Envelope {
    /// Onset strength per frame.
    pub flux: Vec<f32>,
    /// Low-band flux per frame (the kick and bass line), for downbeats.
    pub bass: Vec<f32>,
    /// Frames per second.
    pub fps: f64,
    /// The time frame 0's value stands for, in seconds (see [`OnsetEnvelope::frame_time`]).
    pub offset: f64,
    /// The song's root-mean-square level (full scale 1), to tell silence; 0 for no samples.
    pub rms: f64,
}

impl Envelope {
    /// The time a frame's value stands for, in seconds from the start of the song.
    pub fn frame_time(&self, frame: usize) -> f64 {
        frame as f64 / self.fps + self.offset
    }
}

/// The band (0..BANDS) a frequency counts in, or None below the bands; `high` is the top of the
/// bands (`HIGH_HZ`, or the Nyquist frequency when lower).
pub fn band_of(hz: f64, high: f64) -> Option<usize> {
    if hz < LOW_HZ {
        return None;
    }
    let at = ((hz / LOW_HZ).ln() / (high / LOW_HZ).ln() * BANDS as f64) as usize;
    Some(at.min(BANDS - 1))
}

/// How many of the lowest bands are "bass" (below `BASS_HZ`).
pub fn bass_bands(high: f64) -> usize {
    ((BASS_HZ / LOW_HZ).ln() / (high / LOW_HZ).ln() * BANDS as f64).ceil() as usize
}

/// Log-compressed spectral flux: each frame's band magnitudes against the last frame's.
pub struct Flux {
    prev: Vec<f32>,
    bass_bands: usize,
    pub flux: Vec<f32>,
    pub bass: Vec<f32>,
}

impl Flux {
    pub fn new(bass_bands: usize) -> Flux {
        Flux { prev: vec![0.0; BANDS], bass_bands, flux: Vec::new(), bass: Vec::new() }
    }

    /// Adds one frame, from its bands' magnitudes (the sum of the magnitudes of their bins, on the
    /// scale of a 512-point Hann-windowed FFT of samples within ±1: see `GAIN`).
    pub fn push(&mut self, bands: &[f32]) {
        let (mut flux, mut bass) = (0.0f32, 0.0f32);
        for (i, (b, prev)) in bands.iter().zip(self.prev.iter_mut()).enumerate() {
            let level = (1.0 + GAIN * b).ln();
            let rise = (level - *prev).max(0.0);
            flux += rise;
            if i < self.bass_bands {
                bass += rise;
            }
            *prev = level;
        }
        self.flux.push(flux);
        self.bass.push(bass);
    }
}

impl OnsetEnvelope {
    pub fn new() -> OnsetEnvelope {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let spectrum = fft.make_output_vec();
        let scratch = fft.make_scratch_vec();
        // Hann window.
        let window =
            (0..WINDOW).map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / WINDOW as f32).cos()).collect();
        OnsetEnvelope {
            fft,
            window,
            // Starts as half a window of silence, so frame k is centred on sample k·HOP.
            ring: vec![0.0; WINDOW],
            at: 0,
            seen: 0,
            input: vec![0.0; WINDOW],
            spectrum,
            scratch,
            band_of: Vec::new(),
            bands: vec![0.0; BANDS],
            rate: 0.0,
            flux: Flux::new(0),
            energy: 0.0,
        }
    }

    /// The envelope of the `seconds` of samples pushed. Frame k's value stands for its window's
    /// centre (sample k·HOP), less the lead the flux has (an onset raises it as soon as it enters
    /// the window, which the log compression makes the biggest rise). The lead was measured on
    /// clicks (tests.rs).
    pub fn finish(self, seconds: f64) -> Envelope {
        let samples = seconds * self.rate;
        Envelope {
            fps: self.rate / HOP as f64,
            offset: LEAD_SECONDS,
            rms: if samples < 1.0 { 0.0 } else { (self.energy / samples).sqrt() },
            flux: self.flux.flux,
            bass: self.flux.bass,
        }
    }

    pub fn push(&mut self, rate: f64, samples: &[f32]) {
        if self.band_of.is_empty() {
            self.set_rate(rate);
        }
        for &s in samples {
            self.energy += f64::from(s) * f64::from(s);
            self.ring[self.at] = s;
            self.at = (self.at + 1) % WINDOW;
            self.seen += 1;
            if self.seen >= WINDOW / 2 && (self.seen - WINDOW / 2).is_multiple_of(HOP) {
                self.frame();
            }
        }
    }

    fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
        let high = (rate / 2.0).min(HIGH_HZ);
        let bins = WINDOW / 2 + 1;
        self.band_of =
            (0..bins).map(|bin| band_of(bin as f64 * rate / WINDOW as f64, high).unwrap_or(usize::MAX)).collect();
        self.flux = Flux::new(bass_bands(high));
    }

    fn frame(&mut self) {
        let (newer, older) = self.ring.split_at(self.at);
        for ((x, s), w) in self.input.iter_mut().zip(older.iter().chain(newer)).zip(&self.window) {
            *x = s * w;
        }
        // The lengths are the planner's own, so this cannot fail.
        if self.fft.process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch).is_err() {
            return;
        }
        self.bands.iter_mut().for_each(|b| *b = 0.0);
        for (c, &band) in self.spectrum.iter().zip(&self.band_of) {
            if band != usize::MAX {
                // The plain square root: `norm()` is libm's hypot, careful about overflow that
                // a spectrum of samples within ±1 cannot reach, and 3 % of the CPU (perf).
                self.bands[band] += c.norm_sqr().sqrt();
            }
        }
        self.flux.push(&self.bands);
    }
}
