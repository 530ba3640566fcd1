#!/usr/bin/env bash
# Listing memory bench (BENCHMARKS.md "Issue 21: uploads stored, listings without plans"): the real
# `mvgen serve` binary takes SUBMITS video jobs (`POST /api/mv/jobs`) whose input carries a
# `reference_image_base64` of about 0.9 MB (the body limit is 1 MiB), then answers LISTS concurrent
# `GET /api/mv/jobs?limit=100`. Reported: the process's peak RSS (VmHWM from /proc/PID/status)
# idle, after the submissions and after the listings, and the size of one listing's answer.
#
# The jobs stay queued (MVGEN_WORKERS=0, mock providers): nothing renders, so nothing but the
# stored rows and the answers built from them moves the figure, and the rows are what a listing of
# real queued (or finished) jobs reads. Each run starts from an empty output directory.
#
# MVGEN_BIN=path runs another build (an older commit's, for a before/after figure); otherwise this
# tree's release binary is built (`cargo build --release`, fat LTO: slow the first time). Needs
# curl and python3. Everything listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBMITS=${SUBMITS:-100}
LISTS=${LISTS:-8}
source bench/lib.sh
need_tools curl python3

if [[ -z ${MVGEN_BIN:-} ]]; then
    cargo build -q --release --bin mvgen
    MVGEN_BIN=target/release/mvgen
fi

# One job body: a PNG signature (types are sniffed from the first bytes) and incompressible bytes,
# 675 000 of them, so 900 000 characters of base64.
python3 - "$WORK/body.json" <<'EOF'
import base64, json, os, sys
image = b"\x89PNG\r\n\x1a\n" + os.urandom(675_000 - 8)
body = {"kind": "video", "input": {"prompt": "a lighthouse at night", "reference_image_base64": base64.b64encode(image).decode()}}
with open(sys.argv[1], "w") as f:
    json.dump(body, f)
EOF

hwm_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

port=$(free_port)
base="http://127.0.0.1:$port"
start mvgen MV_PROVIDER=mock MVGEN_WORKERS=0 MV_OUTPUT_DIR="$WORK/out" MVGEN_ADDR="127.0.0.1:$port" RUST_LOG=warn \
    "$MVGEN_BIN" serve
pid=$LAST_PID
wait_ok "$base/health" "$WORK/mvgen.log"
idle=$(hwm_mib "$pid")

for _ in $(seq "$SUBMITS"); do
    status=$(curl -sS -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        --data-binary @"$WORK/body.json" "$base/api/mv/jobs")
    [[ $status == 202 ]] || { echo "$BENCH: a submission answered $status" >&2; cat "$WORK/mvgen.log" >&2; exit 1; }
done
submitted=$(hwm_mib "$pid")

# The listings at once, each into its own file; every one must be a 200 listing SUBMITS jobs or
# the figure means nothing.
listers=()
for i in $(seq "$LISTS"); do
    curl -sS -o "$WORK/list-$i.json" -w '%{http_code}' "$base/api/mv/jobs?limit=100" >"$WORK/status-$i" &
    listers+=("$!")
done
for p in "${listers[@]}"; do wait "$p"; done
listed=$(hwm_mib "$pid")
expected=$((SUBMITS < 100 ? SUBMITS : 100))
for i in $(seq "$LISTS"); do
    [[ $(cat "$WORK/status-$i") == 200 ]] || { echo "$BENCH: listing $i answered $(cat "$WORK/status-$i")" >&2; exit 1; }
    count=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["jobs"]))' "$WORK/list-$i.json")
    [[ $count == "$expected" ]] || { echo "$BENCH: listing $i has $count jobs, not $expected" >&2; exit 1; }
done
answer=$(stat -c %s "$WORK/list-1.json")
database=$(du -sk "$WORK/out" | awk '{ printf "%.1f", $1 / 1024 }')

echo "binary: $MVGEN_BIN; $SUBMITS video jobs of $(stat -c %s "$WORK/body.json") body bytes, $LISTS concurrent listings of 100"
printf '%-44s %10s\n' measurement value
printf '%-44s %6s MiB\n' "VmHWM idle" "$idle"
printf '%-44s %6s MiB\n' "VmHWM after $SUBMITS submissions" "$submitted"
printf '%-44s %6s MiB\n' "VmHWM after $LISTS concurrent listings" "$listed"
printf '%-44s %10s\n' "one listing's answer, bytes" "$answer"
printf '%-44s %6s MiB\n' "output directory (database + files)" "$database"
awk -v h="$listed" 'BEGIN { printf "%-44s %6.1f MiB  (target < 64) %s\n", "peak RSS", h, (h < 64 ? "ok" : "MISSED") }'
