#!/usr/bin/env bash
# mvgen under load, side by side with a bare axum server measured in the same run:
#   - GET /api/mv/get_config_flavors: req/s, p50/p99 for bare axum, mvgen, and mvgen with
#     MVGEN_METRICS=false; mvgen/bare and metrics on/off;
#   - POST /api/mv/create_scenes through the real Gemini client against an instant local fake;
#   - CPU time mvgen spends per request (from /proc/PID/stat);
#   - cold start (exec -> first 200, median of STARTS runs) and idle RSS, for both servers.
# Builds the static release binaries first (SKIP_BUILD=1 to reuse them). Needs wrk and curl.
# Everything listens on 127.0.0.1 and everything started here is stopped on exit.
# Knobs (environment): DURATION (s per wrk run, 10), CONNECTIONS (32), THREADS (2), ROUNDS (3),
# STARTS (20). See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
STARTS=${STARTS:-20}
FLAVORS_PATH=/api/mv/get_config_flavors
SCENES_PATH=/api/mv/create_scenes

source bench/lib.sh
need_tools wrk curl

OUT=target/x86_64-unknown-linux-gnu/release
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build-static --bin mvgen --example bare_axum --example fake_gemini --example startup_probe \
        --example live_reload_latency
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)

# Runs wrk and prints "req/s p50_us p99_us requests cpu_us_per_request" for server PID.
measure() { # pid url [lua script]
    local pid=$1 url=$2 script=${3:-} before after out
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency)
    [[ -n $script ]] && args+=(-s "$script")
    before=$(cpu_ticks "$pid")
    out=$(wrk "${args[@]}" "$url")
    after=$(cpu_ticks "$pid")
    wrk_ok "$out" "$url"
    awk -v ticks=$((after - before)) -v hz="$CLK_TCK" '
        function us(v) {
            if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1000000
            return v
        }
        $1 == "50%" { p50 = us($2) }
        $1 == "99%" { p99 = us($2) }
        / requests in / { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "%.0f %.0f %.0f %d %.1f\n", rps, p50, p99, n, ticks * 1000000 / hz / n }
    ' <<<"$out"
}

warm() { wrk -t1 -c4 -d1s ${2:+-s "$2"} "$1" >/dev/null; }

col() { # file, column: median of that column over all rounds
    awk -v c="$2" '{ print $c }' "$1" | median
}

P_BARE=$(free_port); P_MOCK=$(free_port); P_FAKE=$(free_port); P_GEM=$(free_port); P_OFF=$(free_port)
start bare "$OUT/examples/bare_axum" "127.0.0.1:$P_BARE"; BARE_PID=$LAST_PID
start mvgen-mock MV_PROVIDER=mock MV_OUTPUT_DIR="$WORK/out" MVGEN_ADDR="127.0.0.1:$P_MOCK" "$OUT/mvgen" serve
MOCK_PID=$LAST_PID
start mvgen-nometrics MV_PROVIDER=mock MVGEN_METRICS=false MV_OUTPUT_DIR="$WORK/out" MVGEN_ADDR="127.0.0.1:$P_OFF" \
    "$OUT/mvgen" serve
OFF_PID=$LAST_PID
start fake-gemini "$OUT/examples/fake_gemini" "127.0.0.1:$P_FAKE" 6; FAKE_PID=$LAST_PID
start mvgen-gemini GEMINI_API_KEY=bench-key GEMINI_BASE_URL="http://127.0.0.1:$P_FAKE" MV_OUTPUT_DIR="$WORK/out" \
    MVGEN_ADDR="127.0.0.1:$P_GEM" "$OUT/mvgen" serve
GEM_PID=$LAST_PID
wait_ok "http://127.0.0.1:$P_BARE$FLAVORS_PATH"
wait_ok "http://127.0.0.1:$P_MOCK$FLAVORS_PATH"
wait_ok "http://127.0.0.1:$P_OFF$FLAVORS_PATH"
wait_ok "http://127.0.0.1:$P_GEM/health"

# The POST must go through the real Gemini client, or the figure means nothing.
backend=$(curl -fsS -H 'content-type: application/json' \
    -d '{"idea": "a lighthouse", "character_description": "an old sailor"}' \
    "http://127.0.0.1:$P_GEM$SCENES_PATH" | grep -o '"backend_used":"[a-z]*"')
[[ $backend == '"backend_used":"gemini"' ]] || { echo "load.sh: create_scenes did not use gemini: $backend" >&2; exit 1; }

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds alternating, medians; $(nproc) cores" >&2
warm "http://127.0.0.1:$P_BARE$FLAVORS_PATH"
warm "http://127.0.0.1:$P_MOCK$FLAVORS_PATH"
warm "http://127.0.0.1:$P_OFF$FLAVORS_PATH"
warm "http://127.0.0.1:$P_GEM$SCENES_PATH" bench/create_scenes.lua
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    measure "$BARE_PID" "http://127.0.0.1:$P_BARE$FLAVORS_PATH" >>"$WORK/get-bare"
    measure "$MOCK_PID" "http://127.0.0.1:$P_MOCK$FLAVORS_PATH" >>"$WORK/get-mvgen"
    measure "$OFF_PID" "http://127.0.0.1:$P_OFF$FLAVORS_PATH" >>"$WORK/get-nometrics"
    measure "$GEM_PID" "http://127.0.0.1:$P_GEM$SCENES_PATH" bench/create_scenes.lua >>"$WORK/post-mvgen"
done

echo "cold start: $STARTS starts each" >&2
# Cold starts run with the load servers idle, so they compete for nothing but each other's RSS.
"$OUT/examples/startup_probe" "$STARTS" "$FLAVORS_PATH" -- "$OUT/examples/bare_axum" "{addr}" >"$WORK/start-bare"
env -i PATH="$PATH" MV_PROVIDER=mock MV_OUTPUT_DIR="$WORK/out" \
    "$OUT/examples/startup_probe" "$STARTS" "$FLAVORS_PATH" -- "$OUT/mvgen" serve >"$WORK/start-mvgen"
field() { grep -o "$2=[0-9.]*" "$1" | cut -d= -f2; }

bare_rps=$(col "$WORK/get-bare" 1); mvgen_rps=$(col "$WORK/get-mvgen" 1); post_rps=$(col "$WORK/post-mvgen" 1)
off_rps=$(col "$WORK/get-nometrics" 1)
post_cpu=$(col "$WORK/post-mvgen" 5)
bare_ms=$(field "$WORK/start-bare" median_ms); mvgen_ms=$(field "$WORK/start-mvgen" median_ms)
bare_rss=$(field "$WORK/start-bare" rss_kib); mvgen_rss=$(field "$WORK/start-mvgen" rss_kib)

printf '\n%-44s %-6s %9s %9s %9s %10s\n' "measurement" "server" "req/s" "p50 us" "p99 us" "CPU us/req"
row() { printf '%-44s %-6s %9.0f %9.0f %9.0f %10.1f\n' "$1" "$2" "$(col "$3" 1)" "$(col "$3" 2)" "$(col "$3" 3)" "$(col "$3" 5)"; }
row "GET $FLAVORS_PATH" bare "$WORK/get-bare"
row "GET $FLAVORS_PATH" mvgen "$WORK/get-mvgen"
row "GET $FLAVORS_PATH (MVGEN_METRICS=false)" mvgen "$WORK/get-nometrics"
row "POST $SCENES_PATH (fake Gemini)" mvgen "$WORK/post-mvgen"
printf '\n%-44s %-6s %9s %9s\n' "measurement" "server" "value" "min..max"
printf '%-44s %-6s %7.2f ms %s..%s\n' "cold start, exec -> first 200 (median)" bare "$bare_ms" \
    "$(field "$WORK/start-bare" min_ms)" "$(field "$WORK/start-bare" max_ms)"
printf '%-44s %-6s %7.2f ms %s..%s\n' "cold start, exec -> first 200 (median)" mvgen "$mvgen_ms" \
    "$(field "$WORK/start-mvgen" min_ms)" "$(field "$WORK/start-mvgen" max_ms)"
printf '%-44s %-6s %6.1f MiB\n' "idle RSS after startup (median)" bare "$(awk -v k="$bare_rss" 'BEGIN { print k / 1024 }')"
printf '%-44s %-6s %6.1f MiB\n' "idle RSS after startup (median)" mvgen "$(awk -v k="$mvgen_rss" 'BEGIN { print k / 1024 }')"

echo
awk -v b="$bare_rps" -v m="$mvgen_rps" -v o="$off_rps" -v p="$post_rps" -v c="$post_cpu" -v ms="$mvgen_ms" -v rss="$mvgen_rss" '
    function check(ok) { return ok ? "ok" : "MISSED" }
    BEGIN {
        printf "%-52s %8.2f  (target >= 0.90) %s\n", "GET flavors req/s, mvgen / bare", m / b, check(m / b >= 0.9)
        printf "%-52s %8.2f  (target >= 0.95) %s\n", "GET flavors req/s, metrics on / off", m / o, check(m / o >= 0.95)
        printf "%-52s %8.2f\n", "GET flavors req/s, metrics off / bare", o / b
        printf "%-52s %8.0f  (target >= 1000) %s\n", "POST create_scenes req/s", p, check(p >= 1000)
        printf "%-52s %8.1f  (target <= 50) %s\n", "POST create_scenes mvgen CPU us/request", c, check(c <= 50)
        printf "%-52s %8.2f  (target <= 10) %s\n", "cold start ms (median)", ms, check(ms <= 10)
        printf "%-52s %8.1f  (target <= 10) %s\n", "idle RSS MiB", rss / 1024, check(rss / 1024 <= 10)
        printf "\nthe Python service (issue figures, not this run): 1.9 s start, 143 MiB idle, 1.4k req/s GET, 12 req/s POST\n"
        printf "%-52s %8.0fx\n", "GET flavors req/s, mvgen / Python", m / 1400
        printf "%-52s %8.0fx\n", "POST create_scenes req/s, mvgen / Python", p / 12
    }'
