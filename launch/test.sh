#!/usr/bin/env bash
# Installs missing dependencies, configures and builds one CMake preset, and runs its tests.
#   launch/test.sh                      preset "release" (CPU only), binary dir build/release
#   CAPSCALE_PRESET=asan launch/test.sh ASan/UBSan build in build/asan
# After the release suite it also builds the unit and MPI test binaries with ASan + UBSan and runs
# them (labels unit and mpi): any sanitizer report fails the run. CAPSCALE_SANITIZE=0 skips that.
# ctest runs one job per core: the unit tests side by side; tests that start MPI ranks (2-4 each,
# --oversubscribe), time a kill or build in the tree are RUN_SERIAL (tests/CMakeLists.txt), since
# several at once on a small CI box make them time out rather than fail usefully.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

preset="${CAPSCALE_PRESET:-release}"

./launch/deps.sh --lint-tools

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
  ctest --preset "$preset" --output-on-failure -j"$(nproc)"
else
  ctest --test-dir "build/$preset" --output-on-failure -j"$(nproc)"
fi

if [[ "$preset" != asan && "${CAPSCALE_SANITIZE:-1}" != 0 ]]; then
  # Open MPI's own allocations at MPI_Init/Finalize are reported as leaks by LeakSanitizer; they are
  # not ours, so leak checking is suppressed for Open MPI and its libraries only.
  export LSAN_OPTIONS="suppressions=${repo_root}/tests/sanitizers/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export ASAN_OPTIONS="detect_odr_violation=0"
  cmake --preset asan
  cmake --build --preset asan -j"$(nproc)" --target capscale_unit_tests capscale_mpi_tests
  # Left to the release run: the scripts and linters (no C++ of ours), and six tests that refit the
  # constants over the whole public set or search thousands of plans. They run the code paths of the
  # smaller validation and search tests, thirty times over, and took 220 of the 247 s of this leg.
  heavy='CrossValidationHoldsEachSourceOut|ShippedSustainedRangesAreTheCrossValidationSpread|ShippedConstantsAreTheLeastSquaresFit'
  heavy+='|SearchKeepsFixedKnobsAndSaysWhyNothingFits|SearchBeatsEveryRandomlyDrawnValidPlan|SearchFindsTheBestFittingPlan'
  ctest --test-dir build/asan --output-on-failure -j"$(nproc)" -L unit -E "plot_py|shellcheck|python_|docker_drift|hadolint|${heavy}"
  # Under mpiexec, LeakSanitizer reports Open MPI's plugin allocations from modules already unloaded
  # at MPI_Finalize ("<unknown module>"), which no suppression can name; the MPI tests therefore run
  # with every ASan and UBSan check except leak detection (the unit tests above keep it).
  ASAN_OPTIONS="${ASAN_OPTIONS}:detect_leaks=0" ctest --test-dir build/asan --output-on-failure -L mpi
fi
