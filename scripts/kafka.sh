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
MSG_PREFIX=kafka
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
# Our node's command line ends in our main class and our config file.
PID_MARKERS=(" $MAIN_CLASS $SERVER_PROPERTIES")

# Messages, timing, lock, JDK, jars, pid file, wait and stop: shared with scripts/cassandra.sh.
# shellcheck source-path=SCRIPTDIR
source "$HERE/lib/service.sh"

VERSION="${KAFKA_VERSION:-$(pom_version kafka.version)}"

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

# The start's wait (wait_ready in lib/service.sh): ready once the round trip works. The probe's
# last complaint goes into the message if it never does.
LAST_PROBE_ERROR="no answer on $BOOTSTRAP yet"
round_trip_ready() {
  local pid=$1 t0=$2 line
  # The probe only once the port accepts connections: a python start per poll is not free.
  port_open "$PORT" || return 1
  if line=$(probe 15 2>"$BASE/probe.err"); then
    rm -f "$BASE/probe.err"
    say "Kafka $VERSION ready on $BOOTSTRAP after $(since "$t0") s (pid $pid, RSS $(rss_mib "$pid") MiB): $line"
    return 0
  fi
  LAST_PROBE_ERROR=$(tail -n 1 "$BASE/probe.err")
  LAST_PROBE_ERROR=${LAST_PROBE_ERROR#kafka: }
  rm -f "$BASE/probe.err"
  return 1
}

no_round_trip() {
  echo "no produce/consume round trip on $BOOTSTRAP after ${START_TIMEOUT} s ($LAST_PROBE_ERROR)"
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
    wait_ready "$pid" "$t0" 0.5 round_trip_ready no_round_trip
    return
  fi
  rm -f "$PIDFILE"
  ports_free "$PORT" "$CONTROLLER_PORT"

  ensure_jars org.apache.kafka:kafka_2.13 "$VERSION" kafka.version
  # The Kafka 4 broker needs JDK 17 or newer.
  java=$(find_java "${KAFKA_JAVA:-}" 17+ \
    "no JDK 17 or newer found (the Kafka 4 broker needs one); set KAFKA_JAVA")
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
  rotate_log

  local jvm=(-Dlog4j2.configurationFile="$CONF/log4j2.properties" -Dkafka.logs.dir="$BASE"
    -Djava.awt.headless=true -cp "$LIB/*")

  # Format the data dir (KRaft needs meta.properties and the bootstrap checkpoint before the
  # first start). With KAFKA_KEEP_DATA=1 an already formatted dir is left alone.
  if [[ ! -f "$DATA/meta.properties" ]]; then
    if ! "$java" -Xmx256m -XX:TieredStopAtLevel=1 "${jvm[@]}" kafka.tools.StorageTool format \
        -t "$(random_cluster_id)" -c "$SERVER_PROPERTIES" >"$LOG" 2>&1 </dev/null 9>&-; then
      say_err "formatting $DATA failed"
      tail_log
      exit 1
    fi
  fi

  say "starting Kafka $VERSION (JDK $major, heap $HEAP) on $BOOTSTRAP; log: $LOG"
  # GC flags as in upstream bin/kafka-run-class.sh.
  spawn_node "$java" \
    -Xms"$HEAP" -Xmx"$HEAP" \
    -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath="$BASE" \
    "${extra[@]}" \
    "${jvm[@]}" \
    "$MAIN_CLASS" "$SERVER_PROPERTIES"
  pid=$(<"$PIDFILE")
  wait_ready "$pid" "$t0" 0.5 round_trip_ready no_round_trip
}

# cmd_stop: lib/service.sh.

cmd_status() {
  local pid line
  if ! pid=$(our_pid); then
    say_not_running "$PORT"
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

case "${1:-}" in
  start | stop | status) (( $# == 1 )) || usage ;;
  topic) (( $# == 3 )) || usage ;;
  delete-topic) (( $# == 2 )) || usage ;;
  *) usage ;;
esac
run_command "$@"
