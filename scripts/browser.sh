#!/usr/bin/env bash
# The headless browser the web console's test drives: Debian's chromium and chromium-driver
# packages (installed with apt-get when missing), and Selenium (PyPI, pinned in
# scripts/browser.txt) in a venv of its own.
#
#   scripts/browser.sh ensure     install what is missing
#   scripts/browser.sh python     ensure, then print the venv's python path
#
# The venv lives under $STREAMSQL_CACHE (default ~/.cache/streamsql) in browser-venv/. Quiet when
# everything is in place; one line on stderr when something was installed; non-zero exit with a
# message on stderr when something fails.
#
# Environment:
#   STREAMSQL_CACHE      cache root (default ~/.cache/streamsql)
#   BROWSER_PYTHON       python used to create the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

MSG_PREFIX=browser
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib/venv.sh

REQUIREMENTS="$PWD/scripts/browser.txt"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
VENV="$CACHE_ROOT/browser-venv"

ensure_chromium() {
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "chromium and chromium-driver are missing; install them (apt-get install chromium chromium-driver) as root"
    sudo=(sudo -n)
  fi
  local log="$CACHE_ROOT/chromium-install.log"
  if ! { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get could not install chromium and chromium-driver (output above)"
  fi
  rm -f "$log"
  say_err "installed chromium $(chromium --version 2>/dev/null | awk '{print $2}') and chromedriver (Debian packages)"
}

ensure() {
  mkdir -p "$CACHE_ROOT"
  # Parallel test binaries may all call ensure: one at a time.
  take_lock "$CACHE_ROOT/browser.lock"
  ensure_chromium
  ensure_venv "$VENV" "$REQUIREMENTS" "${BROWSER_PYTHON:-python3}" \
    'selenium.webdriver' \
    "selenium installed into $VENV does not import"
  release_lock
}

case "${1:-}" in
  ensure) ensure ;;
  python) ensure; echo "$VENV/bin/python" ;;
  *) echo "usage: $0 ensure|python" >&2; exit 2 ;;
esac
