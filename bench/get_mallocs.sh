#!/usr/bin/env bash
# Heap allocations per `GET /api/mv/get_config_flavors`, counted rather than timed, so two builds
# compare exactly on a busy machine: a uprobe on glibc's malloc counts every call of a server run
# (start, N sequential GETs on one keep-alive connection, stop), minus a run with no request.
# Usage: bench/get_mallocs.sh SERVER... (an `mvgen` binary, or `bare_axum`, which takes its address
# as its argument); N (2000) requests. Needs root for the probe (`perf probe`, from linux-perf).
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need_tools perf python3 curl

[[ $# -ge 1 ]] || { echo "usage: $0 SERVER..." >&2; exit 2; }
N=${N:-2000}
LIBC=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ { print $NF; exit }')
perf probe -l 2>/dev/null | grep -q 'probe_libc:malloc' || perf probe -q -x "$LIBC" malloc

# Prints the mallocs of one run of SERVER answering `requests` GETs.
run() { # server requests
    local server=$1 requests=$2 port out args
    port=$(free_port)
    mkdir -p "$WORK/out-$port"
    args=(serve)
    [[ ${server##*/} == bare_axum* ]] && args=("127.0.0.1:$port")
    # No job workers: their queue polls allocate by the clock, not per GET, so a run slowed by a
    # busy machine would count more of them (the count moved 32 -> 43 between two runs).
    start "server-$port" MV_OUTPUT_DIR="$WORK/out-$port" MVGEN_ADDR="127.0.0.1:$port" MVGEN_WORKERS=0 \
        perf stat -x, -e probe_libc:malloc -o "$WORK/stat-$port" -- "$server" "${args[@]}"
    local perf_pid=$LAST_PID
    wait_ok "http://127.0.0.1:$port/api/mv/get_config_flavors" "$WORK/server-$port.log"
    keepalive_gets "$port" "$requests"
    # perf stat's child is the server: stopping it ends perf stat, which writes its count.
    kill -INT "$(pgrep -P "$perf_pid" | head -1)"
    wait "$perf_pid" 2>/dev/null || true
    awk -F, '/probe_libc:malloc/ { print $1 }' "$WORK/stat-$port"
}

printf '%-50s %12s\n' "server (mallocs per GET, $N on one connection)" "mallocs/GET"
for server in "$@"; do
    idle=$(run "$server" 1)
    busy=$(run "$server" $((N + 1)))
    printf '%-50s %12.1f\n' "$server" "$(awk -v a="$idle" -v b="$busy" -v n="$N" 'BEGIN { print (b - a) / n }')"
done
