#!/usr/bin/env bash
# The final cut against ffmpeg's own remux of the same inputs, in one run, rounds alternating:
#   - mvgen: POST /api/mv/stitch-videos of CLIPS stored clips (8 s, 1280x720 H.264 at 4 Mbit/s, about
#     a Veo clip's rate, with stereo AAC; noise keeps the encoder from shrinking the test pattern) with a
#     SONG_SECONDS MP3 stored by upload_audio, on file:// and on SeaweedFS (s3://);
#   - the anchor: `ffmpeg -f concat -c copy` of the same clip files with the song mapped in and
#     `+faststart` (what mvgen writes), from local files. No `-shortest`: like mvgen without
#     `loop_audio`, it keeps all the video and the song where it is shorter.
# Reports the median wall time of each and their ratio, and mvgen's added RSS: its peak during the
# cuts (VmHWM, reset after the upload) over its RSS before them.
# Usage: bench/final_cut.sh MVGEN (a release build). Knobs: ROUNDS (5), CLIPS (32), SONG_SECONDS
# (240), STORES ("file s3"; s3 needs MVGEN_WEED, as .ci/run sets it). Inputs are made once with
# ffmpeg into target/bench-cut/. Everything listens on 127.0.0.1 and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source bench/weed.sh
need_tools curl ffmpeg python3

[[ $# == 1 ]] || { echo "usage: $0 MVGEN" >&2; exit 2; }
MVGEN=$(realpath "$1")
ROUNDS=${ROUNDS:-5}
CLIPS=${CLIPS:-32}
SONG_SECONDS=${SONG_SECONDS:-240}
STORES=${STORES:-file s3}
CACHE=target/bench-cut
mkdir -p "$CACHE"

clip=$CACHE/clip-720p-8s.mp4
song=$CACHE/song-${SONG_SECONDS}s.mp3
if [[ ! -f $clip ]]; then
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1280x720:rate=30:duration=8" \
        -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=8" -vf "noise=alls=12:allf=t" \
        -c:v libx264 -preset veryfast -b:v 4M -maxrate 4M -bufsize 8M -pix_fmt yuv420p \
        -c:a aac -b:a 128k -ac 2 -shortest -movflags +faststart "$clip"
fi
if [[ ! -f $song ]]; then
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i "sine=frequency=220:sample_rate=44100:duration=$SONG_SECONDS" \
        -ac 2 -c:a libmp3lame -b:a 192k "$song"
fi
echo "inputs: $CLIPS x $(du -h "$clip" | cut -f1) clip ($clip), song $(du -h "$song" | cut -f1) ($song)"

for _ in $(seq "$CLIPS"); do echo "file '$(realpath "$clip")'"; done >"$WORK/list.txt"

uuid() { python3 -c 'import uuid; print(uuid.uuid4())'; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

anchor() { # prints the wall seconds of one ffmpeg remux
    local start end
    start=$(date +%s.%N)
    ffmpeg -hide_banner -loglevel error -y -f concat -safe 0 -i "$WORK/list.txt" -i "$song" \
        -map 0:v -map 1:a -c copy -movflags +faststart "$WORK/anchor.mp4"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {print b - a}'
}

bench_store() { # file|s3
    local store=$1 out=$WORK/out-$1 port env=() ids=() id audio body pid rss_before hwm m a
    mkdir -p "$out/videos"
    if [[ $store == s3 ]]; then
        [[ -n ${MVGEN_WEED:-} ]] || { echo "s3: skipped (set MVGEN_WEED)"; return; }
        start_weed "$WORK"
        PIDS+=("$weed_pid")
        env=(MVGEN_STORAGE_URL=s3://bench/cut "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" AWS_REGION=us-east-1
            AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret)
    fi
    for _ in $(seq "$CLIPS"); do
        id=$(uuid)
        if [[ $store == s3 ]]; then
            curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user bench:bench-secret -T "$clip" \
                "$AWS_ENDPOINT_URL/bench/cut/videos/$id.mp4"
        else
            cp "$clip" "$out/videos/$id.mp4"
        fi
        ids+=("$id")
    done
    port=$(free_port)
    start "mvgen-$store" MV_PROVIDER=mock "MV_OUTPUT_DIR=$out" "${env[@]}" "$MVGEN" serve --addr "127.0.0.1:$port"
    pid=$LAST_PID
    wait_ok "http://127.0.0.1:$port/health" "$WORK/mvgen-$store.log"
    audio=$(curl -fsS -F "file=@$song" "http://127.0.0.1:$port/api/mv/upload_audio" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["audio_id"])')
    body=$(python3 -c 'import json, sys; print(json.dumps({"video_ids": sys.argv[2:], "audio_overlay_id": sys.argv[1]}))' \
        "$audio" "${ids[@]}")
    rss_before=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || echo "($store: VmHWM not reset: it includes the upload)"
    : >"$WORK/m.txt"
    : >"$WORK/a.txt"
    for _ in $(seq "$ROUNDS"); do
        curl -fsS -o "$WORK/answer.json" -w '%{time_total}\n' -H 'content-type: application/json' \
            -d "$body" "http://127.0.0.1:$port/api/mv/stitch-videos" >>"$WORK/m.txt"
        anchor >>"$WORK/a.txt"
    done
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
    m=$(median <"$WORK/m.txt")
    a=$(median <"$WORK/a.txt")
    python3 - "$store" "$m" "$a" "$rss_before" "$hwm" "$WORK/answer.json" "$WORK/anchor.mp4" <<'EOF'
import json, os, sys
store, m, a, before, hwm, answer, anchor = sys.argv[1:]
meta = json.load(open(answer))["metadata"]
print(f"{store}: mvgen {float(m):.3f} s, ffmpeg {float(a):.3f} s, ratio {float(m) / float(a):.2f}x; "
      f"cut {meta['size_bytes'] / 2**20:.1f} MiB / ffmpeg's {os.path.getsize(anchor) / 2**20:.1f} MiB, "
      f"{meta['video_duration_seconds']} s; mvgen RSS {int(before) / 1024:.1f} MiB before, "
      f"peak {int(hwm) / 1024:.1f} MiB (+{(int(hwm) - int(before)) / 1024:.1f} MiB)")
EOF
}

for store in $STORES; do bench_store "$store"; done
