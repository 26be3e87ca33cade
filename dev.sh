#!/usr/bin/env bash
# Set up and run scope on a fresh Debian machine (as root, with only Python 3.11), or any Linux
# with Python >= 3.11.
#
#   bash dev.sh demo     set up, then simulate a sample, reconstruct it and write images
#   bash dev.sh test     set up, then run the test suite (under a virtual display)
#   bash dev.sh setup    only set up (.venv with every extra, system packages)
#
# It installs what it needs itself: Debian packages (python3-venv, Xvfb and Mesa for napari),
# a virtual environment in .venv, and the package with its extras.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '[dev.sh] %s\n' "$*" >&2; }

pick_python() {
    for p in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 || continue
        if "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$p"; return
        fi
    done
    log "Python >= 3.11 not found: install it (apt-get install python3) and run again"; exit 1
}

APT_UPDATED=0
apt_install() {
    # install the Debian packages among "$@" that are missing (needs root and apt-get)
    local missing=()
    for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        log "missing system packages: ${missing[*]} (install them as root; going on without)"
        return 0
    fi
    if [ $APT_UPDATED = 0 ]; then apt-get update -qq >&2; APT_UPDATED=1; fi
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

GUI_PACKAGES=(xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0
    libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0
    libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 libglib2.0-0)

setup() {
    local py; py=$(pick_python)
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        local ver; ver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
        apt_install python3-venv "python${ver}-venv"
    fi
    if command -v dpkg >/dev/null 2>&1; then apt_install "${GUI_PACKAGES[@]}"; fi
    [ -x .venv/bin/python ] || { log "creating .venv with $py"; "$py" -m venv .venv; }
    local stamp; stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        log "installing scope and its extras into .venv (a few minutes the first time)"
        .venv/bin/python -m pip install -q --upgrade pip >&2
        .venv/bin/python -m pip install -q -e ".[all]" >&2
        rm -f .venv/.installed-*; touch "$stamp"
    fi
}

with_display() {
    # run "$@" with a display: the existing one, or a private Xvfb
    if [ -n "${DISPLAY:-}" ] || ! command -v Xvfb >/dev/null 2>&1; then "$@"; return; fi
    local n=99; while [ -e "/tmp/.X${n}-lock" ]; do n=$((n + 1)); done
    Xvfb ":$n" -screen 0 1600x1200x24 -nolisten tcp >/dev/null 2>&1 &
    XVFB_PID=$!
    trap 'kill "${XVFB_PID:-}" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
    DISPLAY=":$n" "$@"
}

cmd=${1:-demo}; shift || true
case "$cmd" in
    setup) setup ;;
    demo) setup; .venv/bin/scope demo "$@" ;;
    test) setup; with_display .venv/bin/python -m pytest "$@" ;;
    *) log "usage: bash dev.sh demo|test|setup"; exit 2 ;;
esac
