#!/usr/bin/env bash
# How mvgen scales with the number of flavors: generates 1000 flavors (default plus 999 variants
# that override parameters, templates and image settings, some through inheritance chains), builds
# the static release binary from them through MVGEN_CONFIGS_DIR, then from the shipped configs/, and
# reports for each: build time (build script + crate + LTO link; dependencies already built),
# binary size, and choosing a flavor (criterion `create_scenes/choose_flavor`, median).
# The shipped build goes last, so the tree ends with the normal binary. See BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-1000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
OUT=target/x86_64-unknown-linux-gnu/release/mvgen

generate() { # dir
    local dir=$1 name i
    cp -r configs/default "$dir/default"
    for i in $(seq 1 $((COUNT - 1))); do
        name=$(printf 'gen-%04d' "$i")
        mkdir "$dir/$name"
        # Every tenth flavor extends the one before it, so inheritance is resolved through chains.
        local parent=default
        if ((i % 10 == 0)); then parent=$(printf 'gen-%04d' $((i - 1))); fi
        printf 'label: Generated %d\ndescription: Variant %d of the default flavor.\nextends: %s\n' \
            "$i" "$i" "$parent" >"$dir/$name/flavor.yaml"
        printf 'number_of_scenes: %d\ncamera_angle: camera setup number %d, mostly medium shots\nvideo_type: %s\n' \
            $((i % 32 + 1)) "$i" "music video variant $i" >"$dir/$name/parameters.yaml"
        if ((i % 3 == 0)); then
            # Same placeholders as default, different text: a template of its own per flavor.
            sed "s/^scene_generation_prompt: |$/&\n  Variant $i of the house style./" \
                configs/default/scene_prompts.yaml >"$dir/$name/scene_prompts.yaml"
        fi
        if ((i % 5 == 0)); then
            local ratios=("1:1" "16:9" "9:16" "4:3" "3:4")
            printf 'aspect_ratio: "%s"\nvideo_duration: %d\n' "${ratios[i % 5]}" $((i % 8 + 1)) >"$dir/$name/image_params.yaml"
        fi
    done
}

# Runs a command with MVGEN_CONFIGS_DIR=$1, or without it when $1 is empty (build.rs would take an
# empty value as the current directory).
with_configs() { # configs dir, command...
    if [[ -n $1 ]]; then MVGEN_CONFIGS_DIR=$1 "${@:2}"; else env -u MVGEN_CONFIGS_DIR "${@:2}"; fi
}

# Builds and benches against configs dir $1 (empty: the shipped configs/), choosing flavor $2.
measure() { # configs dir, flavor to choose, label
    local started elapsed size lookup flavors
    started=$(date +%s.%N)
    with_configs "$1" cargo build-static --bin mvgen >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; exit 1; }
    elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    size=$(stat -c %s "$OUT")
    flavors=$(MV_PROVIDER=mock "$OUT" flavors | tail -n +2 | wc -l)
    MVGEN_BENCH_FLAVOR=$2 with_configs "$1" cargo bench-static --bench api -- 'create_scenes/choose_flavor' \
        >"$WORK/bench.log" 2>&1 || { cat "$WORK/bench.log" >&2; exit 1; }
    # criterion: "time:   [low median high]" with units; keep the median and its unit.
    lookup=$(awk '/time:/ { gsub(/\[|\]/, ""); print $4, $5; exit }' "$WORK/bench.log")
    printf '%-22s %8s %10s s %10.2f MiB %14s\n' "$3" "$flavors" "$elapsed" "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" "$lookup"
}

mkdir "$WORK/configs"
generate "$WORK/configs"
echo "generated $COUNT flavors in $WORK/configs" >&2
# Dependencies first, so the timed builds below are what a config change costs.
cargo build-static --bin mvgen >/dev/null 2>&1

printf '%-22s %8s %12s %14s %14s\n' "build" "flavors" "build time" "binary size" "choose_flavor"
measure "$WORK/configs" "gen-$(printf '%04d' $((COUNT - 1)))" "generated ($COUNT)"
measure "" default "shipped configs/"
