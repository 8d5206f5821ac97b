#!/usr/bin/env bash
# The reference implementations and parsers streamsql's results are checked with, in a Python venv
# of its own: statsmodels (FORECAST's Holt model), pandas (the fraud handbook's features),
# prometheus_client (the /metrics text format).
#
#   scripts/stats-reference.sh ensure     create/update the venv if needed
#   scripts/stats-reference.sh python     ensure, then print the venv's python path
#
# Python packages come from PyPI (pinned in scripts/stats-reference.txt) and live under
# $STREAMSQL_CACHE (default ~/.cache/streamsql) in stats-venv/. Quiet when everything is in place;
# one line on stderr when something was installed; non-zero exit with a message on stderr when
# something fails.
#
# Environment:
#   STREAMSQL_CACHE      cache root (default ~/.cache/streamsql)
#   STATS_PYTHON         python used to create the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

MSG_PREFIX=stats-reference
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib/venv.sh

REQUIREMENTS="$PWD/scripts/stats-reference.txt"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
VENV="$CACHE_ROOT/stats-venv"

ensure() {
  mkdir -p "$CACHE_ROOT"
  # Parallel test binaries may all call ensure: one at a time.
  take_lock "$CACHE_ROOT/stats-reference.lock"
  # --only-binary: numpy and scipy from source would need compilers; fail clearly instead.
  ensure_venv "$VENV" "$REQUIREMENTS" "${STATS_PYTHON:-python3}" \
    'statsmodels.tsa.holtwinters, pandas, prometheus_client.parser' \
    "statsmodels installed into $VENV does not import" \
    --only-binary :all:
  release_lock
}

case "${1:-}" in
  ensure) ensure ;;
  python) ensure; echo "$VENV/bin/python" ;;
  *) echo "usage: $0 ensure|python" >&2; exit 2 ;;
esac
