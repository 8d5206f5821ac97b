#!/usr/bin/env bash
# Runs a real single-node Apache Kafka 4.1 (KRaft, broker and controller in one process) on
# 127.0.0.1:9092 for tests.
#
#   scripts/kafka.sh start                    download the jars if needed, start a node on a fresh
#                                             data dir and return once a message makes a real
#                                             produce/consume round trip (already running: says
#                                             so, exit 0)
#   scripts/kafka.sh stop                     stop the node this script started (pid file) and
#                                             wait for it to exit
#   scripts/kafka.sh status                   exit 0 if our node runs and passes the round trip,
#                                             non-zero otherwise
#   scripts/kafka.sh topic NAME PARTITIONS    create a topic unless it exists (then it is left as
#                                             is, whatever its partition count); returns once
#                                             every partition has a leader
#   scripts/kafka.sh delete-topic NAME        delete a topic if it exists; returns once it is gone
#
# Kafka comes from Maven Central only: org.apache.kafka:kafka_2.13 and its runtime dependencies
# are copied by Maven (scripts/kafka/pom.xml) into $STREAMSQL_CACHE/kafka/lib, which outlives
# clones and runs. No tarball, no Docker. The probe and the topic helpers use confluent-kafka
# from the venv of scripts/kafka-client.sh (scripts/kafka/admin.py).
#
# Environment:
#   STREAMSQL_CACHE          cache root (default ~/.cache/streamsql)
#   KAFKA_VERSION            kafka_2.13 version (default: the one in scripts/kafka/pom.xml)
#   KAFKA_PORT               client (PLAINTEXT) port (default 9092)
#   KAFKA_CONTROLLER_PORT    KRaft controller port (default 9093)
#   KAFKA_HEAP               heap, initial and max (default 512m)
#   KAFKA_START_TIMEOUT      seconds to wait for the round trip (default 120)
#   KAFKA_JAVA               java binary to use (default: a JDK 17 or newer found on the machine)
#   KAFKA_JVM_OPTS           extra JVM options, split on spaces
#   KAFKA_KEEP_DATA          1 = start on the data of the previous run instead of a fresh data dir
#
# Files under $STREAMSQL_CACHE/kafka: lib/ (jars), data/ (fresh on every start), server.properties
# (scripts/kafka/server.properties with paths and ports filled in), kafka.log (stdout+stderr of the
# node, kept after stop), kafka.pid, lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF="$HERE/kafka"
CACHE_ROOT="${STREAMSQL_CACHE:-$HOME/.cache/streamsql}"
BASE="$CACHE_ROOT/kafka"
LIB="$BASE/lib"
DATA="$BASE/data"
LOG="$BASE/kafka.log"
PIDFILE="$BASE/kafka.pid"
SERVER_PROPERTIES="$BASE/server.properties"
HOST=127.0.0.1
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
BOOTSTRAP="$HOST:$PORT"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STOP_TIMEOUT=60
HEAP="${KAFKA_HEAP:-512m}"
MAIN_CLASS=kafka.Kafka

say() { printf 'kafka: %s\n' "$*"; }
die() { printf 'kafka: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

pom_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$CONF/pom.xml" | head -1
}
VERSION="${KAFKA_VERSION:-$(pom_version)}"

# ---------------------------------------------------------------------------------------------
# The client side (probe, topic helpers): scripts/kafka/admin.py in the confluent-kafka venv.
client_python() {
  "$HERE/kafka-client.sh" python
}

admin() {
  "$PYTHON" "$CONF/admin.py" "$BOOTSTRAP" "$@"
}

# Round trip: create _streamsql_probe, produce a unique message, consume it back with a new
# consumer group. Prints one line about it; exit 0 only on success.
probe() {
  admin probe "${1:-15}"
}

# Is something listening on HOST:port? (plain TCP connect)
port_open() {
  python3 -c 'import socket,sys
s=socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)' "$HOST" "$1"
}

# The pid in the pid file, if that process is alive and is the Kafka this script started.
our_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid=$(<"$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  # Guard against a reused pid: the command line must name our main class and our config file.
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *" $MAIN_CLASS $SERVER_PROPERTIES"* ]] || return 1
  echo "$pid"
}

rss_mib() {
  awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

tail_log() {
  if [[ -f "$LOG" ]]; then
    echo "----- last 50 lines of $LOG -----" >&2
    tail -n 50 "$LOG" >&2
    echo "----- end of $LOG -----" >&2
  fi
}

# ---------------------------------------------------------------------------------------------
# A java that Kafka 4 supports (17 or newer for the broker).
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | sed 's/^1\.//; s/\..*//'
}

find_java() {
  local candidates=() c major
  [[ -n "${KAFKA_JAVA:-}" ]] && candidates+=("$KAFKA_JAVA")
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  for c in /usr/lib/jvm/*/bin/java; do
    [[ -x "$c" ]] && candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    [[ -x "$c" ]] || continue
    major=$(java_major "$c")
    if [[ "$major" =~ ^[0-9]+$ ]] && (( major >= 17 )); then
      echo "$c"
      return 0
    fi
  done
  die "no JDK 17 or newer found (the Kafka 4 broker needs one); set KAFKA_JAVA"
}

# ---------------------------------------------------------------------------------------------
# Jars: copied once by Maven into $LIB, reused afterwards.
ensure_jars() {
  if [[ -f "$LIB/.complete" && "$(<"$LIB/.complete")" == "$VERSION" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) is needed to fetch kafka_2.13 $VERSION"
  local t0 tmp
  t0=$(now)
  tmp="$BASE/lib.tmp.$$"
  rm -rf "$tmp"
  say "fetching kafka_2.13 $VERSION and its dependencies from Maven Central into $LIB"
  # -B: batch (no stdin, no progress bars); the plugin pinned so Maven 3.8 does not resolve a
  # prefix from metadata. includeScope=runtime = compile+runtime, no provided/test.
  # Maven 3.8 writes stray ANSI resets even in batch mode, so its output goes to a file and is
  # shown (without escapes) only on failure.
  if ! mvn -B -q -Dstyle.color=never -f "$CONF/pom.xml" \
      -Dkafka.version="$VERSION" \
      org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" </dev/null >"$BASE/maven.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$BASE/maven.log" >&2
    rm -rf "$tmp" "$CONF/target"
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$VERSION (output above, also in $BASE/maven.log)"
  fi
  [[ -f "$tmp/kafka_2.13-$VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$VERSION.jar missing after Maven ran"; }
  echo "$VERSION" >"$tmp/.complete"
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  # copy-dependencies may leave scripts/kafka/target behind; it holds nothing we need.
  rm -rf "$CONF/target"
  local jars=("$LIB"/*.jar)
  say "fetched ${#jars[@]} jars ($(du -sm "$LIB" | cut -f1) MiB) in $(since "$t0") s"
}

# A cluster id as kafka.tools.StorageTool random-uuid prints it (16 random bytes, URL-safe
# base64 without padding, not starting with '-'), without paying for a JVM start.
random_cluster_id() {
  python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break'
}

# ---------------------------------------------------------------------------------------------
cmd_start() {
  local t0 pid java major line
  t0=$(now)
  # The probe needs the client; installing it first keeps pip out of the start timeout.
  PYTHON=$(client_python)
  if pid=$(our_pid); then
    if line=$(probe 2>/dev/null); then
      say "already running (pid $pid, Kafka $VERSION on $BOOTSTRAP)"
      return 0
    fi
    # Started by an earlier call that has not passed the probe yet (or a wedged node): wait for it.
    say "already starting (pid $pid); waiting for a produce/consume round trip"
    wait_ready "$pid" "$t0"
    return
  fi
  rm -f "$PIDFILE"

  for p in "$PORT" "$CONTROLLER_PORT"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by a process this script did not start; not starting"
    fi
  done

  ensure_jars
  java=$(find_java)
  major=$(java_major "$java")
  local extra=()
  read -r -a extra <<<"${KAFKA_JVM_OPTS:-}"

  # A fresh data dir each start: no log recovery, no topics or offsets from earlier test runs.
  # KAFKA_KEEP_DATA=1 restarts on the existing data instead (outage tests).
  if [[ "${KAFKA_KEEP_DATA:-0}" != 1 ]]; then
    rm -rf "$DATA"
  fi
  mkdir -p "$DATA"
  sed -e "s#@DATA@#$DATA#g" -e "s#@PORT@#$PORT#g" -e "s#@CONTROLLER_PORT@#$CONTROLLER_PORT#g" \
    "$CONF/server.properties" >"$SERVER_PROPERTIES"
  [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"

  local jvm=(-Dlog4j2.configurationFile="$CONF/log4j2.properties" -Dkafka.logs.dir="$BASE"
    -Djava.awt.headless=true -cp "$LIB/*")

  # Format the data dir (KRaft needs meta.properties and the bootstrap checkpoint before the
  # first start). With KAFKA_KEEP_DATA=1 an already formatted dir is left alone.
  if [[ ! -f "$DATA/meta.properties" ]]; then
    if ! "$java" -Xmx256m -XX:TieredStopAtLevel=1 "${jvm[@]}" kafka.tools.StorageTool format \
        -t "$(random_cluster_id)" -c "$SERVER_PROPERTIES" >"$LOG" 2>&1 </dev/null 9>&-; then
      echo "kafka: formatting $DATA failed" >&2
      tail_log
      exit 1
    fi
  fi

  say "starting Kafka $VERSION (JDK $major, heap $HEAP) on $BOOTSTRAP; log: $LOG"
  # setsid + nohup: the node outlives this script and the caller's terminal. fd 9 (the lock)
  # is closed for the child, or the node would hold the lock for as long as it runs.
  # GC flags as in upstream bin/kafka-run-class.sh.
  nohup setsid "$java" \
    -Xms"$HEAP" -Xmx"$HEAP" \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$BASE" \
    "${extra[@]}" \
    "${jvm[@]}" \
    "$MAIN_CLASS" "$SERVER_PROPERTIES" >>"$LOG" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  wait_ready "$pid" "$t0"
}

# Poll until the round trip works, the process dies, or the time limit passes.
wait_ready() {
  local pid=$1 t0=$2 line deadline last="no answer on $BOOTSTRAP yet"
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      echo "kafka: the node (pid $pid) exited during startup" >&2
      tail_log
      exit 1
    fi
    # The probe only once the port accepts connections: a python start per poll is not free.
    if port_open "$PORT"; then
      if line=$(probe 15 2>"$BASE/probe.err"); then
        rm -f "$BASE/probe.err"
        say "Kafka $VERSION ready on $BOOTSTRAP after $(since "$t0") s (pid $pid, RSS $(rss_mib "$pid") MiB): $line"
        return 0
      fi
      last=$(tail -n 1 "$BASE/probe.err")
      last=${last#kafka: }
    fi
    if (( $(date +%s) >= deadline )); then
      echo "kafka: no produce/consume round trip on $BOOTSTRAP after ${START_TIMEOUT} s ($last); stopping pid $pid" >&2
      tail_log
      stop_pid "$pid" >/dev/null 2>&1 || true
      rm -f "$PIDFILE" "$BASE/probe.err"
      exit 1
    fi
    sleep 0.5
  done
}

# SIGTERM (Kafka shuts down cleanly in its shutdown hook), wait, then SIGKILL as a last resort.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < STOP_TIMEOUT * 5; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  echo "kafka: pid $pid still running after ${STOP_TIMEOUT} s; sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for (( i = 0; i < 50; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  return 1
}

cmd_stop() {
  local pid t0
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  t0=$(now)
  stop_pid "$pid" || die "could not stop pid $pid"
  rm -f "$PIDFILE"
  say "stopped (pid $pid) in $(since "$t0") s"
}

cmd_status() {
  local pid line
  if ! pid=$(our_pid); then
    if port_open "$PORT"; then
      say "not running (but something this script did not start listens on $BOOTSTRAP)"
    else
      say "not running"
    fi
    return 1
  fi
  PYTHON=$(client_python)
  if line=$(probe 2>&1); then
    say "running: Kafka $VERSION on $BOOTSTRAP (pid $pid, RSS $(rss_mib "$pid") MiB): $line"
    return 0
  fi
  say "process $pid is up but no produce/consume round trip on $BOOTSTRAP ($line)"
  return 2
}

# The topic helpers talk to whatever listens on $BOOTSTRAP; fail at once if nothing does.
need_broker() {
  port_open "$PORT" || die "nothing listens on $BOOTSTRAP; start Kafka first (scripts/kafka.sh start)"
  PYTHON=$(client_python)
}

cmd_topic() {
  local name=$1 partitions=$2
  [[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, not '$partitions'"
  need_broker
  local line
  line=$(admin topic "$name" "$partitions") || exit 1
  say "$line"
}

cmd_delete_topic() {
  local name=$1
  need_broker
  local line
  line=$(admin delete-topic "$name") || exit 1
  say "$line"
}

usage() {
  echo "usage: $0 start|stop|status | topic NAME PARTITIONS | delete-topic NAME" >&2
  exit 2
}

main() {
  local action="${1:-}"
  case "$action" in
    start | stop | status) (( $# == 1 )) || usage ;;
    topic) (( $# == 3 )) || usage ;;
    delete-topic) (( $# == 2 )) || usage ;;
    *) usage ;;
  esac
  shift
  mkdir -p "$BASE"
  case "$action" in
    start | stop)
      # One start/stop at a time (parallel test binaries may all call start).
      exec 9>"$BASE/lock"
      flock 9
      ;;
  esac
  "cmd_${action//-/_}" "$@"
}

main "$@"
