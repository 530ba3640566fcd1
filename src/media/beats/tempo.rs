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
    /// How clearly the envelope repeats at a period (`clarity`: its normalised autocorrelation
    /// there plus the larger of those at two and three periods), with the choice of the period
    /// and the measurement on different halves of the song (measured where the whole song's
    /// period was chosen, it is biased upward by that choice: it is where the envelope repeats
    /// best, and a fifth to a third of 30 s random-onset draws passed the floor that way):
    /// the envelope's frames in alternate blocks of [`BLOCK_SECONDS`], the period chosen on the
    /// autocorrelation of one set of blocks and its clarity read off the other's, both ways,
    /// averaged. Onsets at random times correlate at the lag a half picked by chance, and the
    /// other half does not repeat that chance; a song with a beat repeats in both halves.
    pub held_out_clarity: f64,
}

/// The length of the alternate blocks `Tempo::held_out_clarity` splits the envelope into:
/// far longer than the envelope's own correlation (a smoothed onset spans under 0.1 s), so the
/// two halves' chance correlations are independent, and short against a song's changes, so both
/// halves hear the same music.
const BLOCK_SECONDS: f64 = 1.0;

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
    let [r, even, odd] = autocorrelations(&x, 3 * max_lag + 2, ((BLOCK_SECONDS * fps) as usize).max(1))?;
    let period = best_period(&r, fps, min_lag, max_lag)?;
    let held_out =
        |choose: &[f64], measure: &[f64]| best_period(choose, fps, min_lag, max_lag).map(|p| clarity(measure, p));
    let held_out_clarity = 0.5 * (held_out(&even, &odd)? + held_out(&odd, &even)?);
    Some(Tempo { bpm: 60.0 * fps / period, period, held_out_clarity })
}

/// The lag (fractional) in `min_lag..=max_lag` the autocorrelation `r` peaks at, weighed by the
/// tempo preference.
fn best_period(r: &[f64], fps: f64, min_lag: usize, max_lag: usize) -> Option<f64> {
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
    Some(if lag > min_lag && lag < max_lag && lag + 1 < r.len() {
        let (a, b, c) = (r[lag - 1], r[lag], r[lag + 1]);
        let denom = a - 2.0 * b + c;
        let shift = if denom.abs() > 1e-12 { 0.5 * (a - c) / denom } else { 0.0 };
        lag as f64 + shift.clamp(-0.5, 0.5)
    } else {
        lag as f64
    })
}

/// The autocorrelation `r` at `period` plus the larger of those at two and three periods. A
/// pulse repeats: onsets at random times (speech) can correlate at one lag by chance, but not at
/// two and three times it too, where music with a beat still does.
fn clarity(r: &[f64], period: f64) -> f64 {
    let at = |lag: f64| -> f64 {
        let i = lag.floor() as usize;
        let frac = lag - i as f64;
        let a = r.get(i).copied().unwrap_or(0.0);
        let b = r.get(i + 1).copied().unwrap_or(0.0);
        a + (b - a) * frac
    };
    at(period) + at(2.0 * period).max(at(3.0 * period))
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
/// perfect repeat; `None` for a flat signal. Three of them: of the whole of `x`, and of the
/// products that start in even and in odd blocks of `block` frames (each over its own overlap,
/// on the whole's lag 0), at the cost of the first alone.
fn autocorrelations(x: &[f64], lags: usize, block: usize) -> Option<[Vec<f64>; 3]> {
    let n = x.len();
    let zero: f64 = x.iter().map(|v| v * v).sum::<f64>() / n as f64;
    if zero <= f64::EPSILON {
        return None;
    }
    let mut out = [Vec::new(), Vec::new(), Vec::new()];
    for lag in 0..lags.min(n) {
        let mut sums = [0.0f64; 2];
        let mut counts = [0usize; 2];
        for (i, (a, b)) in x[..n - lag].chunks(block).zip(x[lag..].chunks(block)).enumerate() {
            sums[i % 2] += a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
            counts[i % 2] += a.len();
        }
        out[0].push((sums[0] + sums[1]) / (n - lag) as f64 / zero);
        for k in 0..2 {
            out[k + 1].push(if counts[k] == 0 { 0.0 } else { sums[k] / counts[k] as f64 / zero });
        }
    }
    Some(out)
}

/// How the envelope repeats two, three and four beats on, a beat on from a frame being where the
/// local `periods` from it (`local_periods`) add up to one: the mean of its normalised
/// correlations with itself at those three warped lags. A pulse holds its phase beat after beat,
/// through a step or a ramp of its tempo; onsets at random times, however regular their gaps
/// look one beat on (a syllable's length varies by half of itself; a gap of a bounded random
/// length makes the envelope repeat at about the longest gap), have lost theirs two beats on.
/// One beat on is left out: the local periods were chosen where the envelope repeats best one
/// beat on, so it correlates there by selection.
pub fn coherence(envelope: &[f32], fps: f64, periods: &[f64]) -> f64 {
    let x = blur(&blur(&detrend(envelope, (fps * 3.0) as usize)));
    let n = x.len().min(periods.len());
    let zero = x[..n].iter().map(|v| v * v).sum::<f64>() / n.max(1) as f64;
    if n < 2 || zero <= f64::EPSILON {
        return 0.0;
    }
    // The beat phase at each frame: beats counted from the first frame.
    let mut phase = Vec::with_capacity(n);
    let mut at = 0.0f64;
    for p in &periods[..n] {
        phase.push(at);
        at += 1.0 / p.max(1.0);
    }
    let mut total = 0.0;
    for beats in 2..=4 {
        let (mut sum, mut count) = (0.0f64, 0usize);
        let mut j = 0usize;
        for t in 0..n {
            let target = phase[t] + beats as f64;
            while j + 1 < n && phase[j + 1] <= target {
                j += 1;
            }
            if j + 1 >= n {
                break;
            }
            // The fractional frame the target phase falls on, and the envelope there.
            let tau = j as f64 + (target - phase[j]) / (phase[j + 1] - phase[j]);
            let i = tau.floor() as usize;
            let later = x[i] + (x[(i + 1).min(n - 1)] - x[i]) * (tau - i as f64);
            sum += x[t] * later;
            count += 1;
        }
        total += if count == 0 { 0.0 } else { sum / count as f64 / zero };
    }
    total / 3.0
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
