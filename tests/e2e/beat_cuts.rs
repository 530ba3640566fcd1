//! Cuts on the beat (issue 25, point 2) in the real binary with the mock providers: a project's
//! song decides how many scenes it has and where each is cut; each clip is rendered at the
//! shortest length covering its place; the final cut's clips start within one video frame of
//! their beats (ffprobe finds a keyframe there) and the video ends with the song; a trim
//! overrides the plan for its scene only.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::projects::{Ui, ffprobe, follow_events};
use crate::support::server_process::ServerProcess;

const BEATS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/beats");

/// The mock clip's frame rate (`assets/README.md`): one frame is 1/12 s.
const FRAME: f64 = 1.0 / 12.0;

fn song() -> Vec<u8> {
    std::fs::read(Path::new(BEATS).join("02_bwv12_7_120.mp3")).expect("fixture")
}

fn seconds(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("seconds: {v}"))
}

/// Downloads `url` of `ui` into `dir`.
async fn download(ui: &Ui, url: &str, dir: &Path, name: &str) -> PathBuf {
    let bytes = ui.client.get(format!("{}{url}", ui.base)).send().await.expect("get").bytes().await.expect("bytes");
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write");
    path
}

/// ffprobe's length of `path`'s video stream.
fn video_seconds(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a duration")
}

/// The presentation times of `path`'s keyframes, as ffprobe reads them.
fn keyframes(path: &Path) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey", "-show_entries", "frame=pts_time"])
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().trim_end_matches(',').parse().ok()).collect()
}

/// The final cut of `project`: as long as the song (to a frame), and a clip starting (on a
/// keyframe) within a frame of every cut from the `from`th on, but the last.
async fn check_cut(ui: &Ui, project: &Value, from: usize, dir: &Path, song_seconds: f64) {
    let cut = download(ui, project["finalOutputUrl"].as_str().expect("final"), dir, "cut.mp4").await;
    let length = video_seconds(&cut);
    assert!((length - song_seconds).abs() <= FRAME, "the video lasts {length} s, the song {song_seconds} s");
    let keys = keyframes(&cut);
    let cuts = project["beatPlan"]["cuts"].as_array().expect("cuts");
    for cut_at in &cuts[from..cuts.len() - 1] {
        let at = seconds(&cut_at["at"]);
        assert!(keys.iter().any(|k| (k - at).abs() <= FRAME), "a clip starts within a frame of {at}: {keys:?}");
    }
}

async fn made(ui: &Ui, fields: &[(&str, &str)]) -> Value {
    let (status, created) = ui.create(fields, Some(&song())).await;
    assert_eq!(status, 201, "{created}");
    let id = created["projectId"].as_str().expect("id").to_owned();
    let (status, started) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200, "{started}");
    let events = follow_events(ui, &id, None).await;
    let last = events.last().expect("events").1.clone();
    assert_eq!(last["status"], "completed", "{last}");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_song_decides_the_scenes_and_every_cut_lands_on_its_beat() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let ui = Ui::new(&server);
    let project = made(&ui, &[("mode", "music-video"), ("prompt", "a fox dances in the rain")]).await;
    let id = project["projectId"].as_str().expect("id");
    let (status, _, song) =
        ui.get(&format!("/api/mv/get_audio/{}/info", project["audioId"].as_str().expect("song"))).await;
    assert_eq!(status, 200, "{song}");
    let beats: Vec<f64> = song["beats"].as_array().expect("beats").iter().map(seconds).collect();
    let downbeats: Vec<f64> = song["downbeats"].as_array().expect("downbeats").iter().map(seconds).collect();
    assert!(beats.len() > 10, "the fixture has a beat: {song}");

    // How many scenes: the song's 14.8 s with 8 s clips at most is two or more, not the
    // flavor's six.
    let plan = &project["beatPlan"];
    let cuts = plan["cuts"].as_array().expect("a beat plan");
    let scenes = project["scenes"].as_array().expect("scenes");
    assert_eq!(scenes.len(), cuts.len(), "one scene per cut: {plan}");
    assert!((2..6).contains(&scenes.len()), "{plan}");
    assert_eq!(plan["clipLengths"], json!([4, 6, 8]), "Veo's clip lengths");
    let song_seconds = seconds(&song["duration_seconds"]);
    assert!((seconds(&plan["songSeconds"]) - song_seconds).abs() < 1e-3);
    let last = cuts.last().expect("cuts");
    assert_eq!((last["on"].as_str(), seconds(&last["at"])), (Some("song_end"), seconds(&plan["songSeconds"])));
    for cut in &cuts[..cuts.len() - 1] {
        let at = seconds(&cut["at"]);
        let on = |set: &[f64]| set.iter().any(|b| (b - at).abs() < 1e-3);
        match cut["on"].as_str() {
            Some("downbeat") => assert!(on(&downbeats), "{cut} is a downbeat of {downbeats:?}"),
            Some("beat") => assert!(on(&beats), "{cut} is a beat"),
            other => panic!("a cut on {other:?} in a song with beats: {plan}"),
        }
    }
    let mut start = 0.0;
    for (scene, cut) in scenes.iter().zip(cuts) {
        assert_eq!(scene["onBeat"], true, "{scene}");
        assert_eq!(&scene["cut"], cut, "each scene shows its cut");
        let length = seconds(&scene["duration"]);
        assert!((length - (seconds(&cut["at"]) - start)).abs() < 1e-3, "its place's length: {scene}");
        assert!((2.0..=8.0).contains(&length), "{length} s");
        start = seconds(&cut["at"]);
    }

    if !ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // Each clip is the shortest of 4, 6 or 8 s that covers its place.
    for scene in scenes {
        let length = seconds(&scene["duration"]);
        let clip = download(&ui, scene["originalVideoClipUrl"].as_str().expect("clip"), dir.path(), "clip.mp4").await;
        let wanted = [4.0, 6.0, 8.0].into_iter().find(|&l| l + 1e-6 >= length).expect("a length");
        assert!((video_seconds(&clip) - wanted).abs() < 0.01, "scene of {length} s rendered as {wanted} s");
    }
    // The cut: each later clip starts (on a keyframe) within a frame of the cut before it, and
    // the video ends with the song.
    check_cut(&ui, &project, 0, dir.path(), song_seconds).await;

    // A trim decides its own scene's end; the cuts after it stay on their beats.
    let first = &scenes[0];
    let out = seconds(&first["duration"]) - 0.7;
    let trim = json!({ "trimPoints": { "in": 0.0, "out": out } });
    let (status, trimmed) = ui.post(&format!("/api/mv/projects/{id}/scenes/{}/trim", first["sequence"]), &trim).await;
    assert_eq!(status, 200, "{trimmed}");
    assert_eq!((trimmed["onBeat"].as_bool(), &trimmed["cut"]), (Some(false), &Value::Null), "{trimmed}");
    assert!((seconds(&trimmed["duration"]) - out).abs() < 1e-3, "{trimmed}");
    let (status, _) = ui.post(&format!("/api/mv/projects/{id}/generate"), &json!({})).await;
    assert_eq!(status, 200);
    let recut = follow_events(&ui, id, None).await.last().expect("events").1.clone();
    assert_eq!(recut["status"], "completed", "{recut}");
    check_cut(&ui, &recut, 1, dir.path(), song_seconds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_count_asked_for_is_kept_and_planned_on_the_beats() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen");
    let ui = Ui::new(&server);
    let base = [("mode", "music-video"), ("prompt", "a fox dances in the rain")];
    for bad in ["0", "33", "three", "2.5"] {
        let (status, body) = ui.create(&[base[0], base[1], ("numberOfScenes", bad)], Some(&song())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains("numberOfScenes"), "names the field: {body}");
    }
    let project = made(&ui, &[base[0], base[1], ("numberOfScenes", "4")]).await;
    assert_eq!(project["numberOfScenes"], 4);
    let scenes = project["scenes"].as_array().expect("scenes");
    assert_eq!(scenes.len(), 4, "{project}");
    assert!(scenes.iter().all(|s| s["onBeat"] == true && seconds(&s["duration"]) <= 8.0), "{project}");
    let total: f64 = scenes.iter().map(|s| seconds(&s["duration"])).sum();
    assert!((total - seconds(&project["beatPlan"]["songSeconds"])).abs() < 1e-3, "the scenes fill the song");
}
