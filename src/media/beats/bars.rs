//! Downbeats: which beats start a bar. A bar's first beat carries the accent (the kick, the bass
//! note, the chord change), so for 3 and 4 beats a bar and each phase, the beats at that phase are
//! compared with the others; the phase whose beats stand out most starts the bars.

pub struct Bars {
    pub beats_per_bar: u8,
    /// Indices into the beats.
    pub downbeats: Vec<usize>,
}

/// How much more a 3/4 reading must stand out than a 4/4 one to be taken: most songs are in 4.
const THREE_OVER_FOUR: f64 = 1.3;

/// The bars of `beats` (frames), from the low-band and full-band onset strengths per frame; `None`
/// with fewer than two bars of beats.
pub fn bars(beats: &[usize], bass: &[f32], flux: &[f32]) -> Option<Bars> {
    if beats.len() < 8 {
        return None;
    }
    let peak = |env: &[f32], at: usize| -> f64 {
        let lo = at.saturating_sub(2);
        let hi = (at + 3).min(env.len());
        env.get(lo..hi).map_or(0.0, |w| w.iter().copied().fold(0.0f32, f32::max).into())
    };
    let bass_accent = normalised(beats.iter().map(|&b| peak(bass, b)).collect());
    let flux_accent = normalised(beats.iter().map(|&b| peak(flux, b)).collect());
    let accent: Vec<f64> = bass_accent.iter().zip(&flux_accent).map(|(b, f)| b + 0.5 * f).collect();

    let best_phase = |meter: usize| -> (f64, usize) {
        (0..meter)
            .map(|phase| {
                let on: Vec<f64> = accent.iter().skip(phase).step_by(meter).copied().collect();
                let mean_on = on.iter().sum::<f64>() / on.len().max(1) as f64;
                let mean_all = accent.iter().sum::<f64>() / accent.len() as f64;
                (mean_on - mean_all, phase)
            })
            .fold((f64::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a })
    };
    let (four, phase4) = best_phase(4);
    let (three, phase3) = best_phase(3);
    let (meter, phase) = if three > THREE_OVER_FOUR * four.max(0.0) && three > 0.0 { (3, phase3) } else { (4, phase4) };
    Some(Bars { beats_per_bar: meter as u8, downbeats: (phase..beats.len()).step_by(meter).collect() })
}

/// Values scaled to unit mean, so the two accents weigh alike whatever their loudness.
fn normalised(values: Vec<f64>) -> Vec<f64> {
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    if mean <= f64::EPSILON {
        return values;
    }
    values.into_iter().map(|v| v / mean).collect()
}
