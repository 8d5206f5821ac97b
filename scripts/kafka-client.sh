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

MSG_PREFIX=kafka-client
# The venv, messages and lock: shared with scripts/flight-clients.sh.
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib/venv.sh

REQUIREMENTS="$PWD/scripts/kafka-client.txt"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
VENV="$CACHE_ROOT/kafka-venv"

ensure() {
  mkdir -p "$CACHE_ROOT"
  # Parallel test binaries may all call ensure: one at a time.
  take_lock "$CACHE_ROOT/kafka-client.lock"
  # --only-binary: building librdkafka from an sdist would need a compiler and its headers; fail
  # clearly instead.
  ensure_venv "$VENV" "$REQUIREMENTS" "${KAFKA_PYTHON:-python3}" \
    'confluent_kafka, confluent_kafka.admin' \
    "the Kafka client installed into $VENV does not import" \
    --only-binary confluent-kafka
  release_lock
}

case "${1:-}" in
  ensure) ensure ;;
  python) ensure; echo "$VENV/bin/python" ;;
  *) echo "usage: $0 ensure|python" >&2; exit 2 ;;
esac
