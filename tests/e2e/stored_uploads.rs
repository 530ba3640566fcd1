//! Issue 21, point 3: an uploaded `reference_image_base64` is stored once, as a file, when its
//! video is submitted, and the stored plan names it by id. Neither the jobs database nor any answer
//! carries the image (a listing of a hundred such jobs once held 92 MB), yet the video model still
//! gets exactly the uploaded bytes. Through the real binary and Replicate client against the fake.

use crate::support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan, Route, TEST_REPLICATE_TOKEN};
use support::server_process::ServerProcess;

/// A PNG of about 96 KiB: the fake's real PNG, padded (types are sniffed from the first bytes), so
/// that an echo of it could not hide in an answer's noise.
fn uploaded_png() -> Vec<u8> {
    let mut png = FakeFile::png().bytes().to_vec();
    png.extend((0..96 * 1024).map(|i| (i % 251) as u8));
    png
}

async fn get(client: &reqwest::Client, url: String) -> (u16, String) {
    let resp = client.get(url).send().await.expect("request");
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The stored upload a job's plan names, checked to be a plan that carries no image.
fn uploaded_id(job: &Value, b64: &str) -> String {
    let plan = job["plan"].to_string();
    assert!(!plan.contains(&b64[..64]), "the stored plan carries the uploaded image: {} bytes", plan.len());
    assert!(job["plan"]["plan"]["kept"].get("uploaded_reference").is_none(), "{plan}");
    job["plan"]["plan"]["kept"]["uploaded_reference_id"].as_str().expect("the plan names the upload").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_reference_is_stored_once_and_named_by_id_never_echoed() {
    let replicate = FakeReplicate::start().await;
    let server = ServerProcess::start(&[
        ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
        ("REPLICATE_BASE_URL", replicate.base_url.as_str()),
        ("MV_REPLICATE_POLL_SECS", "0.05"),
    ])
    .expect("start mvgen");
    let base = server.base.clone();
    let client = crate::support::http_client();
    let png = uploaded_png();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);

    // A queued job: the submit answer shows the plan, naming the upload by id.
    replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::mp4()) });
    let input = json!({"prompt": "A robot walks.", "reference_image_base64": b64, "seed": 7});
    let resp = client.post(format!("{base}/api/mv/jobs")).json(&json!({"kind": "video", "input": input})).send().await;
    let resp = resp.expect("submit");
    assert_eq!(resp.status(), 202);
    let submitted = resp.text().await.expect("body");
    assert!(!submitted.contains(&b64[..64]), "the submit answer echoes the upload ({} bytes)", submitted.len());
    let job_id = json_of(&submitted)["id"].as_str().expect("id").to_owned();

    // The stored plan names a file the character reference route serves: the uploaded bytes.
    let (status, text) = get(&client, format!("{base}/api/mv/jobs/{job_id}")).await;
    assert_eq!(status, 200, "{text}");
    let upload = uploaded_id(&json_of(&text), &b64);
    let file = client.get(format!("{base}/api/mv/get_character_reference/{upload}")).send().await.expect("file");
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
    assert!(file.bytes().await.expect("bytes").as_ref() == png.as_slice(), "the stored upload is the image sent");

    // The job runs with that image: Replicate gets the same data URI a plan with the image inline
    // sent it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let (_, text) = get(&client, format!("{base}/api/mv/jobs/{job_id}")).await;
        let job = json_of(&text);
        if job["status"] != "queued" && job["status"] != "processing" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job did not finish: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["output"]["metadata"]["has_reference_image"], true, "{done}");
    assert_eq!(done["output"]["metadata"]["character_reference_id"], Value::Null, "{done}");
    assert_eq!(done["output"]["character_reference_warning"], Value::Null, "{done}");
    let creates = replicate.received_on(Route::Create);
    let sent = creates.last().expect("a create").json();
    assert_eq!(sent["input"]["reference_images"][0], format!("data:image/png;base64,{b64}"));

    // The sync endpoint: today's answer, no image in it, and its job's plan names the upload too.
    replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Succeed(FakeFile::mp4()) });
    let resp = client.post(format!("{base}/api/mv/generate_video")).json(&input).send().await.expect("sync");
    assert_eq!(resp.status(), 200);
    let sync_job = resp.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    let answer = resp.text().await.expect("body");
    assert!(!answer.contains(&b64[..64]), "the answer echoes the upload");
    let answer = json_of(&answer);
    assert_eq!((answer["metadata"]["has_reference_image"].as_bool()), Some(true), "{answer}");
    let (_, text) = get(&client, format!("{base}/api/mv/jobs/{sync_job}")).await;
    let second = uploaded_id(&json_of(&text), &b64);
    assert_ne!(second, upload, "each submission stores its own upload");
    let sent = replicate.received_on(Route::Create).last().expect("a create").json();
    assert_eq!(sent["input"]["reference_images"][0], format!("data:image/png;base64,{b64}"));

    // A listing leaves plans out altogether; the single job keeps it.
    let (status, text) = get(&client, format!("{base}/api/mv/jobs?limit=100")).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(&b64[..64]), "the listing echoes the upload ({} bytes)", text.len());
    let page = json_of(&text);
    let jobs = page["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2, "{text}");
    for job in jobs {
        assert!(job.get("plan").is_none(), "a list item carries a plan: {job}");
        assert!(job["id"].is_string() && job["urls"]["get"].is_string(), "{job}");
    }
}
