#!/usr/bin/env bash
# Runs every capscale libFuzzer harness for a fixed time, one after the other, one job each.
#   tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS_PER_TARGET [OUT_DIR] [TARGET...]
# BUILD_DIR is a clang build with -DCAPSCALE_BUILD_FUZZERS=ON (see docs/fuzzing.md). The seed corpora
# tests/fuzz/corpus/TARGET and the matching hostile/good files under tests/data/{bad,good}/ are read,
# never written: new inputs go to OUT_DIR/corpus/TARGET, crashes,
# leaks, timeouts and OOMs to OUT_DIR/artifacts/TARGET/, logs to OUT_DIR/logs/TARGET/fuzz-0.log.
# Prints one summary line per target. Exit 0 when no target left an artifact, 1 when one did, 2 usage.
set -euo pipefail

if [[ $# -lt 2 || ! -d "$1" || ! "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 BUILD_DIR SECONDS_PER_TARGET [OUT_DIR] [TARGET...]" >&2
  exit 2
fi
build="$(cd "$1" && pwd)"
seconds="$2"
out="${3:-/tmp/capscale-fuzz}"
shift $(( $# >= 3 ? 3 : 2 ))
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(fuzz_yaml_model fuzz_yaml_chip fuzz_sweep fuzz_hf_json fuzz_target_spec)
fi

status=0
printf '# %-18s %8s %12s %8s %6s %9s  %s\n' target "time [s]" execs "exec/s" cov "artifacts" "date"
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  if [[ ! -x "$bin" ]]; then
    echo "missing $bin: build it with cmake --build $build --target capscale_fuzzers" >&2
    exit 2
  fi
  mkdir -p "$out/corpus/$t" "$out/artifacts/$t" "$out/logs/$t"
  seeds=("$src/corpus/$t")
  case "$t" in
    fuzz_yaml_model) sub=models ;;
    fuzz_yaml_chip) sub=chips ;;
    fuzz_sweep) sub=sweeps ;;
    fuzz_hf_json) sub=hf ;;
    *) sub="" ;;
  esac
  if [[ -n "$sub" ]]; then
    seeds+=("$src/../data/bad/$sub" "$src/../data/good/$sub")
  fi
  start=$(date +%s)
  # -jobs=1: one worker (logs to fuzz-0.log in the current directory); -timeout: one input > 10 s is a hang.
  (cd "$out/logs/$t" && "$bin" -jobs=1 -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 -dict="$src/dict/$t.dict" -artifact_prefix="$out/artifacts/$t/" \
      "$out/corpus/$t" "${seeds[@]}" >/dev/null 2>&1) || true
  elapsed=$(( $(date +%s) - start ))
  log="$out/logs/$t/fuzz-0.log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  artifacts=$(find "$out/artifacts/$t" -type f | wc -l)
  printf '  %-18s %8s %12s %8s %6s %9s  %s\n' "$t" "$elapsed" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$artifacts" \
    "$(date -u +%Y-%m-%dT%H:%MZ)"
  if [[ "$artifacts" -gt 0 ]]; then
    status=1
    find "$out/artifacts/$t" -type f -printf '    artifact: %p\n'
    grep -m1 -E 'ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error|terminate called' "$log" \
      | sed 's/^/    /' || true
  fi
done
exit "$status"
