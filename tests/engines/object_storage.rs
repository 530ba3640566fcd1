//! Outputs in a real S3-compatible store (SeaweedFS `weed mini` on 127.0.0.1, see
//! tests/support/seaweed.rs): files round-trip through the API with ranges and conditionals, a
//! redirect goes to a presigned URL that works, a streamed put of many parts is stored whole and a
//! cut one leaves nothing, and a store that goes down fails requests with a retryable 503 and
//! loses nothing; a song is probed by reading it back from the store, and a refused one deleted.
//! Skipped (with a line) without `weed`; under `CI=true` a missing `weed` fails.

use crate::support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use futures_util::StreamExt;
use mvgen::storage::object::{ObjectStorage, PART_BYTES};
use mvgen::storage::{ByteStream, Collection, Storage, StorageError};
use object_store::ObjectStore;
use serde_json::json;
use support::seaweed::Seaweed;
use support::test_app::{FAKE_MP4, TINY_PNG, TestApp};

fn prefix() -> String {
    format!("t-{}", uuid::Uuid::new_v4())
}

/// Every key under `prefix` in the bucket: what a test left behind.
async fn keys(store: &Seaweed, prefix: &str) -> Vec<String> {
    let client = store.builder().with_bucket_name(support::seaweed::BUCKET).build().expect("client");
    let listed: Vec<_> = client.list(Some(&prefix.into())).collect().await;
    listed.into_iter().map(|meta| meta.expect("list").location.to_string()).collect()
}

#[tokio::test]
async fn files_round_trip_through_the_api_with_ranges_conditionals_and_a_presigned_redirect() {
    let Some(store) = Seaweed::start().await else { return };
    let prefix = prefix();
    let t = TestApp::on(Arc::new(store.storage(&prefix)));

    let (status, resp) =
        t.post("/api/mv/generate_character_reference", &json!({"character_description": "c", "num_images": 1})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let image_id = resp["images"][0]["id"].as_str().expect("id").to_string();
    // The video's reference is read back from the store, not from a local file.
    let body = json!({"prompt": "p", "character_reference_id": image_id});
    let (status, resp) = t.post("/api/mv/generate_video", &body).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(t.videos.received()[0].reference_image.as_ref().map(|m| m.bytes.as_slice()), Some(TINY_PNG));
    let video_url = resp["video_url"].as_str().expect("url").to_string();
    let video_id = resp["video_id"].as_str().expect("id").to_string();
    assert_eq!(keys(&store, &format!("{prefix}/videos")).await, [format!("{prefix}/videos/{video_id}.mp4")]);

    let (status, headers, bytes) = t.get_bytes(&video_url, None).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FAKE_MP4));
    assert_eq!(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some("video/mp4"));
    let etag = headers.get(header::ETAG).and_then(|v| v.to_str().ok()).expect("etag").to_string();
    let (status, headers, bytes) = t.get_bytes(&video_url, Some("bytes=2-5")).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, &FAKE_MP4[2..=5]));
    let total = FAKE_MP4.len();
    let content_range = format!("bytes 2-5/{total}");
    assert_eq!(headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()), Some(content_range.as_str()));
    let (status, _, bytes) = t.get_bytes(&video_url, Some("bytes=-4")).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, &FAKE_MP4[total - 4..]));

    let conditional = |name: &'static str, value: &str, range: Option<&str>| {
        let mut req = Request::get(&video_url).header(name, value);
        if let Some(range) = range {
            req = req.header(header::RANGE, range);
        }
        t.call(req.body(Body::empty()).expect("request"))
    };
    assert_eq!(conditional("if-none-match", &etag, None).await.0, StatusCode::NOT_MODIFIED);
    assert_eq!(conditional("if-none-match", "\"other\"", None).await.0, StatusCode::OK);
    let (status, _, bytes) = conditional("if-range", &etag, Some("bytes=0-3")).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, &FAKE_MP4[..4]));
    let (status, _, bytes) = conditional("if-range", "\"other\"", Some("bytes=0-3")).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FAKE_MP4), "a changed file is sent whole");

    // ?redirect=true: a 307 to a presigned URL that serves the same bytes without credentials.
    for (url, expected) in
        [(video_url.clone(), FAKE_MP4), (format!("/api/mv/get_character_reference/{image_id}"), TINY_PNG)]
    {
        let (status, headers, _) = t.get_bytes(&format!("{url}?redirect=true"), None).await;
        assert_eq!(status, StatusCode::TEMPORARY_REDIRECT, "{url}");
        let location = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).expect("location");
        assert!(location.starts_with(&store.endpoint) && location.contains("X-Amz-Signature"), "{location}");
        let fetched = support::http_client().get(location).send().await.expect("presigned GET");
        assert_eq!(fetched.status(), 200);
        assert_eq!(fetched.bytes().await.expect("body").as_ref(), expected);
        let (status, _, bytes) = t.get_bytes(&format!("{url}?redirect=false"), None).await;
        assert_eq!((status, bytes.as_slice()), (StatusCode::OK, expected));
    }
    let info = t.get(&format!("{video_url}/info")).await;
    assert_eq!((info.0, info.1["size"].as_u64()), (StatusCode::OK, Some(total as u64)));
    assert_eq!(info.1["is_mock"], json!(false), "the record was kept in the store: {}", info.1);
    let (status, _) = t.get(&format!("/api/mv/get_video/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn song(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/media/songs/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// `upload_audio` on S3: the song is probed by reading it back from the store (an M4A whose `moov`
/// comes last needs ranged GETs past the start), and a refused one is deleted from the bucket.
#[tokio::test]
async fn a_song_is_probed_from_the_store_and_a_refused_one_is_deleted() {
    let Some(store) = Seaweed::start().await else { return };
    let prefix = prefix();
    let t = TestApp::on(Arc::new(store.storage(&prefix)));
    let upload = |bytes: Vec<u8>| {
        t.call(
            Request::post("/api/mv/upload_audio")
                .header(header::CONTENT_TYPE, "audio/mp4")
                .body(Body::from(bytes))
                .expect("request"),
        )
    };
    let m4a = song("song.m4a");
    let (status, _, body) = upload(m4a.clone()).await;
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!((answer["codec"].as_str(), answer["content_type"].as_str()), (Some("aac"), Some("audio/mp4")));
    let seconds = answer["duration_seconds"].as_f64().expect("duration");
    assert!((seconds - 130.0 * 1024.0 / 44100.0).abs() < 1e-6, "the frames less the priming: {answer}");
    let id = answer["audio_id"].as_str().expect("id").to_string();
    let (status, _, bytes) = t.get_bytes(&format!("/api/mv/get_audio/{id}"), Some("bytes=4-7")).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::PARTIAL_CONTENT, b"ftyp".as_slice()));
    let (status, info) = t.get(&format!("/api/mv/get_audio/{id}/info")).await;
    assert_eq!((status, &info), (StatusCode::OK, &answer));

    let mp3 = song("song.mp3");
    for (refused, want) in
        [(song("song.wav"), StatusCode::UNSUPPORTED_MEDIA_TYPE), (mp3[..9000].to_vec(), StatusCode::BAD_REQUEST)]
    {
        let (status, _, body) = upload(refused).await;
        assert_eq!(status, want, "{}", String::from_utf8_lossy(&body));
    }
    let mut left = keys(&store, &prefix).await;
    left.sort();
    let mut kept = [format!("{prefix}/audio/{id}.m4a"), format!("{prefix}/records/audio/{id}.json")];
    kept.sort();
    assert_eq!(left, kept, "only the accepted song and its record are in the bucket");
}

/// An MP4 header, then `parts` chunks of 1 MiB, then `tail` (an error cuts the stream).
fn video(chunks: usize, tail: Option<std::io::Error>) -> ByteStream {
    let head = Bytes::from_static(b"\0\0\0\x18ftypisom\0\0\0\0");
    let body = (0..chunks).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; 1 << 20])));
    futures_util::stream::iter(std::iter::once(Ok(head)).chain(body).chain(tail.map(Err))).boxed()
}

#[tokio::test]
async fn a_streamed_put_of_many_parts_is_stored_whole_and_a_cut_one_leaves_nothing() {
    let Some(store) = Seaweed::start().await else { return };
    let prefix = prefix();
    let storage = store.storage(&prefix);
    let chunks = 3 * PART_BYTES / (1 << 20) + 2;
    let put = storage.put_stream(Collection::Video, 1 << 30, video(chunks, None)).await.expect("multipart put");
    assert_eq!((put.content_type, put.len), ("video/mp4", 16 + (chunks as u64) * (1 << 20)));
    let opened = storage.open(Collection::Video, &put.id).await.expect("open");
    assert_eq!(opened.len, put.len);
    let mut read = Vec::new();
    let mut whole = opened.file;
    tokio::io::AsyncReadExt::read_to_end(&mut whole, &mut read).await.expect("read back");
    let expected: Vec<u8> = futures_util::stream::iter([])
        .chain(video(chunks, None))
        .map(|c| c.expect("chunk"))
        .collect::<Vec<Bytes>>()
        .await
        .concat();
    assert!(read == expected, "the object is the stream, byte for byte");
    let small = storage.put_stream(Collection::Video, 1 << 30, video(1, None)).await.expect("one-PUT put");
    assert_eq!(small.len, 16 + (1 << 20));

    let before = keys(&store, &prefix).await;
    let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "download cut");
    let failed = storage.put_stream(Collection::Video, 1 << 30, video(chunks, Some(cut))).await;
    assert!(matches!(failed, Err(StorageError::Interrupted(_))), "{failed:?}");
    let failed = storage.put_stream(Collection::Video, 8 << 20, video(chunks, None)).await;
    assert!(matches!(failed, Err(StorageError::TooLarge { .. })), "{failed:?}");
    let failed = storage.put_stream(Collection::CharacterReference, 1 << 30, video(chunks, None)).await;
    assert!(matches!(failed, Err(StorageError::Rejected(_))), "{failed:?}");
    assert_eq!(keys(&store, &prefix).await, before, "nothing stored by a cut, oversized or refused stream");
}

#[tokio::test]
async fn a_store_that_goes_down_fails_requests_retryably_and_loses_nothing() {
    let Some(mut store) = Seaweed::start().await else { return };
    let storage: ObjectStorage = store.storage(&prefix());
    let t = TestApp::on(Arc::new(storage.clone()));
    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let video_url = resp["video_url"].as_str().expect("url").to_string();

    store.stop();
    let (status, headers, body) = t
        .call(
            Request::post("/api/mv/generate_video")
                .header("content-type", "application/json")
                .body(Body::from(r#"{"prompt": "p"}"#))
                .expect("request"),
        )
        .await;
    let body: serde_json::Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["detail"]["error"], "StorageUnavailable", "{body}");
    assert!(headers.get(header::RETRY_AFTER).is_some(), "retryable: {headers:?}");
    let (status, _, _) = t.get_bytes(&video_url, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(storage.check().await.is_err());

    store.resume().await;
    let (status, _, bytes) = t.get_bytes(&video_url, None).await;
    assert_eq!((status, bytes.as_slice()), (StatusCode::OK, FAKE_MP4), "what was stored before is all there");
    let (status, resp) = t.post("/api/mv/generate_video", &json!({"prompt": "p"})).await;
    assert_eq!(status, StatusCode::OK, "the next one succeeds: {resp}");
}

/// `mvgen serve` on a store it can't write to exits non-zero at once with a message naming it.
#[test]
fn startup_fails_clearly_when_the_store_is_unusable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let blocked = tempfile::tempdir().expect("dir");
    std::fs::write(blocked.path().join("file"), b"not a directory").expect("file");
    let file_url = format!("file://{}/file/outputs", blocked.path().display());
    let cases: [(Vec<(&str, String)>, &str); 2] = [
        (
            vec![
                ("MVGEN_STORAGE_URL", "s3://nowhere/p".into()),
                ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")),
                ("AWS_ALLOW_HTTP", "true".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", "k".into()),
                ("AWS_SECRET_ACCESS_KEY", "s".into()),
            ],
            "storage s3://nowhere/p is not usable",
        ),
        (vec![("MVGEN_STORAGE_URL", file_url.clone())], "is not usable"),
    ];
    for (envs, expected) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mvgen"))
            .args(["serve", "--addr", "127.0.0.1:0"])
            .env_clear()
            .envs(envs)
            .output()
            .expect("run mvgen");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
    }
}

/// A final cut of clips kept in S3: their headers read with ranged GETs, the cut streamed back
/// into the bucket, and what lands there is a whole MP4 ffmpeg decodes without a word.
#[tokio::test]
async fn a_final_cut_of_clips_in_the_store_is_stored_there_whole() {
    let Some(store) = Seaweed::start().await else { return };
    let prefix = prefix();
    let storage = Arc::new(store.storage(&prefix));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(storage.put(Collection::Video, "video/mp4", mvgen::providers::mock::MOCK_CLIP).await.expect("put"));
    }
    let t = TestApp::on(storage);
    let clips = json!([{"video_id": ids[0]}, {"video_id": ids[1], "out_seconds": 1.0}, {"video_id": ids[2]}]);
    let (status, resp) = t.post("/api/mv/stitch-videos", &json!({"clips": clips})).await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["metadata"]["video_duration_seconds"], 5.0);
    let cut = resp["video_id"].as_str().expect("id").to_string();
    assert!(keys(&store, &format!("{prefix}/videos")).await.contains(&format!("{prefix}/videos/{cut}.mp4")));
    let (status, _, bytes) = t.get_bytes(&format!("/api/mv/get_video/{cut}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.len() as u64, resp["metadata"]["size_bytes"].as_u64().expect("size"));

    let Ok(decoded) = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "mp4", "-i", "pipe:0", "-f", "null", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI installs ffmpeg");
        eprintln!("ffmpeg not installed: the cut's bytes are not decoded");
        return;
    };
    let mut decoded = decoded;
    if let Some(mut stdin) = decoded.stdin.take() {
        use std::io::Write;
        stdin.write_all(&bytes).expect("feed ffmpeg");
    }
    let out = decoded.wait_with_output().expect("ffmpeg ends");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "ffmpeg found errors in the cut");
}
