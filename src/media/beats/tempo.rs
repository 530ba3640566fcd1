//! The tempo: the beat period the onset envelope repeats at most, found by autocorrelation.
//!
//! A song repeats at its beat, and also at half and twice it (eighth notes, half bars), so the
//! raw peak is often an octave off. A log-normal preference centred on 120 BPM, one octave wide,
//! as in Ellis (2007) and librosa, weighs the lags. (Crediting each lag with the correlation at
//! twice its length as well, a common refinement, pulled fast pieces to half their tempo: on the
//! benchmark set tempo was right on 56 of 60 files with it at half weight, 58 without.)
//!
//! `local_periods` then follows the period through the song, within a third of that one, for
//! songs whose tempo steps or drifts.

/// The slowest and fastest tempo considered, BPM.
pub const MIN_BPM: f64 = 40.0;
pub const MAX_BPM: f64 = 240.0;
/// The centre of the tempo preference, BPM, and its width in octaves.
const PRIOR_BPM: f64 = 120.0;
const PRIOR_OCTAVES: f64 = 1.0;

pub struct Tempo {
    pub bpm: f64,
    /// The beat period in envelope frames (fractional).
    pub period: f64,
    /// How clearly the envelope repeats at that period: its normalised autocorrelation there
    /// plus the larger of those at two and three periods. Near 0 for noise, onsets at random
    /// times (as in speech) or a drone; 0.18 and more for every piece of the benchmark set.
    pub clarity: f64,
}

/// The tempo of `envelope` (frames at `fps`), or `None` when it is too short to tell.
pub fn estimate(envelope: &[f32], fps: f64) -> Option<Tempo> {
    let min_lag = (60.0 * fps / MAX_BPM).floor() as usize;
    let max_lag = (60.0 * fps / MIN_BPM).ceil() as usize;
    // Four of the longest periods must fit (the clarity looks three periods ahead).
    if envelope.len() < 4 * max_lag || min_lag < 2 {
        return None;
    }
    // Smoothed over a few frames, so a period that falls between two whole lags still lines its
    // peaks up (an unsmoothed click envelope correlates only at exact multiples of a frame).
    let x = blur(&blur(&detrend(envelope, (fps * 3.0) as usize)));
    let r = autocorrelation(&x, 3 * max_lag + 2)?;
    let at = |lag: f64| -> f64 {
        let i = lag.floor() as usize;
        let frac = lag - i as f64;
        let a = r.get(i).copied().unwrap_or(0.0);
        let b = r.get(i + 1).copied().unwrap_or(0.0);
        a + (b - a) * frac
    };
    let mut best: Option<(f64, usize)> = None;
    for (lag, here) in r.iter().enumerate().take(max_lag + 1).skip(min_lag) {
        let bpm = 60.0 * fps / lag as f64;
        let prior = (-0.5 * ((bpm / PRIOR_BPM).log2() / PRIOR_OCTAVES).powi(2)).exp();
        let score = prior * here.max(0.0);
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, lag));
        }
    }
    let (_, lag) = best?;
    // The peak between lags: a parabola through the three around it.
    let period = if lag > min_lag && lag < max_lag {
        let (a, b, c) = (r[lag - 1], r[lag], r[lag + 1]);
        let denom = a - 2.0 * b + c;
        let shift = if denom.abs() > 1e-12 { 0.5 * (a - c) / denom } else { 0.0 };
        lag as f64 + shift.clamp(-0.5, 0.5)
    } else {
        lag as f64
    };
    // A pulse repeats: onsets at random times (speech) can correlate at one lag by chance, but
    // not at two and three times it too, where music with a beat still does.
    let clarity = at(period) + at(2.0 * period).max(at(3.0 * period));
    Some(Tempo { bpm: 60.0 * fps / period, period, clarity })
}

/// The envelope less its moving average over `width` frames: loudness swells are not beats.
pub fn detrend(envelope: &[f32], width: usize) -> Vec<f64> {
    let width = width.max(1);
    let mut out = Vec::with_capacity(envelope.len());
    let mut sum = 0.0f64;
    let half = width / 2;
    let n = envelope.len();
    // A running sum over [i - half, i + half].
    let mut lo = 0usize;
    let mut hi = 0usize;
    for i in 0..n {
        while hi < n && hi <= i + half {
            sum += f64::from(envelope[hi]);
            hi += 1;
        }
        while lo + half < i {
            sum -= f64::from(envelope[lo]);
            lo += 1;
        }
        out.push(f64::from(envelope[i]) - sum / (hi - lo) as f64);
    }
    out
}

/// A [1, 2, 1] / 4 smoothing.
fn blur(x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let before = if i > 0 { x[i - 1] } else { x[i] };
            let after = x.get(i + 1).copied().unwrap_or(x[i]);
            0.25 * before + 0.5 * x[i] + 0.25 * after
        })
        .collect()
}

/// Autocorrelation for lags `0..lags`, each normalised by its overlap and by lag 0, so 1.0 is a
/// perfect repeat; `None` for a flat signal.
fn autocorrelation(x: &[f64], lags: usize) -> Option<Vec<f64>> {
    let n = x.len();
    let zero: f64 = x.iter().map(|v| v * v).sum::<f64>() / n as f64;
    if zero <= f64::EPSILON {
        return None;
    }
    let r = (0..lags.min(n))
        .map(|lag| {
            let sum: f64 = x[..n - lag].iter().zip(&x[lag..]).map(|(a, b)| a * b).sum();
            sum / (n - lag) as f64 / zero
        })
        .collect();
    Some(r)
}

/// How far the local tempo may stray from the song's, either way: a step of a quarter is
/// followed, an octave (a passage that sounds only every other beat) is not.
const LOCAL_RANGE: f64 = 1.35;
/// The local tempo is read in windows this long (several beats even at 60 BPM) ...
const LOCAL_WINDOW_SECONDS: f64 = 8.0;
/// ... every this often.
const LOCAL_HOP_SECONDS: f64 = 1.0;
/// A window whose best repeat correlates less than this (a rest, a held chord) keeps the song's
/// period rather than guess.
const LOCAL_MIN_CORRELATION: f64 = 0.1;

/// The beat period at each frame of `envelope`, for a song whose tempo may change: the period
/// the envelope repeats at most within a window around the frame, searched only within
/// [`LOCAL_RANGE`] of the song's `period`, median-filtered over five windows so one misleading
/// window does not bend it, and interpolated between window centres.
pub fn local_periods(envelope: &[f32], fps: f64, period: f64) -> Vec<f64> {
    let n = envelope.len();
    let win = (LOCAL_WINDOW_SECONDS * fps) as usize;
    let hop = ((LOCAL_HOP_SECONDS * fps) as usize).max(1);
    let lo = ((period / LOCAL_RANGE).floor() as usize).max(2);
    let hi = (period * LOCAL_RANGE).ceil() as usize;
    if n < 2 * win || win <= hi + 1 {
        return vec![period; n];
    }
    let x = blur(&blur(&detrend(envelope, (fps * 3.0) as usize)));
    let mut centres = Vec::new();
    let mut found = Vec::new();
    for start in (0..=n - win).step_by(hop) {
        let w = &x[start..start + win];
        centres.push((start + win / 2) as f64);
        found.push(window_period(w, lo, hi).unwrap_or(period));
    }
    let smoothed: Vec<f64> = (0..found.len())
        .map(|i| {
            let mut near: Vec<f64> = found[i.saturating_sub(2)..(i + 3).min(found.len())].to_vec();
            near.sort_by(f64::total_cmp);
            near[near.len() / 2]
        })
        .collect();
    // Between window centres the period moves linearly; before the first and after the last it
    // holds.
    let mut out = Vec::with_capacity(n);
    let mut k = 0;
    for t in 0..n {
        let t = t as f64;
        while k + 1 < centres.len() && centres[k + 1] <= t {
            k += 1;
        }
        let p = if t <= centres[0] || k + 1 == centres.len() {
            smoothed[k]
        } else {
            let frac = (t - centres[k]) / (centres[k + 1] - centres[k]);
            smoothed[k] + (smoothed[k + 1] - smoothed[k]) * frac
        };
        out.push(p);
    }
    out
}

/// The lag in `lo..=hi` (fractional) at which the window repeats best, or `None` when nothing
/// in that range repeats clearly.
fn window_period(w: &[f64], lo: usize, hi: usize) -> Option<f64> {
    let n = w.len();
    let zero = w.iter().map(|v| v * v).sum::<f64>() / n as f64;
    if zero <= f64::EPSILON {
        return None;
    }
    let r: Vec<f64> = (lo - 1..=hi + 1)
        .map(|lag| w[..n - lag].iter().zip(&w[lag..]).map(|(a, b)| a * b).sum::<f64>() / (n - lag) as f64 / zero)
        .collect();
    let best = (1..r.len() - 1).max_by(|&a, &b| r[a].total_cmp(&r[b]))?;
    if r[best] < LOCAL_MIN_CORRELATION {
        return None;
    }
    let (a, b, c) = (r[best - 1], r[best], r[best + 1]);
    let denom = a - 2.0 * b + c;
    let shift = if denom.abs() > 1e-12 { 0.5 * (a - c) / denom } else { 0.0 };
    Some((lo - 1 + best) as f64 + shift.clamp(-0.5, 0.5))
}
