#!/usr/bin/env bash
# Runs a real S3-compatible object store, SeaweedFS (master, volume, filer and S3 gateway in one
# process), on 127.0.0.1:8333 for tests of checkpoints in S3.
#
#   scripts/seaweedfs.sh start     build the server if needed, start it on a fresh data dir and
#                                  return once an S3 bucket PUT and an object PUT/GET round trip
#                                  work (already running: says so, exit 0)
#   scripts/seaweedfs.sh stop      stop the server this script started and wait for it to exit
#   scripts/seaweedfs.sh status    exit 0 if our server runs and passes the round trip
#
# SeaweedFS comes from the Go module proxy only: `go install` refuses the module (its go.mod has a
# replace directive), so the module is downloaded, copied out of the read-only module cache and
# built with `go build ./weed` (about 5 minutes on 2 cores, once: the binary is cached in
# $STREAMSQL_CACHE/seaweedfs/weed). No identities are configured: the gateway accepts anonymous
# requests, and clients may send any credentials.
#
# Environment:
#   STREAMSQL_CACHE          cache root (default ~/.cache/streamsql)
#   SEAWEEDFS_VERSION        module version (default: the one in scripts/seaweedfs/version)
#   SEAWEEDFS_S3_PORT        S3 port (default 8333)
#   SEAWEEDFS_START_TIMEOUT  seconds to wait for the round trip (default 60)
#
# Files under $STREAMSQL_CACHE/seaweedfs: weed (the binary), weed.version, data/ (fresh on every
# start), seaweedfs.log, seaweedfs.pid, lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MSG_PREFIX=seaweedfs
CONF="$HERE/seaweedfs"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
BASE="$CACHE_ROOT/seaweedfs"
LIB="$BASE"
DATA="$BASE/data"
LOG="$BASE/seaweedfs.log"
PIDFILE="$BASE/seaweedfs.pid"
WEED="$BASE/weed"
HOST=127.0.0.1
PORT="${SEAWEEDFS_S3_PORT:-8333}"
MASTER_PORT=9333
VOLUME_PORT=18080
FILER_PORT=18888
START_TIMEOUT="${SEAWEEDFS_START_TIMEOUT:-60}"
STOP_TIMEOUT=10
VERSION="${SEAWEEDFS_VERSION:-$(tr -d '[:space:]' <"$CONF/version")}"
PID_MARKERS=("$WEED server" "-dir=$DATA")

# Messages, timing, lock, pid file, wait and stop: shared with the other service scripts.
# shellcheck source-path=SCRIPTDIR
source "$HERE/lib/service.sh"

# The weed binary of $VERSION, built once from the Go module proxy.
ensure_binary() {
  if [[ -x "$WEED" && "$(cat "$BASE/weed.version" 2>/dev/null)" == "$VERSION" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "Go is needed to build SeaweedFS (go build ./weed)"
  local t0 dir work
  t0=$(now)
  say "building SeaweedFS $VERSION from the Go module proxy (once; about 5 minutes)"
  dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') ||
    die "go mod download github.com/seaweedfs/seaweedfs@$VERSION failed"
  work="$BASE/src"
  rm -rf "$work"
  cp -r "$dir" "$work"
  chmod -R u+w "$work"
  if ! (cd "$work" && go build -o "$WEED.tmp" ./weed) >"$BASE/build.log" 2>&1; then
    tail -n 20 "$BASE/build.log" >&2
    die "go build ./weed failed (log: $BASE/build.log)"
  fi
  mv "$WEED.tmp" "$WEED"
  echo "$VERSION" >"$BASE/weed.version"
  rm -rf "$work"
  say "built $WEED in $(since "$t0") s"
}

# Creates a bucket, writes an object and reads it back (anonymous S3, path style).
probe() {
  local url="http://$HOST:$PORT/streamsql-probe" body code
  # 409: the bucket exists (an earlier probe made it).
  code=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' -X PUT "$url" 2>/dev/null) || return 1
  [[ "$code" == 200 || "$code" == 409 ]] || return 1
  curl -fsS -m 5 -X PUT --data-binary "probe $$" "$url/object" >/dev/null 2>&1 || return 1
  body=$(curl -fsS -m 5 "$url/object" 2>/dev/null) || return 1
  [[ "$body" == "probe $$" ]]
}

s3_ready() {
  local pid=$1 t0=$2
  port_open "$PORT" || return 1
  probe || return 1
  say "SeaweedFS ready: S3 on http://$HOST:$PORT after $(since "$t0") s (pid $pid, RSS $(rss_mib "$pid") MiB)"
}

no_round_trip() {
  echo "no S3 bucket/object round trip on http://$HOST:$PORT after ${START_TIMEOUT} s"
}

cmd_start() {
  local t0 pid
  t0=$(now)
  if pid=$(our_pid); then
    if probe; then
      say "already running (pid $pid, S3 on http://$HOST:$PORT)"
      return 0
    fi
    say "already starting (pid $pid); waiting for an S3 round trip"
    wait_ready "$pid" "$t0" 0.5 s3_ready no_round_trip
    return
  fi
  rm -f "$PIDFILE"
  ports_free "$PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT"
  ensure_binary
  rm -rf "$DATA"
  mkdir -p "$DATA"
  rotate_log
  # Small volumes, many of them: each bucket is a collection that takes volumes of its own, and
  # the default (30 GB volumes, as many as the disk holds) leaves none for a second bucket.
  say "starting SeaweedFS (S3 on http://$HOST:$PORT); log: $LOG"
  spawn_node "$WEED" server -dir="$DATA" -ip="$HOST" -s3 -s3.port="$PORT" \
    -master.port="$MASTER_PORT" -volume.port="$VOLUME_PORT" -filer.port="$FILER_PORT" \
    -master.volumeSizeLimitMB=64 -volume.max=200
  pid=$(<"$PIDFILE")
  wait_ready "$pid" "$t0" 0.5 s3_ready no_round_trip
}

cmd_status() {
  local pid
  if ! pid=$(our_pid); then
    say_not_running "$PORT"
    return 1
  fi
  if probe; then
    say "running: S3 on http://$HOST:$PORT (pid $pid, RSS $(rss_mib "$pid") MiB)"
    return 0
  fi
  say "process $pid is up but no S3 round trip on http://$HOST:$PORT"
  return 2
}

case "${1:-}" in
  start | stop | status) (( $# == 1 )) || { echo "usage: $0 start|stop|status" >&2; exit 2; } ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
run_command "$@"
