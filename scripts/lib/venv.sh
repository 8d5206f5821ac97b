# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR source-path=SCRIPTDIR/lib
# A Python venv installed from a pinned requirements file, for the client scripts in scripts/
# (flight-clients.sh, kafka-client.sh). Quiet when it is in place; one line on stderr when
# something was installed; a message on stderr and exit 1 when something fails.
#
# The sourcing script sets MSG_PREFIX (its name, for messages; lib/common.sh) first.

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# ensure_venv VENV REQUIREMENTS PYTHON IMPORTS BROKEN [PIP_ARG...]: VENV, created with PYTHON if
# missing, with REQUIREMENTS installed by pip (PIP_ARGs added) unless the requirements it was last
# installed from (the marker VENV/streamsql-requirements.txt) are the same. IMPORTS (e.g.
# "pyarrow.flight") must import afterwards, or the script dies with BROKEN. The output of venv and
# pip goes to VENV-install.log, shown only on failure.
ensure_venv() {
  local venv=$1 requirements=$2 python=$3 imports=$4 broken=$5
  shift 5
  # The requirements the venv was last installed from; compared to decide whether to reinstall.
  local installed="$venv/streamsql-requirements.txt" log="$venv-install.log"
  if [[ -x "$venv/bin/python" && -f "$installed" ]] && cmp -s "$requirements" "$installed"; then
    return 0
  fi
  command -v "$python" >/dev/null 2>&1 || die "$python not found (needed to create $venv)"
  if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -m venv "$venv" >"$log" 2>&1; then
      cat "$log" >&2
      rm -rf "$venv"
      die "could not create a venv at $venv with $python (output above)"
    fi
  fi
  # Removing the marker first means an interrupted install is retried next time.
  rm -f "$installed"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "$@" -r "$requirements" >"$log" 2>&1 </dev/null; then
    cat "$log" >&2
    die "pip could not install $requirements into $venv (output above, also in $log)"
  fi
  # Make sure the packages actually load (a wheel for another platform would only fail here).
  "$venv/bin/python" -c "import $imports" >"$log" 2>&1 ||
    { cat "$log" >&2; die "$broken (output above)"; }
  cp "$requirements" "$installed"
  rm -f "$log"
  say_err "installed $(grep -v '^#' "$requirements" | grep . | paste -sd ' ' -) into $venv"
}
