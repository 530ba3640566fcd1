//! The final cut in the real binary: scene clips rendered by the mock provider (and fixture clips
//! planted in the store) cut into one stored MP4 through `stitch-videos` and the jobs API, and the
//! file checked by tools that are not ours: Debian's ffmpeg decodes it without a word, ffprobe
//! counts its frames and times its audio. Without ffmpeg the checks are skipped (a failure under
//! CI=true, which installs it).

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mp4_atom::{Decode, Moov};
use serde_json::{Value, json};
use support::server_process::ServerProcess;

const CLIP_640: &[u8] = include_bytes!("../media/cut/clip-640x360.mp4");
const CLIP_B_FRAMES: &[u8] = include_bytes!("../media/cut/clip-bframes-moov-last.mp4");
const SONGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/songs");

fn start() -> ServerProcess {
    ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start mvgen")
}

/// Whether ffmpeg and ffprobe run; without them the file checks are skipped, under CI=true failed.
fn checkers() -> bool {
    let runs = |tool: &str| Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    let found = runs("ffmpeg") && runs("ffprobe");
    if !found {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI installs ffmpeg to check the final cut");
        eprintln!("final cut checks skipped: ffmpeg/ffprobe not installed");
    }
    found
}

async fn post(client: &reqwest::Client, url: String, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = client.post(url).json(body).send().await.expect("request");
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// A scene rendered by the mock provider, 2 s long (the embedded clip itself): its stored video id.
async fn mock_scene(client: &reqwest::Client, base: &str) -> String {
    let body = json!({"prompt": "a scene", "duration": 2});
    let (status, _, body) = post(client, format!("{base}/api/mv/generate_video"), &body).await;
    assert_eq!(status, 200, "{body}");
    body["video_id"].as_str().expect("a video id").to_string()
}

/// A fixture clip stored as a video the way a render is, under a fresh id.
fn plant(server: &ServerProcess, bytes: &[u8]) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let dir = server.output_dir().join("videos");
    std::fs::create_dir_all(&dir).expect("videos dir");
    std::fs::write(dir.join(format!("{id}.mp4")), bytes).expect("plant the clip");
    id
}

/// The stored video `id`, downloaded to `dir/cut.mp4`.
async fn download(client: &reqwest::Client, base: &str, id: &str, dir: &Path) -> std::path::PathBuf {
    let resp = client.get(format!("{base}/api/mv/get_video/{id}")).send().await.expect("download");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("video/mp4"));
    let path = dir.join(format!("{id}.mp4"));
    std::fs::write(&path, resp.bytes().await.expect("bytes")).expect("write");
    path
}

/// ffmpeg decodes the whole file and has nothing to say.
fn decodes_cleanly(path: &Path) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(["-f", "null", "-"]).output();
    let out = out.expect("ffmpeg runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "ffmpeg found errors in the cut");
}

/// What ffprobe says of stream `stream` (`v:0`, `a:0`): `entry` (`nb_read_frames`, `duration`,
/// `codec_name`), empty when there is no such stream.
fn probe(path: &Path, stream: &str, entry: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", stream, "-show_entries"])
        .arg(format!("stream={entry}"))
        .args(["-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn seconds(text: String) -> f64 {
    text.parse().unwrap_or_else(|_| panic!("a duration, not {text:?}"))
}

/// The cut's `moov`, read with the same box codec mvgen writes with but checked against ffprobe's
/// reading of the same file above.
fn moov_of(path: &Path) -> Moov {
    let bytes = std::fs::read(path).expect("read");
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if &bytes[at + 4..at + 8] == b"moov" {
            return Moov::decode(&mut std::io::Cursor::new(&bytes[at..at + size])).expect("a moov");
        }
        assert_ne!(&bytes[at + 4..at + 8], b"mdat", "faststart: the moov comes before the mdat");
        at += size;
    }
    panic!("no moov");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_mock_scenes_cut_into_one_video_with_their_audio() {
    let server = start();
    let base = server.base.clone();
    let client = crate::support::http_client();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(mock_scene(&client, &base).await);
    }

    let (status, headers, body) =
        post(&client, format!("{base}/api/mv/stitch-videos"), &json!({"video_ids": ids})).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("x-job-id"), "a cut is a job like every generation");
    assert_eq!(body["audio_overlay_applied"], false);
    assert_eq!(body["audio_overlay_warning"], Value::Null);
    let metadata = &body["metadata"];
    assert_eq!(metadata["input_video_ids"], json!(ids));
    assert_eq!(metadata["num_videos_stitched"], 3);
    assert_eq!(metadata["video_duration_seconds"], 6.0);
    assert_eq!(
        metadata["clips"][2],
        json!({"video_id": ids[2], "in_seconds": 0.0, "out_seconds": 2.0, "starts_at": 4.0})
    );
    let id = body["video_id"].as_str().expect("the cut's id");
    assert_eq!(body["video_url"], format!("/api/mv/get_video/{id}"));

    let resp = client.get(format!("{base}/api/mv/get_video/{id}/info")).send().await.expect("info");
    let info: Value = resp.json().await.expect("json");
    assert_eq!(info["duration_seconds"], 6.0, "{info}");
    assert_eq!(info["cut_from"].as_array().map(Vec::len), Some(3), "{info}");
    assert_eq!(info["size"], metadata["size_bytes"]);

    if !checkers() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cut = download(&client, &base, id, dir.path()).await;
    decodes_cleanly(&cut);
    assert_eq!(probe(&cut, "v:0", "nb_read_frames"), "72", "every clip's 24 frames");
    assert_eq!(probe(&cut, "a:0", "codec_name"), "aac");
    let audio = seconds(probe(&cut, "a:0", "duration"));
    assert!((audio - 6.0).abs() <= 1024.0 / 44100.0, "the clips' audio ({audio} s) runs with the video to one frame");

    // Without their audio: a video-only file.
    let body = json!({"video_ids": ids, "suppress_video_audio": true});
    let (status, _, body) = post(&client, format!("{base}/api/mv/stitch-videos"), &body).await;
    assert_eq!(status, 200, "{body}");
    let silent = download(&client, &base, body["video_id"].as_str().expect("id"), dir.path()).await;
    decodes_cleanly(&silent);
    assert_eq!(probe(&silent, "a", "codec_name"), "", "no audio stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_clips_from_two_encoders_share_one_track() {
    let server = start();
    let base = server.base.clone();
    let client = crate::support::http_client();
    let mock = mock_scene(&client, &base).await;
    // B-frames, an edit list, the moov after the mdat, other parameter sets.
    let other = plant(&server, CLIP_B_FRAMES);

    let clips = json!([
        {"video_id": mock, "out_seconds": 1.0},
        {"video_id": other, "in_seconds": 0.5, "out_seconds": 1.5},
        {"video_id": mock, "in_seconds": 1.2},
    ]);
    let (status, _, body) = post(&client, format!("{base}/api/mv/stitch-videos"), &json!({"clips": clips})).await;
    assert_eq!(status, 200, "{body}");
    let cut_clips = body["metadata"]["clips"].as_array().expect("clips").clone();
    // In points move back to a keyframe (the B-frame clip has one every second, the mock clip one
    // at 0); out points end at a frame.
    assert_eq!((cut_clips[0]["in_seconds"].as_f64(), cut_clips[0]["out_seconds"].as_f64()), (Some(0.0), Some(1.0)));
    assert_eq!(cut_clips[1]["in_seconds"].as_f64(), Some(0.0));
    assert_eq!(cut_clips[2]["in_seconds"].as_f64(), Some(0.0), "the mock clip's only keyframe is its first frame");
    let frames: f64 = cut_clips
        .iter()
        .map(|c| c["out_seconds"].as_f64().unwrap_or(0.0) - c["in_seconds"].as_f64().unwrap_or(0.0))
        .sum();
    let duration = body["metadata"]["video_duration_seconds"].as_f64().expect("duration");
    assert!((duration - frames).abs() < 1e-6, "{duration} s is the sum of the effective trims, {frames} s");

    if !checkers() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cut = download(&client, &base, body["video_id"].as_str().expect("id"), dir.path()).await;
    decodes_cleanly(&cut);
    let expected_frames = (frames * 12.0).round() as u64;
    assert_eq!(probe(&cut, "v:0", "nb_read_frames"), expected_frames.to_string(), "the trimmed clips' frames");
    let audio = seconds(probe(&cut, "a:0", "duration"));
    assert!((audio - duration).abs() <= 1024.0 / 44100.0, "audio {audio} s, video {duration} s");
    let moov = moov_of(&cut);
    let video = moov.trak.iter().find(|t| t.mdia.hdlr.handler == mp4_atom::FourCC::new(b"vide")).expect("video");
    assert_eq!(video.mdia.minf.stbl.stsd.codecs.len(), 2, "each encoder's parameter sets keep their own entry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cuts_are_refused_before_any_work_and_a_missing_song_is_a_warning() {
    let server = start();
    let base = server.base.clone();
    let client = crate::support::http_client();
    let url = format!("{base}/api/mv/stitch-videos");
    let mock = mock_scene(&client, &base).await;

    let (status, _, body) = post(&client, url.clone(), &json!({"video_ids": []})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = post(&client, url.clone(), &json!({"video_ids": [mock, "../etc/passwd"]})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"]["message"], "Invalid video_id format: ../etc/passwd");
    assert_eq!(body["detail"]["details"]["field"], "clips[1].video_id");

    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, headers, body) = post(&client, url.clone(), &json!({"video_ids": [mock, unknown]})).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"]["message"].as_str().unwrap_or("").contains(&unknown), "{body}");
    assert_eq!(body["detail"]["details"]["field"], "clips[1].video_id");
    assert!(!headers.contains_key("x-job-id"), "refused before a job was stored");

    let wide = plant(&server, CLIP_640);
    let (status, _, body) = post(&client, url.clone(), &json!({"video_ids": [mock, wide]})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"]["error"], "ClipsIncompatible");
    let message = body["detail"]["message"].as_str().unwrap_or("");
    assert!(message.contains(&mock) && message.contains(&wide) && message.contains("640x360"), "{message}");

    let (status, _, body) =
        post(&client, url.clone(), &json!({"clips": [{"video_id": mock, "in_seconds": 5.0}]})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"]["message"].as_str().unwrap_or("").contains("in_seconds 5"), "{body}");

    // An end both ways is ambiguous: refused naming the clip (end_at_seconds silently won before).
    let both = json!({"clips": [{"video_id": mock}, {"video_id": mock, "out_seconds": 1.5, "end_at_seconds": 3.0}]});
    let (status, headers, body) = post(&client, url.clone(), &both).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["detail"]["details"], "clips[1].end_at_seconds", "{body}");
    assert!(!headers.contains_key("x-job-id"), "refused before a job was stored");

    // A song that is not stored: their warning, and the cut made without it.
    let song = uuid::Uuid::new_v4().to_string();
    let (status, _, body) = post(&client, url.clone(), &json!({"video_ids": [mock], "audio_overlay_id": song})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["audio_overlay_applied"], false);
    assert_eq!(body["audio_overlay_warning"], format!("Audio file with ID '{song}' not found"));

    // Through the jobs API, kind final_cut.
    let job = json!({"kind": "final_cut", "input": {"video_ids": [mock, mock]}});
    let (status, _, body) = post(&client, format!("{base}/api/mv/jobs"), &job).await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("job id").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let job: Value =
            client.get(format!("{base}/api/mv/jobs/{id}")).send().await.expect("get").json().await.expect("json");
        if job["status"] == "succeeded" {
            break job;
        }
        assert_ne!(job["status"], "failed", "{job}");
        assert!(Instant::now() < deadline, "the cut job did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["kind"], "final_cut");
    assert_eq!(done["output"]["metadata"]["video_duration_seconds"], 4.0);
}

/// Each accepted song format (uploaded with upload_audio) under a cut of three mock scenes: the
/// song's own codec in the file, looped to the video's end within one audio frame, or ending where
/// it ends when not looped; ffmpeg decodes every one without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_song_format_goes_under_the_cut_as_it_is() {
    let server = start();
    let base = server.base.clone();
    let client = crate::support::http_client();
    let mut scenes = Vec::new();
    for _ in 0..3 {
        scenes.push(mock_scene(&client, &base).await);
    }
    let check = checkers();
    let dir = tempfile::tempdir().expect("tempdir");
    // file, the codec ffprobe names, the longest frame in seconds (the tolerance).
    let songs = [
        ("song.mp3", "mp3", 1152.0 / 44100.0),
        ("song.aac", "aac", 1024.0 / 48000.0),
        ("song.m4a", "aac", 1024.0 / 44100.0),
        ("song.opus", "opus", 0.06),
        ("song.webm", "opus", 0.06),
        ("song.flac", "flac", 4608.0 / 22050.0),
    ];
    for (file, codec, frame) in songs {
        let bytes = std::fs::read(Path::new(SONGS).join(file)).expect("fixture");
        // A raw body (the type is read from the bytes, whatever audio/* the header says).
        let resp = client.post(format!("{base}/api/mv/upload_audio")).header("content-type", "audio/mpeg").body(bytes);
        let resp = resp.send().await.expect("upload");
        assert_eq!(resp.status(), 200, "{file}");
        let song: Value = resp.json().await.expect("json");
        let song_seconds = song["duration_seconds"].as_f64().expect("duration");
        for looped in [true, false] {
            let body = json!({"video_ids": scenes, "audio_overlay_id": song["audio_id"], "loop_audio": looped});
            let (status, _, answer) = post(&client, format!("{base}/api/mv/stitch-videos"), &body).await;
            assert_eq!(status, 200, "{file}: {answer}");
            assert_eq!(answer["audio_overlay_applied"], true, "{file}");
            let expected = if looped { 6.0 } else { song_seconds.min(6.0) };
            let said = answer["metadata"]["audio_duration_seconds"].as_f64().expect("audio duration");
            assert!((said - expected).abs() <= frame, "{file} looped={looped}: said {said} s, expected {expected}");
            if !check {
                continue;
            }
            let cut = download(&client, &base, answer["video_id"].as_str().expect("id"), dir.path()).await;
            decodes_cleanly(&cut);
            assert_eq!(probe(&cut, "a:0", "codec_name"), codec, "{file}");
            assert_eq!(probe(&cut, "v:0", "nb_read_frames"), "72", "{file}");
            let audio = seconds(probe(&cut, "a:0", "duration"));
            assert!(
                (audio - expected).abs() <= frame,
                "{file} looped={looped}: ffprobe says {audio} s, expected {expected}"
            );
        }
    }
}
