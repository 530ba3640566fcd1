#!/usr/bin/env bash
# Regenerates link/startup.order: the functions `mvgen serve` runs from exec to its first answers,
# which build.rs asks the linker to place together at the front of .text (README "Binary size and
# memory", link/README.md). Run it after changes that move start-up or the common request paths
# (a stale list only costs locality: names no longer in the binary are skipped).
#
# Usage: link/order.sh BIN MAP [EXAMPLES_DIR], after building BIN with its linker map:
#   MVGEN_LINK_MAP=/tmp/mvgen.map cargo build --release --bin mvgen   (BIN: target/release/mvgen)
# EXAMPLES_DIR holds fake_gemini from a release build; without it create_scenes is left out.
# It runs that stripped binary under valgrind's callgrind (Debian's `valgrind`) on a fresh output dir, dumps what ran up to the
# first 200 and an idle moment (phase 1), then after a few GETs, a /metrics scrape and a
# create_scenes through a fake Gemini (phase 2), and maps every executed instruction address to
# the input section the map places there. Phase 1's sections come first, then phase 2's new ones,
# each phase in address order. Only 127.0.0.1 is used; everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
for t in valgrind callgrind_control curl python3; do command -v $t >/dev/null || { echo "order.sh: needs $t" >&2; exit 2; }; done
[[ $# == 2 || $# == 3 ]] || { echo "usage: $0 BIN MAP [EXAMPLES_DIR]" >&2; exit 2; }
BIN=$(realpath "$1") MAP=$(realpath "$2") EXAMPLES=${3:-}
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ok() { for _ in $(seq 600); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done; echo "order.sh: $1 never answered" >&2; exit 1; }

env=()
if [[ -n $EXAMPLES ]]; then
    P_FAKE=$(port)
    "$EXAMPLES/fake_gemini" "127.0.0.1:$P_FAKE" 6 >/dev/null 2>&1 & PIDS+=($!)
    env=(GEMINI_API_KEY=order-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE")
    sleep 0.5
fi
P=$(port)
mkdir "$WORK/out"
env "${env[@]}" MV_OUTPUT_DIR="$WORK/out" MVGEN_ADDR="127.0.0.1:$P" \
    valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no --callgrind-out-file="$WORK/cg.%p" "$BIN" serve \
    >"$WORK/log" 2>&1 & VG=$!; PIDS+=($VG)
wait_ok "http://127.0.0.1:$P/api/mv/get_config_flavors"
sleep 2
callgrind_control -d "$VG" >/dev/null
for _ in 1 2 3; do curl -fsS -o /dev/null "http://127.0.0.1:$P/api/mv/get_config_flavors"; done
curl -fsS -o /dev/null "http://127.0.0.1:$P/health"
curl -fsS -o /dev/null "http://127.0.0.1:$P/readyz"
curl -fsS -o /dev/null "http://127.0.0.1:$P/metrics"
if [[ -n $EXAMPLES ]]; then
    curl -fsS -o /dev/null -H 'content-type: application/json' \
        -d '{"idea": "a lighthouse", "character_description": "an old sailor"}' \
        "http://127.0.0.1:$P/api/mv/create_scenes"
fi
kill -TERM "$VG"; wait "$VG" || true
python3 link/order.py "$MAP" "$WORK"/cg.*.1 "$(ls "$WORK"/cg.* | grep -v "\.1$")" >link/startup.order
echo "order.sh: $(wc -l <link/startup.order) symbols in link/startup.order" >&2
