#!/usr/bin/env bash
# Installs the Debian 12 packages capscale needs to build, test and plot (CPU path; CUDA comes from
# the CUDA toolkit / docker/Dockerfile). Runs at every test invocation, so the all-present case is a
# single dpkg-query call and nothing else.
#   launch/deps.sh           install what is missing (root: apt-get; else sudo; else print the line)
#   launch/deps.sh --print   print the missing packages, one per line, and exit 0
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root

readonly packages=(
  build-essential cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev libopenblas-dev libyaml-cpp-dev libcli11-dev libgtest-dev nlohmann-json3-dev
  python3-h5py python3-matplotlib python3-numpy
  shellcheck
)

print_only=0
case "${1:-}" in
  "") ;;
  --print) print_only=1 ;;
  -h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    echo "deps.sh: unknown argument '$1' (allowed: --print, --help)" >&2
    exit 2
    ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  # Not Debian/Ubuntu: we cannot check, so trust the user and let CMake report what is missing.
  echo "deps.sh: dpkg-query not found; skipping the package check (Debian 12 is the supported host)." >&2
  exit 0
fi

# One dpkg-query call for all packages (this runs before every test). Packages dpkg has never heard
# of print nothing on stdout (an error on stderr, which we drop) and so count as missing, like
# packages that were removed or half-installed.
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)"
missing=()
for pkg in "${packages[@]}"; do
  if ! grep -qxF "$pkg install ok installed" <<<"$installed"; then
    missing+=("$pkg")
  fi
done

if ((print_only)); then
  if ((${#missing[@]})); then
    printf '%s\n' "${missing[@]}"
  fi
  exit 0
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "deps.sh: missing packages: ${missing[*]}" >&2

install_line="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" -eq 0 ]]; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
elif command -v sudo >/dev/null 2>&1; then
  sudo apt-get update
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "deps.sh: not root and no sudo; as root, run:" >&2
  echo "  apt-get update && ${install_line}" >&2
  exit 1
fi
echo "deps.sh: installed into the system; repo at ${repo_root} can now be built." >&2
