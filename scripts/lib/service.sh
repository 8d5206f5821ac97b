# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR source-path=SCRIPTDIR/lib
# The lifecycle of a JVM service that a script in scripts/ runs for tests (cassandra.sh, kafka.sh):
# the jars from Maven Central, a JDK, a detached node with a pid file, the wait until it serves,
# stop and wait. What the node is and how to tell that it serves stays in the script.
#
# The sourcing script sets, before it calls any of these:
#   MSG_PREFIX      its name, for messages (lib/common.sh)
#   CONF            its folder of configuration files, holding pom.xml
#   BASE            the service's folder under the cache; LIB (jars), LOG and PIDFILE in it
#   HOST            the address the node listens on
#   START_TIMEOUT   seconds wait_ready waits; STOP_TIMEOUT seconds stop_pid waits before SIGKILL
#   PID_MARKERS     an array of strings that the command line of our node contains, all of them
#                   (guards against a pid reused by another process)

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ---------------------------------------------------------------------------------------------
# The version of PROPERTY (e.g. kafka.version) in $CONF/pom.xml.
pom_version() {
  sed -n "s:.*<$1>\(.*\)</$1>.*:\1:p" "$CONF/pom.xml" | head -1
}

# Is something listening on HOST:PORT? (plain TCP connect)
port_open() {
  python3 -c 'import socket,sys
s=socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex((sys.argv[1], int(sys.argv[2]))) == 0 else 1)' "$HOST" "$1"
}

# Dies unless every PORT is free.
ports_free() {
  local p
  for p in "$@"; do
    if port_open "$p"; then
      die "port $HOST:$p is already in use by a process this script did not start; not starting"
    fi
  done
}

# The pid in the pid file, if that process is alive and is the node this script started.
our_pid() {
  local pid cmd marker
  [[ -f "$PIDFILE" ]] || return 1
  pid=$(<"$PIDFILE")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  # Guard against a reused pid: the command line must hold every marker.
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  for marker in "${PID_MARKERS[@]}"; do
    [[ "$cmd" == *"$marker"* ]] || return 1
  done
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

# The log of the previous run becomes $LOG.prev.
rotate_log() {
  if [[ -f "$LOG" ]]; then
    mv -f "$LOG" "$LOG.prev"
  fi
}

# ---------------------------------------------------------------------------------------------
# The major version of the java binary JAVA (8 for 1.8).
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    sed -n 's/^ *java\.specification\.version = \([0-9.]*\).*/\1/p' | sed 's/^1\.//; s/\..*//'
}

# find_java CHOSEN ALLOWED MESSAGE: prints the first java whose major version ALLOWED admits,
# from CHOSEN (the script's *_JAVA, may be empty), $JAVA_HOME, the PATH and /usr/lib/jvm, in that
# order; dies with MESSAGE if there is none. ALLOWED is either a list of majors in order of
# preference ("17 11": /usr/lib/jvm/*17* before /usr/lib/jvm/*11*) or a minimum ("17+").
find_java() {
  local chosen=$1 allowed=$2 message=$3 candidates=() c major
  [[ -n "$chosen" ]] && candidates+=("$chosen")
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null 2>&1 && candidates+=("$(command -v java)")
  if [[ "$allowed" == *+ ]]; then
    for c in /usr/lib/jvm/*/bin/java; do
      [[ -x "$c" ]] && candidates+=("$c")
    done
  else
    for major in $allowed; do
      for c in /usr/lib/jvm/*"$major"*/bin/java; do
        [[ -x "$c" ]] && candidates+=("$c")
      done
    done
  fi
  for c in "${candidates[@]}"; do
    [[ -x "$c" ]] || continue
    major=$(java_major "$c")
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if [[ "$allowed" == *+ ]]; then
      (( major >= ${allowed%+} )) || continue
    else
      [[ " $allowed " == *" $major "* ]] || continue
    fi
    echo "$c"
    return 0
  done
  die "$message"
}

# ---------------------------------------------------------------------------------------------
# ensure_jars GROUP:ARTIFACT VERSION PROPERTY: ARTIFACT's jar and its runtime dependencies, copied
# once by Maven ($CONF/pom.xml, with -DPROPERTY=VERSION) into $LIB and reused afterwards.
ensure_jars() {
  local group=${1%%:*} artifact=${1#*:} version=$2 property=$3
  if [[ -f "$LIB/.complete" && "$(<"$LIB/.complete")" == "$version" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) is needed to fetch $artifact $version"
  local t0 tmp
  t0=$(now)
  tmp="$BASE/lib.tmp.$$"
  rm -rf "$tmp"
  say "fetching $artifact $version and its dependencies from Maven Central into $LIB"
  # -B: batch (no stdin, no progress bars); the plugin pinned so Maven 3.8 does not resolve a
  # prefix from metadata. includeScope=runtime = compile+runtime, no provided/test.
  # Maven 3.8 writes stray ANSI resets even in batch mode, so its output goes to a file and is
  # shown (without escapes) only on failure.
  if ! mvn -B -q -Dstyle.color=never -f "$CONF/pom.xml" \
      -D"$property=$version" \
      org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" </dev/null >"$BASE/maven.log" 2>&1; then
    sed 's/\x1b\[[0-9;]*m//g' "$BASE/maven.log" >&2
    rm -rf "$tmp" "$CONF/target"
    die "Maven could not resolve $group:$artifact:$version (output above, also in $BASE/maven.log)"
  fi
  [[ -f "$tmp/$artifact-$version.jar" ]] || { rm -rf "$tmp"; die "$artifact-$version.jar missing after Maven ran"; }
  echo "$version" >"$tmp/.complete"
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  # copy-dependencies may leave $CONF/target behind; it holds nothing we need.
  rm -rf "$CONF/target"
  local jars=("$LIB"/*.jar)
  say "fetched ${#jars[@]} jars ($(du -sm "$LIB" | cut -f1) MiB) in $(since "$t0") s"
}

# ---------------------------------------------------------------------------------------------
# Runs COMMAND... as the node and writes its pid to $PIDFILE. setsid + nohup: the node outlives
# this script and the caller's terminal. Its output is appended to $LOG. fd 9 (the lock) is closed
# for it, or the node would hold the lock for as long as it runs.
spawn_node() {
  nohup setsid "$@" >>"$LOG" 2>&1 </dev/null 9>&- &
  echo "$!" >"$PIDFILE"
}

# wait_ready PID T0 POLL READY REASON: polls every POLL seconds until READY PID T0 succeeds (it says
# that the node serves), the process dies, or START_TIMEOUT passes; the last two stop the script
# with exit 1 and the end of the log, a node that did not get ready after being stopped. REASON
# prints what was not reached (the error message until "; stopping pid N").
wait_ready() {
  local pid=$1 t0=$2 poll=$3 ready=$4 reason=$5 deadline
  deadline=$(( $(date +%s) + START_TIMEOUT ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      say_err "the node (pid $pid) exited during startup"
      tail_log
      exit 1
    fi
    if "$ready" "$pid" "$t0"; then
      return 0
    fi
    if (( $(date +%s) >= deadline )); then
      say_err "$("$reason"); stopping pid $pid"
      tail_log
      stop_pid "$pid" >/dev/null 2>&1 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep "$poll"
  done
}

# SIGTERM (the node shuts down cleanly in its shutdown hook), wait, then SIGKILL as a last resort.
stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < STOP_TIMEOUT * 5; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  say_err "pid $pid still running after ${STOP_TIMEOUT} s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for (( i = 0; i < 50; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# Commands.

# stop: stop the node this script started, if it runs, and wait for it to exit.
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

# For status when our node does not run: says so, naming anything else that listens on PORT.
say_not_running() {
  if port_open "$1"; then
    say "not running (but something this script did not start listens on $HOST:$1)"
  else
    say "not running"
  fi
}

# run_command ACTION [ARG...]: runs cmd_ACTION (dashes as underscores) with $BASE in place, one
# start or stop at a time.
run_command() {
  local action=$1
  shift
  mkdir -p "$BASE"
  case "$action" in
    start | stop) take_lock "$BASE/lock" ;;
  esac
  "cmd_${action//-/_}" "$@"
}
