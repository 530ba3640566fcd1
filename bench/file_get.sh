#!/usr/bin/env bash
# File GETs from `file://` storage, two builds side by side in one run (BENCHMARKS.md, issue 13):
# BEFORE_BIN (e.g. a build from before object storage) and AFTER_BIN serve the same output
# directory, and wrk alternates between them for ROUNDS rounds:
#   - GET /api/mv/get_video/{id} of a SMALL_KIB file and of a LARGE_MIB file (whole body);
#   - the same large file with `Range: bytes=0-65535` (what a player's first request looks like).
# Prints the median req/s and MiB/s of each and the after/before ratio. Needs wrk and curl.
# Everything listens on 127.0.0.1 and everything started here is stopped on exit.
# Knobs: BEFORE_BIN, AFTER_BIN (required), DURATION (5), CONNECTIONS (32), THREADS (2),
# ROUNDS (3), SMALL_KIB (64), LARGE_MIB (8).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${BEFORE_BIN:?BEFORE_BIN=path/to/mvgen (the build to compare against)}"
AFTER_BIN=${AFTER_BIN:-target/release/mvgen}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
SMALL_KIB=${SMALL_KIB:-64}
LARGE_MIB=${LARGE_MIB:-8}
source bench/lib.sh
need_tools wrk curl

# Today's layout, which both builds read: {MV_OUTPUT_DIR}/videos/{uuid}.mp4.
mkdir -p "$WORK/out/videos"
video() { # size in KiB -> id
    local id
    id=$(python3 -c 'import uuid; print(uuid.uuid4())')
    { printf '\0\0\0\030ftypmp42\0\0\0\0mp42isom'; head -c "$(($1 * 1024 - 24))" /dev/urandom; } \
        >"$WORK/out/videos/$id.mp4"
    echo "$id"
}
SMALL=$(video "$SMALL_KIB")
LARGE=$(video $((LARGE_MIB * 1024)))

serve() { # binary -> sets BASE (not a $(...) subshell: see `start`)
    local p
    p=$(free_port)
    start "serve-$p" MV_PROVIDER=mock MV_OUTPUT_DIR="$WORK/out" MVGEN_ADDR="127.0.0.1:$p" \
        MVGEN_DATABASE_URL="sqlite://$WORK/jobs-$p.db?mode=rwc" "$1" serve
    BASE="http://127.0.0.1:$p"
    wait_ok "$BASE/health" "$WORK/serve-$p.log"
}
serve "$BEFORE_BIN"; BEFORE=$BASE
serve "$AFTER_BIN"; AFTER=$BASE

# The same bytes from both, or the comparison means nothing.
for base in "$BEFORE" "$AFTER"; do
    cmp <(curl -fsS "$base/api/mv/get_video/$LARGE") "$WORK/out/videos/$LARGE.mp4"
    [[ $(curl -fsS -H 'Range: bytes=0-65535' "$base/api/mv/get_video/$LARGE" | wc -c) == 65536 ]]
done

printf 'wrk.headers["Range"] = "bytes=0-65535"\n' >"$WORK/range.lua"
measure() { # url [lua] -> req/s
    local out
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s ${2:+-s "$2"} "$1")
    wrk_ok "$out" "$1"
    awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds alternating, medians; $(nproc) cores" >&2
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS" >&2
    for side in before after; do
        base=$BEFORE; [[ $side == after ]] && base=$AFTER
        measure "$base/api/mv/get_video/$SMALL" >>"$WORK/small-$side"
        measure "$base/api/mv/get_video/$LARGE" >>"$WORK/large-$side"
        measure "$base/api/mv/get_video/$LARGE" "$WORK/range.lua" >>"$WORK/range-$side"
    done
done

printf '\n%-40s %12s %12s %12s %12s %8s\n' "GET /api/mv/get_video/{id}" "before req/s" "after req/s" \
    "before MiB/s" "after MiB/s" "after/before"
row() { # name, file stem, bytes per answer
    local b a
    b=$(median <"$WORK/$2-before"); a=$(median <"$WORK/$2-after")
    awk -v n="$1" -v b="$b" -v a="$a" -v s="$3" \
        'BEGIN { printf "%-40s %12.0f %12.0f %12.1f %12.1f %8.2f\n", n, b, a, b * s / 1048576, a * s / 1048576, a / b }'
}
row "${SMALL_KIB} KiB file, whole" small $((SMALL_KIB * 1024))
row "${LARGE_MIB} MiB file, whole" large $((LARGE_MIB * 1048576))
row "${LARGE_MIB} MiB file, Range: bytes=0-65535" range 65536
