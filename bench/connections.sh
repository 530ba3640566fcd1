#!/usr/bin/env bash
# Builds the release binary of BASE_REF (default main, from `git archive`, sharing this target dir)
# and of the working tree, then compares their connection layers side by side in one run with
# bench/connections.py (throughput, stalled connections, a flood, shutdown). Needs wrk, python3.
# SKIP_BUILD=1 reuses target/bench/mvgen-BASE and target/release/mvgen. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_REF=${BASE_REF:-main}
for tool in wrk python3 git; do
    command -v "$tool" >/dev/null || { echo "connections.sh: $tool not found" >&2; exit 2; }
done
TARGET=$PWD/target
OLD=$TARGET/bench/mvgen-$BASE_REF
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    SRC=$(mktemp -d)
    trap 'rm -rf "$SRC"' EXIT
    git archive "$BASE_REF" | tar -x -C "$SRC"
    (cd "$SRC" && CARGO_TARGET_DIR=$TARGET cargo build --release --bin mvgen)
    mkdir -p "$TARGET/bench"
    cp "$TARGET/release/mvgen" "$OLD"
    cargo build --release --bin mvgen
fi
exec python3 bench/connections.py "$OLD" "$TARGET/release/mvgen"
