//! Cold start and idle memory for `bench/load.sh`: starts a server RUNS times, each time timing
//! exec → the first 200 on PATH, then reads the process's resident memory once it has been idle
//! for a moment. Prints one line of `key=value` figures (milliseconds, KiB) for the script.
//!
//! `startup_probe RUNS PATH -- BINARY [ARGS...]`: every `{addr}` in ARGS becomes a free
//! 127.0.0.1 port, also passed as `MVGEN_ADDR`; the rest of the environment is inherited.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server not answering within this is broken, not slow.
const DEADLINE: Duration = Duration::from_secs(10);
/// Long enough for startup work spawned in the background to settle before RSS is read.
const IDLE: Duration = Duration::from_millis(500);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(runs), Some(path), Some("--"), Some(binary)) =
        (args.first(), args.get(1), args.get(2).map(String::as_str), args.get(3))
    else {
        eprintln!("usage: startup_probe RUNS PATH -- BINARY [ARGS...]");
        std::process::exit(2);
    };
    let runs: usize = runs.parse().expect("RUNS must be a whole number");
    let mut startup = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for _ in 0..runs {
        match probe(binary, &args[4..], path) {
            Ok((ms, kib)) => {
                startup.push(ms);
                rss.push(kib);
            }
            Err(e) => {
                eprintln!("startup_probe: {e}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "runs={runs} median_ms={:.2} min_ms={:.2} max_ms={:.2} rss_kib={:.0}",
        median(&mut startup.clone()),
        startup.iter().copied().fold(f64::INFINITY, f64::min),
        startup.iter().copied().fold(0.0, f64::max),
        median(&mut rss)
    );
}

/// One start: milliseconds to the first 200, then KiB resident once idle. Failures are returned, not
/// panicked, so the guard always stops the server: under `panic = "abort"` no destructor would run.
fn probe(binary: &str, args: &[String], path: &str) -> Result<(f64, f64), String> {
    let addr = free_addr()?;
    let started = Instant::now();
    let child = Command::new(binary)
        .args(args.iter().map(|a| a.replace("{addr}", &addr.to_string())))
        .env("MVGEN_ADDR", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))?;
    let mut child = Reaped(child);
    let ms = first_ok(addr, path, started, &mut child.0)?.as_secs_f64() * 1000.0;
    std::thread::sleep(IDLE);
    Ok((ms, vm_rss_kib(child.0.id())? as f64))
}

/// Kills and reaps the server however the probe ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| format!("no free port: {e}"))
}

/// Time from `started` to the first 200 on `path`. Polls with short pauses so the prober does not
/// take a core away from the server it is timing.
fn first_ok(addr: SocketAddr, path: &str, started: Instant, child: &mut Child) -> Result<Duration, String> {
    loop {
        if status(addr, path) == Some(200) {
            return Ok(started.elapsed());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(format!("the server exited before answering: {exit}"));
        }
        if started.elapsed() > DEADLINE {
            return Err(format!("no 200 on {path} within {DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn vm_rss_kib(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("server gone: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/PID/status".to_owned())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) { (values[mid - 1] + values[mid]) / 2.0 } else { values[mid] }
}
