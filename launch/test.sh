#!/usr/bin/env bash
# Installs missing dependencies, configures and builds one CMake preset, and runs its tests.
#   launch/test.sh                      preset "release" (CPU only), binary dir build/release
#   CAPSCALE_PRESET=asan launch/test.sh ASan/UBSan build in build/asan
# ctest runs serially on purpose: MPI tests start 2-4 ranks each with --oversubscribe, and running
# several at once on a small CI box makes them time out rather than fail usefully.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

preset="${CAPSCALE_PRESET:-release}"

./launch/deps.sh

# True when CMakePresets.json defines a preset of this kind (build|test) with this name.
has_preset() {
  cmake --list-presets="$1" 2>/dev/null | grep -q "^ *\"$2\""
}

cmake --preset "$preset"

if has_preset build "$preset"; then
  cmake --build --preset "$preset" -j"$(nproc)"
else
  cmake --build "build/$preset" -j"$(nproc)"
fi

if has_preset test "$preset"; then
  ctest --preset "$preset" --output-on-failure
else
  ctest --test-dir "build/$preset" --output-on-failure
fi
