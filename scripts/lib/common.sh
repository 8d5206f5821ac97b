# shellcheck shell=bash
# Shared by the scripts in scripts/ (sourced through lib/service.sh or lib/venv.sh): messages,
# timing and the one-at-a-time lock.
#
# The sourcing script sets MSG_PREFIX (its name, e.g. cassandra) before it calls any of these.

# "PREFIX: text" on stdout; say_err on stderr; die on stderr, then exit 1.
say() { printf '%s: %s\n' "${MSG_PREFIX:?}" "$*"; }
say_err() { printf '%s: %s\n' "${MSG_PREFIX:?}" "$*" >&2; }
die() { say_err "$@"; exit 1; }

# Seconds since the epoch, and seconds (one decimal) since such a time.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# One caller at a time (parallel test binaries may all run the same script): an exclusive lock on
# FILE held through fd 9 until release_lock or the script exits. A process started while it is
# held must get 9>&-, or it holds the lock for as long as it runs.
take_lock() {
  exec 9>"$1"
  flock 9
}
release_lock() { exec 9>&-; }
