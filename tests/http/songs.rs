//! Songs for the final cut, through the real binary: `upload_audio` (raw and multipart), what it
//! refuses and why, its cap, `get_audio` and its `/info`. That each format's frames make a track
//! ffmpeg plays, checked by ffmpeg and ffprobe, is proved through the real muxer: a cut with each
//! song under it (tests/e2e/final_cut.rs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use serde_json::Value;

use crate::support::client::Client;
use crate::support::server_process::ServerProcess;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/media/songs");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// (file, content_type served, codec, sample rate, channels, duration from ffprobe's packet count)
// The durations: ffprobe's packets times their samples, less the priming each file declares (the
// M4A's edit list, 1024; Opus's pre-skip, 312).
const SONGS: &[(&str, &str, &str, u64, u64, f64)] = &[
    ("song.mp3", "audio/mpeg", "mp3", 44100, 1, 116.0 * 1152.0 / 44100.0),
    ("song.aac", "audio/aac", "aac", 48000, 2, 142.0 * 1024.0 / 48000.0),
    ("song.m4a", "audio/mp4", "aac", 44100, 1, 130.0 * 1024.0 / 44100.0),
    ("song.opus", "audio/ogg", "opus", 48000, 2, (151.0 * 960.0 - 312.0) / 48000.0),
    ("song.webm", "audio/webm", "opus", 48000, 1, (151.0 * 960.0 - 312.0) / 48000.0),
    ("song.flac", "audio/flac", "flac", 22050, 1, 2.0),
];

fn upload_raw(client: &Client, bytes: Vec<u8>, content_type: &str) -> (u16, Value) {
    let request = client
        .http
        .post(format!("{}/api/mv/upload_audio", client.base))
        .header("content-type", content_type)
        .body(bytes);
    let (status, _, text) = client.send(request);
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn upload_multipart(client: &Client, bytes: &[u8], part: &str) -> (u16, Value) {
    let boundary = "mvgen-test-boundary-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nmy song\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"{part}\"; filename=\"song.wav\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    upload_raw(client, body, &format!("multipart/form-data; boundary={boundary}"))
}

fn message(body: &Value) -> String {
    body["detail"]["message"].as_str().unwrap_or_default().to_string()
}

/// Files (and records) left under the store's audio directories.
fn stored(server: &ServerProcess) -> Vec<String> {
    let out = server.output_dir();
    [out.join("audio"), out.join("records").join("audio")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).into_iter().flatten().flatten())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_accepted_format_uploads_and_its_info_matches() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    for (i, (file, content_type, codec, rate, channels, duration)) in SONGS.iter().enumerate() {
        let bytes = fixture(file);
        // Half raw (with a misleading type: the bytes decide), half multipart.
        let (status, body) = if i % 2 == 0 {
            upload_raw(&client, bytes.clone(), "audio/wav")
        } else {
            upload_multipart(&client, &bytes, "file")
        };
        assert_eq!(status, 200, "{file}: {body}");
        assert_eq!(body["content_type"], *content_type, "{file}");
        assert_eq!(body["codec"], *codec, "{file}");
        assert_eq!((body["sample_rate"].as_u64(), body["channels"].as_u64()), (Some(*rate), Some(*channels)), "{file}");
        let got = body["duration_seconds"].as_f64().unwrap_or(-1.0);
        assert!((got - duration).abs() < 1e-6, "{file}: {got} s, want {duration} s");
        assert_eq!(body["size"].as_u64(), Some(bytes.len() as u64), "{file}");

        let id = body["audio_id"].as_str().expect("audio_id").to_string();
        let (status, _, info) = client.send(client.http.get(format!("{}/api/mv/get_audio/{id}/info", client.base)));
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&info).expect("json"),
            body,
            "{file}: /info repeats the upload's answer"
        );
        let (status, headers, _) = client.send(client.http.get(format!("{}/api/mv/get_audio/{id}", client.base)));
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], *content_type);
        let served = client.rt.block_on(async {
            let resp = client.http.get(format!("{}/api/mv/get_audio/{id}", client.base)).send().await.expect("get");
            resp.bytes().await.expect("bytes")
        });
        assert_eq!(served[..], bytes[..], "{file}: served as uploaded");
    }
}

/// A FLAC in MP4 whose container claims 541 hours (every `stts` delta 2^31-1, its STREAMINFO's
/// sample count "unknown") lasts what its frames' own headers say: 2 s, as ffprobe reads it.
/// Before the fix its answer (and `/info`, and a project's beat plan) said 1 947 831 s.
#[test]
fn a_flac_in_mp4_whose_container_lies_about_its_length_lasts_what_its_frames_say() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let (status, body) = upload_raw(&client, fixture("flac-lying.m4a"), "audio/mp4");
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["codec"].as_str(), body["content_type"].as_str()), (Some("flac"), Some("audio/mp4")), "{body}");
    let got = body["duration_seconds"].as_f64().unwrap_or(-1.0);
    assert!((got - 2.0).abs() < 1e-6, "{got} s, want the frames' 2 s: {body}");
}

/// An M4A whose edit list says the first 10 000 000 samples are priming, more than the song's
/// 134 144, would play nothing: refused as corrupt (400), nothing kept. Before the fix it was
/// stored as a song of 0.0 s, and a project made with it planned one cut at 0:00 and completed
/// a video without its song.
#[test]
fn an_m4a_whose_edit_list_hides_every_sample_is_refused() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let mut bytes = fixture("song.m4a");
    let at = bytes.windows(4).position(|w| w == b"elst").expect("an edit list") - 4;
    assert_eq!((bytes[at + 8], &bytes[at + 12..at + 16]), (0, &[0, 0, 0, 1][..]), "one version-0 entry");
    bytes[at + 20..at + 24].copy_from_slice(&10_000_000i32.to_be_bytes());
    let (status, body) = upload_raw(&client, bytes, "audio/mp4");
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("priming"), "{body}");
    assert_eq!(stored(&server), Vec::<String>::new(), "the refused song is kept");
}

#[test]
fn refused_songs_say_what_they_are_and_leave_nothing() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let mp3 = fixture("song.mp3");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    let clip = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/mock-clip.mp4")).expect("clip");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("wav", fixture("song.wav"), 415, "the song is WAV (RIFF/WAVE)"),
        ("png", png, 415, "the song is a PNG image"),
        ("text", b"Never gonna give you up\n".to_vec(), 415, "the song is text"),
        ("video", clip, 415, "the song is a video file (MP4 with a video track)"),
        ("cut mp3", mp3[..mp3.len() * 2 / 3].to_vec(), 400, "the song is truncated or corrupt"),
        ("empty", Vec::new(), 400, "the song is empty"),
    ];
    for (what, bytes, want, says) in cases {
        for multipart in [false, true] {
            let (status, body) = if multipart {
                upload_multipart(&client, &bytes, "file")
            } else {
                upload_raw(&client, bytes.clone(), "audio/mpeg")
            };
            assert_eq!(status, want, "{what} (multipart: {multipart}): {body}");
            let text = message(&body);
            assert!(text.starts_with(says), "{what}: {text}");
            if what != "empty" {
                assert!(text.ends_with("accepted: MP3, AAC (M4A or ADTS), Opus (Ogg or WebM), FLAC"), "{what}: {text}");
            }
        }
        assert_eq!(stored(&server), Vec::<String>::new(), "{what}: a refused song leaves no file or record");
    }
    // Neither multipart nor audio/*, and multipart without a `file` part.
    let (status, body) = upload_raw(&client, mp3.clone(), "application/json");
    assert_eq!(status, 415, "{body}");
    assert!(message(&body).contains("multipart/form-data with a `file` part"), "{body}");
    let (status, body) = upload_multipart(&client, &mp3, "song");
    assert_eq!(status, 400, "{body}");
    assert!(message(&body).contains("no `file` part"), "{body}");
    assert_eq!(stored(&server), Vec::<String>::new());
}

/// An HTTP/1.1 request written by hand, so the body can go chunked without a Content-Length.
fn post_chunked(base: &str, path: &str, body: &[u8]) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: audio/aac\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    for chunk in body.chunks(4096) {
        // The server may answer and close as soon as the cap is passed.
        if stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
            || stream.write_all(chunk).is_err()
            || stream.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

#[test]
fn a_song_over_the_cap_is_413_declared_or_chunked() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock"), ("MV_MAX_AUDIO_BYTES", "20000")]).expect("start");
    let client = Client::new(&server);
    let aac = fixture("song.aac");
    assert!(aac.len() > 20_000, "the fixture must be over the cap");
    // Declared: refused from Content-Length when it is past the cap and any multipart overhead.
    let big = [aac.clone(), aac.clone(), aac.clone(), aac.clone()].concat();
    let (status, body) = upload_raw(&client, big, "audio/aac");
    assert_eq!(status, 413, "{body}");
    assert!(message(&body).contains("larger than the 20000 bytes allowed (MV_MAX_AUDIO_BYTES)"), "{body}");
    // Declared but within the overhead: the stream's own count refuses it.
    let (status, body) = upload_raw(&client, aac.clone(), "audio/aac");
    assert_eq!(status, 413, "{body}");
    let (status, answer) = post_chunked(&server.base, "/api/mv/upload_audio", &aac);
    assert_eq!(status, 413, "{answer}");
    assert!(answer.contains("MV_MAX_AUDIO_BYTES"), "{answer}");
    assert_eq!(stored(&server), Vec::<String>::new(), "nothing is left of a refused upload");
    // Under the cap, chunked works.
    let small = fixture("song.mp3");
    let (status, answer) = post_chunked(&server.base, "/api/mv/upload_audio", &small);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn get_audio_serves_ranges_and_refuses_unknown_and_malformed_ids() {
    let server = ServerProcess::start(&[("MV_PROVIDER", "mock")]).expect("start");
    let client = Client::new(&server);
    let flac = fixture("song.flac");
    let (status, body) = upload_raw(&client, flac.clone(), "audio/flac");
    assert_eq!(status, 200, "{body}");
    let id = body["audio_id"].as_str().expect("id");
    let url = format!("{}/api/mv/get_audio/{id}", client.base);
    let (status, headers, _) = client.send(client.http.get(&url).header("range", "bytes=100-199"));
    assert_eq!(status, 206);
    assert_eq!(headers["content-range"], format!("bytes 100-199/{}", flac.len()).as_str());
    let part = client.rt.block_on(async {
        client.http.get(&url).header("range", "bytes=100-199").send().await.expect("get").bytes().await.expect("body")
    });
    assert_eq!(part[..], flac[100..200]);
    let etag = headers["etag"].to_str().expect("etag").to_string();
    assert_eq!(client.send(client.http.get(&url).header("if-none-match", etag)).0, 304);
    assert_eq!(client.send(client.http.get(format!("{url}?redirect=true"))).0, 200, "file:// serves the file");

    let unknown = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
    for path in [format!("get_audio/{unknown}"), format!("get_audio/{unknown}/info")] {
        let (status, _, text) = client.send(client.http.get(format!("{}/api/mv/{path}", client.base)));
        assert_eq!(status, 404, "{path}: {text}");
    }
    for path in ["get_audio/not-an-id", "get_audio/not-an-id/info", "get_audio/..%2f..%2fjobs.db"] {
        let (status, _, text) = client.send(client.http.get(format!("{}/api/mv/{path}", client.base)));
        assert_eq!(status, 400, "{path}: {text}");
    }
    // A file in the store without a record (a crash between the write and the probe) is no song.
    let planted = server.output_dir().join("audio").join(format!("{unknown}.flac"));
    std::fs::write(&planted, &flac).expect("plant");
    assert_eq!(client.send(client.http.get(format!("{}/api/mv/get_audio/{unknown}", client.base))).0, 404);
}
