//! Beat tracking by dynamic programming (Ellis, "Beat Tracking by Dynamic Programming", 2007):
//! the beats are the sequence of frames that best trades landing on strong onsets against keeping
//! the spacing near the tempo's period. One pass forward scores every frame as the last beat of
//! the best sequence ending there; the beats are read back from the best end. The period is the
//! local one at each frame, so a song that speeds up or slows down keeps its beats.

/// How hard a spacing off the period is penalised (Ellis' and librosa's default).
const TIGHTNESS: f64 = 100.0;

/// Beat frames, ascending, in `envelope` (the normalised onset strength), with `periods[t]` the
/// beat period in frames around frame `t` (`tempo::local_periods`: a song's tempo may change).
pub fn track(envelope: &[f64], periods: &[f64]) -> Vec<usize> {
    let n = envelope.len().min(periods.len());
    let mut sorted: Vec<f64> = periods[..n].to_vec();
    sorted.sort_by(f64::total_cmp);
    let Some(&typical) = sorted.get(n / 2) else {
        return Vec::new();
    };
    if typical < 2.0 || sorted[0] < 2.0 {
        return Vec::new();
    }
    let local = smooth(&envelope[..n], typical);
    // ln(d) for every spacing d considered, so each frame's penalty is a subtraction.
    let longest = (2.0 * sorted[n - 1]).round() as usize;
    let ln: Vec<f64> = (0..=longest).map(|d| (d.max(1) as f64).ln()).collect();
    let mut score = vec![0.0f64; n];
    let mut back = vec![usize::MAX; n];
    for (t, &period) in periods.iter().enumerate().take(n) {
        let ln_period = period.ln();
        // Predecessors are searched from 2 periods back to half a period back.
        let lo = (period / 2.0).round() as usize;
        let hi = ((2.0 * period).round() as usize).min(t);
        let mut best = f64::NEG_INFINITY;
        let mut from = usize::MAX;
        for (d, ln_d) in ln.iter().enumerate().take(hi + 1).skip(lo) {
            let s = score[t - d] - TIGHTNESS * (ln_d - ln_period).powi(2);
            if s > best {
                best = s;
                from = t - d;
            }
        }
        // Starting afresh beats a poor chain: the first beat needs no predecessor.
        if from == usize::MAX || best < 0.0 {
            score[t] = local[t];
        } else {
            score[t] = local[t] + best;
            back[t] = from;
        }
    }
    let Some(mut t) = last_beat(&score) else {
        return Vec::new();
    };
    let mut beats = vec![t];
    while back[t] != usize::MAX {
        t = back[t];
        beats.push(t);
    }
    beats.reverse();
    trim(&beats, &local)
}

/// The onset strength smoothed with a Gaussian a 32nd of a period wide: a beat may land a frame
/// or two from its onset's peak.
fn smooth(envelope: &[f64], period: f64) -> Vec<f64> {
    let sigma = period / 32.0;
    let reach = (4.0 * sigma).ceil() as isize;
    let kernel: Vec<f64> = (-reach..=reach).map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp()).collect();
    let n = envelope.len() as isize;
    (0..n)
        .map(|i| {
            kernel
                .iter()
                .enumerate()
                .filter_map(|(j, w)| {
                    let at = i + j as isize - reach;
                    (0..n).contains(&at).then(|| w * envelope[at as usize])
                })
                .sum()
        })
        .collect()
}

/// The last frame whose cumulative score is a local peak above half the median peak: the end of
/// the song may fade, and a chain ending in the fade is not the best one.
fn last_beat(score: &[f64]) -> Option<usize> {
    let n = score.len();
    let peaks: Vec<usize> = (0..n)
        .filter(|&i| {
            let left = i == 0 || score[i] > score[i - 1];
            let right = i + 1 == n || score[i] >= score[i + 1];
            left && right
        })
        .collect();
    let mut values: Vec<f64> = peaks.iter().map(|&i| score[i]).collect();
    values.sort_by(f64::total_cmp);
    let median = *values.get(values.len() / 2)?;
    peaks.iter().rev().copied().find(|&i| score[i] > 0.5 * median)
}

/// Drops beats at either end where the music has not started or has stopped: onset strength
/// (smoothed over a period) under half its RMS.
fn trim(beats: &[usize], local: &[f64]) -> Vec<usize> {
    if beats.is_empty() {
        return Vec::new();
    }
    let rms = (beats.iter().map(|&b| local[b] * local[b]).sum::<f64>() / beats.len() as f64).sqrt();
    let strong = |&&b: &&usize| local[b] >= 0.5 * rms;
    let first = beats.iter().position(|b| strong(&b)).unwrap_or(beats.len());
    let last = beats.iter().rposition(|b| strong(&b)).map_or(0, |i| i + 1);
    if first >= last {
        return Vec::new();
    }
    beats[first..last].to_vec()
}

/// How far below a beat's flux the rise it belongs to is taken to start.
const RISE: f32 = 0.3;
/// The furthest back a beat moves to its rise: 5 hops, 58 ms.
const MAX_RISE_FRAMES: usize = 5;

/// Each beat moved back to where its onset starts: the first of the frames just before it whose
/// flux is still over [`RISE`] of the beat's. A struck note's flux peaks at once, but a bowed
/// or blown one (an organ, strings) rises over several hops, and the note is heard from its
/// start: on the benchmark set the beats were 22 ms late at the median (soft-attack pieces
/// 50-70 ms) before this, and mean F rose from 0.91 to 0.95 with it (BENCHMARKS.md). Clicks
/// stay within a hop of where they were (tests.rs still finds them on time).
pub fn onset_starts(beats: &[usize], flux: &[f32]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(beats.len());
    for &beat in beats {
        let Some(&peak) = flux.get(beat) else { continue };
        let mut at = beat;
        while at > 0 && beat - at < MAX_RISE_FRAMES && flux[at - 1] >= RISE * peak {
            at -= 1;
        }
        // Never onto or before the previous beat.
        if out.last().is_none_or(|&prev| at > prev) {
            out.push(at);
        }
    }
    out
}
