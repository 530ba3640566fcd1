#!/usr/bin/env bash
# Two mvgen builds side by side in one run, rounds alternating A and B so the shared, noisy machine
# weighs on both alike:
#   - GET /api/mv/get_config_flavors against a bare axum server answering the same bytes (ratio);
#   - POST /api/mv/create_scenes through the real Gemini client against an instant local fake,
#     each request a durable job in the embedded SQLite: req/s and mvgen's CPU per request (from
#     /proc/PID/stat).
# Usage: bench/ab.sh A_MVGEN B_MVGEN BARE_AXUM FAKE_GEMINI (e.g. the base commit's and this
# tree's `mvgen`, and this tree's `bare_axum` and `fake_gemini` examples; build them with the same
# profile). Knobs: DURATION (s per wrk run, 10), CONNECTIONS (16), THREADS (1), ROUNDS (5).
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need_tools wrk curl

[[ $# == 4 ]] || { echo "usage: $0 A_MVGEN B_MVGEN BARE_AXUM FAKE_GEMINI" >&2; exit 2; }
A=$1 B=$2 BARE=$3 FAKE=$4
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
FLAVORS_PATH=/api/mv/get_config_flavors
SCENES_PATH=/api/mv/create_scenes
CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Prints "req/s cpu_us_per_request" of one wrk run against server PID.
measure() { # pid url [lua script]
    local pid=$1 url=$2 script=${3:-} before after out
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s)
    [[ -n $script ]] && args+=(-s "$script")
    before=$(cpu_ticks "$pid")
    out=$(wrk "${args[@]}" "$url")
    after=$(cpu_ticks "$pid")
    wrk_ok "$out" "$url"
    awk -v ticks=$((after - before)) -v hz="$CLK_TCK" '
        / requests in / { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "%.0f %.1f\n", rps, ticks * 1000000 / hz / n }
    ' <<<"$out"
}

P_BARE=$(free_port); P_FAKE=$(free_port); P_A=$(free_port); P_B=$(free_port)
start bare "$BARE" "127.0.0.1:$P_BARE"; BARE_PID=$LAST_PID
start fake-gemini "$FAKE" "127.0.0.1:$P_FAKE" 6
mkdir -p "$WORK/a" "$WORK/b"
start a GEMINI_API_KEY=bench-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE" MV_OUTPUT_DIR="$WORK/a" \
    MVGEN_ADDR="127.0.0.1:$P_A" "$A" serve
A_PID=$LAST_PID
start b GEMINI_API_KEY=bench-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE" MV_OUTPUT_DIR="$WORK/b" \
    MVGEN_ADDR="127.0.0.1:$P_B" "$B" serve
B_PID=$LAST_PID
wait_ok "http://127.0.0.1:$P_BARE$FLAVORS_PATH"
wait_ok "http://127.0.0.1:$P_A/health" "$WORK/a.log"
wait_ok "http://127.0.0.1:$P_B/health" "$WORK/b.log"
for port in "$P_A" "$P_B"; do
    backend=$(curl -fsS -H 'content-type: application/json' \
        -d '{"idea": "a lighthouse", "character_description": "an old sailor"}' \
        "http://127.0.0.1:$port$SCENES_PATH" | grep -o '"backend_used":"[a-z]*"')
    [[ $backend == '"backend_used":"gemini"' ]] || { echo "$BENCH: create_scenes did not use gemini: $backend" >&2; exit 1; }
done

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds alternating A and B, medians; $(nproc) cores" >&2
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    measure "$BARE_PID" "http://127.0.0.1:$P_BARE$FLAVORS_PATH" >>"$WORK/get-bare"
    measure "$A_PID" "http://127.0.0.1:$P_A$FLAVORS_PATH" >>"$WORK/get-a"
    measure "$B_PID" "http://127.0.0.1:$P_B$FLAVORS_PATH" >>"$WORK/get-b"
    measure "$A_PID" "http://127.0.0.1:$P_A$SCENES_PATH" bench/create_scenes.lua >>"$WORK/post-a"
    measure "$B_PID" "http://127.0.0.1:$P_B$SCENES_PATH" bench/create_scenes.lua >>"$WORK/post-b"
done

col() { awk -v c="$2" '{ print $c }' "$1" | median; }
bare=$(col "$WORK/get-bare" 1)
printf '\n%-40s %10s %10s %8s\n' "measurement (medians)" "A" "B" "B / A"
line() { printf '%-40s %10.1f %10.1f %8.2f\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN { print b / a }')"; }
line "GET flavors req/s" "$(col "$WORK/get-a" 1)" "$(col "$WORK/get-b" 1)"
line "GET flavors req/s / bare axum" "$(awk -v m="$(col "$WORK/get-a" 1)" -v b="$bare" 'BEGIN { print m / b }')" \
    "$(awk -v m="$(col "$WORK/get-b" 1)" -v b="$bare" 'BEGIN { print m / b }')"
line "GET flavors mvgen CPU us/request" "$(col "$WORK/get-a" 2)" "$(col "$WORK/get-b" 2)"
line "POST create_scenes req/s" "$(col "$WORK/post-a" 1)" "$(col "$WORK/post-b" 1)"
line "POST create_scenes mvgen CPU us/request" "$(col "$WORK/post-a" 2)" "$(col "$WORK/post-b" 2)"
printf '%-40s %10.0f\n' "GET flavors req/s, bare axum" "$bare"
