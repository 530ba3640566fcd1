#!/usr/bin/env bash
# User-space instructions per `GET /api/mv/get_config_flavors`, counted by callgrind rather than
# timed, so builds compare on a busy machine: N sequential GETs on one keep-alive connection, with
# instrumentation switched on only around them (after 200 warm-up GETs), so start-up and idle
# timers stay out of the count. Usage: bench/get_instructions.sh SERVER... (an `mvgen` binary, or
# `bare_axum`, which is given mvgen's flavor-list bytes as the body to answer, fetched from the
# first mvgen listed). N (2000) requests; KEEP=DIR keeps the callgrind files (symbolized builds:
# `cargo rustc --release --bin mvgen -- -C strip=none`) for `callgrind_annotate`.
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need_tools valgrind callgrind_control callgrind_annotate python3 curl

[[ $# -ge 1 ]] || { echo "usage: $0 SERVER..." >&2; exit 2; }
N=${N:-2000}
OUT=${KEEP:-$WORK}
mkdir -p "$OUT"

BODY=$WORK/flavors.json
printf '%-50s %14s\n' "server ($N GETs on one connection)" "instr/GET"
for server in "$@"; do
    port=$(free_port)
    name=${server//\//_}
    args=(serve)
    if [[ ${server##*/} == bare_axum* ]]; then
        [[ -s $BODY ]] || { echo "$BENCH: list an mvgen before bare_axum (its body is mvgen's)" >&2; exit 2; }
        args=("127.0.0.1:$port" "$BODY")
    fi
    mkdir -p "$WORK/out-$port"
    start "server-$port" MV_OUTPUT_DIR="$WORK/out-$port" MVGEN_ADDR="127.0.0.1:$port" MVGEN_WORKERS=0 \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$name.callgrind" "$server" "${args[@]}"
    pid=$LAST_PID
    wait_ok "http://127.0.0.1:$port/api/mv/get_config_flavors" "$WORK/server-$port.log"
    [[ -s $BODY ]] || curl -fsS -o "$BODY" "http://127.0.0.1:$port/api/mv/get_config_flavors"
    keepalive_gets "$port" 200
    callgrind_per_request "$pid" "$OUT/$name.callgrind" "$N" "$server" keepalive_gets "$port" "$N"
done
