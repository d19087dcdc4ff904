#!/usr/bin/env bash
# Syntax-checks (bash -n) and lints (shellcheck) every shell script users run: launch/*.sh,
# launch/*.sbatch, .ci/run and docker/*.sh (and the test scripts under tests/lint and tests/launch).
#   tests/lint/shellcheck.sh REPO_ROOT
# Exit 0 clean, 1 findings, 2 usage, 77 (CTest "skipped") when shellcheck is not installed.
set -euo pipefail

if [[ $# -ne 1 || ! -d "$1" ]]; then
  echo "usage: $0 REPO_ROOT" >&2
  exit 2
fi
root="$1"

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "skip: shellcheck is not installed (Debian: apt-get install shellcheck)"
  exit 77
fi

# Patterns that match nothing expand to nothing rather than to themselves.
shopt -s nullglob
scripts=("$root"/launch/*.sh "$root"/launch/*.sbatch "$root"/docker/*.sh "$root"/tests/lint/*.sh "$root"/tests/launch/*.sh)
if [[ -f "$root/.ci/run" ]]; then
  scripts+=("$root/.ci/run")
fi
if [[ ${#scripts[@]} -eq 0 ]]; then
  echo "no shell scripts found under $root (launch/, .ci/, docker/)" >&2
  exit 1
fi

status=0
for script in "${scripts[@]}"; do
  if ! bash -n "$script"; then
    echo "FAIL bash -n $script" >&2
    status=1
  fi
done
# -x follows `source`d files; each script's shebang names its shell (.sbatch included).
if ! shellcheck -x "${scripts[@]}"; then
  status=1
fi

if [[ $status -eq 0 ]]; then
  echo "ok: ${#scripts[@]} script(s) pass bash -n and shellcheck"
fi
exit "$status"
