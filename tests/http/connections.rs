//! The connection layer under hostile and careless clients, through the real binary: stalled and
//! idle connections are closed by the timeouts, the connection cap holds (past it a small reserve
//! answers the probes) and queues the rest in the listen backlog, a flood leaves the server answering, a huge `Content-Length` is refused from the
//! header alone, and SIGTERM drains within its deadline (cancelling upstream work it cuts).
//!
//! Every timeout here is set to a second or two, so each test takes a few seconds, not minutes.

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::fake_upstream::{FakeFile, FakeReplicate, Outcome, PredictionPlan, Route, TEST_REPLICATE_TOKEN};
use support::server_process::ServerProcess;

/// `host:port` of a started server.
fn addr(server: &ServerProcess) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

fn connect(server: &ServerProcess) -> TcpStream {
    TcpStream::connect(addr(server)).expect("connect")
}

/// How the server left a connection: closed after this long, or still open at the limit.
#[derive(Debug)]
struct Watched {
    closed_after: Option<Duration>,
    /// Everything the server sent before closing.
    received: Vec<u8>,
}

/// Reads until the server closes `stream` or `limit` passes (counted from `since`).
fn watch(mut stream: TcpStream, since: Instant, limit: Duration) -> Watched {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(since.elapsed());
        if left.is_zero() {
            return Watched { closed_after: None, received };
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Watched { closed_after: Some(since.elapsed()), received },
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Watched { closed_after: None, received };
            }
            Err(_) => return Watched { closed_after: Some(since.elapsed()), received },
        }
    }
}

/// Sends one request on a fresh connection and returns the status code and the body.
fn get(server: &ServerProcess, path: &str) -> (u16, String) {
    status_and_body(&get_whole(server, path))
}

/// Sends one request on a fresh connection and returns the whole answer, head and body.
fn get_whole(server: &ServerProcess, path: &str) -> String {
    let mut stream = connect(server);
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("answer");
    text
}

fn status_and_body(text: &str) -> (u16, String) {
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

/// Socket file descriptors the server process holds (the listener and accepted connections, plus
/// the runtime's own signal socket pair).
fn server_sockets(server: &ServerProcess) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).expect("/proc fd");
    fds.flatten()
        .filter(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
        .count()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmRSS value")
}

#[test]
fn stalled_and_idle_connections_are_closed_by_their_timeouts() {
    let server = ServerProcess::start(&[
        ("MVGEN_HEADER_TIMEOUT_SECS", "1"),
        ("MVGEN_IDLE_TIMEOUT_SECS", "3"),
        ("MVGEN_BODY_TIMEOUT_SECS", "1"),
    ])
    .expect("start mvgen");
    let start = Instant::now();
    let silent = connect(&server);
    let mut half_line = connect(&server);
    half_line.write_all(b"GET /hea").expect("send");
    // One header byte every 200 ms: each byte would reset a per-read timeout, never a deadline.
    let drip = connect(&server);
    let mut drip_writer = drip.try_clone().expect("clone");
    let dripping = std::thread::spawn(move || {
        let head = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Padding: ".iter().chain([b'a'; 64].iter());
        for byte in head {
            if drip_writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut stalled_body = connect(&server);
    stalled_body
        .write_all(
            b"POST /api/mv/create_scenes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
              Origin: http://localhost:3000\r\nContent-Length: 100\r\n\r\n{\"idea\":",
        )
        .expect("send");
    // A keep-alive connection that completed a request and then says nothing.
    let mut idle = connect(&server);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    idle.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).expect("health answer");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    let idle_since = Instant::now();

    let limit = Duration::from_millis(2500);
    let watchers: Vec<_> = [("silent", silent), ("half request line", half_line), ("dripped header", drip)]
        .into_iter()
        .map(|(what, stream)| (what, std::thread::spawn(move || watch(stream, start, limit))))
        .collect();
    let body = std::thread::spawn(move || watch(stalled_body, start, limit));
    for (what, watcher) in watchers {
        let watched = watcher.join().expect("watcher");
        let after = watched.closed_after.unwrap_or_else(|| panic!("{what}: still open after {limit:?}"));
        assert!(after >= Duration::from_millis(700), "{what}: closed too early, after {after:?}");
    }
    let body = body.join().expect("watcher");
    assert!(body.closed_after.is_some(), "stalled body: still open after {limit:?}");
    let text = String::from_utf8_lossy(&body.received).into_owned();
    let (status, json) = status_and_body(&text);
    assert_eq!(status, 408, "a body stalled past its deadline gets 408: {text}");
    let cors = "access-control-allow-origin: http://localhost:3000";
    assert!(text.to_ascii_lowercase().contains(cors), "the 408 keeps the CORS headers: {text}");
    let json: Value = serde_json::from_str(&json).expect("JSON error body");
    assert_eq!(json["detail"]["error"], "RequestTimeout", "{json}");
    dripping.join().expect("drip thread");

    // The idle keep-alive connection outlives the header timeout (it sent no partial request),
    // and is closed by the idle timeout.
    let watched = watch(idle, idle_since, Duration::from_millis(4500));
    let after = watched.closed_after.expect("idle keep-alive connection still open after 4.5 s");
    assert!(after >= Duration::from_millis(2500), "idle connection closed after {after:?}, before its 3 s timeout");
    assert_eq!(get(&server, "/health").0, 200, "the server still answers");
}

#[test]
fn huge_content_length_is_refused_from_the_header_before_any_100_continue() {
    let server = ServerProcess::start(&[]).expect("start mvgen");
    // From the front end's origin: the 413 must carry CORS headers, or the browser sees a network
    // error instead.
    let head = "POST /api/mv/create_scenes HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
                Origin: http://localhost:3000\r\nContent-Length: 10737418240\r\n";
    for expect in ["Expect: 100-continue\r\n", ""] {
        let mut stream = connect(&server);
        write!(stream, "{head}{expect}\r\n").expect("send");
        let start = Instant::now();
        let watched = watch(stream, start, Duration::from_secs(3));
        let text = String::from_utf8_lossy(&watched.received).into_owned();
        assert!(text.starts_with("HTTP/1.1 413"), "{expect:?}: the first bytes back must be a 413: {text:?}");
        let cors = "access-control-allow-origin: http://localhost:3000";
        assert!(text.to_ascii_lowercase().contains(cors), "{expect:?}: no CORS header on the 413: {text:?}");
        let (_, body) = status_and_body(&text);
        let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(json["detail"]["error"], "PayloadTooLarge", "{json}");
        assert!(watched.closed_after.is_some(), "{expect:?}: the connection is closed after the 413");
    }
}

#[test]
fn a_request_head_over_64_kib_is_refused_with_431() {
    let server = ServerProcess::start(&[]).expect("start mvgen");
    let mut stream = connect(&server);
    let padding = "a".repeat(100 * 1024);
    // Written from a thread: the server may answer and close before reading all of it.
    let mut writer = stream.try_clone().expect("clone");
    let sending = std::thread::spawn(move || {
        writer.write_all(format!("GET /health HTTP/1.1\r\nX-Pad: {padding}\r\n\r\n").as_bytes())
    });
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut first = [0u8; 64];
    let n = stream.read(&mut first).expect("an answer");
    assert!(first[..n].starts_with(b"HTTP/1.1 431"), "{}", String::from_utf8_lossy(&first[..n]));
    let _ = sending.join();
}

/// The probes' reserve (`src/serving/slot.rs`): 16 connections past the cap.
const RESERVE: usize = 16;

/// Idle clients hold every slot under the cap (and their header timeout is long): `/health` and
/// `/readyz` are still answered at once, on a connection of the reserve that then closes; another
/// request there waits a second for a slot, then gets 503 `TooManyConnections`, or is served once
/// a slot frees. Idle clients past the reserve wait in the backlog.
#[test]
fn past_the_cap_the_probes_answer_at_once_and_the_rest_wait_in_the_backlog() {
    let server = ServerProcess::start(&[("MVGEN_MAX_CONNECTIONS", "4"), ("MVGEN_HEADER_TIMEOUT_SECS", "30")])
        .expect("start mvgen");
    let baseline = server_sockets(&server);
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    for path in ["/health", "/readyz"] {
        let start = Instant::now();
        let (status, body) = get(&server, path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(start.elapsed() < Duration::from_millis(900), "{path} waited {:?} past the cap", start.elapsed());
    }
    let start = Instant::now();
    let whole = get_whole(&server, "/api/mv/get_config_flavors");
    let (status, body) = status_and_body(&whole);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("TooManyConnections"), "{body}");
    assert!(whole.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{whole}");
    assert!(start.elapsed() >= Duration::from_millis(900), "refused after waiting {:?} for a slot", start.elapsed());

    // A slot frees while a request waits in the reserve: it is served.
    let waiting = std::thread::spawn({
        let server_addr = addr(&server);
        move || {
            let mut stream = TcpStream::connect(server_addr).expect("connect");
            stream.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
            write!(stream, "GET /api/mv/get_config_flavors HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .expect("send");
            let mut text = String::new();
            stream.read_to_string(&mut text).expect("answer");
            status_and_body(&text).0
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    drop(held.pop());
    assert_eq!(waiting.join().expect("waiting client"), 200, "served once a slot freed");

    // Idle clients fill the cap and the reserve; past both they wait in the backlog.
    let idle: Vec<TcpStream> = (0..3 * RESERVE).map(|_| connect(&server)).collect();
    let most = (0..8)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(50));
            server_sockets(&server) - baseline
        })
        .max();
    assert_eq!(most, Some(4 + RESERVE), "the cap of 4 and the reserve of {RESERVE}, the rest in the backlog");
    drop((held, idle));
}

/// Clients that ask for a large file and never read it cannot hold their connections: once the
/// answer stops going out for the idle timeout the server closes them, and with them at the cap
/// `/health` is answered again.
#[test]
fn clients_that_stop_reading_an_answer_are_closed_after_the_idle_timeout() {
    let server =
        ServerProcess::start(&[("MVGEN_MAX_CONNECTIONS", "2"), ("MVGEN_IDLE_TIMEOUT_SECS", "1")]).expect("start mvgen");
    let videos = server.output_dir().join("videos");
    std::fs::create_dir_all(&videos).expect("videos dir");
    let id = "3f2b6c1e-8f0a-4d2b-9c51-0e4f1a2b3c4d";
    // Far more than the socket buffers on both sides hold, so the writes stall.
    let mut mp4 = b"\x00\x00\x00\x18ftypmp42".to_vec();
    mp4.resize(64 << 20, 0);
    std::fs::write(videos.join(format!("{id}.mp4")), &mp4).expect("planted video");
    let start = Instant::now();
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = connect(&server);
            write!(stream, "GET /api/mv/get_video/{id} HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
            stream
        })
        .collect();
    // Both slots are taken by readers that never read; health waits for one to be closed.
    let (status, _) = get(&server, "/health");
    let waited = start.elapsed();
    assert_eq!(status, 200);
    assert!(waited < Duration::from_secs(8), "health waited {waited:?} behind two stalled readers");
    drop(stalled);
}

#[test]
fn a_flood_of_idle_connections_is_held_at_the_cap_and_the_server_recovers() {
    let server = ServerProcess::start(&[("MVGEN_MAX_CONNECTIONS", "32"), ("MVGEN_HEADER_TIMEOUT_SECS", "1")])
        .expect("start mvgen");
    for _ in 0..50 {
        assert_eq!(get(&server, "/api/mv/get_config_flavors").0, 200);
    }
    let baseline = server_sockets(&server);
    let idle_rss = rss_kib(server.pid());
    let flood: Vec<TcpStream> = (0..300).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let open = server_sockets(&server) - baseline;
    assert!(open <= 32 + RESERVE, "{open} connections open past the cap of 32 and the probes' reserve");
    drop(flood);
    let start = Instant::now();
    for _ in 0..20 {
        assert_eq!(get(&server, "/health").0, 200);
    }
    assert!(start.elapsed() < Duration::from_secs(5), "recovery took {:?}", start.elapsed());
    std::thread::sleep(Duration::from_millis(300));
    assert!(server_sockets(&server) <= baseline + 1, "flood connections left open");
    let rss = rss_kib(server.pid());
    assert!(rss < idle_rss + 8 * 1024, "RSS {rss} KiB after the flood vs {idle_rss} KiB before");
}

#[test]
fn sigterm_with_a_stalled_client_exits_at_once() {
    let mut server = ServerProcess::start(&[("MVGEN_DRAIN_TIMEOUT_SECS", "20")]).expect("start mvgen");
    let mut stalled = connect(&server);
    stalled.write_all(b"GET /health HTTP/1.1\r\nHo").expect("send");
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(3));
    let log = server.log();
    let status = status.unwrap_or_else(|| panic!("still running 3 s after SIGTERM with a stalled client:\n{log}"));
    assert!(status.success(), "a drain that cut no request exits 0: {status}\n{log}");
    assert!(start.elapsed() < Duration::from_secs(2), "exit took {:?}", start.elapsed());
    drop(stalled);
}

/// A keep-alive connection idle when the drain starts is not closed under a request its client
/// may be sending: a request within the drain's short grace is answered, with `Connection: close`,
/// and the server then exits promptly.
#[test]
fn a_connection_idle_at_the_drain_gets_its_next_answer_with_connection_close() {
    let mut server = ServerProcess::start(&[("MVGEN_DRAIN_TIMEOUT_SECS", "20")]).expect("start mvgen");
    let mut kept = connect(&server);
    kept.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
    let mut first = [0u8; 4096];
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
    let n = kept.read(&mut first).expect("first answer");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first[..n]));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(150));
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n").expect("send during the drain");
    let mut answer = String::new();
    kept.read_to_string(&mut answer).expect("an answer, then the close");
    assert!(answer.starts_with("HTTP/1.1 200"), "answered, not reset: {answer:?}");
    assert!(answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"), "{answer}");
    let status = server.wait_exit(Duration::from_secs(3));
    assert!(status.is_some_and(|s| s.success()), "exits 0 promptly:\n{}", server.log());
}

/// A server whose video predictions never finish upstream, with a `generate_video` request in
/// flight: returns once the fake Replicate has seen the prediction created.
/// With `plan: None` the prediction never finishes; the client thread returns what it received.
fn server_with_running_prediction(
    rt: &tokio::runtime::Runtime,
    drain_secs: &str,
    plan: Option<PredictionPlan>,
) -> (ServerProcess, FakeReplicate, std::thread::JoinHandle<Watched>) {
    let replicate = rt.block_on(FakeReplicate::start());
    let never = PredictionPlan { polls_until_done: 100_000, outcome: Outcome::SucceedWithMissingFile };
    replicate.push_prediction(plan.unwrap_or(never));
    let server = ServerProcess::start(&[
        ("REPLICATE_API_TOKEN", TEST_REPLICATE_TOKEN),
        ("REPLICATE_BASE_URL", &replicate.base_url),
        ("MV_REPLICATE_WAIT_SECS", "0"),
        ("MV_REPLICATE_POLL_SECS", "0.2"),
        ("MVGEN_DRAIN_TIMEOUT_SECS", drain_secs),
    ])
    .expect("start mvgen");
    let mut stream = connect(&server);
    let body = r#"{"prompt": "a lighthouse at night"}"#;
    write!(
        stream,
        "POST /api/mv/generate_video HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let client = std::thread::spawn(move || watch(stream, Instant::now(), Duration::from_secs(30)));
    let start = Instant::now();
    while replicate.received_on(Route::Create).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no prediction created:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    (server, replicate, client)
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_within_the_deadline() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // About 1 s of polling at 0.2 s before the video is ready.
    let plan = PredictionPlan { polls_until_done: 5, outcome: Outcome::Succeed(FakeFile::mp4()) };
    let (mut server, replicate, client) = server_with_running_prediction(&rt, "20", Some(plan));
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10));
    let log = server.log();
    let status = status.unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{log}"));
    assert!(status.success(), "nothing was cut: {status}\n{log}");
    let answer = client.join().expect("client");
    let text = String::from_utf8_lossy(&answer.received).into_owned();
    assert_eq!(status_and_body(&text).0, 200, "the request in flight got its answer: {text}");
    assert!(answer.closed_after.is_some(), "and then its connection was closed");
    assert!(replicate.cancelled().is_empty(), "nothing to cancel");
}

/// A sync request still waiting on its job when the drain's deadline nears (1 s before it) is
/// answered 503 `JobStillRunning` with `X-Job-Id` and `Retry-After`, never cut without an answer;
/// its job is released to the queue with its saved prediction for the next process to resume, not
/// cancelled and paid for again.
#[test]
fn at_the_drain_deadline_a_waiting_sync_request_is_answered_with_its_job_and_nothing_is_cut() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (mut server, replicate, client) = server_with_running_prediction(&rt, "2", None);
    let start = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5));
    let log = server.log();
    let status = status.unwrap_or_else(|| panic!("still running 5 s after SIGTERM with a 2 s drain deadline:\n{log}"));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(900), "the drain waited only {took:?}");
    assert!(status.success(), "a drain that answered every request exits 0: {status}\n{log}");
    let answer = client.join().expect("client");
    let text = String::from_utf8_lossy(&answer.received).into_owned();
    let (code, body) = status_and_body(&text);
    assert_eq!(code, 503, "{text}");
    assert!(body.contains("JobStillRunning"), "{body}");
    let head = text.to_ascii_lowercase();
    assert!(head.contains("\r\nx-job-id: ") && head.contains("\r\nretry-after: 5\r\n"), "{text}");
    assert!(replicate.cancelled().is_empty(), "the prediction is kept for a takeover:\n{log}");
    assert!(!log.contains("requests_cut"), "nothing was cut:\n{log}");
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once_and_keeps_the_prediction() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (mut server, replicate, client) = server_with_running_prediction(&rt, "60", None);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_millis(500)).is_none(), "the first SIGTERM drains:\n{}", server.log());
    let start = Instant::now();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(3));
    let log = server.log();
    assert!(status.is_some(), "still running 3 s after a second signal:\n{log}");
    assert!(start.elapsed() < Duration::from_secs(2), "exit took {:?}", start.elapsed());
    assert!(replicate.cancelled().is_empty(), "the cut request's prediction is kept for a takeover:\n{log}");
    client.join().expect("client");
}
