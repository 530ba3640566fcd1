#!/usr/bin/env bash
# Projects at scale (issue 24's goal): COUNT projects of mv1's 8 scenes each, all made server-side
# at once (POST /generate) on the mock providers, by one replica on its embedded SQLite and by two
# replicas sharing one PostgreSQL (and one output dir); for each, projects per minute, mvgen CPU per
# scene (from /proc/PID/stat) and peak RSS (VmHWM). Then GET /api/mv/projects/{id} for a project
# of 32 scenes under wrk. Uses the release binary at $MVGEN (default: the static build), Debian's
# PostgreSQL (initdb/pg_ctl under /usr/lib/postgresql/*/bin) and wrk. Everything listens on
# 127.0.0.1 and is stopped on exit. Knobs: COUNT (100), WORKERS (8 per replica), DURATION (10).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-100}
WORKERS=${WORKERS:-8}
DURATION=${DURATION:-10}
MVGEN=${MVGEN:-target/x86_64-unknown-linux-gnu/release/mvgen}
SONG=tests/media/songs/song.mp3

source bench/lib.sh
need_tools wrk curl python3
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

serve() { # name, port, extra env...
    local name=$1 port=$2
    shift 2
    start "$name" MV_PROVIDER=mock RUST_LOG=warn MVGEN_WORKERS="$WORKERS" MVGEN_ADDR="127.0.0.1:$port" \
        MV_MAX_CONCURRENT_GENERATIONS=1000 "$@" "$MVGEN" serve
    wait_ok "http://127.0.0.1:$port/health" "$WORK/$name.log"
}

report() { # label, seconds, scenes, failed, cpu ticks, hwm KiB
    awk -v l="$1" -v s="$2" -v n="$3" -v f="$4" -v t="$5" -v h="$6" -v c="$COUNT" -v hz="$CLK_TCK" 'BEGIN {
        printf "%-28s %6.1f s  %6.1f projects/min  %5d scenes  %d failed  %7.0f us CPU/scene  %6.1f MiB peak RSS\n",
            l, s, c * 60 / s, n, f, t / hz * 1e6 / n, h / 1024 }'
}

# One replica, embedded SQLite.
port=$(free_port)
serve one "$port" MV_OUTPUT_DIR="$WORK/one"
pid=$LAST_PID
before=$(cpu_ticks "$pid")
read -r secs scenes failed < <(python3 bench/projects.py make "http://127.0.0.1:$port" "$COUNT" "$SONG" mv1)
report "1 replica, SQLite" "$secs" "$scenes" "$failed" $(($(cpu_ticks "$pid") - before)) "$(hwm_kib "$pid")"

# GET of a 32-scene project on the same replica, beside the flavor list (the cheapest GET) in the
# same run, so the figure can be read on a busy machine too.
id=$(python3 bench/projects.py big "http://127.0.0.1:$port" "$SONG" 32)
for path in "/api/mv/projects/$id" /api/mv/get_config_flavors; do
    out=$(wrk -t2 -c32 -d"${DURATION}s" --latency "http://127.0.0.1:$port$path")
    wrk_ok "$out" "$path"
    label=${path/$id/{id\} (32 scenes)}
    awk -v p="$label" '/Requests\/sec/ { r = $2 } / 50%/ { m = $2 } / 99%/ { n = $2 }
        END { printf "GET %-40s %8.0f req/s  p50 %s  p99 %s\n", p, r, m, n }' <<<"$out"
done

# Two replicas, one PostgreSQL.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PG_PORT=$(free_port)
if [[ $(id -u) == 0 ]]; then PG_RUN=(runuser -u postgres --); chown -R postgres "$WORK"; else PG_RUN=(); fi
mkdir -p "$WORK/pg" && [[ ${#PG_RUN[@]} -gt 0 ]] && chown postgres "$WORK/pg"
"${PG_RUN[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust >/dev/null
"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/pg -c max_connections=200" -l "$WORK/pg.log" -w start >/dev/null
trap '"${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true; cleanup' EXIT
url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
mkdir -p "$WORK/two"
port_a=$(free_port)
serve a "$port_a" MV_OUTPUT_DIR="$WORK/two" MVGEN_DATABASE_URL="$url"
pid_a=$LAST_PID
port_b=$(free_port)
serve b "$port_b" MV_OUTPUT_DIR="$WORK/two" MVGEN_DATABASE_URL="$url"
pid_b=$LAST_PID
before=$(($(cpu_ticks "$pid_a") + $(cpu_ticks "$pid_b")))
read -r secs scenes failed < <(python3 bench/projects.py make "http://127.0.0.1:$port_a,http://127.0.0.1:$port_b" "$COUNT" "$SONG" mv1)
after=$(($(cpu_ticks "$pid_a") + $(cpu_ticks "$pid_b")))
report "2 replicas, PostgreSQL" "$secs" "$scenes" "$failed" $((after - before)) $(($(hwm_kib "$pid_a") + $(hwm_kib "$pid_b")))
