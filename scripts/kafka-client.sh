#!/usr/bin/env bash
# The real Kafka client that scripts/kafka.sh and the Kafka tests use: confluent-kafka (Python,
# librdkafka inside its wheel) in a venv of its own.
#
#   scripts/kafka-client.sh ensure     create/update the venv if needed
#   scripts/kafka-client.sh python     ensure, then print the venv's python path
#
# Python packages come from PyPI (pinned in scripts/kafka-client.txt) and live under
# $STREAMSQL_CACHE (default ~/.cache/streamsql) in kafka-venv/. Quiet when everything is in place;
# one line on stderr when something was installed; non-zero exit with a message on stderr when
# something fails.
#
# Environment:
#   STREAMSQL_CACHE      cache root (default ~/.cache/streamsql)
#   KAFKA_PYTHON         python used to create the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

REQUIREMENTS="$PWD/scripts/kafka-client.txt"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
VENV="$CACHE_ROOT/kafka-venv"
# The requirements the venv was last installed from; compared to decide whether to reinstall.
INSTALLED="$VENV/streamsql-requirements.txt"

say() { printf 'kafka-client: %s\n' "$*" >&2; }
die() { printf 'kafka-client: %s\n' "$*" >&2; exit 1; }

ensure_venv() {
  if [[ -x "$VENV/bin/python" && -f "$INSTALLED" ]] && cmp -s "$REQUIREMENTS" "$INSTALLED"; then
    return 0
  fi
  local python="${KAFKA_PYTHON:-python3}" log="$CACHE_ROOT/kafka-venv-install.log"
  command -v "$python" >/dev/null 2>&1 || die "$python not found (needed to create $VENV)"
  if [[ ! -x "$VENV/bin/python" ]]; then
    if ! "$python" -m venv "$VENV" >"$log" 2>&1; then
      cat "$log" >&2
      rm -rf "$VENV"
      die "could not create a venv at $VENV with $python (output above)"
    fi
  fi
  # pip's output goes to a log shown only on failure. Removing the marker first means an
  # interrupted install is retried next time. --only-binary: building librdkafka from an sdist
  # would need a compiler and its headers; fail clearly instead.
  rm -f "$INSTALLED"
  if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      --only-binary confluent-kafka -r "$REQUIREMENTS" >"$log" 2>&1 </dev/null; then
    cat "$log" >&2
    die "pip could not install $REQUIREMENTS into $VENV (output above, also in $log)"
  fi
  # Make sure the client actually loads (a wheel for another platform would only fail here).
  "$VENV/bin/python" -c 'import confluent_kafka, confluent_kafka.admin' >"$log" 2>&1 ||
    { cat "$log" >&2; die "the Kafka client installed into $VENV does not import (output above)"; }
  cp "$REQUIREMENTS" "$INSTALLED"
  rm -f "$log"
  say "installed $(grep -v '^#' "$REQUIREMENTS" | grep . | paste -sd ' ' -) into $VENV"
}

ensure() {
  mkdir -p "$CACHE_ROOT"
  # Parallel test binaries may all call ensure: one at a time.
  exec 9>"$CACHE_ROOT/kafka-client.lock"
  flock 9
  ensure_venv
  exec 9>&-
}

case "${1:-}" in
  ensure) ensure ;;
  python) ensure; echo "$VENV/bin/python" ;;
  *) echo "usage: $0 ensure|python" >&2; exit 2 ;;
esac
