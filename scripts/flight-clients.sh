#!/usr/bin/env bash
# Real Arrow Flight SQL clients for the streamsql-flight tests: ADBC (Python) and the JDBC driver.
#
#   scripts/flight-clients.sh ensure     create/update the venv and download the JDBC jar if needed
#   scripts/flight-clients.sh python     ensure, then print the venv's python path
#   scripts/flight-clients.sh jdbc-jar   ensure, then print the JDBC driver jar path
#
# Python packages come from PyPI (pinned in scripts/flight-clients.txt), the jar from Maven
# Central (verified against its .sha1). Both live under $STREAMSQL_CACHE (default
# ~/.cache/streamsql): venv/ and jdbc/. Quiet when everything is in place; one line on stderr per
# thing installed or downloaded; non-zero exit with a message on stderr when something fails.
#
# Environment:
#   STREAMSQL_CACHE      cache root (default ~/.cache/streamsql)
#   FLIGHT_PYTHON        python used to create the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

MSG_PREFIX=flight-clients
# The venv, messages and lock: shared with scripts/kafka-client.sh.
# shellcheck source-path=SCRIPTDIR/..
source scripts/lib/venv.sh

REQUIREMENTS="$PWD/scripts/flight-clients.txt"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
VENV="$CACHE_ROOT/venv"
JDBC_DIR="$CACHE_ROOT/jdbc"
JDBC_VERSION=18.3.0
JDBC_JAR="$JDBC_DIR/flight-sql-jdbc-driver-$JDBC_VERSION.jar"
JDBC_URL="https://repo1.maven.org/maven2/org/apache/arrow/flight-sql-jdbc-driver/$JDBC_VERSION/flight-sql-jdbc-driver-$JDBC_VERSION.jar"

sha1_of() { sha1sum "$1" | cut -d' ' -f1; }

ensure_jar() {
  # The digest saved next to the jar once it was verified; a jar that no longer matches it is
  # checked against Maven Central again.
  if [[ -f "$JDBC_JAR" && -f "$JDBC_JAR.sha1" && "$(sha1_of "$JDBC_JAR")" == "$(<"$JDBC_JAR.sha1")" ]]; then
    return 0
  fi
  command -v curl >/dev/null 2>&1 || die "curl is needed to download $JDBC_URL"
  mkdir -p "$JDBC_DIR"
  local tmp="$JDBC_JAR.tmp.$$" expected actual
  # shellcheck disable=SC2064  # expanded now on purpose: $tmp is local to this function
  trap "rm -f $(printf %q "$tmp")" EXIT
  # Maven Central's .sha1 holds the bare hex digest (some mirrors append the file name).
  expected=$(curl -fsSL --retry 3 "$JDBC_URL.sha1" | tr -d '\r' | awk '{ print tolower($1); exit }') ||
    die "could not download $JDBC_URL.sha1"
  [[ "$expected" =~ ^[0-9a-f]{40}$ ]] || die "$JDBC_URL.sha1 does not hold a SHA-1 digest"
  # A jar left by an earlier run (or copied in by hand) that matches is kept, not fetched again.
  if [[ -f "$JDBC_JAR" && "$(sha1_of "$JDBC_JAR")" == "$expected" ]]; then
    echo "$expected" >"$JDBC_JAR.sha1"
    say_err "verified the existing $JDBC_JAR against Maven Central's SHA-1"
    return 0
  fi
  curl -fsSL --retry 3 -o "$tmp" "$JDBC_URL" || die "could not download $JDBC_URL"
  actual=$(sha1_of "$tmp")
  [[ "$actual" == "$expected" ]] || die "SHA-1 mismatch for $JDBC_URL: got $actual, Maven Central says $expected"
  mv -f "$tmp" "$JDBC_JAR"
  trap - EXIT
  echo "$expected" >"$JDBC_JAR.sha1"
  say_err "downloaded $(basename "$JDBC_JAR") ($(( $(stat -c %s "$JDBC_JAR") / 1048576 )) MiB) into $JDBC_DIR"
}

ensure() {
  mkdir -p "$CACHE_ROOT"
  # Parallel test binaries may all call ensure: one at a time.
  take_lock "$CACHE_ROOT/flight-clients.lock"
  ensure_venv "$VENV" "$REQUIREMENTS" "${FLIGHT_PYTHON:-python3}" \
    'adbc_driver_flightsql.dbapi, pyarrow.flight' \
    "the Flight clients installed into $VENV do not import"
  ensure_jar
  release_lock
}

case "${1:-}" in
  ensure) ensure ;;
  python) ensure; echo "$VENV/bin/python" ;;
  jdbc-jar) ensure; echo "$JDBC_JAR" ;;
  *) echo "usage: $0 ensure|python|jdbc-jar" >&2; exit 2 ;;
esac
