#!/usr/bin/env bash
# Provisions the interpreter zoo that the integration tests run against, and
# caches it across runs on the same machine:
#   - Debian sid in a chroot with python3.14 and python3.15 (static, non-PIE),
#     with /proc mounted, at $AIOSCOPE_ZOO/sid;
#   - Debian packages for the host's python3.11 (real async libraries);
#   - sid's python3-trio and python3-anyio in the chroot (for 3.14 and 3.15).
# pyenv interpreters cannot be built here (no network beyond Debian/npm): the
# tests report those that are missing as skipped, by name.
# A failure to provision leaves a reason in $AIOSCOPE_ZOO/<name>.unavailable.
set -uo pipefail

ZOO=${AIOSCOPE_ZOO:-/var/cache/aioscope/zoo}
SID=$ZOO/sid
MIRROR=${AIOSCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$ZOO"

log() { printf 'zoo: %s\n' "$*"; }

provision_sid() {
    rm -f "$ZOO/sid.unavailable"
    if [ -f "$SID/.aioscope-ready" ] && [ -x "$SID/usr/bin/python3.14" ] && [ -x "$SID/usr/bin/python3.15" ]; then
        log "sid chroot cached at $SID"
    else
        if [ "$(id -u)" != 0 ]; then
            echo "the sid chroot needs root to create (debootstrap)" > "$ZOO/sid.unavailable"
            log "cannot create the sid chroot without root; 3.14/3.15 will be skipped"
            return
        fi
        if ! command -v debootstrap >/dev/null; then
            echo "debootstrap is not installed" > "$ZOO/sid.unavailable"
            return
        fi
        log "creating Debian sid chroot with python3.14 and python3.15 (about a minute)"
        umount "$SID/proc" 2>/dev/null
        rm -rf "$SID.tmp"
        if ! debootstrap --variant=minbase --include=python3.14,python3.15 sid "$SID.tmp" "$MIRROR" \
                > "$ZOO/sid.debootstrap.log" 2>&1; then
            echo "debootstrap of Debian sid failed (see $ZOO/sid.debootstrap.log)" > "$ZOO/sid.unavailable"
            log "debootstrap failed; 3.14/3.15 will be skipped"
            rm -rf "$SID.tmp"
            return
        fi
        rm -rf "$SID" && mv "$SID.tmp" "$SID" && touch "$SID/.aioscope-ready"
    fi
    if ! mountpoint -q "$SID/proc"; then
        mount -t proc proc "$SID/proc" || {
            echo "cannot mount /proc in the sid chroot" > "$ZOO/sid.unavailable"
            return
        }
    fi
    log "sid: $(chroot "$SID" /usr/bin/python3.14 -V) and $(chroot "$SID" /usr/bin/python3.15 -V)"
}

provision_debian_async_packages() {
    local pkgs=(python3-uvloop python3-aiohttp python3-pytest python3-pytest-asyncio python3-anyio python3-trio)
    local missing=()
    for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" != 0 ]; then log "not root: cannot install ${missing[*]}"; return; fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || log "could not install ${missing[*]}"
}

# trio and anyio for sid's interpreters: arch-independent packages in
# /usr/lib/python3/dist-packages, which python3.14 and python3.15 both read.
# The chroot's package lists may be older than their Valid-Until.
provision_sid_trio() {
    [ -f "$SID/.aioscope-ready" ] && [ ! -f "$ZOO/sid.unavailable" ] || return
    chroot "$SID" dpkg -s python3-trio python3-anyio >/dev/null 2>&1 && return
    if [ "$(id -u)" != 0 ]; then log "not root: cannot install python3-trio in the sid chroot"; return; fi
    log "installing python3-trio and python3-anyio in the sid chroot"
    chroot "$SID" apt-get -o Acquire::Check-Valid-Until=false -qq update >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive chroot "$SID" apt-get install -y -qq --no-install-recommends \
        -o Acquire::Check-Valid-Until=false python3-trio python3-anyio >/dev/null 2>&1 \
        || log "could not install python3-trio in the sid chroot: the trio tests skip 3.14/3.15"
}

provision_sid
provision_debian_async_packages
provision_sid_trio
exit 0
