//! Songs for the final cut: proof, once per format, by tools that are not ours that
//! `media::song` hands out a playable MP4 track: the frames written into a minimal MP4
//! (tests/support/song_mp4.rs) decode in ffmpeg without a message, and ffprobe reads the duration
//! mvgen computed.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::song_mp4::song_mp4;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/media");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// (file, content_type served, codec, sample rate, channels, duration from ffprobe's packet count)
const SONGS: &[(&str, &str, &str, u64, u64, f64)] = &[
    ("song.mp3", "audio/mpeg", "mp3", 44100, 1, 116.0 * 1152.0 / 44100.0),
    ("song.aac", "audio/aac", "aac", 48000, 2, 142.0 * 1024.0 / 48000.0),
    ("song.m4a", "audio/mp4", "aac", 44100, 1, 131.0 * 1024.0 / 44100.0),
    ("song.opus", "audio/ogg", "opus", 48000, 2, 151.0 * 960.0 / 48000.0),
    ("song.webm", "audio/webm", "opus", 48000, 1, 151.0 * 960.0 / 48000.0),
    ("song.flac", "audio/flac", "flac", 22050, 1, 2.0),
];

/// ffmpeg and ffprobe from the system (Debian's, installed by `.ci/run`); `None` (a skip line)
/// without them under plain `cargo test`, a failure under `CI=true`.
fn ffmpeg_tools() -> Option<()> {
    let runs = |tool: &str| Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    if runs("ffmpeg") && runs("ffprobe") {
        return Some(());
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "ffmpeg and ffprobe are required under CI=true");
    eprintln!("skipping: ffmpeg/ffprobe not installed (apt-get install ffmpeg)");
    None
}

#[test]
fn each_song_format_makes_an_mp4_track_ffmpeg_plays() {
    use mvgen::media::song::{SeekableSource, SongTrack};
    if ffmpeg_tools().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, ..) in SONGS {
        let bytes = fixture(file);
        let len = bytes.len() as u64;
        let track = SongTrack::open(SeekableSource::boxed(std::io::Cursor::new(bytes), len)).expect("open");
        let duration = track.info.duration_seconds;
        let out = dir.path().join(format!("{file}.mp4"));
        std::fs::write(&out, song_mp4(track)).expect("write");

        let decoded = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(&out).args(["-f", "null", "-"]).output();
        let decoded = decoded.expect("ffmpeg");
        assert!(decoded.status.success(), "{file}: ffmpeg failed");
        assert_eq!(String::from_utf8_lossy(&decoded.stderr), "", "{file}: ffmpeg complained");

        let probed = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name,duration", "-of", "json"])
            .arg(&out)
            .output()
            .expect("ffprobe");
        let probed: Value = serde_json::from_slice(&probed.stdout).expect("ffprobe json");
        let stream = &probed["streams"][0];
        let want_codec = match *file {
            "song.mp3" => "mp3",
            "song.flac" => "flac",
            "song.opus" | "song.webm" => "opus",
            _ => "aac",
        };
        assert_eq!(stream["codec_name"], want_codec, "{file}: {probed}");
        let seconds: f64 = stream["duration"].as_str().and_then(|s| s.parse().ok()).expect("duration");
        assert!((seconds - duration).abs() < 0.001, "{file}: ffprobe says {seconds} s, mvgen {duration} s");
    }
}
