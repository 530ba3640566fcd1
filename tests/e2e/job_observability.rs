//! What a replica says about its jobs, through the real binaries: an API-only `mvgen serve` and
//! `mvgen worker` processes on one embedded SQLite file, the real Replicate client against the
//! fake. Each step of a job's life is one `info` line naming the job, its kind, flavor and
//! upstream run (submitted, claimed, released at shutdown, claimed again, taken over after a
//! SIGKILL, retried, succeeded, failed), and `/metrics` (on `serve`, and on a worker through
//! `--metrics-addr`) counts claims, takeovers and ended tries, and shows the queue's depth and
//! its oldest job's age.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::durable_jobs::{Fakes, PATIENCE, finished, http, submit, wait_job};
use crate::support::fake_upstream::{FakeFile, Outcome, PredictionPlan};
use crate::support::server_process::ServerProcess;

/// `mvgen worker` as a child process logging to a file, killed when dropped.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(env: &[(&str, &str)], args: &[&str], log: &Path) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_mvgen"))
            .arg("worker")
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("worker log"))
            .spawn()
            .expect("run mvgen worker");
        Worker { child, log: log.to_path_buf() }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `http://addr` its `--metrics-addr 127.0.0.1:0` bound, from its startup line.
    async fn metrics_base(&self) -> String {
        let found = until("the worker's metrics address", || {
            let log = self.log();
            let rest = log.split("mvgen worker metrics on http://").nth(1)?.to_owned();
            Some(rest.split("/metrics").next()?.to_owned())
        })
        .await;
        format!("http://{found}")
    }

    fn signal(&mut self, signal: &str) {
        let sent = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIG{signal}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the worker ignored SIG{signal}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `found` until it gives a value (a hang guard of `PATIENCE`).
async fn until<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(Instant::now() < deadline, "never {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The log line saying `message` about job `id`, once it is there.
async fn line_about(log: impl Fn() -> String, id: &str, message: &str) -> String {
    until(&format!("a {message:?} line for job {id}"), || {
        log().lines().find(|l| l.contains(message) && l.contains(&format!("job={id}"))).map(str::to_owned)
    })
    .await
}

/// `GET base/metrics`: the text.
async fn metrics(base: &str) -> String {
    let response = http().get(format!("{base}/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    response.text().await.expect("metrics text")
}

/// The value of the sample `series` (name with labels, as exposed), when present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `series` on `base` satisfies `ok` (queue gauges are refreshed every 5 s).
async fn metric_until(base: &str, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = metrics(base).await;
        if let Some(value) = sample(&text, series).filter(|v| ok(*v)) {
            return value;
        }
        assert!(Instant::now() < deadline, "{series} never as expected:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_step_of_a_job_is_logged_and_counted_by_the_process_that_took_it() {
    let fakes = Fakes::start().await;
    // The job the workers hand on: held upstream until the test finishes it.
    fakes.replicate.push_prediction(PredictionPlan::held(Outcome::Succeed(FakeFile::mp4())));
    let dir = tempfile::tempdir().expect("temp dir");
    let outputs = dir.path().join("outputs");
    let outputs = outputs.to_str().expect("utf-8");
    let env = fakes.env(&[("MV_OUTPUT_DIR", outputs), ("MVGEN_JOB_MAX_ATTEMPTS", "2")]);
    let api_env = [env.clone(), vec![("MVGEN_WORKERS", "0")]].concat();
    let api = tokio::task::block_in_place(|| ServerProcess::start(&api_env).expect("start mvgen serve"));

    // Submitted on the API-only replica: logged there, and queued in its gauges.
    let id = submit(&api.base, "video", json!({ "prompt": "A lighthouse keeper climbs the stairs." })).await;
    let submitted = line_about(|| api.log(), &id, "job submitted").await;
    assert!(submitted.contains("video") && submitted.contains("default"), "{submitted}");
    metric_until(&api.base, "mvgen_jobs{status=\"queued\"}", |v| v == 1.0).await;
    metric_until(&api.base, "mvgen_jobs_oldest_queued_age_seconds", |v| v > 0.0).await;

    // A worker with --metrics-addr claims it and starts the upstream run, then is stopped.
    let mut first = Worker::start(&env, &["--metrics-addr", "127.0.0.1:0"], &dir.path().join("w1.log"));
    let scrape = first.metrics_base().await;
    let claimed = line_about(|| first.log(), &id, "job claimed").await;
    assert!(claimed.contains("video") && claimed.contains("default") && claimed.contains("attempt=1"), "{claimed}");
    let started = line_about(|| first.log(), &id, "job started an upstream run").await;
    assert!(started.contains("upstream=pred-1"), "{started}");
    metric_until(&scrape, "mvgen_job_claims_total{takeover=\"false\"}", |v| v == 1.0).await;
    metric_until(&scrape, "mvgen_jobs{status=\"processing\"}", |v| v == 1.0).await;
    first.signal("TERM");
    let released = line_about(|| first.log(), &id, "job released to the queue at shutdown").await;
    assert!(released.contains("pred-1"), "{released}");

    // The next worker resumes it (no takeover: it was released) and is SIGKILLed.
    let mut second = Worker::start(&env, &[], &dir.path().join("w2.log"));
    let resumed = line_about(|| second.log(), &id, "job claimed").await;
    assert!(resumed.contains("pred-1"), "the claim names the saved upstream run: {resumed}");
    // The process id its claims begin with, which the takeover below must name.
    let second_process = second
        .log()
        .lines()
        .find_map(|l| l.contains("job workers started").then(|| l.split("process=").nth(1))?)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the second worker logs its process id");
    second.signal("KILL");

    // The third takes it over once the dead worker's heartbeat is stale, and finishes it.
    let third = Worker::start(&env, &["--metrics-addr", "127.0.0.1:0"], &dir.path().join("w3.log"));
    let scrape = third.metrics_base().await;
    let taken = line_about(|| third.log(), &id, "job taken over").await;
    assert!(taken.contains("takeovers=1") && taken.contains("pred-1"), "{taken}");
    assert!(
        taken.contains(&format!("previous_owner={second_process}/")),
        "the takeover names the worker it took the job from ({second_process}): {taken}"
    );
    metric_until(&scrape, "mvgen_job_claims_total{takeover=\"true\"}", |v| v == 1.0).await;
    fakes.replicate.finish("pred-1");
    let job = wait_job(&api.base, &id, "finished", finished).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let succeeded = line_about(|| third.log(), &id, "job succeeded").await;
    assert!(succeeded.contains("pred-1") && succeeded.contains("default"), "{succeeded}");
    metric_until(&scrape, "mvgen_job_tries_ended_total{outcome=\"succeeded\",code=\"none\"}", |v| v == 1.0).await;

    // A failed prediction: the first try is retried (logged, counted with its error kind), the
    // second is final.
    fakes.replicate.push_prediction(PredictionPlan { polls_until_done: 1, outcome: Outcome::Fail("GPU lost".into()) });
    let failing = submit(&api.base, "video", json!({ "prompt": "The lamp goes dark." })).await;
    let retry = line_about(|| third.log(), &failing, "job try failed; queued for a retry").await;
    assert!(retry.contains("UpstreamError") && retry.contains("pred-2"), "{retry}");
    let failed = line_about(|| third.log(), &failing, "job failed").await;
    assert!(failed.contains("attempt=2") && failed.contains("UpstreamError"), "{failed}");
    metric_until(&scrape, "mvgen_job_tries_ended_total{outcome=\"retry\",code=\"UpstreamError\"}", |v| v == 1.0).await;
    metric_until(&scrape, "mvgen_job_tries_ended_total{outcome=\"failed\",code=\"UpstreamError\"}", |v| v == 1.0).await;
}

/// `MVGEN_METRICS_ADDR` that is not an address stops the worker at start in one line, exit 2.
#[test]
fn a_worker_metrics_address_that_is_not_one_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("worker.log");
    let mut worker = Worker::start(
        &[("MV_OUTPUT_DIR", dir.path().to_str().expect("utf-8")), ("MVGEN_METRICS_ADDR", "9100")],
        &[],
        &log,
    );
    // A worker that accepted the setting would run until stopped: bounded, then killed by Drop.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = worker.child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker started with MVGEN_METRICS_ADDR=9100:\n{}", worker.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = worker.log();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("mvgen: invalid settings: MVGEN_METRICS_ADDR=\"9100\": expected an address"),
        "{stderr}"
    );
}

/// A store that cannot take a write (the kind's directory replaced by a file) fails the request,
/// and `/metrics` counts the store failure by its kind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_counted_in_the_metrics() {
    let server = tokio::task::block_in_place(|| ServerProcess::start(&[]).expect("start mvgen serve"));
    let kind_dir = server.output_dir().join("character_references");
    let _ = std::fs::remove_dir_all(&kind_dir);
    std::fs::write(&kind_dir, b"not a directory").expect("plant a file");
    let body = json!({ "character_description": "a lighthouse keeper", "num_images": 1 });
    let response = http()
        .post(format!("{}/api/mv/generate_character_reference", server.base))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let error: serde_json::Value = response.json().await.unwrap_or_default();
    assert_eq!((status, error["detail"]["error"].as_str()), (500, Some("StorageError")), "{error}");
    metric_until(&server.base, "mvgen_storage_failures_total{kind=\"StorageError\"}", |v| v >= 1.0).await;
}
