//! What one sync `create_scenes` asks of the jobs database, read from the real binary's own
//! statement log (`RUST_LOG=sqlx::query=debug`: sqlx logs every statement it runs), on the
//! embedded SQLite and on PostgreSQL: the job's INSERT and one finishing statement per request,
//! with the final event written inside it; on SQLite, no heartbeat for a job that just stored its
//! claim and no idle worker woken into a claim by a job it could never take. And the events and answers stay
//! what they were: `queued`, `processing`, then `succeeded` or `failed` with the error the
//! caller got.
//!
//! Why a statement count: on SQLite every statement is a round trip to sqlx's one writer thread
//! (a wake-up on each side), which was most of a sync request's CPU (BENCHMARKS.md, issue 22).

use crate::durable_jobs::{Fakes, SseEvent, all_events, http, start};
use crate::support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::fake_upstream::{FakeGemini, Scripted};
use support::postgres::Postgres;
use support::server_process::ServerProcess;
use support::webhook_receiver::WebhookReceiver;

/// Requests measured after the warm-up.
const REQUESTS: usize = 20;

/// The engine's idle poll (`EngineConfig::poll`): how often an idle worker claims unwoken.
const POLL: Duration = Duration::from_millis(500);

const WORKERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_scenes_request_is_two_statements_on_sqlite() {
    let fakes = Fakes::start().await;
    let seen = scenes_requests(&fakes, &[]).await;
    assert_eq!(seen.count(|s| s.starts_with("INSERT INTO job_events")), 0, "the final event is the trigger's");
    let beats: Vec<_> = seen.statements.iter().filter(|s| s.starts_with("UPDATE jobs SET heartbeat_at")).collect();
    assert!(beats.is_empty(), "no heartbeat for a job that just stored its claim: {beats:#?}");
    // Workers only claim at their poll when nothing was queued: never woken by these jobs.
    let bound = WORKERS * (seen.elapsed.as_millis() / POLL.as_millis() + 2) as usize;
    let claims = seen.count(|s| s.contains("SET status = 'processing', claim = $1"));
    assert!(claims <= bound, "{claims} claims in {:?} ({bound} at most from the poll)", seen.elapsed);
    // Nothing else writes: per request the INSERT and the finishing UPDATE, then the claims.
    let writes = seen.count(|s| s.starts_with("INSERT") || s.starts_with("UPDATE") || s.starts_with("DELETE"));
    assert_eq!(writes, 2 * (REQUESTS + 1) + claims, "{:#?}", seen.statements);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_scenes_request_is_two_statements_on_postgres() {
    let Some(pg) = Postgres::start("a_sync_scenes_request_is_two_statements_on_postgres") else {
        return;
    };
    let fakes = Fakes::start().await;
    let seen = scenes_requests(&fakes, &[("MVGEN_DATABASE_URL", &pg.url)]).await;
    // Every event rides in its job's INSERT or finishing statement (data-modifying CTEs), none in
    // a statement of its own.
    let alone: Vec<_> = seen
        .statements
        .iter()
        .filter(|s| {
            s.contains("INSERT INTO job_events") && !s.contains("INSERT INTO jobs") && !s.contains("UPDATE jobs")
        })
        .collect();
    assert!(alone.is_empty(), "{alone:#?}");
    // The replicas are woken after each write commits, in a statement of its own: a write that
    // notifies holds PostgreSQL's database-wide notify lock through its commit's fsync, so every
    // job's writes waited on each other's (BENCHMARKS.md, "the notify lock").
    let notifying: Vec<_> = seen
        .statements
        .iter()
        .filter(|s| s.contains("pg_notify") && (s.contains("INSERT INTO") || s.contains("UPDATE jobs")))
        .collect();
    assert!(notifying.is_empty(), "a write that notifies in its own transaction: {notifying:#?}");
    let wakes = seen.count(|s| s.starts_with("SELECT pg_notify"));
    assert!(wakes >= 2 * (REQUESTS + 1), "each job's INSERT and end wake the replicas: {wakes} wake-ups");
    // Not bounded here as on SQLite: idle workers are still woken into a claim by every
    // notification (another replica's job may be queued), and a running job's watch into a
    // heartbeat by its own job's (it may be a cancel), this process's own included.
}

/// A job with a webhook ends in its transaction (the UPDATE, the event, the delivery), and only
/// there: the one-statement end, which refuses a job with a webhook, is not tried first (it was:
/// a round trip for nothing on every such job). Its `completed` delivery still goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_request_with_a_webhook_ends_in_one_update() {
    let fakes = Fakes::start().await;
    let receiver = tokio::task::block_in_place(WebhookReceiver::start);
    let server = start(&fakes.env(&[
        ("RUST_LOG", "warn,sqlx::query=debug"),
        ("MVGEN_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ("MVGEN_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("MVGEN_JOB_STALE_AFTER", "60"),
    ]));
    let from = server.log().len();
    let body = serde_json::json!({
        "idea": "a lighthouse keeper's last night", "character_description": "an old sailor",
        "webhook": receiver.url("/hook"),
    });
    let resp = http().post(format!("{}/api/mv/create_scenes", server.base)).json(&body).send().await.expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    let got = tokio::task::block_in_place(|| receiver.wait_for("/hook", 1, Duration::from_secs(20)));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].json()["status"], "succeeded");

    let seen = statements(&server, from);
    let ends: Vec<_> = seen.iter().filter(|s| s.starts_with("UPDATE jobs SET status = 'succeeded'")).collect();
    assert_eq!(ends.len(), 1, "one finishing UPDATE: {ends:#?}");
    assert!(!ends[0].contains("webhook IS NULL"), "the transaction's, not the one-statement end's: {ends:#?}");
}

/// Concurrent sync requests on SQLite share commits (`jobs::store::group_commit`): the binary logs
/// each commit that held several jobs' statements, and every request still gets its own answer
/// with its own job stored and its events whole (`queued`, `processing`, `succeeded`). Rounds of
/// sixteen requests at once until one commit was shared; the inserts of a round arrive together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sync_requests_share_commits_on_sqlite() {
    let fakes = Fakes::start().await;
    let server = start(
        &fakes.env(&[("RUST_LOG", "warn,mvgen::jobs::store::group_commit=debug"), ("MVGEN_JOB_STALE_AFTER", "60")]),
    );
    let base = server.base.clone();
    scenes(&base, 200).await;
    let from = server.log().len();
    let shared = || server.log()[from..].lines().filter(|l| l.contains("one commit for several writes")).count();
    let mut answered = Vec::new();
    for _ in 0..10 {
        let round = futures_util::future::join_all((0..16).map(|_| scenes(&base, 200))).await;
        answered.extend(round);
        if shared() > 0 {
            break;
        }
    }
    assert!(shared() > 0, "no commit held more than one write in {} concurrent requests", answered.len());
    let mut ids: Vec<_> = answered.iter().map(|(id, _)| id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), answered.len(), "each request its own job");
    for (id, answer) in &answered {
        assert!(answer["scenes"].as_array().is_some_and(|s| !s.is_empty()), "{answer}");
        let events = all_events(&base, id).await;
        assert_eq!(kinds(&events), ["queued", "processing", "succeeded"], "{id}: {events:?}");
        let job: Value = http()
            .get(format!("{base}/api/mv/jobs/{id}"))
            .send()
            .await
            .expect("get job")
            .json()
            .await
            .expect("JSON job");
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["output"]["scenes"], answer["scenes"], "the stored output is the one answered");
    }
}

/// The statements a run of sync `create_scenes` requests logged, and how long the requests took.
struct Seen {
    statements: Vec<String>,
    elapsed: Duration,
}

impl Seen {
    fn count(&self, what: impl Fn(&str) -> bool) -> usize {
        self.statements.iter().filter(|s| what(s)).count()
    }
}

/// Runs `REQUESTS` successful sync `create_scenes` and a failing one on a binary started with
/// `extra`, checks what every engine must show (one INSERT and one finishing statement per job,
/// no heartbeat, the events and the failure's error), and returns the statements logged.
async fn scenes_requests(fakes: &Fakes, extra: &[(&str, &str)]) -> Seen {
    let mut settings = vec![
        ("RUST_LOG", "warn,sqlx::query=debug"),
        ("MVGEN_WORKERS", "4"),
        // The default: a heartbeat every 20 s, none due while these jobs run.
        ("MVGEN_JOB_STALE_AFTER", "60"),
    ];
    settings.extend_from_slice(extra);
    let server = start(&fakes.env(&settings));
    let base = server.base.clone();
    scenes(&base, 200).await;
    let from = server.log().len();

    let started = Instant::now();
    let mut last = String::new();
    for _ in 0..REQUESTS {
        last = scenes(&base, 200).await.0;
    }
    let elapsed = started.elapsed();
    fakes.gemini.push_response(Scripted::json(400, FakeGemini::error_body(400, "INVALID_ARGUMENT", "no lighthouses")));
    let (failed, answer) = scenes(&base, 502).await;

    let events = all_events(&base, &last).await;
    assert_eq!(kinds(&events), ["queued", "processing", "succeeded"], "{events:?}");
    assert_eq!(events[2].2["status"], "succeeded", "{events:?}");
    let events = all_events(&base, &failed).await;
    assert_eq!(kinds(&events), ["queued", "processing", "failed"], "{events:?}");
    let error = &events[2].2["error"];
    assert_eq!(error["code"], answer["detail"]["error"], "the event names the answer's error: {events:?} {answer}");
    assert_eq!(error["message"], answer["detail"]["message"], "{events:?} {answer}");
    assert_eq!(events[2].2["status"], "failed", "{events:?}");

    let seen = Seen { statements: statements(&server, from), elapsed };
    let inserts = seen.count(|s| s.starts_with("INSERT INTO jobs ") || s.starts_with("WITH j AS (INSERT INTO jobs "));
    assert_eq!(inserts, REQUESTS + 1, "{:#?}", seen.statements);
    let ends = |status: &str| {
        let set = format!("UPDATE jobs SET status = '{status}'");
        seen.count(|s| s.starts_with(&set) || s.starts_with("WITH j AS (") && s.contains(&set))
    };
    assert_eq!((ends("succeeded"), ends("failed")), (REQUESTS, 1), "{:#?}", seen.statements);
    // The scenes are bound once and not read back: the worker still holds them (the answers
    // above came from that copy).
    let read_back: Vec<_> = seen
        .statements
        .iter()
        .filter(|s| s.contains("UPDATE jobs SET status = 'succeeded'"))
        .filter(|s| s.split_once(" RETURNING ").is_some_and(|(_, columns)| columns.contains(", output,")))
        .collect();
    assert!(read_back.is_empty(), "the output read back: {read_back:#?}");
    seen
}

/// One sync `create_scenes` answered `status`: its job's id (`X-Job-Id`) and its body.
async fn scenes(base: &str, status: u16) -> (String, Value) {
    let body =
        serde_json::json!({ "idea": "a lighthouse keeper's last night", "character_description": "an old sailor" });
    let resp = http().post(format!("{base}/api/mv/create_scenes")).json(&body).send().await.expect("create_scenes");
    assert_eq!(resp.status().as_u16(), status);
    // A succeeded job is answered with the JSON text its run stored, as `Json` answered it.
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    if status == 200 {
        assert!(resp.headers().contains_key("x-config-flavor") && resp.headers().contains_key("x-config-flavor-hash"));
    }
    let id = resp.headers().get("x-job-id").and_then(|v| v.to_str().ok()).expect("X-Job-Id").to_owned();
    (id, resp.json().await.expect("JSON body"))
}

fn kinds(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|(_, kind, _)| kind.as_str()).collect()
}

/// The SQL of every statement the server logged after byte `from` of its log, whitespace trimmed
/// (and a grouped commit's BEGIN or COMMIT sent with it).
fn statements(server: &ServerProcess, from: usize) -> Vec<String> {
    let log = server.log();
    log[from..]
        .lines()
        .filter(|line| line.contains("sqlx::query"))
        .filter_map(|line| {
            let sql = line.split_once("db.statement=\"")?.1;
            // The statement is a quoted field with `\n` escapes; the next field follows its quote.
            let sql = sql.split_once("\" rows_affected=").map_or(sql, |(sql, _)| sql);
            // A statement of four words or fewer is logged as its summary alone.
            let summary = line.split_once("summary=\"").and_then(|(_, s)| s.split_once("\" db.statement="));
            let sql = match summary {
                Some((summary, _)) if sql.is_empty() => summary,
                _ => sql,
            };
            let sql = sql.replace("\\n", " ");
            // A grouped commit's BEGIN and COMMIT ride in its first and last statements' text
            // (`jobs::store::group_commit`): the statement is what is between.
            let sql = sql.trim();
            let sql = sql.strip_prefix("BEGIN;").map_or(sql, str::trim_start);
            let sql =
                sql.strip_suffix("COMMIT").and_then(|s| s.trim_end().strip_suffix(';')).map_or(sql, str::trim_end);
            Some(sql.to_owned())
        })
        .collect()
}
