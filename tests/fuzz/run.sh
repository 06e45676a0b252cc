#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, AddressSanitizer + UBSan) into
# $AIOSCOPE_FUZZ_BUILD (default: build-fuzz/ in the checkout) and runs them.
#
#   tests/fuzz/run.sh --seconds 8            each harness 8 s (tests/run does this)
#   tests/fuzz/run.sh --runs 10000000        the long campaign (README.md)
#   tests/fuzz/run.sh --seconds 60 fuzz_render
#
# Each harness starts from its seeds (tests/fuzz/corpus/<name>) plus what
# earlier runs on this machine found ($BUILD/corpus/<name>). Exits non-zero
# on the first crash, leak, timeout or out-of-memory, naming the input that
# caused it ($BUILD/artifacts/); reproduce with `$BUILD/fuzz_x ARTIFACT`.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${AIOSCOPE_FUZZ_BUILD:-$ROOT/build-fuzz}

limit=(-max_total_time=8)
harnesses=()
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) limit=(-max_total_time="$2"); shift 2 ;;
        --runs) limit=(-runs="$2"); shift 2 ;;
        --no-build) build=0; shift ;;  # several campaigns at once on one build
        fuzz_*) harnesses+=("$1"); shift ;;
        *) echo "usage: $0 [--seconds N | --runs N] [--no-build] [fuzz_memory fuzz_render fuzz_events]" >&2; exit 2 ;;
    esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_memory fuzz_render fuzz_events)

if [ $build = 1 ]; then
    for tool in clang clang++; do
        command -v "$tool" >/dev/null || { echo "fuzz: $tool is not installed (apt-get install clang)" >&2; exit 1; }
    done
    if [ -w /var/cache ] || [ -d /var/cache/aioscope ]; then
        export CCACHE_DIR=${CCACHE_DIR:-/var/cache/aioscope/ccache}
    fi
    CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -DAIOSCOPE_FUZZ=ON -DCMAKE_BUILD_TYPE=Fuzz >/dev/null
    if ! cmake --build "$BUILD" -j"$(nproc)" --target "${harnesses[@]}" 2>&1 | { grep -vE '^\[ *[0-9]+%\]' || true; }; then
        echo "fuzz: the build failed" >&2
        exit 1
    fi
fi

# What each input is and how large it may be.
# fuzz_memory: a few dozen mutations of an image; the others: documents and
# event lines (the seeds are a few kilobytes).
declare -A MAX_LEN=([fuzz_memory]=512 [fuzz_render]=16384 [fuzz_events]=8192)
declare -A DICT=([fuzz_memory]="" [fuzz_render]=json.dict [fuzz_events]=json.dict)

# No allocation stack traces and a smaller quarantine: a third more runs per
# second, every error still caught (its report has fewer details).
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0:quarantine_size_mb=64}
for h in "${harnesses[@]}"; do
    corpus=$BUILD/corpus/$h
    mkdir -p "$corpus" "$BUILD/artifacts"
    args=("${limit[@]}" -max_len="${MAX_LEN[$h]}" -len_control=0 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$BUILD/artifacts/$h-" -detect_leaks=1)
    [ -n "${DICT[$h]}" ] && args+=(-dict="$HERE/${DICT[$h]}")
    echo "== $h ${limit[*]}"
    log=$BUILD/$h.log
    if ! "$BUILD/$h" "${args[@]}" "$corpus" "$HERE/corpus/${h#fuzz_}" >"$log" 2>&1; then
        grep -E "ERROR|SUMMARY|Test unit written|==[0-9]+==" "$log" | head -20 >&2
        echo "fuzz: $h failed; the whole log is $log" >&2
        exit 1
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ *DONE" "$log" | sed "s/^/  /"
done
