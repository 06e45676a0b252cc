#!/usr/bin/env bash
# Provisions the interpreter zoo that the integration tests run against, and
# caches it across runs on the same machine:
#   - Debian sid in a chroot with python3.14 and python3.15 (static, non-PIE),
#     with /proc mounted, at $AIOSCOPE_ZOO/sid (debootstrap is installed
#     first when missing);
#   - Debian packages for the host's python3.11 (real async libraries);
#   - sid's python3-trio and python3-anyio in the chroot (for 3.14 and 3.15).
# pyenv interpreters (3.10-3.13) cannot be built here (no network beyond
# Debian and npm): they come with the machine image.
#
# What this machine cannot have is excused, with the reason, in
# $AIOSCOPE_ZOO/excused ("NAME: reason" lines): not root, not Debian, or
# Debian's registry unreachable. tests/run fails when any other interpreter
# is missing (docs: tests/zoo/README.md). This script exits non-zero when
# something it could provision here failed.
set -uo pipefail

ZOO=${AIOSCOPE_ZOO:-/var/cache/aioscope/zoo}
SID=$ZOO/sid
MIRROR=${AIOSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$ZOO"
: > "$ZOO/excused"
failed=0

log() { printf 'zoo: %s\n' "$*"; }
excuse() {  # NAME... -- REASON: cannot be had on this kind of machine
    local names=() reason
    while [ "$1" != "--" ]; do names+=("$1"); shift; done
    shift
    reason=$*
    for n in "${names[@]}"; do echo "$n: $reason" >> "$ZOO/excused"; done
    log "${names[*]} cannot be provisioned here: $reason"
}
fail() {
    log "FAILED: $*"
    failed=1
}
is_root() { [ "$(id -u)" = 0 ]; }
is_debian() { [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }
# Whether Debian's registry answers (the mirror debootstrap uses).
registry_reachable() {
    local tmp
    tmp=$(mktemp)
    /usr/lib/apt/apt-helper download-file "$MIRROR/dists/sid/Release" "$tmp" >/dev/null 2>&1
    local rc=$?
    rm -f "$tmp"
    return $rc
}
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

provision_sid() {
    rm -f "$ZOO/sid.unavailable"
    if [ -f "$SID/.aioscope-ready" ] && [ -x "$SID/usr/bin/python3.14" ] && [ -x "$SID/usr/bin/python3.15" ]; then
        log "sid chroot cached at $SID"
    else
        local why=""
        is_root || why="the sid chroot needs root to create (debootstrap, mount)"
        [ -z "$why" ] && ! is_debian && why="not a Debian system (no apt-get to install debootstrap)"
        [ -z "$why" ] && ! registry_reachable && why="Debian's registry ($MIRROR) is not reachable"
        if [ -n "$why" ]; then
            echo "$why" > "$ZOO/sid.unavailable"
            excuse 3.14 3.15 -- "$why"
            return
        fi
        if ! command -v debootstrap >/dev/null; then
            log "installing debootstrap"
            if ! apt_install debootstrap; then
                echo "debootstrap could not be installed" > "$ZOO/sid.unavailable"
                fail "apt-get install debootstrap (3.14 and 3.15 need it)"
                return
            fi
        fi
        log "creating Debian sid chroot with python3.14 and python3.15 (about a minute)"
        umount "$SID/proc" 2>/dev/null
        rm -rf "$SID.tmp"
        if ! debootstrap --variant=minbase --include=python3.14,python3.15 sid "$SID.tmp" "$MIRROR" \
                > "$ZOO/sid.debootstrap.log" 2>&1; then
            echo "debootstrap of Debian sid failed (see $ZOO/sid.debootstrap.log)" > "$ZOO/sid.unavailable"
            fail "debootstrap of Debian sid (see $ZOO/sid.debootstrap.log)"
            rm -rf "$SID.tmp"
            return
        fi
        rm -rf "$SID" && mv "$SID.tmp" "$SID" && touch "$SID/.aioscope-ready"
    fi
    if ! mountpoint -q "$SID/proc"; then
        if ! is_root; then
            echo "$SID/proc is not mounted and mounting it needs root" > "$ZOO/sid.unavailable"
            excuse 3.14 3.15 -- "mounting $SID/proc needs root"
            return
        fi
        mount -t proc proc "$SID/proc" || {
            echo "cannot mount /proc in the sid chroot" > "$ZOO/sid.unavailable"
            fail "mount -t proc proc $SID/proc"
            return
        }
    fi
    log "sid: $(chroot "$SID" /usr/bin/python3.14 -V) and $(chroot "$SID" /usr/bin/python3.15 -V)"
}

# Optional: a real application on uvloop (uvicorn + FastAPI) for
# tests/integration/test_uvloop.py, which skips its test, saying why, when
# they cannot be had. Never a failure of the provisioning.
provision_debian_web() {
    local pkgs=(python3-uvicorn python3-fastapi)
    local missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return
    if ! is_debian || ! is_root; then
        log "not installing ${missing[*]} (not root on Debian): the uvicorn test will be skipped"
        return
    fi
    log "installing ${missing[*]}"
    apt_install "${missing[@]}" || log "could not install ${missing[*]}: the uvicorn test will be skipped"
}

provision_debian_python() {
    local pkgs=(python3.11 python3-uvloop python3-aiohttp python3-pytest python3-pytest-asyncio python3-anyio python3-trio)
    local missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return
    if ! is_debian; then excuse 3.11-debian -- "not a Debian system"; return; fi
    if ! is_root; then excuse 3.11-debian -- "not root: cannot install ${missing[*]}"; return; fi
    log "installing ${missing[*]}"
    if ! apt_install "${missing[@]}"; then
        if registry_reachable; then
            fail "apt-get install ${missing[*]}"
        else
            excuse 3.11-debian -- "Debian's registry is not reachable to install ${missing[*]}"
        fi
    fi
}

# The pyenv builds come with the machine image; nothing here can make them.
check_pyenv() {
    local root=${PYENV_ROOT:-$HOME/.pyenv}
    for v in 3.10.13 3.11.7 3.12.1 3.13.0; do
        [ -x "$root/versions/$v/bin/python${v%.*}" ] || log "pyenv CPython $v is missing from $root (part of the machine image)"
    done
}

# trio and anyio for sid's interpreters: arch-independent packages in
# /usr/lib/python3/dist-packages, which python3.14 and python3.15 both read.
# The chroot's package lists may be older than their Valid-Until.
provision_sid_trio() {
    [ -f "$SID/.aioscope-ready" ] && [ ! -f "$ZOO/sid.unavailable" ] || return
    chroot "$SID" dpkg -s python3-trio python3-anyio >/dev/null 2>&1 && return
    if ! is_root; then log "not root: cannot install python3-trio in the sid chroot"; return; fi
    log "installing python3-trio and python3-anyio in the sid chroot"
    chroot "$SID" apt-get -o Acquire::Check-Valid-Until=false -qq update >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive chroot "$SID" apt-get install -y -qq --no-install-recommends \
        -o Acquire::Check-Valid-Until=false python3-trio python3-anyio >/dev/null 2>&1 \
        || log "could not install python3-trio in the sid chroot: the trio tests skip 3.14/3.15"
}

provision_sid
provision_sid
provision_debian_python
provision_debian_web
provision_sid_trio
check_pyenv
exit $failed
