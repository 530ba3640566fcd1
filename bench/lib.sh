# Helpers shared by the bench scripts that start servers and drive them with wrk. Sourced after
# `set -euo pipefail` and `cd` to the repository; messages are prefixed with the script's name.
# Sourcing it makes $WORK (a temporary directory) and $PIDS, and on exit stops every process
# started with `start` and removes $WORK.

BENCH=${0##*/}

need_tools() { # tool...
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$BENCH: $tool not found (apt-get install -y $tool)" >&2; exit 2; }
    done
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (bounded tries; a refused connect means free).
free_port() {
    local port
    for _ in $(seq 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    echo "$BENCH: no free port found" >&2
    exit 1
}

# Servers get a clean environment so no key from the caller's shell changes what is measured.
# Not to be called in a $(...) subshell: the pid must reach PIDS, or cleanup cannot stop it.
start() { # name, then the command (env assignments first, as for env(1)); output in $WORK/name.log
    local name=$1
    shift
    env -i PATH="$PATH" "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    LAST_PID=$!
}

wait_ok() { # url [log to show if it never answers]
    for _ in $(seq 200); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return
        sleep 0.05
    done
    echo "$BENCH: no 200 from $1 within 10 s" >&2
    [[ -n ${2:-} ]] && cat "$2" >&2
    exit 1
}

# Exits when wrk saw non-2xx answers or socket errors: a figure with errors in it means nothing.
wrk_ok() { # wrk's output, url
    if grep -qE 'Non-2xx|Socket errors' <<<"$1"; then
        echo "$BENCH: errors under load on $2:" >&2
        echo "$1" >&2
        exit 1
    fi
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# N sequential GETs of the flavor list on one keep-alive connection to 127.0.0.1:PORT, each
# answer read whole (by its Content-Length) before the next is sent.
keepalive_gets() { # port count
    python3 - "$1" "$2" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = socket.create_connection(("127.0.0.1", port))
request, pending = b"GET /api/mv/get_config_flavors HTTP/1.1\r\nHost: bench\r\n\r\n", b""
for _ in range(n):
    conn.sendall(request)
    while b"\r\n\r\n" not in pending:
        pending += conn.recv(65536)
    head, rest = pending.split(b"\r\n\r\n", 1)
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += conn.recv(65536)
    pending = rest[length:]
PY
}

# For a server started under `valgrind --tool=callgrind --instr-atstart=no` as PID, writing FILE:
# runs the rest of the arguments (N requests) with instrumentation on, stops the server, and prints
# LABEL and its user-space instructions per request.
callgrind_per_request() { # pid file n label, then the command
    local pid=$1 file=$2 n=$3 label=$4 total
    shift 4
    callgrind_control -i on "$pid" >/dev/null 2>&1
    "$@"
    callgrind_control -i off "$pid" >/dev/null 2>&1
    # SIGTERM: bare axum ignores SIGINT when started in the background; mvgen drains on either.
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
    printf '%-50s %14.0f\n' "$label" "$(awk -v t="$total" -v n="$n" 'BEGIN { print t / n }')"
}
