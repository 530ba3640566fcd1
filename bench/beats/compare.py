#!/usr/bin/env python3
"""Compares ways of analysing the set's MP3s side by side, in one run: mvgen only (run.py has librosa).

    target/beats-venv/bin/python bench/beats/compare.py SET_DIR --mvgen BIN \
        --variant A=MV_BEATS_DECODED=1 --variant B= [--cpu 5]

Each `--variant NAME=ENV=VALUE[,ENV=VALUE]` (or `NAME=` for the environment as it is) runs
`examples/beats` (`--mvgen`, or the variant's own build with `--binary NAME=PATH`, e.g. main's
build as A against a branch's as B) on the set's 40 MP3s with those variables set, and is scored with run.py's own
beat F-measure (±70 ms), downbeat F-measure and 4 % tempo rule, on the whole and on each half
(the tuning half, tracks 0, 1, 4, 5, ...; the held-out half, 2, 3, 6, 7, ...). Every file whose
F-measure or tempo verdict differs between variants is listed, with the path the analysis took
when examples/beats reports one. `--cpu N` then times long.mp3 N times per variant, the variants
alternated, and prints the medians.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from run import f_measure, tempo_ok  # noqa: E402


def run(binary, env, files):
    out = subprocess.run([binary, *map(str, files)], check=True, capture_output=True, text=True,
                         env={**os.environ, **env}).stdout
    return {Path(r["file"]).name: r for r in map(json.loads, out.splitlines())}


def parse_variant(text):
    name, _, rest = text.partition("=")
    env = dict(kv.split("=", 1) for kv in rest.split(",") if kv)
    return name, env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("set")
    ap.add_argument("--mvgen", default="target/release/examples/beats")
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--binary", action="append", default=[],
                    help="NAME=PATH: the examples/beats build that variant NAME runs")
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    root = Path(args.set)
    spec = json.loads((root / "set.json").read_text())
    tracks = spec["tracks"]
    variants = [parse_variant(v) for v in args.variant]
    binaries = dict(b.split("=", 1) for b in args.binary)
    binary = {name: binaries.get(name, args.mvgen) for name, _ in variants}
    files = [(i, t, f) for i, t in enumerate(tracks) for f in t["files"] if f.endswith(".mp3")]
    scores = {}
    for name, env in variants:
        out = run(binary[name], env, [root / f for _, _, f in files])
        rows = []
        for i, t, f in files:
            r = out[f]
            a = r.get("analysis") or {}
            rows.append({
                "file": f, "index": i, "true_bpm": t["tempo_bpm"],
                "f": f_measure(t["beats"], a.get("beats", [])),
                "down_f": f_measure(t["downbeats"], a.get("downbeats", [])),
                "bpm": a.get("tempo_bpm"), "tempo_ok": tempo_ok(t["tempo_bpm"], a.get("tempo_bpm")),
                "path": r.get("path"), "note": a.get("analysis_note") or r.get("error"),
            })
        scores[name] = rows

    halves = [("all", lambda r: True), ("tuning", lambda r: r["index"] % 4 < 2),
              ("held-out", lambda r: r["index"] % 4 >= 2)]
    print("| variant | " + " | ".join(f"{h} F / tempo / downbeat F" for h, _ in halves) + " | other paths |")
    print("|---|" + "---|" * (len(halves) + 1))
    for name, _ in variants:
        rows = scores[name]
        cells = []
        for _, sel in halves:
            sub = [r for r in rows if sel(r)]
            cells.append(f"{statistics.mean(r['f'] for r in sub):.4f} / {sum(r['tempo_ok'] for r in sub)}/{len(sub)} / "
                         f"{statistics.mean(r['down_f'] for r in sub):.3f}")
        paths = {}
        for r in rows:
            if r["path"]:
                paths[r["path"]] = paths.get(r["path"], 0) + 1
        print(f"| {name} | " + " | ".join(cells) + f" | {paths or '-'} |")

    print()
    names = [n for n, _ in variants]
    print("| file | half | " + " | ".join(f"{n} F, BPM, down F" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for k in range(len(files)):
        rs = [scores[n][k] for n in names]
        if len({round(r["f"], 3) for r in rs}) > 1 or len({r["tempo_ok"] for r in rs}) > 1 \
                or len({round(r["down_f"], 2) for r in rs}) > 1:
            half = "tuning" if rs[0]["index"] % 4 < 2 else "held-out"
            cells = [f"{r['f']:.3f}, {'-' if r['bpm'] is None else round(r['bpm'], 1)}{'' if r['tempo_ok'] else ' ✗'}, "
                     f"{r['down_f']:.2f}{' (' + r['path'] + ')' if r['path'] else ''}" for r in rs]
            print(f"| {rs[0]['file']} | {half} | " + " | ".join(cells) + " |")

    if args.cpu:
        cpu = {n: [] for n in names}
        for _ in range(args.cpu):
            for name, env in variants:
                cpu[name].append(run(binary[name], env, [root / "long.mp3"])["long.mp3"]["cpu_seconds"])
        print()
        for name in names:
            print(f"long.mp3 CPU {name}: median {statistics.median(cpu[name]):.4f} s of "
                  f"{' '.join(f'{c:.4f}' for c in cpu[name])}")
    if args.json:
        Path(args.json).write_text(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
