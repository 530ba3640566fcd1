//! Replicas sharing one PostgreSQL and one S3-compatible store (SeaweedFS `weed mini`), through the
//! real `mvgen serve` binary and the real provider clients against the fakes: a file made through
//! one replica is served by the other and guides its video; a replica SIGKILLed while it downloads
//! a video is taken over and the stored object is whole; the store stopped mid-job fails that job
//! as the engine's retry policy says, and once the store is back nothing stored is lost and the
//! next job succeeds.
//!
//! Only what a user can observe is asserted (HTTP answers, what the fakes received, what the
//! bucket lists), so the tests hold whether a download is buffered or streamed into the store.
//! Without PostgreSQL or SeaweedFS each test prints a skip line; under `CI=true` it fails.

use std::collections::BTreeSet;

use futures_util::TryStreamExt;
use object_store::{Attribute, ObjectStore, ObjectStoreExt};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::durable_jobs::{
    Fakes, PATIENCE, all_events, download, finished, http, kill, start, submit, wait_for, wait_job,
};
use crate::support::fake_upstream::{FakeFile, Gate, Outcome, PredictionPlan, Route};
use crate::support::postgres::Postgres;
use crate::support::seaweed::{BUCKET, Seaweed};

/// The key prefix the replicas share in the test bucket.
const PREFIX: &str = "replicas";

/// One PostgreSQL and one SeaweedFS, or `None` after a skip line (the store first: it finds out
/// faster that it is missing).
async fn engines(test: &str) -> Option<(Postgres, Seaweed)> {
    let weed = Seaweed::start().await?;
    let pg = Postgres::start(test)?;
    Some((pg, weed))
}

/// The replica environment on top of the fakes': the shared database and store, then `extra`.
fn replica_env(
    pg: &Postgres,
    store: &[(&'static str, String)],
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'static str, String)> {
    let mut env = store.to_vec();
    env.push(("MVGEN_DATABASE_URL", pg.url.clone()));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A valid MP4 of exactly `size` bytes whose content is this test's own: the mock clip's boxes,
/// then a `free` box filled from `tag` (players skip `free` boxes).
fn mp4(size: usize, tag: &str) -> Vec<u8> {
    let mut bytes = mvgen::providers::mock::MOCK_CLIP.to_vec();
    let free = size.checked_sub(bytes.len()).expect("larger than the mock clip");
    bytes.extend_from_slice(&u32::try_from(free).expect("under 4 GiB").to_be_bytes());
    bytes.extend_from_slice(b"free");
    bytes.extend(tag.bytes().cycle().take(free - 8));
    bytes
}

/// The top-level box types of an MP4 when they cover `bytes` exactly, start with `ftyp` and hold
/// `moov` and `mdat` (what a player needs to start); `None` for a cut or malformed file.
fn mp4_boxes(bytes: &[u8]) -> Option<Vec<String>> {
    let mut types = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let header = bytes.get(at..at + 8)?;
        let kind = String::from_utf8_lossy(&header[4..8]).into_owned();
        let size = match u32::from_be_bytes(header[..4].try_into().ok()?) {
            0 => bytes.len() - at,
            1 => usize::try_from(u64::from_be_bytes(bytes.get(at + 8..at + 16)?.try_into().ok()?)).ok()?,
            n => n as usize,
        };
        if size < 8 || at + size > bytes.len() {
            return None;
        }
        types.push(kind);
        at += size;
    }
    let has = |t: &str| types.iter().any(|k| k == t);
    (types.first().map(String::as_str) == Some("ftyp") && has("moov") && has("mdat")).then_some(types)
}

/// Every key in the test bucket with its size.
async fn bucket(weed: &Seaweed) -> Vec<(String, u64)> {
    let store = weed.builder().with_bucket_name(BUCKET).build().expect("bucket client");
    let listed: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.expect("list the bucket");
    listed.into_iter().map(|meta| (meta.location.to_string(), meta.size)).collect()
}

/// An object's bytes and `Content-Type`, read from the store itself rather than through mvgen.
async fn object(weed: &Seaweed, key: &str) -> (Vec<u8>, Option<String>) {
    let store = weed.builder().with_bucket_name(BUCKET).build().expect("bucket client");
    let got = store.get(&object_store::path::Path::from(key)).await.expect("get the object");
    let content_type = got.attributes.get(&Attribute::ContentType).map(|v| v.to_string());
    (got.bytes().await.expect("object body").to_vec(), content_type)
}

/// GET `url` on `base`: status, `Content-Type`, `Retry-After`, body.
async fn fetch(base: &str, url: &str) -> (StatusCode, Option<String>, Option<String>, Vec<u8>) {
    let response = http().get(format!("{base}{url}")).send().await.expect("GET");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (content_type, retry_after) = (header("content-type"), header("retry-after"));
    (response.status(), content_type, retry_after, response.bytes().await.expect("body").to_vec())
}

/// A video prediction done on its first poll whose file sends `at` bytes of `bytes`, then waits
/// for `gate`.
fn held_download(bytes: &[u8], at: usize, gate: &Gate) -> PredictionPlan {
    let file = FakeFile::new("out.mp4", Some("video/mp4"), bytes.to_vec()).held_at(at, gate);
    PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(file) }
}

/// Requests for the output files the fake serves: each is one download attempt.
fn downloads(fakes: &Fakes) -> usize {
    fakes.replicate.received_on(Route::File).len()
}

/// A character reference made through replica A is served byte-identical by replica B, from the
/// store (never on A's disk); with A gone, a video rendered by B gets that image as its reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_made_through_one_replica_is_served_by_the_other_and_guides_its_video() {
    let Some((pg, weed)) = engines("a_reference_made_through_one_replica_is_served_by_the_other").await else {
        return;
    };
    let fakes = Fakes::start().await;
    let png = FakeFile::png();
    let store = weed.envs(PREFIX);
    let env = replica_env(&pg, &store, &[]);
    let env = fakes.env(&borrowed(&env));

    let mut a = start(&env);
    let made =
        submit(&a.base, "character_reference", json!({ "character_description": "a cellist", "num_images": 1 })).await;
    let made = wait_job(&a.base, &made, "finished on A", finished).await;
    assert_eq!(made["status"], "succeeded", "{made}");
    let image = &made["output"]["images"][0];
    let (image_id, image_url) = (image["id"].as_str().expect("image id"), image["url"].as_str().expect("image url"));

    let b = start(&env);
    let (status, content_type, _, served) = fetch(&b.base, image_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert!(served == png.bytes(), "B serves A's image byte for byte");
    let on_a_disk = walkdir(&a.output_dir()).into_iter().filter(|p| p.contains(image_id)).collect::<Vec<_>>();
    assert!(on_a_disk.is_empty(), "the image is in the store, not on A's disk: {on_a_disk:?}");

    kill(&mut a);
    let video = submit(
        &b.base,
        "video",
        json!({ "prompt": "The cellist plays on a rooftop.", "character_reference_id": image_id }),
    )
    .await;
    let video = wait_job(&b.base, &video, "finished on B", finished).await;
    assert_eq!(video["status"], "succeeded", "{video}");
    let output = &video["output"];
    assert_eq!(output["metadata"]["has_reference_image"], true, "{output}");
    assert!(output["character_reference_warning"].is_null(), "{output}");
    let creates = fakes.replicate.received_on(Route::Create);
    let sent = creates.last().expect("the video's create").json();
    let expected = format!(
        "data:image/png;base64,{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, png.bytes())
    );
    assert_eq!(sent["input"]["reference_images"], json!([expected]), "the stored image went to the video model");
    let stored = download(&b.base, output["video_url"].as_str().expect("video_url")).await;
    assert!(stored == mvgen::providers::mock::MOCK_CLIP, "B stored the fake's video");
    assert_eq!(fakes.creates(), 2, "one image, one video");
}

/// Replica A is SIGKILLed in the middle of downloading a finished 6 MiB video; B takes the job
/// over, downloads the output again (the saved prediction, no second create) and stores it whole:
/// byte-identical to what the fake served, `video/mp4`, a complete MP4; the bucket holds that
/// object and its record, and nothing else under any name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_download_is_taken_over_and_the_stored_video_is_whole() {
    let Some((pg, weed)) = engines("a_replica_killed_mid_download_is_taken_over_and_the_stored_video_is_whole").await
    else {
        return;
    };
    let fakes = Fakes::start().await;
    let served = mp4(6 << 20, "takeover mid-download ");
    let gate = Gate::new();
    fakes.replicate.push_prediction(held_download(&served, 1 << 20, &gate));
    let store = weed.envs(PREFIX);
    let env = replica_env(&pg, &store, &[]);
    let env = fakes.env(&borrowed(&env));

    // A starts alone, so its worker is the one that claims the job.
    let mut a = start(&env);
    let id = submit(&a.base, "video", json!({ "prompt": "A train crosses the bridge at night." })).await;
    wait_for("A is mid-download", || gate.reached() == 1).await;
    assert_eq!(downloads(&fakes), 1);
    kill(&mut a);

    let b = start(&env);
    // A takeover is not an attempt: it counts in `takeovers`.
    let taken = wait_job(&b.base, &id, "taken over by B", |j| j["takeovers"] == 1).await;
    assert_eq!(taken["status"], "processing", "{taken}");
    gate.open();
    let done = wait_job(&b.base, &id, "finished", finished).await;
    let counts = (done["status"].as_str(), done["attempts"].as_i64(), done["takeovers"].as_i64());
    assert_eq!(counts, (Some("succeeded"), Some(1), Some(1)), "{done}");
    assert_eq!(fakes.creates(), 1, "one paid prediction across the kill");
    assert_eq!(downloads(&fakes), 2, "A's cut download, then B's");

    let video_id = done["output"]["video_id"].as_str().expect("video_id");
    let (status, content_type, _, got) = fetch(&b.base, done["output"]["video_url"].as_str().expect("url")).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("video/mp4")));
    assert_eq!(got.len(), served.len(), "whole length");
    assert!(got == served, "byte-identical to what the fake served");
    assert_eq!(mp4_boxes(&got).and_then(|b| b.last().cloned()).as_deref(), Some("free"), "a complete MP4");

    let video_key = format!("{PREFIX}/videos/{video_id}.mp4");
    let keys: BTreeSet<String> = bucket(&weed).await.into_iter().map(|(key, _)| key).collect();
    let expected: BTreeSet<String> = [video_key.clone(), format!("{PREFIX}/records/videos/{video_id}.json")].into();
    assert_eq!(keys, expected, "the video and its record, no partial or second object under any name");
    let (object, object_type) = object(&weed, &video_key).await;
    assert!(object == served, "the object itself is whole");
    assert_eq!(object_type.as_deref(), Some("video/mp4"));
}

/// The store is killed while a job downloads its video. The engine's policy for a 5xx is to retry
/// until `MVGEN_JOB_MAX_ATTEMPTS` (2 here) and then fail: so the job retries once with
/// `StorageUnavailable` (resuming its saved prediction, no second create) and then fails with that
/// code and a message naming the store; meanwhile a stored file's GET, `/readyz` and a sync
/// generation answer 503 `StorageUnavailable` with `Retry-After`. The store restarted on the same data serves what was stored before, and the next
/// job succeeds; the failed job left no object. Last, `/readyz` names the database when that is
/// what is gone, and is ready again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stopped_mid_job_fails_it_cleanly_and_the_next_job_succeeds_once_it_is_back() {
    let Some((pg, mut weed)) =
        engines("a_store_stopped_mid_job_fails_it_cleanly_and_the_next_job_succeeds_once_it_is_back").await
    else {
        return;
    };
    let fakes = Fakes::start().await;
    let store = weed.envs(PREFIX);
    let env = replica_env(&pg, &store, &[("MVGEN_JOB_MAX_ATTEMPTS", "2")]);
    let env = fakes.env(&borrowed(&env));
    let server = start(&env);
    let ready = fetch(&server.base, "/readyz").await;
    assert_eq!(ready.0, StatusCode::OK, "{}", String::from_utf8_lossy(&ready.3));

    // Stored before the outage.
    let image =
        submit(&server.base, "character_reference", json!({ "character_description": "a bassist", "num_images": 1 }))
            .await;
    let image = wait_job(&server.base, &image, "finished", finished).await;
    let image_url = image["output"]["images"][0]["url"].as_str().expect("image url").to_owned();
    let image_bytes = download(&server.base, &image_url).await;

    let served = mp4(3 << 20, "store outage ");
    let gate = Gate::new();
    fakes.replicate.push_prediction(held_download(&served, 512 << 10, &gate));
    let cut = submit(&server.base, "video", json!({ "prompt": "The amplifiers hum in the dark." })).await;
    wait_for("the video is mid-download", || gate.reached() == 1).await;
    weed.stop();
    gate.open();

    let failed = wait_job(&server.base, &cut, "finished", finished).await;
    assert_eq!((failed["status"].as_str(), failed["attempts"].as_i64()), (Some("failed"), Some(2)), "{failed}");
    assert_eq!(failed["error"]["code"], "StorageUnavailable", "{failed}");
    let message = failed["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("store is unavailable"), "{message}");
    let events = all_events(&server.base, &cut).await;
    let names: Vec<&str> = events.iter().map(|(_, name, _)| name.as_str()).collect();
    let retry = events.iter().find(|(_, name, _)| name == "retrying").expect("a retry before failing");
    assert_eq!(retry.2["error"]["code"], "StorageUnavailable", "{names:?}");
    assert_eq!(names.last(), Some(&"failed"), "{names:?}");
    assert_eq!(fakes.creates(), 2, "the image, and one prediction for the video across both attempts");
    assert_eq!(downloads(&fakes), 3, "the image, then the video once per attempt");

    // `/readyz` reuses each check's outcome for a second: let the one from before expire.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for url in [image_url.as_str(), "/readyz"] {
        let (status, _, retry_after, body) = fetch(&server.base, url).await;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{url}: {body}");
        assert_eq!(retry_after.as_deref(), Some("5"), "{url}");
        assert_eq!(body["detail"]["error"], "StorageUnavailable", "{url}: {body}");
    }
    // A sync generation needs the store to keep its image: the same 503, at once (no retry: a sync
    // request's job has one attempt).
    let sync = http()
        .post(format!("{}/api/mv/generate_character_reference", server.base))
        .json(&json!({ "character_description": "a drummer", "num_images": 1 }))
        .send()
        .await
        .expect("sync request");
    let retry_after = sync.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, body) = (sync.status(), sync.json::<Value>().await.unwrap_or(Value::Null));
    assert_eq!((status, retry_after.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")), "{body}");
    assert_eq!(body["detail"]["error"], "StorageUnavailable", "{body}");

    weed.resume().await;
    let (status, _, _, again) = fetch(&server.base, &image_url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(again == image_bytes, "what was stored before the outage is served after it");
    // `/readyz` reuses each check's outcome for a second: let the one from before expire.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(fetch(&server.base, "/readyz").await.0, StatusCode::OK);
    let next = submit(&server.base, "video", json!({ "prompt": "The lights come back on." })).await;
    let next = tokio::time::timeout(PATIENCE, wait_job(&server.base, &next, "finished", finished)).await.expect("next");
    assert_eq!(next["status"], "succeeded", "{next}");
    let stored = download(&server.base, next["output"]["video_url"].as_str().expect("video_url")).await;
    assert!(stored == mvgen::providers::mock::MOCK_CLIP, "the next video is stored");

    let videos: BTreeSet<String> =
        bucket(&weed).await.into_iter().map(|(key, _)| key).filter(|key| key.contains("/videos/")).collect();
    let next_id = next["output"]["video_id"].as_str().expect("video_id");
    let expected: BTreeSet<String> =
        [format!("{PREFIX}/records/videos/{next_id}.json"), format!("{PREFIX}/videos/{next_id}.mp4")].into();
    assert_eq!(videos, expected, "the failed job stored nothing");

    // The probe names the database too when that is what is gone.
    pg.stop();
    // `/readyz` reuses each check's outcome for a second: let the one from before expire.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _, retry_after, body) = fetch(&server.base, "/readyz").await;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!((status, retry_after.as_deref()), (StatusCode::SERVICE_UNAVAILABLE, Some("5")), "{body}");
    assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{body}");
    assert_eq!(body["detail"]["details"]["storage"], "ok", "{body}");
    pg.start_again();
    let ready = tokio::time::timeout(PATIENCE, async {
        while fetch(&server.base, "/readyz").await.0 != StatusCode::OK {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    ready.await.expect("ready again once the database is back");
}

/// Every file path under `dir` (empty when it does not exist).
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}
