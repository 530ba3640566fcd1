use super::*;

const RATE: f64 = 11_025.0;

/// A deterministic noise source (xorshift), so no test depends on a seed it does not show.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// `seconds` of audio with a click (a 20 ms burst of decaying noise) at each of `times`, each
/// scaled by its `gain`.
fn clicks(seconds: f64, times: &[(f64, f32)]) -> Vec<f32> {
    let mut out = vec![0.0f32; (seconds * RATE) as usize];
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    for &(t, gain) in times {
        let start = (t * RATE) as usize;
        for i in 0..(0.02 * RATE) as usize {
            if let Some(s) = out.get_mut(start + i) {
                *s += gain * 0.5 * noise.next() * (-(i as f32) / (0.004 * RATE as f32)).exp();
            }
        }
    }
    out
}

fn grid(bpm: f64, seconds: f64) -> Vec<f64> {
    let period = 60.0 / bpm;
    (0..).map(|i| 0.5 + i as f64 * period).take_while(|t| *t < seconds - 0.1).collect()
}

/// The share of `truth` matched by a beat within 70 ms, and of `found` matching one (mir_eval's
/// beat F-measure, without its one-to-one matching: the grids here are far wider than 140 ms).
fn f_measure(found: &[f64], truth: &[f64]) -> f64 {
    let hit = |t: &f64, set: &[f64]| set.iter().any(|b| (b - t).abs() <= 0.07);
    let recall = truth.iter().filter(|t| hit(t, found)).count() as f64 / truth.len() as f64;
    let precision = found.iter().filter(|t| hit(t, truth)).count() as f64 / found.len().max(1) as f64;
    if recall + precision == 0.0 { 0.0 } else { 2.0 * recall * precision / (recall + precision) }
}

#[test]
fn clicks_at_every_tempo_are_found_on_time() {
    for bpm in [60.0, 75.0, 90.0, 120.0, 140.0, 175.0] {
        let truth = grid(bpm, 30.0);
        let audio = clicks(30.0, &truth.iter().map(|&t| (t, 1.0)).collect::<Vec<_>>());
        let found = analyse_samples(RATE, &audio);
        let tempo = found.tempo_bpm.expect("a tempo");
        // Clicks alone have no subdivision: the period found is the click period or an octave of
        // it; the prior keeps it within 60..=240 of 120's octave.
        let ratio = tempo / bpm;
        assert!([0.5, 1.0, 2.0].iter().any(|r| (ratio / r - 1.0).abs() < 0.02), "{bpm} BPM clicks: tempo {tempo}");
        if (ratio - 1.0).abs() < 0.02 {
            let f = f_measure(&found.beats, &truth);
            assert!(f > 0.95, "{bpm} BPM: F = {f}, beats {:?}", &found.beats[..found.beats.len().min(8)]);
            // On time, not just within the window: the mean error is under a hop.
            let errors: Vec<f64> = truth
                .iter()
                .filter_map(|t| found.beats.iter().map(|b| b - t).min_by(|a, b| a.abs().total_cmp(&b.abs())))
                .filter(|e| e.abs() < 0.07)
                .collect();
            let mean = errors.iter().sum::<f64>() / errors.len() as f64;
            assert!(mean.abs() < 0.012, "{bpm} BPM: beats are {mean:.4} s off the clicks on average");
        }
        assert_eq!(found.analysis_note, None);
        assert!(found.beats.windows(2).all(|w| w[0] < w[1]), "ascending");
    }
}

#[test]
fn a_tempo_in_the_prior_range_is_not_halved_or_doubled() {
    // Quarter clicks with softer eighths between, as a hi-hat plays: the beat is the quarter.
    for bpm in [90.0, 110.0, 128.0, 150.0] {
        let quarters = grid(bpm, 30.0);
        let period = 60.0 / bpm;
        let mut times: Vec<(f64, f32)> = quarters.iter().map(|&t| (t, 1.0)).collect();
        times.extend(quarters.iter().map(|&t| (t + period / 2.0, 0.3)));
        // Over a floor of hiss, as instruments sustain under the drums: the log flux measures
        // rises against what is already sounding.
        let mut noise = Noise(11);
        let audio: Vec<f32> = clicks(30.0, &times).iter().map(|s| s + 0.03 * noise.next()).collect();
        let found = analyse_samples(RATE, &audio);
        let tempo = found.tempo_bpm.expect("a tempo");
        assert!((tempo / bpm - 1.0).abs() < 0.02, "{bpm} BPM with eighths: tempo {tempo}");
        assert!(f_measure(&found.beats, &quarters) > 0.95, "{bpm} BPM with eighths: beats on the quarters");
    }
}

#[test]
fn downbeats_fall_on_the_accented_beats() {
    for (meter, bpm) in [(4usize, 100.0), (3, 120.0)] {
        let truth = grid(bpm, 40.0);
        // The bar starts on the second click, so a phase of 0 would be wrong.
        let times: Vec<(f64, f32)> =
            truth.iter().enumerate().map(|(i, &t)| (t, if i % meter == 1 { 1.0 } else { 0.4 })).collect();
        let found = analyse_samples(RATE, &clicks(40.0, &times));
        assert_eq!(found.beats_per_bar, Some(meter as u8), "{meter}/4 at {bpm}");
        let bar_starts: Vec<f64> = truth.iter().skip(1).step_by(meter).copied().collect();
        let f = f_measure(&found.downbeats, &bar_starts);
        assert!(f > 0.9, "{meter}/4: downbeats F = {f}: {:?}", &found.downbeats[..4]);
        assert!(found.downbeats.iter().all(|d| found.beats.contains(d)), "downbeats are beats");
    }
}

#[test]
fn silence_noise_and_a_steady_tone_have_no_beats() {
    let silent = analyse_samples(RATE, &vec![0.0; (20.0 * RATE) as usize]);
    assert!(silent.beats.is_empty() && silent.tempo_bpm.is_none());
    assert!(silent.analysis_note.as_deref().is_some_and(|n| n.contains("silent")), "{:?}", silent.analysis_note);

    let mut noise = Noise(7);
    let hiss: Vec<f32> = (0..(20.0 * RATE) as usize).map(|_| 0.3 * noise.next()).collect();
    let hissed = analyse_samples(RATE, &hiss);
    assert!(hissed.beats.is_empty(), "white noise: {:?}", hissed.tempo_bpm);
    assert!(hissed.analysis_note.as_deref().is_some_and(|n| n.contains("no clear beat")));

    // A steady tone: energy, no onsets.
    let tone: Vec<f32> = (0..(20.0 * RATE) as usize).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    assert!(analyse_samples(RATE, &tone).beats.is_empty());
}

#[test]
fn too_short_a_song_says_so() {
    let found = analyse_samples(RATE, &clicks(2.0, &[(0.5, 1.0), (1.0, 1.0), (1.5, 1.0)]));
    assert!(found.beats.is_empty());
    assert!(found.analysis_note.as_deref().is_some_and(|n| n.contains("too short")), "{:?}", found.analysis_note);
}

/// The song file at `path` probed and analysed, as `upload_audio` does.
fn probe_and_analyse(path: &std::path::Path) -> (crate::media::song::SongInfo, BeatAnalysis) {
    let open = || {
        let f = std::fs::File::open(path).expect("song file");
        let len = f.metadata().expect("len").len();
        crate::media::song::SeekableSource::boxed(f, len)
    };
    let song = crate::media::song::probe(open()).expect("probe");
    let found = analyse(open(), &song, DEFAULT_MAX_SONG_SECONDS).expect("analyse");
    (song, found)
}

/// The clips rendered from MIDI with known beats (tests/media/beats), analysed as an upload is.
#[test]
fn rendered_clips_have_their_true_tempo_and_beats() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/beats");
    let set: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("set.json")).expect("set.json")).expect("json");
    for track in set["tracks"].as_array().expect("tracks") {
        let truth: Vec<f64> = track["beats"].as_array().expect("beats").iter().filter_map(|b| b.as_f64()).collect();
        let true_bpm = track["tempo_bpm"].as_f64().expect("tempo");
        for file in track["files"].as_array().expect("files").iter().filter_map(|f| f.as_str()) {
            let (_, found) = probe_and_analyse(&dir.join(file));
            let bpm = found.tempo_bpm.expect("a tempo");
            let f = f_measure(&found.beats, &truth);
            if true_bpm > 170.0 {
                // Heard at half tempo today (every other beat, BENCHMARKS.md's octave error);
                // the true tempo would do better.
                assert!([1.0, 0.5].iter().any(|k| (bpm / (true_bpm * k) - 1.0).abs() <= 0.04), "{file}: {bpm}");
            } else {
                assert!((bpm / true_bpm - 1.0).abs() <= 0.04, "{file}: {bpm} BPM, truly {true_bpm}");
                assert!(f >= 0.9, "{file}: F {f:.3}");
            }
        }
    }
}

#[test]
fn beats_follow_a_tempo_that_steps_or_ramps() {
    // 20 s at one tempo, then 20 s a quarter faster (a step), or a steady rise over 40 s (a
    // ramp), as quarter clicks with softer eighths over hiss. Before the beats followed a local
    // tempo, the step from 96 BPM as an MP3 (tests/media/beats/step_clicks.mp3) scored F 0.69 in
    // its first half: the whole song's period was the second half's.
    let step = |t: f64, from: f64| if t < 20.0 { from } else { from * 1.25 };
    let ramp = |t: f64, from: f64| from * (1.0 + 0.25 * t / 40.0);
    // The tempo at a time, from a starting tempo.
    type TempoAt = dyn Fn(f64, f64) -> f64;
    let cases: [(&str, &TempoAt, f64); 4] =
        [("step", &step, 96.0), ("step", &step, 72.0), ("ramp", &ramp, 100.0), ("ramp", &ramp, 130.0)];
    for (shape, tempo_at, from) in cases {
        let mut quarters = vec![0.5];
        while let Some(&last) = quarters.last().filter(|&&t| t < 39.5) {
            quarters.push(last + 60.0 / tempo_at(last, from));
        }
        let mut times: Vec<(f64, f32)> = quarters.iter().map(|&t| (t, 1.0)).collect();
        times.extend(quarters.windows(2).map(|w| ((w[0] + w[1]) / 2.0, 0.3)));
        let mut noise = Noise(5);
        let audio: Vec<f32> = clicks(40.0, &times).iter().map(|s| s + 0.03 * noise.next()).collect();
        let found = analyse_samples(RATE, &audio);
        // Both sides of the change: a tracker held to one period gets one of them wrong.
        for (side, range) in [("first half", 0.0..19.5), ("second half", 20.5..40.0)] {
            let truth: Vec<f64> = quarters.iter().copied().filter(|t| range.contains(t)).collect();
            let beats: Vec<f64> = found.beats.iter().copied().filter(|t| range.contains(t)).collect();
            let f = f_measure(&beats, &truth);
            assert!(f > 0.95, "{shape} from {from} BPM, {side}: F = {f:.3}; beats {beats:?}");
        }
    }
}

/// Every song fixture is analysed to its end, as long as the probe (and a player) says it is: an
/// MP3 without a Xing header had its last fifth cut off by symphonia's guess at its length.
#[test]
fn a_song_is_analysed_to_its_end() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/media/songs");
    for file in ["song.mp3", "song.aac", "song.m4a", "song.opus", "song.webm", "song.flac"] {
        let (song, found) = probe_and_analyse(&dir.join(file));
        // Within one frame (1152 samples at 44.1 kHz is 26 ms) and the rounding to milliseconds.
        let off = (found.analysed_seconds - song.duration_seconds).abs();
        assert!(off <= 0.027, "{file}: analysed {} s of {} s", found.analysed_seconds, song.duration_seconds);
    }
}

/// A uniform draw in [0, 1).
fn uniform(noise: &mut Noise) -> f64 {
    f64::from(noise.next().abs())
}

/// Onsets at random times over `seconds`, `mean_gap` apart on average, each of random gain: the
/// gaps uniform over a quarter to 1.75 of the mean (as syllables or a free-time player fall), or
/// exponential with a 30 ms floor (a Poisson process, `poisson`).
fn random_onsets(seconds: f64, mean_gap: f64, poisson: bool, noise: &mut Noise) -> Vec<(f64, f32)> {
    let mut times = Vec::new();
    let mut t = 0.3 * uniform(noise);
    while t < seconds {
        times.push((t, (0.5 + 0.5 * uniform(noise)) as f32));
        t += if poisson {
            0.03 + (mean_gap - 0.03) * -(1.0 - uniform(noise)).ln()
        } else {
            mean_gap * (0.25 + 1.5 * uniform(noise))
        };
    }
    times
}

/// `seconds` of speech-like sound: syllables at a random rate of 3 to 6 a second, their gaps
/// spread as a gamma law of shape 4 (a coefficient of variation of a half, as syllable lengths
/// vary in speech), in phrases of 3 to 12 syllables with pauses of 0.15 to 0.7 s between them.
/// A syllable is a voiced harmonic complex (8 harmonics of a pitch of 90 to 220 Hz that falls
/// through the phrase, each at a random weight) with a 15-30 ms rise and a 30 ms fall, led half
/// the time by a consonant (a 20-60 ms burst of noise).
fn speech(seconds: f64, noise: &mut Noise) -> Vec<f32> {
    let mut out = vec![0.0f32; (seconds * RATE) as usize];
    let rate = 3.0 + 3.0 * uniform(noise);
    let mut t = 0.2 * uniform(noise);
    while t < seconds {
        let syllables = 3 + (10.0 * uniform(noise)) as usize;
        let f0 = 90.0 + 130.0 * uniform(noise);
        for k in 0..syllables {
            let gap: f64 = (0..4).map(|_| -(1.0 - uniform(noise)).ln()).sum::<f64>() / 4.0 / rate;
            let gain = (0.3 + 0.7 * uniform(noise)) as f32;
            let mut at = (t * RATE) as usize;
            if uniform(noise) < 0.5 {
                let burst = ((0.02 + 0.04 * uniform(noise)) * RATE) as usize;
                let level = 0.3 + 0.3 * noise.next().abs();
                for i in 0..burst {
                    if let Some(s) = out.get_mut(at + i) {
                        *s += gain * level * noise.next();
                    }
                }
                at += burst;
            }
            let length = ((0.6 * gap).clamp(0.06, 0.25) * RATE) as usize;
            let rise = ((0.015 + 0.015 * uniform(noise)) * RATE) as usize;
            let fall = (0.03 * RATE) as usize;
            let pitch = f0 * (1.0 - 0.2 * k as f64 / syllables as f64);
            let weights: Vec<f32> = (1..=8).map(|h| noise.next().abs() / h as f32).collect();
            for i in 0..length {
                let shape = (i as f32 / rise as f32).min(1.0).min((length - i) as f32 / fall as f32);
                let phase = 2.0 * std::f64::consts::PI * pitch * i as f64 / RATE;
                let voiced: f32 =
                    weights.iter().enumerate().map(|(h, w)| w * ((h + 1) as f64 * phase).sin() as f32).sum();
                if let Some(s) = out.get_mut(at + i) {
                    *s += 0.3 * gain * shape * voiced;
                }
            }
            t += gap;
        }
        t += 0.15 + 0.55 * uniform(noise);
    }
    out
}

/// Sound without a beat, drawn many times from a fixed seed: onsets at random times of every
/// density from 1 to 8 a second (as syllables fall, or a free-time player plays; gaps of a
/// bounded random length, and a Poisson process), speech-like syllables, and white noise every
/// fourth draw. The refusal rule was once a single clarity floor that the one draw of random
/// onsets this module tested passed (it measured 0.06) while a third of such draws did not
/// (BENCHMARKS.md, issue 25). The rule's rate on 200 draws of each kind at 30 and 120 s is under
/// 2 % (1 % for random onsets at 30 s, none for the others); here at most that rate of these
/// draws may get beats.
#[test]
fn sound_without_a_beat_gets_no_beats_draw_after_draw() {
    const DRAWS: u64 = 40;
    let mut given = Vec::new();
    let mut drawn = 0;
    for draw in 0..DRAWS {
        let mut noise = Noise(0x5851_f42d_4c95_7f2d ^ (draw + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mean_gap = 0.12 + 0.88 * uniform(&mut noise);
        let mut kinds = vec![
            ("random onsets", clicks(30.0, &random_onsets(30.0, mean_gap, false, &mut noise))),
            ("Poisson onsets", clicks(30.0, &random_onsets(30.0, mean_gap, true, &mut noise))),
            ("speech", speech(30.0, &mut noise)),
        ];
        if draw % 4 == 0 {
            kinds.push(("white noise", (0..(30.0 * RATE) as usize).map(|_| 0.3 * noise.next()).collect()));
        }
        for (kind, audio) in kinds {
            drawn += 1;
            let found = analyse_samples(RATE, &audio);
            if !found.beats.is_empty() {
                given.push(format!("{kind} #{draw} (mean gap {mean_gap:.2} s): {:?} BPM", found.tempo_bpm));
            }
        }
    }
    assert!(given.len() * 50 <= drawn, "beats for more than 2 % of {drawn} draws without a beat: {given:?}");
}
