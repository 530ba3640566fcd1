//! Beat analysis of song files, for bench/beats (its `run.py` calls this): `beats FILE...` prints
//! one JSON line per file with what `upload_audio` would store (`media::beats::analyse` after the
//! song probe, the same calls), the CPU seconds the analysis took (decoding included, the probe
//! not: it only demuxes), and the process's resident memory before the first file and its peak
//! after it, so the memory the analysis adds is measured in one process.
//!
//! `MV_MAX_SONG_SECONDS` caps the analysed length as it does in the server (default 900).
//! For an MP3 that is the coded-spectrum path (`beats::analyse_mp3_coded`), and the line also
//! says which way it went (`path`: `spectrum`, or `fallback` to a decode) and the envelope's
//! `clarity`. `MV_BEATS_DECODED=1` analyses MP3s decoded whole by symphonia instead
//! (`beats::analyse_decoded`, how every other codec is analysed and how MP3s were until analysis
//! version 5); `MV_BEATS_MP3_LOWBAND=1` with `beats::analyse_mp3_lowband` (an MP3 decoded only to
//! the analysis rate from its lowest subbands, the coded path's fallback).

use std::fs::File;

use mvgen::media::beats;
use mvgen::media::song::{self, SeekableSource};

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: beats FILE...");
        std::process::exit(2);
    }
    let max_seconds = std::env::var("MV_MAX_SONG_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(beats::DEFAULT_MAX_SONG_SECONDS);
    let decoded = std::env::var("MV_BEATS_DECODED").is_ok_and(|v| v == "1");
    let mp3_lowband = std::env::var("MV_BEATS_MP3_LOWBAND").is_ok_and(|v| v == "1");
    let rss_before_kib = status_kib("VmRSS:");
    for path in files {
        let open = || -> std::io::Result<Box<dyn symphonia::core::io::MediaSource>> {
            let file = File::open(&path)?;
            let len = file.metadata()?.len();
            Ok(SeekableSource::boxed(file, len))
        };
        let info = match open().map_err(|e| e.to_string()).and_then(|s| song::probe(s).map_err(|e| e.to_string())) {
            Ok(info) => info,
            Err(e) => {
                println!("{}", serde_json::json!({ "file": path, "error": e }));
                continue;
            }
        };
        let source = match open() {
            Ok(source) => source,
            Err(e) => {
                println!("{}", serde_json::json!({ "file": path, "error": e.to_string() }));
                continue;
            }
        };
        let cpu_before = cpu_seconds();
        let mut taken = None;
        let mut clarity = None;
        let analysis = if decoded {
            beats::analyse_decoded(source, &info, max_seconds)
        } else if mp3_lowband && info.codec == song::SongCodec::Mp3 {
            beats::analyse_mp3_lowband(source, &info, max_seconds)
        } else if info.codec == song::SongCodec::Mp3 {
            beats::analyse_mp3_coded(source, &info, max_seconds).map(|(a, p, c)| {
                taken = Some(p);
                clarity = c;
                a
            })
        } else {
            beats::analyse(source, &info, max_seconds)
        };
        let cpu = cpu_seconds() - cpu_before;
        let line = match analysis {
            Ok(a) => serde_json::json!({
                "file": path,
                "duration_seconds": info.duration_seconds,
                "analysis": a,
                "cpu_seconds": cpu,
                "rss_before_kib": rss_before_kib,
                "peak_rss_kib": status_kib("VmHWM:"),
                "path": taken,
                "clarity": clarity,
            }),
            Err(e) => serde_json::json!({ "file": path, "error": e.to_string() }),
        };
        println!("{line}");
    }
}

/// User + system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// A `/proc/self/status` figure in KiB (VmRSS, VmHWM).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}
