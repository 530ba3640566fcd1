#!/usr/bin/env bash
# What the kernel sees per sync `POST /api/mv/create_scenes` (a durable job in the embedded SQLite,
# through the real Gemini client to examples/fake_gemini), counted rather than timed: `perf stat`
# on each mvgen's process for DURATION s of `wrk -t1 -cC` load after a 2 s warm-up, each count
# divided by the requests wrk completed. `pwrite64` is SQLite's WAL (two calls a frame) and its
# checkpoints; `fcntl` its file locks; `futex` and the context switches the hand-offs between
# threads. Builds alternate over ROUNDS rounds.
# Usage: bench/scenes_syscalls.sh FAKE_GEMINI MVGEN... ; knobs DURATION (5), C (16), ROUNDS (2).
# Needs perf (Debian's linux-perf) and the syscalls tracepoints (root). Everything listens on
# 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need_tools perf wrk curl

[[ $# -ge 2 ]] || { echo "usage: $0 FAKE_GEMINI MVGEN..." >&2; exit 2; }
FAKE=$1
shift
DURATION=${DURATION:-5}
C=${C:-16}
ROUNDS=${ROUNDS:-2}
EVENTS=syscalls:sys_enter_pwrite64,syscalls:sys_enter_fcntl,syscalls:sys_enter_futex,context-switches
URL_PATH=/api/mv/create_scenes

P_FAKE=$(free_port)
start fake-gemini "$FAKE" "127.0.0.1:$P_FAKE" 6
declare -A PORT PID
for server in "$@"; do
    port=$(free_port)
    mkdir -p "$WORK/out-$port"
    start "server-$port" GEMINI_API_KEY=bench-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE" \
        MV_OUTPUT_DIR="$WORK/out-$port" MVGEN_ADDR="127.0.0.1:$port" "$server" serve
    PORT[$server]=$port
    PID[$server]=$LAST_PID
    wait_ok "http://127.0.0.1:$port/health" "$WORK/server-$port.log"
done

printf '%-40s %6s %9s %8s %8s %8s %9s\n' server round requests pwrite fcntl futex switches
for round in $(seq "$ROUNDS"); do
    for server in "$@"; do
        url="http://127.0.0.1:${PORT[$server]}$URL_PATH"
        wrk -t1 -c"$C" -d2s -s bench/create_scenes.lua "$url" >/dev/null
        perf stat -x, -e "$EVENTS" -p "${PID[$server]}" -o "$WORK/stat" &
        perf_pid=$!
        sleep 0.2
        out=$(wrk -t1 -c"$C" -d"${DURATION}s" -s bench/create_scenes.lua "$url")
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        wrk_ok "$out" "$url"
        n=$(awk '/ requests in / { print $1 }' <<<"$out")
        awk -F, -v n="$n" -v server="$server" -v round="$round" '
            $3 ~ /pwrite64/ { pw = $1 } $3 ~ /fcntl/ { fc = $1 } $3 ~ /futex/ { fu = $1 } $3 ~ /context-switches/ { cs = $1 }
            END { printf "%-40s %6d %9d %8.1f %8.2f %8.1f %9.1f\n", server, round, n, pw / n, fc / n, fu / n, cs / n }
        ' "$WORK/stat"
    done
done
