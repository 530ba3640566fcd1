//! A 2xx means stored: the real binary with its SQLite file on a disk that fills up, or a file made
//! immutable under it. Every submission then answers 202 (stored) or 503 `DatabaseUnavailable`
//! with `Retry-After` (nothing stored), never 202 followed by 404; once space is back the same
//! process takes submissions again without a restart, a second process on the file is not locked
//! out, and after a restart every acknowledged job is there and no refused one is.
//!
//! The full disk is a small tmpfs (`support::tmpfs`: mounting needs root, which `.ci/run` has).

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::durable_jobs::{http, start};
use crate::support::server_process::ServerProcess;
use crate::support::tmpfs::{Tmpfs, privileged};

/// What one submission got: the id of the job it stored, or a refusal.
enum Outcome {
    Stored(String),
    Refused,
}

/// Submits one scenes job (as a job, with or without an `Idempotency-Key`, or through the sync
/// route) and checks the answer is one of the two honest ones.
async fn submit(base: &str, n: usize, how: &str) -> Outcome {
    // A long idea, so each row needs fresh pages rather than fitting in free space left over.
    let idea = format!("submission {n}: {}", "a lighthouse keeper counts the waves ".repeat(60));
    let input = json!({ "idea": idea, "character_description": "a keeper" });
    let request = match how {
        "sync" => http().post(format!("{base}/api/mv/create_scenes")).json(&input),
        "keyed" => http()
            .post(format!("{base}/api/mv/jobs"))
            .header("Idempotency-Key", format!("full-disk-{n}"))
            .json(&json!({ "kind": "scenes", "input": input })),
        _ => http().post(format!("{base}/api/mv/jobs")).json(&json!({ "kind": "scenes", "input": input })),
    };
    let response = request.send().await.expect("submit");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").is_some();
    let header_id = response.headers().get("x-job-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    match status {
        StatusCode::ACCEPTED => Outcome::Stored(body["id"].as_str().expect("job id").to_owned()),
        StatusCode::OK if how == "sync" => Outcome::Stored(header_id.expect("a sync answer names its job")),
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["detail"]["error"], "DatabaseUnavailable", "{how} #{n}: {body}");
            assert!(retry_after, "{how} #{n}: a 503 says when to retry");
            Outcome::Refused
        }
        other => panic!("{how} #{n}: {other} {body}"),
    }
}

/// Every job id the server lists, across pages.
async fn listed(base: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/mv/jobs?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http().get(url).send().await.expect("list").json().await.expect("list body");
        for job in page["jobs"].as_array().expect("jobs") {
            ids.insert(job["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

/// What the submissions of one test got.
#[derive(Default)]
struct Tally {
    acknowledged: BTreeSet<String>,
    refused: usize,
    /// A keyed submission that was refused, to retry with its key once the fault is gone.
    refused_keyed: Option<usize>,
    submitted: usize,
}

impl Tally {
    /// One submission of each way, each checked and counted.
    async fn submit_each_way(&mut self, base: &str) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        for how in ["unkeyed", "keyed", "sync"] {
            self.submitted += 1;
            let n = self.submitted;
            let outcome = submit(base, n, how).await;
            match &outcome {
                Outcome::Stored(id) => assert!(self.acknowledged.insert(id.clone()), "one id per job"),
                Outcome::Refused if how == "keyed" => (self.refused, self.refused_keyed) = (self.refused + 1, Some(n)),
                Outcome::Refused => self.refused += 1,
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Submits each way and requires every one to be stored.
    async fn all_stored(&mut self, base: &str, when: &str, log: impl Fn() -> String) {
        for outcome in self.submit_each_way(base).await {
            assert!(matches!(outcome, Outcome::Stored(_)), "a submission {when} was refused:\n{}", log());
        }
    }
}

/// The scenario both faults share: submissions stored before `fault`; 60 submissions under it,
/// each stored or refused (`must_refuse`: at least one refused); after `recover`, the same process
/// stores again (a refused key retried included), a second process on the file does too; after a
/// SIGKILL and a restart the listed jobs are exactly the acknowledged ones.
async fn under_fault(disk: &Tmpfs, fault: impl FnOnce(&Tmpfs), recover: impl FnOnce(&Tmpfs), must_refuse: bool) {
    let url = format!("sqlite://{}?mode=rwc", disk.path().join("jobs.db").display());
    // No workers: the jobs stay queued, so only submissions write (the sync route runs its own).
    let env = [("MVGEN_DATABASE_URL", url.as_str()), ("MVGEN_WORKERS", "0")];
    let mut server = start(&env);
    let mut tally = Tally::default();
    tally.all_stored(&server.base, "before the fault", || server.log()).await;

    fault(disk);
    for _ in 0..20 {
        tally.submit_each_way(&server.base).await;
    }
    if must_refuse {
        assert!(tally.refused > 0, "the fault refused some submission ({} stored)", tally.acknowledged.len());
    }

    recover(disk);
    if let Some(n) = tally.refused_keyed {
        // Retried with its key, a refused submission is stored: the refusal left the key free.
        let outcome = submit(&server.base, n, "keyed").await;
        let Outcome::Stored(id) = outcome else { panic!("keyed #{n} retried was refused:\n{}", server.log()) };
        tally.acknowledged.insert(id);
    }
    tally.all_stored(&server.base, "after recovery, same process", || server.log()).await;
    // A second process on the same file is not locked out by a transaction left open.
    let second = start(&env);
    tally.all_stored(&second.base, "from a second process", || second.log()).await;
    drop(second);

    server.signal("KILL");
    assert!(tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(10))).is_some(), "SIGKILL ignored");
    let server = start(&env);
    assert_eq!(listed(&server.base).await, tally.acknowledged, "the jobs stored are exactly the ones acknowledged");
    for id in &tally.acknowledged {
        let response = http().get(format!("{}/api/mv/jobs/{id}", server.base)).send().await.expect("get job");
        assert_eq!(response.status(), StatusCode::OK, "acknowledged job {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_submissions_and_every_acknowledged_job_survives() {
    let Some(disk) = Tmpfs::mount("2m", "a_full_disk_refuses_submissions_and_every_acknowledged_job_survives") else {
        return;
    };
    let fill = |disk: &Tmpfs| {
        disk.fill("filler");
    };
    let free = |disk: &Tmpfs| std::fs::remove_file(disk.path().join("filler")).expect("free the disk");
    under_fault(&disk, fill, free, true).await;
}

/// `chattr +i` on the database's files and directory while the server runs. Linux checks the flag
/// when a file is opened: writes through the descriptors SQLite already holds still land, so the
/// 202s under it are stored for real (the restart proves it). A process started while the flag is
/// set cannot open the file for writing and refuses to start, in one line naming it, rather than
/// serve with a writer that refuses every write for its whole life.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_database_file_never_acknowledges_what_it_did_not_store() {
    let test = "an_immutable_database_file_never_acknowledges_what_it_did_not_store";
    let Some(disk) = Tmpfs::mount("8m", test) else {
        return;
    };
    let chattr = |flag: &str, disk: &Tmpfs| {
        let mut paths: Vec<_> = std::fs::read_dir(disk.path()).expect("list").flatten().map(|e| e.path()).collect();
        paths.push(disk.path().to_owned());
        let done = privileged("chattr").arg(flag).args(&paths).status();
        assert!(done.is_ok_and(|s| s.success()), "chattr {flag} {paths:?}");
    };
    under_fault(&disk, |d| chattr("+i", d), |d| chattr("-i", d), false).await;

    chattr("+i", &disk);
    let url = format!("sqlite://{}?mode=rwc", disk.path().join("jobs.db").display());
    let env = [("MVGEN_DATABASE_URL", url.as_str()), ("MVGEN_WORKERS", "0")];
    let refused = tokio::task::block_in_place(|| ServerProcess::start(&env));
    chattr("-i", &disk);
    let log = refused.err().expect("a server on an immutable database refuses to start");
    let line = format!(
        "mvgen: cannot open the jobs database {}: attempt to write a readonly database",
        disk.path().join("jobs.db").display()
    );
    assert!(log.contains(&line), "{log}");
    let server = start(&env);
    assert!(matches!(submit(&server.base, 0, "keyed").await, Outcome::Stored(_)), "writable again:\n{}", server.log());
}
