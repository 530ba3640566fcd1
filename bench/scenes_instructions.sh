#!/usr/bin/env bash
# User-space instructions per sync `POST /api/mv/create_scenes` (a durable job in the embedded
# SQLite, through the real Gemini client to examples/fake_gemini), counted by callgrind rather
# than timed, so builds compare on a busy machine: after 30 warm-up requests, instrumentation is
# switched on only around N requests sent by C clients at once, each on its own keep-alive
# connection (C = 1: one at a time, so no commit is shared; C > 1: concurrent requests, as
# `wrk -c16` sends them, whose writes share commits). Every thread of mvgen is counted.
# Usage: bench/scenes_instructions.sh FAKE_GEMINI MVGEN... ; N (300) requests, C (1) clients;
# KEEP=DIR keeps the callgrind files (symbolized builds: `cargo rustc --release --bin mvgen --
# -C strip=none`) for `callgrind_annotate --inclusive=yes`.
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need_tools valgrind callgrind_control callgrind_annotate python3 curl

[[ $# -ge 2 ]] || { echo "usage: $0 FAKE_GEMINI MVGEN..." >&2; exit 2; }
FAKE=$1
shift
N=${N:-300}
C=${C:-1}
OUT=${KEEP:-$WORK}
mkdir -p "$OUT"

# N POSTs of bench/create_scenes.lua's body from C threads, each on its own keep-alive
# connection, each answer read whole and checked to be a 200 before the next is sent.
posts() { # port count clients
    python3 - "$@" <<'PY'
import socket, sys, threading
port, n, c = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = (b'{"idea": "a lighthouse keeper\'s last night before the light is automated", '
        b'"character_description": "an old sailor with a grey beard and a yellow raincoat"}')
request = (b"POST /api/mv/create_scenes HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
failed = []
def client(count):
    conn, pending = socket.create_connection(("127.0.0.1", port)), b""
    for _ in range(count):
        conn.sendall(request)
        while b"\r\n\r\n" not in pending:
            pending += conn.recv(65536)
        head, rest = pending.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 200"):
            failed.append(head.split(b"\r\n")[0])
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += conn.recv(65536)
        pending = rest[length:]
threads = [threading.Thread(target=client, args=(n // c + (i < n % c),)) for i in range(c)]
for t in threads: t.start()
for t in threads: t.join()
if failed:
    sys.exit(f"{len(failed)} answers not 200, e.g. {failed[0]!r}")
PY
}

P_FAKE=$(free_port)
start fake-gemini "$FAKE" "127.0.0.1:$P_FAKE" 6
printf '%-50s %14s\n' "server ($N create_scenes, $C at once)" "instr/request"
for server in "$@"; do
    port=$(free_port)
    name=${server//\//_}
    mkdir -p "$WORK/out-$port"
    start "server-$port" GEMINI_API_KEY=bench-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE" \
        MV_OUTPUT_DIR="$WORK/out-$port" MVGEN_ADDR="127.0.0.1:$port" \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/$name.scenes.callgrind" "$server" serve
    pid=$LAST_PID
    wait_ok "http://127.0.0.1:$port/health" "$WORK/server-$port.log"
    backend=$(curl -fsS -H 'content-type: application/json' -d '{"idea": "a lighthouse", "character_description": "an old sailor"}' \
        "http://127.0.0.1:$port/api/mv/create_scenes" | grep -o '"backend_used":"[a-z]*"')
    [[ $backend == '"backend_used":"gemini"' ]] || { echo "$BENCH: create_scenes did not use gemini: $backend" >&2; exit 1; }
    posts "$port" 30 "$C"
    callgrind_per_request "$pid" "$OUT/$name.scenes.callgrind" "$N" "$server" posts "$port" "$N" "$C"
done
