#!/usr/bin/env python3
"""Scores mvgen's beat analysis against librosa's on the set make_set.py wrote, in one run.

    cargo build --release --example beats
    target/beats-venv/bin/python bench/beats/run.py SET_DIR [--mvgen target/release/examples/beats]

For every file (each track as MP3 and as M4A): mvgen's beats (examples/beats.rs, the same calls
upload_audio makes) and librosa.beat.beat_track's (librosa.load at 22 050 Hz mono, its defaults),
each scored with mir_eval's beat F-measure (±70 ms, the first 5 s of both left out as mir_eval's
trim_beats does) against the beats the MIDI was written with, and the tempo counted right within
4 % of the true median tempo (half or double counts as wrong). Then the 4-minute long.mp3: CPU
seconds (decoding included) and the resident memory the analysis adds, median of 3 runs, each in
a fresh process; librosa's timed after a warm-up call so numba's compile is not counted (it is
reported apart), with the ffmpeg child audioread decodes through counted; and, for scale, the
CPU Debian's ffmpeg takes only to decode long.mp3 (`-f null`), which no analysis can go below.
madmom's DBN beat tracker is scored too when it imports (it is optional).
Prints the per-track table and the summary as Markdown (what BENCHMARKS.md holds).
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np


def f_measure(truth, found):
    ref = mir_eval.beat.trim_beats(np.asarray(truth, dtype=float))
    est = mir_eval.beat.trim_beats(np.asarray(found, dtype=float))
    if len(ref) == 0:
        return float("nan")
    return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=0.07))


def kind(name):
    """What sort of music a track is, from its corpus name (make_set.py's pieces())."""
    if "movement" in name:
        return "string quartet"
    if "Hornpipe" in name or "Reel" in name:
        return "fiddle tune"
    if "madrigal" in name:
        return "madrigal"
    if "bwv" in name:
        return "Bach chorale"
    return "other single piece"


def run_madmom(path):
    """madmom's RNN + DBN beat tracker, or None when madmom is not installed."""
    try:
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor
    except Exception:
        return None
    act = RNNBeatProcessor()(str(path))
    return [float(b) for b in DBNBeatTrackingProcessor(fps=100)(act)]


def ffmpeg_decode_cpu(path):
    """CPU seconds Debian's ffmpeg takes to decode `path` and throw the samples away."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def tempo_ok(truth_bpm, bpm):
    return bpm is not None and bpm > 0 and abs(bpm / truth_bpm - 1) <= 0.04


def run_mvgen(binary, files):
    out = subprocess.run([binary, *map(str, files)], check=True, capture_output=True, text=True).stdout
    return {Path(r["file"]).name: r for r in map(json.loads, out.splitlines())}


LIBROSA_ONE = r"""
import json, os, sys, time
import numpy as np, librosa
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key):
            return int(line.split()[1])
def cpu():
    # This process and the children it waited for: librosa.load decodes MP3 through audioread,
    # which runs ffmpeg as a child process.
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system
# Warm-up: numba compiles the tracker on first use; a short noise signal pays for it here, and
# that compile is reported apart (a server would pay it once).
t0 = cpu()
librosa.beat.beat_track(y=np.random.default_rng(0).standard_normal(22050 * 5).astype(np.float32), sr=22050)
jit = cpu() - t0
before = status('VmRSS:')
t0 = cpu()
y, sr = librosa.load(sys.argv[1], sr=22050, mono=True)
tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units='time')
used = cpu() - t0
print(json.dumps({"cpu_seconds": used, "jit_seconds": jit, "rss_before_kib": before, "peak_rss_kib": status('VmHWM:'),
                  "tempo": float(np.atleast_1d(tempo)[0]), "beats": len(beats)}))
"""


def run_librosa(path):
    import librosa

    y, sr = librosa.load(str(path), sr=22050, mono=True)
    tempo, beats = librosa.beat.beat_track(y=y, sr=sr, units="time")
    return float(np.atleast_1d(tempo)[0]), [float(b) for b in beats]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--mvgen", default="target/release/examples/beats")
    ap.add_argument("--json", help="also write every figure here")
    args = ap.parse_args()
    root = Path(args.set)
    spec = json.loads((root / "set.json").read_text())
    tracks = spec["tracks"]
    files = [root / f for t in tracks for f in t["files"]]
    mv = run_mvgen(args.mvgen, files)

    rows = []
    for index, t in enumerate(tracks):
        for f in t["files"]:
            a = mv[f].get("analysis") or {}
            lr_tempo, lr_beats = run_librosa(root / f)
            mm_beats = run_madmom(root / f)
            rows.append({
                "file": f, "true_bpm": t["tempo_bpm"], "change": t["change"], "swing": t["swing"],
                "drums": t["drums"], "kind": kind(t["name"]), "index": index,
                "madmom_f": None if mm_beats is None else f_measure(t["beats"], mm_beats),
                "mvgen_bpm": a.get("tempo_bpm"), "mvgen_f": f_measure(t["beats"], a.get("beats", [])),
                "mvgen_down_f": f_measure(t["downbeats"], a.get("downbeats", [])),
                "librosa_bpm": lr_tempo, "librosa_f": f_measure(t["beats"], lr_beats),
                "note": a.get("analysis_note") or mv[f].get("error"),
            })
            print(f"{f}: mvgen F {rows[-1]['mvgen_f']:.3f} {a.get('tempo_bpm')} / librosa F {rows[-1]['librosa_f']:.3f} "
                  f"{lr_tempo:.1f} (true {t['tempo_bpm']})", file=sys.stderr)

    long = root / "long.mp3"
    mv_long = [run_mvgen(args.mvgen, [long])["long.mp3"] for _ in range(3)]
    lr_long = [json.loads(subprocess.run([sys.executable, "-c", LIBROSA_ONE, str(long)], check=True,
                                         capture_output=True, text=True).stdout) for _ in range(3)]
    long_truth = spec["long"]
    mv_long_f = f_measure(long_truth["beats"], mv_long[0]["analysis"]["beats"])

    def med(xs):
        return statistics.median(xs)

    print("| file | true BPM | variation | mvgen BPM | mvgen F | librosa BPM | librosa F |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        var = ", ".join(v for v in [r["kind"], r["change"] if r["change"] != "none" else "", "swing" if r["swing"] else "",
                                    "drums" if r["drums"] else ""] if v) or "-"
        mb = "-" if r["mvgen_bpm"] is None else f"{r['mvgen_bpm']:.1f}"
        print(f"| {r['file']} | {r['true_bpm']:.1f} | {var} | {mb}{'' if tempo_ok(r['true_bpm'], r['mvgen_bpm']) else ' ✗'} "
              f"| {r['mvgen_f']:.3f} | {r['librosa_bpm']:.1f}{'' if tempo_ok(r['true_bpm'], r['librosa_bpm']) else ' ✗'} "
              f"| {r['librosa_f']:.3f} |")
    n = len(rows)

    def summary(sel, label):
        sub = [r for r in rows if sel(r)]
        if not sub:
            return
        m_f = statistics.mean(r["mvgen_f"] for r in sub)
        l_f = statistics.mean(r["librosa_f"] for r in sub)
        m_t = sum(tempo_ok(r["true_bpm"], r["mvgen_bpm"]) for r in sub)
        l_t = sum(tempo_ok(r["true_bpm"], r["librosa_bpm"]) for r in sub)
        mm = [r["madmom_f"] for r in sub if r["madmom_f"] is not None]
        mm_f = f"{statistics.mean(mm):.3f}" if mm else "-"
        print(f"| {label} ({len(sub)}) | {m_f:.3f} | {l_f:.3f} | {mm_f} | {m_t}/{len(sub)} | {l_t}/{len(sub)} |")

    print()
    print("| subset (files) | mvgen mean F | librosa mean F | madmom mean F | mvgen tempo ok | librosa tempo ok |")
    print("|---|---|---|---|---|---|")
    summary(lambda r: True, "all")
    # Tracks 0, 1, 4, 5, 8, ... and 2, 3, 6, 7, ...: each half has drums and none, every change and
    # swing (make_set.py's cycles of 3 and 4), so it can check what was tuned on the other.
    summary(lambda r: r["index"] % 4 < 2, "tuning half (tracks 0, 1, 4, 5, ...)")
    summary(lambda r: r["index"] % 4 >= 2, "held-out half (tracks 2, 3, 6, 7, ...)")
    for k in sorted({r["kind"] for r in rows}):
        summary(lambda r, k=k: r["kind"] == k, k)
    summary(lambda r: r["file"].endswith(".mp3"), "MP3")
    summary(lambda r: r["file"].endswith(".m4a"), "AAC (M4A)")
    summary(lambda r: r["change"] == "none", "steady tempo")
    summary(lambda r: r["change"] == "step", "tempo step")
    summary(lambda r: r["change"] == "ramp", "tempo ramp")
    summary(lambda r: r["swing"], "swing")
    summary(lambda r: r["drums"], "with drums")
    summary(lambda r: not r["drums"], "without drums")
    mean_down = statistics.mean(r["mvgen_down_f"] for r in rows)
    print(f"\nmvgen downbeat F (±70 ms, all files): {mean_down:.3f}")
    mv_cpu = med([r["cpu_seconds"] for r in mv_long])
    lr_cpu = med([r["cpu_seconds"] for r in lr_long])
    mv_rss = med([(r["peak_rss_kib"] - r["rss_before_kib"]) / 1024 for r in mv_long])
    lr_rss = med([(r["peak_rss_kib"] - r["rss_before_kib"]) / 1024 for r in lr_long])
    print(f"\n| long.mp3 ({long_truth['tempo_bpm']} BPM, {mv_long[0]['duration_seconds']:.0f} s) | CPU s | added RSS MiB | F |")
    print("|---|---|---|---|")
    print(f"| mvgen | {mv_cpu:.3f} | {mv_rss:.1f} | {mv_long_f:.3f} |")
    lr_jit = med([r["jit_seconds"] for r in lr_long])
    ff_cpu = med([ffmpeg_decode_cpu(long) for _ in range(3)])
    print(f"| librosa (warm; its numba compile, paid once per process, was {lr_jit:.1f} s more) | {lr_cpu:.3f} | {lr_rss:.1f} | - |")
    print(f"| ffmpeg, decoding only (`-f null`, one thread) | {ff_cpu:.3f} | - | - |")
    print(f"\nmvgen is {lr_cpu / mv_cpu:.1f}x faster than librosa on long.mp3; ffmpeg's decode alone is "
          f"{lr_cpu / ff_cpu:.1f}x faster than librosa's whole run ({n} files scored)")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "mvgen_long": mv_long, "librosa_long": lr_long,
                                               "ffmpeg_decode_cpu": ff_cpu}, indent=1))


if __name__ == "__main__":
    main()
