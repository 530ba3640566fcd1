#!/usr/bin/env bash
# Issue 22's five figures for two mvgen builds in one run, against the bare axum baseline and an
# instant fake Gemini, rounds alternating A and B (and which goes first) so the shared, noisy
# machine weighs on both alike; medians over the rounds, ratios B / A and against bare axum:
#   1. GET /api/mv/get_config_flavors: req/s against bare axum answering the very same bytes (A's
#      flavor list, `bare_axum ADDR BODY_FILE`), and mvgen's CPU per request (/proc/PID/stat); also
#      against bare axum's own 19-byte hello, the baseline of the figures before 2026-12-07 03:00;
#   2. POST /api/mv/create_scenes through the real Gemini client (a durable job per request): req/s
#      and mvgen's CPU per request, on the embedded SQLite and, beside it, on PostgreSQL (a
#      throwaway cluster on 127.0.0.1 with PostgreSQL's own defaults: fsync and synchronous
#      commit on, as production runs it);
#   3. cold start, exec -> the first 200 on the flavor list, each start on a fresh output dir (so
#      the SQLite database is created and migrated), median of STARTS per round;
#   4. idle RSS after that start (examples/startup_probe reads it 0.5 s after the first 200);
#   5. the binary's size as given, and stripped (`strip`), since only the shipping profile strips.
# Usage: bench/all.sh A_MVGEN B_MVGEN EXAMPLES_DIR, where EXAMPLES_DIR holds bare_axum,
# fake_gemini and startup_probe built with the same profile as the two builds (release, e.g.
# `cargo build --release --bin mvgen --example bare_axum --example fake_gemini --example startup_probe`).
# Knobs: DURATION (s per wrk run, 8), CONNECTIONS (16), THREADS (1), ROUNDS (5), STARTS (10),
# PG (1; 0 leaves PostgreSQL out). Needs wrk and curl; PostgreSQL from Debian's `postgresql`.
# Everything listens on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
need_tools wrk curl strip

[[ $# == 3 ]] || { echo "usage: $0 A_MVGEN B_MVGEN EXAMPLES_DIR" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2") EXAMPLES=$(realpath "$3")
BARE=$EXAMPLES/bare_axum FAKE=$EXAMPLES/fake_gemini PROBE=$EXAMPLES/startup_probe
for bin in "$A" "$B" "$BARE" "$FAKE" "$PROBE"; do [[ -x $bin ]] || { echo "$BENCH: $bin not found" >&2; exit 2; }; done
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-5}
STARTS=${STARTS:-10}
PG=${PG:-1}
FLAVORS_PATH=/api/mv/get_config_flavors
SCENES_PATH=/api/mv/create_scenes
CLK_TCK=$(getconf CLK_TCK)
chmod 755 "$WORK"   # PostgreSQL runs as `postgres` when we are root

# A throwaway PostgreSQL cluster, one database per build, stopped on exit before lib.sh's cleanup.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() { [[ -d $WORK/pg/data ]] && as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1 || true; }
trap 'pg_stop; cleanup' EXIT
if [[ $PG == 1 ]]; then
    [[ -n $PG_BIN ]] || { echo "$BENCH: PostgreSQL not installed (apt-get install postgresql; PG=0 skips it)" >&2; exit 2; }
    P_PG=$(free_port)
    mkdir -p "$WORK/pg"
    [[ $(id -u) == 0 ]] && chown postgres:postgres "$WORK/pg"
    as_pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust >"$WORK/pg/initdb.log" 2>&1
    as_pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $P_PG -c unix_socket_directories=$WORK/pg" start >/dev/null
    for db in a b; do as_pg "$PG_BIN/createdb" -h "$WORK/pg" -p "$P_PG" -U postgres "$db"; done
fi

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

# Appends "ms kib" of one cold start of BIN (serve, mock providers, a fresh output dir) to FILE.
cold_start() { # file binary [serve]
    local dir
    dir=$(mktemp -d "$WORK/start.XXXXXX")
    env -i PATH="$PATH" MV_PROVIDER=mock MV_OUTPUT_DIR="$dir" "$PROBE" 1 "$FLAVORS_PATH" -- "${@:2}" |
        awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } print f["median_ms"], f["rss_kib"] }' >>"$1"
    rm -rf "$dir"
}

P_BARE=$(free_port); P_FAKE=$(free_port)
start bare "$BARE" "127.0.0.1:$P_BARE"; BARE_PID=$LAST_PID
start fake-gemini "$FAKE" "127.0.0.1:$P_FAKE" 6
declare -A PID PORT
gemini=(GEMINI_API_KEY=bench-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE")
engines=(sqlite)
[[ $PG == 1 ]] && engines+=(pg)
for build in a b; do
    bin=$A; [[ $build == b ]] && bin=$B
    for engine in "${engines[@]}"; do
        name=$build-$engine port=$(free_port)
        mkdir -p "$WORK/$name"
        db=()
        [[ $engine == pg ]] && db=(MVGEN_DATABASE_URL="postgres://postgres@127.0.0.1:$P_PG/$build")
        start "$name" "${gemini[@]}" "${db[@]}" MV_OUTPUT_DIR="$WORK/$name" MVGEN_ADDR="127.0.0.1:$port" "$bin" serve
        PID[$name]=$LAST_PID PORT[$name]=$port
    done
done
wait_ok "http://127.0.0.1:$P_BARE$FLAVORS_PATH"
for name in "${!PORT[@]}"; do
    wait_ok "http://127.0.0.1:${PORT[$name]}/health" "$WORK/$name.log"
    # The POST must go through the real Gemini client, or the figure means nothing.
    backend=$(curl -fsS -H 'content-type: application/json' \
        -d '{"idea": "a lighthouse", "character_description": "an old sailor"}' \
        "http://127.0.0.1:${PORT[$name]}$SCENES_PATH" | grep -o '"backend_used":"[a-z]*"')
    [[ $backend == '"backend_used":"gemini"' ]] || { echo "$BENCH: $name: create_scenes did not use gemini: $backend" >&2; exit 1; }
done

# The ceiling as issue 22 defines it: bare axum answering mvgen's own flavor-list bytes (A's). A
# bare_axum too old to take a body file would answer its hello: refused, not silently compared.
curl -fsS "http://127.0.0.1:${PORT[a-sqlite]}$FLAVORS_PATH" >"$WORK/flavors.json"
P_SAME=$(free_port)
start bare-same "$BARE" "127.0.0.1:$P_SAME" "$WORK/flavors.json"; SAME_PID=$LAST_PID
wait_ok "http://127.0.0.1:$P_SAME$FLAVORS_PATH"
curl -fsS "http://127.0.0.1:$P_SAME$FLAVORS_PATH" | cmp -s - "$WORK/flavors.json" ||
    { echo "$BENCH: $BARE does not serve a body file (examples/bare_axum.rs since 2026-12-07)" >&2; exit 2; }

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds alternating A and B, medians; $STARTS cold starts per build a round; $(nproc) cores" >&2
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    order=(a b)
    ((round % 2 == 0)) && order=(b a)
    measure "$BARE_PID" "http://127.0.0.1:$P_BARE$FLAVORS_PATH" >>"$WORK/get-bare"
    measure "$SAME_PID" "http://127.0.0.1:$P_SAME$FLAVORS_PATH" >>"$WORK/get-same"
    for build in "${order[@]}"; do
        measure "${PID[$build-sqlite]}" "http://127.0.0.1:${PORT[$build-sqlite]}$FLAVORS_PATH" >>"$WORK/get-$build"
    done
    for engine in "${engines[@]}"; do
        for build in "${order[@]}"; do
            measure "${PID[$build-$engine]}" "http://127.0.0.1:${PORT[$build-$engine]}$SCENES_PATH" \
                bench/create_scenes.lua >>"$WORK/post-$engine-$build"
        done
    done
    for _ in $(seq "$STARTS"); do
        cold_start "$WORK/start-bare" "$BARE" "{addr}"
        for build in "${order[@]}"; do
            bin=$A; [[ $build == b ]] && bin=$B
            cold_start "$WORK/start-$build" "$bin" serve
        done
    done
done

col() { awk -v c="$2" '{ print $c }' "$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
size() { stat -c %s "$1"; }
stripped() { strip -o "$WORK/stripped" "$1" && stat -c %s "$WORK/stripped"; }

bare_get=$(col "$WORK/get-bare" 1)
printf '\n%-52s %11s %11s %7s %11s %s\n' "figure (medians)" "A" "B" "B / A" "bare axum" "goal (issue 22)"
num() { awk -v v="$1" 'BEGIN { printf (v < 10 ? "%.2f" : (v < 1000 ? "%.1f" : "%.0f")), v }'; }
line() { # label a b [bare] [goal]
    printf '%-52s %11s %11s %7s %11s %s\n' "$1" "$(num "$2")" "$(num "$3")" "$(ratio "$2" "$3")" \
        "$([[ -n ${4:-} ]] && num "$4")" "${5:-}"
}
ga=$(col "$WORK/get-a" 1) gb=$(col "$WORK/get-b" 1)
same_get=$(col "$WORK/get-same" 1)
line "GET flavors req/s (bare: the same bytes)" "$ga" "$gb" "$same_get"
line "GET flavors req/s / bare axum, the same bytes" "$(ratio "$same_get" "$ga")" "$(ratio "$same_get" "$gb")" 1 ">= 0.90"
line "GET flavors req/s / bare axum's 19-byte hello" "$(ratio "$bare_get" "$ga")" "$(ratio "$bare_get" "$gb")" 1 \
    "(bare: $(num "$bare_get") req/s)"
line "GET flavors CPU us/request (bare: the same bytes)" "$(col "$WORK/get-a" 2)" "$(col "$WORK/get-b" 2)" \
    "$(col "$WORK/get-same" 2)"
for engine in "${engines[@]}"; do
    label=SQLite; [[ $engine == pg ]] && label=PostgreSQL
    line "create_scenes req/s ($label)" "$(col "$WORK/post-$engine-a" 1)" "$(col "$WORK/post-$engine-b" 1)" "" ">= 3000"
    line "create_scenes mvgen CPU us/request ($label)" "$(col "$WORK/post-$engine-a" 2)" \
        "$(col "$WORK/post-$engine-b" 2)" "" "<= 300"
done
line "cold start ms, fresh output dir" "$(col "$WORK/start-a" 1)" "$(col "$WORK/start-b" 1)" \
    "$(col "$WORK/start-bare" 1)" "<= 10"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
line "idle RSS MiB after start" "$(mib "$(col "$WORK/start-a" 2)")" "$(mib "$(col "$WORK/start-b" 2)")" \
    "$(mib "$(col "$WORK/start-bare" 2)")" "<= 10"
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000000 }'; }
line "binary MB as built" "$(mb "$(size "$A")")" "$(mb "$(size "$B")")"
line "binary MB stripped" "$(mb "$(stripped "$A")")" "$(mb "$(stripped "$B")")" "" "<= 10 (fat LTO)"
