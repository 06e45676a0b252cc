#!/usr/bin/env bash
# What the viewer's tests need (idempotent, Debian packages only): node for
# its unit tests (node --test) and Debian's chromium, driven headless by
# tests/integration/test_report.py. Nothing is downloaded at test time.
set -euo pipefail
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "viewer/setup.sh: missing Debian packages: ${need[*]} (run as root to install them); the browser tests will be skipped" >&2
        exit 0
    fi
    echo "viewer/setup.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
