#!/usr/bin/env bash
# Runs a real single-node Apache Cassandra 5.0 on 127.0.0.1:9042 (CQL native protocol) for tests.
#
#   scripts/cassandra.sh start    download the jars if needed, start a node on a fresh data dir and
#                                 return once CQL answers queries (already running: says so, exit 0)
#   scripts/cassandra.sh stop     stop the node this script started (pid file) and wait for it to exit
#   scripts/cassandra.sh status   exit 0 if our node runs and answers CQL, non-zero otherwise
#
# Cassandra comes from Maven Central only: org.apache.cassandra:cassandra-all and its runtime
# dependencies are copied by Maven (scripts/cassandra/pom.xml) into
# $STREAMSQL_CACHE/cassandra/lib, which outlives clones and runs. No tarball, no Docker.
#
# Environment:
#   STREAMSQL_CACHE            cache root (default ~/.cache/streamsql)
#   CASSANDRA_VERSION          cassandra-all version (default: the one in scripts/cassandra/pom.xml)
#   CASSANDRA_HEAP             max heap (default 1g; initial heap is 512m or this, if smaller)
#   CASSANDRA_START_TIMEOUT    seconds to wait for CQL (default 180)
#   CASSANDRA_JAVA             java binary to use (default: a JDK 17 or 11 found on the machine)
#   CASSANDRA_JVM_OPTS         extra JVM options, split on spaces (e.g. -Dcassandra.native.epoll.enabled=false)
#   CASSANDRA_KEEP_DATA        1 = start on the data of the previous run instead of a fresh data dir
#
# Files under $STREAMSQL_CACHE/cassandra: lib/ (jars), data/ (fresh on every start),
# cassandra.log (stdout+stderr of the node, kept after stop), cassandra.pid, lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MSG_PREFIX=cassandra
CONF="$HERE/cassandra"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
BASE="$CACHE_ROOT/cassandra"
LIB="$BASE/lib"
DATA="$BASE/data"
LOG="$BASE/cassandra.log"
PIDFILE="$BASE/cassandra.pid"
HOST=127.0.0.1
CQL_PORT=9042
STORAGE_PORT=7000
START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-180}"
STOP_TIMEOUT=60
HEAP="${CASSANDRA_HEAP:-1g}"
MAIN_CLASS=org.apache.cassandra.service.CassandraDaemon
# Our node's command line names our main class and our data dir.
PID_MARKERS=("$MAIN_CLASS" "-Dcassandra.storagedir=$DATA")

# Messages, timing, lock, JDK, jars, pid file, wait and stop: shared with scripts/kafka.sh.
# shellcheck source-path=SCRIPTDIR
source "$HERE/lib/service.sh"

VERSION="${CASSANDRA_VERSION:-$(pom_version cassandra.version)}"

# ---------------------------------------------------------------------------------------------
# CQL probe: native protocol v4 over a plain socket, no driver needed. OPTIONS must get SUPPORTED,
# STARTUP must get READY and "SELECT release_version FROM system.local" must return a row, so
# the node answers real queries, not just TCP. Prints the release version; exit 0 only on success.
cql_probe() {
  python3 - "$HOST" "$CQL_PORT" <<'PY'
import socket, struct, sys

host, port = sys.argv[1], int(sys.argv[2])
OPCODES = {0x00: "ERROR", 0x02: "READY", 0x06: "SUPPORTED", 0x08: "RESULT"}

def frame(stream, opcode, body=b""):
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body

def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk
    return buf

def request(sock, stream, opcode, body=b""):
    sock.sendall(frame(stream, opcode, body))
    version, _flags, _stream, op, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
    if version != 0x84:
        raise ValueError(f"unexpected response version byte 0x{version:02x}")
    payload = recv_exact(sock, length)
    if op == 0x00:
        code, mlen = struct.unpack(">iH", payload[:6])
        raise ValueError(f"server error 0x{code:04x}: {payload[6:6 + mlen].decode(errors='replace')}")
    return op, payload

def string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b

class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0
    def take(self, n):
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out
    def int(self):
        return struct.unpack(">i", self.take(4))[0]
    def short(self):
        return struct.unpack(">H", self.take(2))[0]
    def string(self):
        return self.take(self.short()).decode()
    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

def release_version(payload):
    r = Reader(payload)
    if r.int() != 2:  # Rows
        raise ValueError("SELECT did not return rows")
    flags, ncols = r.int(), r.int()
    if flags & 0x0002:
        r.bytes()  # paging state
    if not flags & 0x0004:
        if flags & 0x0001:
            r.string(); r.string()
        for _ in range(ncols):
            if not flags & 0x0001:
                r.string(); r.string()
            r.string()
            if r.short() == 0x0000:
                r.string()
    if ncols != 1 or r.int() < 1:
        raise ValueError("system.local returned no row")
    value = r.bytes()
    return value.decode() if value is not None else "?"

try:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.settimeout(10)
        op, _ = request(sock, 1, 0x05)  # OPTIONS
        if op != 0x06:
            raise ValueError(f"OPTIONS answered with {OPCODES.get(op, hex(op))}, not SUPPORTED")
        op, _ = request(sock, 2, 0x01, struct.pack(">H", 1) + string("CQL_VERSION") + string("3.0.0"))
        if op != 0x02:
            raise ValueError(f"STARTUP answered with {OPCODES.get(op, hex(op))}, not READY")
        query = b"SELECT release_version FROM system.local"
        op, payload = request(sock, 3, 0x07, struct.pack(">i", len(query)) + query + struct.pack(">HB", 0x0001, 0))
        if op != 0x08:
            raise ValueError(f"QUERY answered with {OPCODES.get(op, hex(op))}, not RESULT")
        print(release_version(payload))
except Exception as e:  # any failure means "not ready (yet)"
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
PY
}

# The start's wait (wait_ready in lib/service.sh): ready once the CQL probe passes.
cql_ready() {
  local pid=$1 t0=$2 version
  version=$(cql_probe 2>/dev/null) || return 1
  say "Cassandra $version ready on $HOST:$CQL_PORT after $(since "$t0") s (pid $pid, RSS $(rss_mib "$pid") MiB)"
}

cql_not_ready() {
  echo "CQL not ready on $HOST:$CQL_PORT after ${START_TIMEOUT} s"
}

# ---------------------------------------------------------------------------------------------
cmd_start() {
  local t0 pid java major jamm opts=() line version
  t0=$(now)
  if pid=$(our_pid); then
    if version=$(cql_probe 2>/dev/null); then
      say "already running (pid $pid, Cassandra $version on $HOST:$CQL_PORT)"
      return 0
    fi
    # Started by an earlier call that has not seen CQL yet (or a wedged node): wait for it.
    say "already starting (pid $pid); waiting for CQL"
    wait_ready "$pid" "$t0" 1 cql_ready cql_not_ready
    return
  fi
  rm -f "$PIDFILE"
  ports_free "$CQL_PORT" "$STORAGE_PORT"

  ensure_jars org.apache.cassandra:cassandra-all "$VERSION" cassandra.version
  # Cassandra 5.0 runs on JDK 11 or 17 only: it installs a SecurityManager, which JDK 24+ removed.
  java=$(find_java "${CASSANDRA_JAVA:-}" "17 11" \
    "no JDK 17 or 11 found (Cassandra 5.0 runs on those only); set CASSANDRA_JAVA")
  major=$(java_major "$java")
  local jamms=("$LIB"/jamm-*.jar)
  jamm=${jamms[0]}
  [[ -f "$jamm" ]] || die "jamm jar missing from $LIB"

  while IFS= read -r line; do
    line="${line%%#*}"
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line%"${line##*[![:space:]]}"}"
    [[ -n "$line" ]] && opts+=("$line")
  done <"$CONF/jvm17.options"
  local extra=()
  read -r -a extra <<<"${CASSANDRA_JVM_OPTS:-}"
  opts+=("${extra[@]}")

  # A fresh data dir each start: no commitlog replay, no leftovers from earlier test runs.
  # CASSANDRA_KEEP_DATA=1 restarts on the existing data instead (outage tests).
  if [[ "${CASSANDRA_KEEP_DATA:-0}" != 1 ]]; then
    rm -rf "$DATA"
  fi
  mkdir -p "$DATA/tmp" "$DATA/triggers"
  rotate_log

  # Initial heap 512m, or the maximum if that is smaller.
  local xms=512m
  if [[ "$HEAP" =~ ^[0-9]+[mM]$ ]] && (( ${HEAP%[mM]} < 512 )); then
    xms="$HEAP"
  fi

  say "starting Cassandra $VERSION (JDK $major, heap $HEAP) on $HOST:$CQL_PORT; log: $LOG"
  spawn_node "$java" \
    -Xms"$xms" -Xmx"$HEAP" \
    "${opts[@]}" \
    -XX:HeapDumpPath="$BASE" \
    -javaagent:"$jamm" \
    -Dlogback.configurationFile="$CONF/logback.xml" \
    -Dcassandra.config="file://${CONF// /%20}/cassandra.yaml" \
    -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$DATA" \
    -Dcassandra.logdir="$BASE" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.ring_delay_ms=1000 \
    -Dcassandra.superuser_setup_delay_ms=0 \
    -Dcassandra.unsafesystem=true \
    -Dcassandra.skip_sync=true \
    -Dcassandra.shutdown_announce_in_ms=0 \
    -Dcassandra.test.messagingService.nonGracefulShutdown=true \
    -Dcassandra.triggers_dir="$DATA/triggers" \
    -Djna.tmpdir="$DATA/tmp" \
    -Djava.io.tmpdir="$DATA/tmp" \
    -cp "$LIB/*" \
    "$MAIN_CLASS"
  pid=$(<"$PIDFILE")
  wait_ready "$pid" "$t0" 1 cql_ready cql_not_ready
}

# cmd_stop: lib/service.sh.

cmd_status() {
  local pid version
  if ! pid=$(our_pid); then
    say_not_running "$CQL_PORT"
    return 1
  fi
  if version=$(cql_probe 2>&1); then
    say "running: Cassandra $version on $HOST:$CQL_PORT (pid $pid, RSS $(rss_mib "$pid") MiB)"
    return 0
  fi
  say "process $pid is up but CQL on $HOST:$CQL_PORT does not answer yet ($version)"
  return 2
}

case "${1:-}" in
  start | stop | status) run_command "$1" ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
