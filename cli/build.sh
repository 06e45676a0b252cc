#!/usr/bin/env bash
# Installs aioscope's build dependencies (Debian packages, only if missing) and
# builds it into $AIOSCOPE_BUILD (default: build/ in the checkout). Compiler
# output is cached with ccache under /var/cache/aioscope so a rebuild of an
# unchanged tree on the same machine is fast.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${AIOSCOPE_BUILD:-$ROOT/build}
PACKAGES=(g++ cmake make pkg-config ccache libunwind-dev libdw-dev libelf-dev
          nlohmann-json3-dev libcli11-dev catch2 util-linux)

missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "build.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "build.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -w /var/cache ] || [ -d /var/cache/aioscope ]; then
    export CCACHE_DIR=${CCACHE_DIR:-/var/cache/aioscope/ccache}
    mkdir -p "$CCACHE_DIR"
fi
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
# Progress lines are filtered out; the filter never fails (grep finding no
# line to keep is success), so with pipefail the pipeline's status is the
# build's: a failed build fails this script instead of keeping the old binary.
if ! cmake --build "$BUILD" -j"$(nproc)" 2>&1 | { grep -vE '^\[ *[0-9]+%\]' || true; }; then
    echo "build.sh: the build failed" >&2
    exit 1
fi
test -x "$BUILD/aioscope"
