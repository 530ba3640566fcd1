//! Scenes planned on the song's beats: how many scenes a project's song needs, and where each
//! scene's cut falls, so the picture changes on the music.
//!
//! The plan is a list of cut times over the song, one per scene in display order, the last at the
//! song's end. Every scene is at most the video model's longest clip (Veo renders 4, 6 or 8 s), at
//! least [`MIN_SCENE_SECONDS`], and there are at most [`MAX_SCENES`]. Where the cuts fall is chosen
//! by a dynamic programme over the song's beats: a cut on a downbeat (a bar's start) is best, on
//! another beat next, and where the song gives no beat to cut on (a long beatless stretch, or no
//! beat at all) on a half-second grid. Among plans equally good on those counts it takes the one
//! with the fewest scenes, then the one whose clips waste the fewest rendered seconds (a scene is
//! rendered at the shortest allowed clip that covers it, and a shorter clip costs less upstream).
//!
//! Pure: the song's analysis in, the plan out. `drive` asks it for a project's scene count,
//! `settle` for the cuts of the scenes written, and the compose ends each clip on its cut.

use serde::{Deserialize, Serialize};

/// The most scenes a plan makes (`number_of_scenes`' own bound).
pub const MAX_SCENES: usize = 32;

/// The shortest scene a plan makes (a shorter song is one scene).
pub const MIN_SCENE_SECONDS: f64 = 2.0;

/// Where no beat is near, cuts may fall on this grid (seconds).
const GRID_SECONDS: f64 = 0.5;

/// What a cut costs beyond the scene it ends (in "seconds of render" units): a downbeat is free,
/// another beat a little, a grid point (no beat) more than an extra scene would.
const BEAT_COST: f64 = 1.5;
const GRID_COST: f64 = 6.0;
/// What one more scene costs: it is one more render, and a music video of 8 s shots is the
/// default pace; a cut on a bar is worth a shorter scene, a cut off the beat is not.
const SCENE_COST: f64 = 4.0;
/// What a second of rendered clip cut away costs (it was paid for upstream).
const WASTE_COST: f64 = 0.25;

/// A song as the plan needs it: its length and the analysis stored with it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SongBeats {
    #[serde(rename = "duration_seconds")]
    pub seconds: f64,
    #[serde(default)]
    pub tempo_bpm: Option<f64>,
    #[serde(default)]
    pub beats: Vec<f64>,
    #[serde(default)]
    pub downbeats: Vec<f64>,
}

/// What a cut lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CutOn {
    /// The first beat of a bar.
    Downbeat,
    /// A beat.
    Beat,
    /// The song's end (the last scene's cut).
    SongEnd,
    /// No beat near: a point on the half-second grid.
    Grid,
}

/// One scene's cut: where in the song (and the final cut) the scene ends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cut {
    /// Seconds from the start of the song.
    pub at: f64,
    pub on: CutOn,
}

/// A project's scenes planned on its song: one cut per scene, in display order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BeatPlan {
    /// The song's length in seconds.
    pub song_seconds: f64,
    /// The song's tempo, when it has a beat.
    pub tempo_bpm: Option<f64>,
    /// The clip lengths the video model renders, in seconds (each scene's clip is the shortest
    /// that covers it).
    pub clip_lengths: Vec<u32>,
    /// Where each scene ends; the last is the end of the video (the song's end, unless the song
    /// is longer than [`MAX_SCENES`] longest clips).
    pub cuts: Vec<Cut>,
}

impl BeatPlan {
    /// How long the scene at display position `index` (from 0) plays: from the cut before it to
    /// its own; `None` past the plan.
    pub fn length(&self, index: usize) -> Option<f64> {
        let end = self.cuts.get(index)?.at;
        let start = if index == 0 { 0.0 } else { self.cuts[index - 1].at };
        Some(end - start)
    }

    /// The clip length (seconds) to render for the scene at display position `index`.
    pub fn clip_seconds(&self, index: usize) -> Option<u32> {
        Some(clip_seconds(self.length(index)?, &self.clip_lengths))
    }
}

/// The clip lengths (seconds) video model `model` renders: Veo (on Replicate or Gemini) takes 4, 6
/// or 8; any other model is asked for the flavor's `video_duration` only.
pub fn clip_lengths(model: &str, flavor_duration: u32) -> Vec<u32> {
    if model.to_ascii_lowercase().contains("veo") { vec![4, 6, 8] } else { vec![flavor_duration.max(1)] }
}

/// The shortest of `lengths` that covers `seconds` (the longest when none does).
pub fn clip_seconds(seconds: f64, lengths: &[u32]) -> u32 {
    let longest = lengths.iter().copied().max().unwrap_or(8);
    // A hair of slack: a scene of 6.0000001 s from float sums is a 6 s scene.
    lengths.iter().copied().filter(|&l| f64::from(l) + 1e-6 >= seconds).min().unwrap_or(longest)
}

/// A point a cut may fall on.
#[derive(Debug, Clone, Copy)]
struct Point {
    at: f64,
    on: CutOn,
}

impl Point {
    fn cost(&self) -> f64 {
        match self.on {
            CutOn::Downbeat | CutOn::SongEnd => 0.0,
            CutOn::Beat => BEAT_COST,
            CutOn::Grid => GRID_COST,
        }
    }
}

/// Plans `song`'s scenes for a video model rendering `lengths`: `scenes` of them when given
/// (clamped to 1..=[`MAX_SCENES`]), else as many as the song needs.
pub fn plan(song: &SongBeats, lengths: &[u32], scenes: Option<usize>) -> BeatPlan {
    let lengths: Vec<u32> = if lengths.is_empty() { vec![8] } else { lengths.to_vec() };
    let longest = f64::from(lengths.iter().copied().max().unwrap_or(8));
    let most = scenes.map_or(MAX_SCENES, |n| n.clamp(1, MAX_SCENES));
    let seconds = if song.seconds.is_finite() { song.seconds.max(0.0) } else { 0.0 };
    let points = points(song, seconds.min(most as f64 * longest));
    let end = points.len() - 1;
    // A given count may need shorter scenes than a free plan makes; a song shorter than one
    // scene is one scene.
    let shortest = MIN_SCENE_SECONDS.min(points[end].at / if scenes.is_some() { most as f64 } else { 1.0 });

    // best[k][j]: the cheapest way to end k scenes at point j, and the point before.
    let mut best = vec![vec![(f64::INFINITY, usize::MAX); points.len()]; most + 1];
    best[0][0] = (0.0, 0);
    for k in 1..=most {
        let (done, todo) = best.split_at_mut(k);
        let (before, here) = (&done[k - 1], &mut todo[0]);
        let mut first = 0;
        for j in 1..points.len() {
            while points[j].at - points[first].at > longest + 1e-9 {
                first += 1;
            }
            for i in first..j {
                let length = points[j].at - points[i].at;
                if before[i].0.is_infinite() || length + 1e-9 < shortest {
                    continue;
                }
                let waste = f64::from(clip_seconds(length, &lengths)) - length;
                let cost = before[i].0 + SCENE_COST + points[j].cost() + WASTE_COST * waste.max(0.0);
                if cost < here[j].0 {
                    here[j] = (cost, i);
                }
            }
        }
    }
    let counts: Vec<usize> = match scenes {
        Some(_) => vec![most],
        None => (1..=most).collect(),
    };
    let chosen = counts
        .into_iter()
        .filter(|&k| best[k][end].0.is_finite())
        .min_by(|&a, &b| best[a][end].0.total_cmp(&best[b][end].0).then(a.cmp(&b)));
    let mut cuts = Vec::new();
    match chosen {
        Some(mut k) => {
            let mut j = end;
            while k > 0 {
                cuts.push(Cut { at: round_ms(points[j].at), on: points[j].on });
                j = best[k][j].1;
                k -= 1;
            }
            cuts.reverse();
        }
        // No way to cut the song into that many scenes on the grid (more scenes asked than
        // half-seconds): even parts, as many as asked.
        None => {
            let n = match scenes {
                Some(_) => most,
                None => ((points[end].at / longest).ceil() as usize).clamp(1, most),
            };
            let part = points[end].at / n as f64;
            cuts = (1..=n).map(|i| Cut { at: round_ms(part * i as f64), on: CutOn::Grid }).collect();
            if let Some(last) = cuts.last_mut() {
                *last = Cut { at: round_ms(points[end].at), on: points[end].on };
            }
        }
    }
    BeatPlan { song_seconds: round_ms(seconds), tempo_bpm: song.tempo_bpm, clip_lengths: lengths, cuts }
}

/// Where cuts may fall: 0, the beats (downbeats marked), the grid where no beat is within half a
/// step, and the end of the video (`until`: the song's end, or the last downbeat before the most
/// the scenes can cover). Ascending.
fn points(song: &SongBeats, until: f64) -> Vec<Point> {
    let is_down = |t: f64| song.downbeats.iter().any(|&d| (d - t).abs() < 1e-6);
    let mut beats: Vec<Point> = song
        .beats
        .iter()
        .copied()
        .filter(|t| t.is_finite() && *t > 0.0 && *t < until)
        .map(|at| Point { at, on: if is_down(at) { CutOn::Downbeat } else { CutOn::Beat } })
        .collect();
    beats.sort_by(|a, b| a.at.total_cmp(&b.at));
    // A song cut short by the scene limit ends on its last downbeat (else beat) in the last 4 s.
    let end = if until + 1e-9 < song.seconds {
        let near = |on: CutOn| beats.iter().rev().take_while(|p| until - p.at <= 4.0).find(|p| p.on == on).copied();
        near(CutOn::Downbeat).or_else(|| near(CutOn::Beat)).unwrap_or(Point { at: until, on: CutOn::Grid })
    } else {
        Point { at: until, on: CutOn::SongEnd }
    };
    beats.retain(|p| p.at < end.at - 1e-9);
    let mut points = vec![Point { at: 0.0, on: CutOn::Grid }];
    points.extend(beats.iter().copied());
    let mut t = GRID_SECONDS;
    while t < end.at - 1e-9 {
        let next = beats.partition_point(|b| b.at < t - GRID_SECONDS / 2.0);
        if beats.get(next).is_none_or(|b| b.at - t >= GRID_SECONDS / 2.0) {
            points.push(Point { at: t, on: CutOn::Grid });
        }
        t += GRID_SECONDS;
    }
    points.sort_by(|a, b| a.at.total_cmp(&b.at));
    points.dedup_by(|b, a| b.at - a.at < 1e-6);
    points.push(end);
    points
}

/// Seconds rounded to the millisecond (what a project stores).
fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A song of `seconds` at `bpm` in 4/4 from its first beat at `offset`.
    fn steady(seconds: f64, bpm: f64, offset: f64) -> SongBeats {
        let step = 60.0 / bpm;
        let beats: Vec<f64> = (0..).map(|i| offset + step * f64::from(i)).take_while(|&t| t < seconds).collect();
        let downbeats = beats.iter().step_by(4).copied().collect();
        SongBeats { seconds, tempo_bpm: Some(bpm), beats, downbeats }
    }

    fn lengths(plan: &BeatPlan) -> Vec<f64> {
        (0..plan.cuts.len()).map(|i| plan.length(i).expect("planned")).collect()
    }

    #[test]
    fn a_steady_song_is_cut_on_downbeats_into_scenes_no_longer_than_a_clip() {
        // 120 BPM: a bar is 2 s, so 8 s scenes are four bars, and every cut can be a downbeat.
        let song = steady(61.0, 120.0, 0.5);
        let plan = plan(&song, &[4, 6, 8], None);
        let last = plan.cuts.last().expect("cuts");
        assert_eq!(last.on, CutOn::SongEnd);
        assert_eq!(last.at, 61.0);
        for cut in &plan.cuts[..plan.cuts.len() - 1] {
            assert_eq!(cut.on, CutOn::Downbeat, "{plan:?}");
            assert!(song.downbeats.iter().any(|d| (d - cut.at).abs() < 1e-3));
        }
        for length in lengths(&plan) {
            assert!((MIN_SCENE_SECONDS..=8.0 + 1e-9).contains(&length), "{length} in {plan:?}");
        }
        // The fewest scenes that cover 61 s with 8 s clips.
        assert_eq!(plan.cuts.len(), 8, "{plan:?}");
    }

    #[test]
    fn a_given_scene_count_is_kept_and_still_lands_on_beats() {
        let song = steady(40.0, 100.0, 0.3);
        let plan = plan(&song, &[4, 6, 8], Some(6));
        assert_eq!(plan.cuts.len(), 6);
        assert_eq!(plan.cuts[5].at, 40.0);
        for cut in &plan.cuts[..5] {
            assert!(song.beats.iter().any(|b| (b - cut.at).abs() < 1e-3), "{cut:?} is on a beat");
        }
        assert!(lengths(&plan).iter().all(|&l| l <= 8.0 + 1e-9));
    }

    #[test]
    fn each_clip_is_the_shortest_allowed_that_covers_its_scene() {
        assert_eq!(clip_seconds(3.2, &[4, 6, 8]), 4);
        assert_eq!(clip_seconds(4.0, &[4, 6, 8]), 4);
        assert_eq!(clip_seconds(4.01, &[4, 6, 8]), 6);
        assert_eq!(clip_seconds(7.9, &[4, 6, 8]), 8);
        assert_eq!(clip_seconds(9.0, &[4, 6, 8]), 8);
        assert_eq!(clip_seconds(3.0, &[5]), 5);
        let plan = plan(&steady(30.0, 90.0, 0.2), &[4, 6, 8], None);
        for i in 0..plan.cuts.len() {
            let clip = f64::from(plan.clip_seconds(i).expect("clip"));
            assert!(clip + 1e-9 >= plan.length(i).expect("length"));
        }
        assert_eq!(clip_lengths("google/veo-3.1-fast", 8), vec![4, 6, 8]);
        assert_eq!(clip_lengths("veo-3.1-generate-preview", 5), vec![4, 6, 8]);
        assert_eq!(clip_lengths("kwaivgi/kling-v2.1", 5), vec![5]);
    }

    #[test]
    fn a_song_without_beats_is_cut_by_its_length_alone() {
        let song = SongBeats { seconds: 20.0, ..SongBeats::default() };
        let plan = plan(&song, &[4, 6, 8], None);
        assert_eq!(plan.cuts.len(), 3, "{plan:?}");
        assert_eq!(plan.cuts.last().map(|c| c.on), Some(CutOn::SongEnd));
        assert!(plan.cuts[..2].iter().all(|c| c.on == CutOn::Grid));
        // 20 s as 8 + 8 + 4: no rendered second wasted.
        let clips: u32 = (0..3).map(|i| plan.clip_seconds(i).expect("clip")).sum();
        assert_eq!(clips, 20, "{plan:?}");
    }

    #[test]
    fn a_long_song_is_capped_at_the_scene_limit_and_ends_on_a_downbeat() {
        let song = steady(600.0, 120.0, 0.0);
        let plan = plan(&song, &[4, 6, 8], None);
        assert_eq!(plan.cuts.len(), MAX_SCENES);
        let last = plan.cuts.last().expect("cuts");
        assert!(last.at <= 256.0 && last.at > 250.0, "{last:?}");
        assert_eq!(last.on, CutOn::Downbeat);
    }

    #[test]
    fn short_silent_or_odd_songs_still_get_a_plan() {
        for seconds in [0.0, 0.7, 1.9, 2.1, f64::NAN] {
            let plan = plan(&SongBeats { seconds, ..SongBeats::default() }, &[4, 6, 8], None);
            assert_eq!(plan.cuts.len(), 1, "{seconds}: {plan:?}");
        }
        let plan = plan(&SongBeats { seconds: 3.0, ..SongBeats::default() }, &[4, 6, 8], Some(32));
        assert!(!plan.cuts.is_empty() && plan.cuts.len() <= 32);
        assert!(plan.cuts.windows(2).all(|w| w[0].at < w[1].at), "{plan:?}");
        assert_eq!(plan.cuts.last().map(|c| c.at), Some(3.0));
    }

    #[test]
    fn a_beatless_stretch_is_crossed_on_the_grid() {
        // Beats only in the last 10 s of 30: the first 20 s need grid cuts.
        let mut song = steady(30.0, 120.0, 0.0);
        song.beats.retain(|&b| b >= 20.0);
        song.downbeats.retain(|&b| b >= 20.0);
        let plan = plan(&song, &[4, 6, 8], None);
        assert!(lengths(&plan).iter().all(|&l| l <= 8.0 + 1e-9), "{plan:?}");
        assert_eq!(plan.cuts.last().map(|c| c.at), Some(30.0));
    }
}
