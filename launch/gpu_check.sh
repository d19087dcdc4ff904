#!/usr/bin/env bash
# The GPU-only checks of the CUDA backend as one script, run from the repository root on a GPU node
# with nothing prepared (CUDA 13 toolkit with cuBLAS and NCCL, an R580+ driver, launch/deps.sh's
# packages or network to install them):
#   launch/gpu_check.sh [OUT_DIR]        (default: $OUT, else gpu-check-<host>-<utc time>)
#   launch/gpu_check.sh --bundle DIR [OUT_DIR]
#                                        no build: run the prebuilt binaries of an unpacked bundle
#                                        made by `launch/bundle.sh --with-gpu-tests` (for a node with
#                                        the driver and CUDA libraries but no compiler or packages)
# It builds the `cuda` preset (capscale, the CUDA plugin, the GPU tests), then runs, each under its
# own time limit and logged to OUT_DIR/<step>.log:
#   ctest -L gpu, bench gemm, bench comm (all local GPUs; skipped with one), a run of 8 Llama 3.1 8B
#   layers emulating h200, h20, h800 and h100@nvlink=400, the same in fp8, 4 layers of Qwen3-30B-A3B
#   (MoE), bench clock, H1's eager step variants (bench/eager_gap.py --variants, where PyTorch is
#   installed), a pp 2 / vpp 2 run over 2 GPUs (the interleaved p2p path; skipped with one
#   GPU), and calibrate (Llama 3.1 8B and 70B GEMM shapes).
# The whole script keeps to a wall-clock budget (CAPSCALE_GPU_CHECK_BUDGET_S, default 480 s = 8 min,
# build included): each step's limit is cut to what is left, and a step with under 20 s left is
# skipped, so OUT_DIR/summary.txt is always written. The build targets only this node's GPU
# (CMAKE_CUDA_ARCHITECTURES=native) to keep it short. OUT_DIR/summary.txt lists each step's verdict
# and the figures (bench ratios and TFLOP/s against DESIGN.md's budgets, fused attention TFLOP/s);
# OUT_DIR/figures.txt holds the figures alone. The exit status is 0 only when every step that ran passed.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" || exit 1
bundle=""
if [[ ${1:-} == --bundle ]]; then
  [[ -n ${2:-} && -x ${2:-}/bin/capscale ]] || {
    echo "gpu_check.sh: --bundle needs an unpacked bundle directory with bin/capscale (launch/bundle.sh)" >&2
    exit 2
  }
  bundle="$(cd "$2" && pwd)"
  [[ -x $bundle/bin/capscale_gpu_tests ]] || {
    echo "gpu_check.sh: $bundle has no bin/capscale_gpu_tests (build it with launch/bundle.sh --with-gpu-tests)" >&2
    exit 2
  }
  shift 2
fi
out="${1:-${OUT:-gpu-check-$(hostname -s)-$(date -u +%Y%m%dT%H%M%SZ)}}"
mkdir -p "$out" || exit 1
out="$(cd "$out" && pwd)"
summary="$out/summary.txt"
figures="$out/figures.txt"
: >"$summary"
: >"$figures"
failed=0
budget_s=${CAPSCALE_GPU_CHECK_BUDGET_S:-480}
t_start=$(date +%s)
left() { echo $((budget_s - ($(date +%s) - t_start))); }

# step NAME LIMIT_S CMD...: runs CMD with a time limit, output to OUT/NAME.log, verdict to the summary.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 rc remaining
  remaining=$(left)
  if ((remaining < 20)); then
    printf '%-14s %-22s %5s     %s\n' "$name" "NOT RUN" "-" "the ${budget_s} s budget is spent" | tee -a "$summary"
    failed=1
    return 124
  fi
  ((limit > remaining)) && limit=$remaining
  t0=$(date +%s)
  echo "== $name: $*" | tee -a "$out/commands.txt"
  timeout --signal=TERM --kill-after=30 "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  local verdict=PASS
  if ((rc == 124 || rc == 137)); then
    verdict="TIMEOUT after ${limit} s"
  elif ((rc != 0)); then
    verdict="FAIL (exit $rc)"
  fi
  [[ $verdict == PASS ]] || failed=1
  printf '%-14s %-22s %5d s   %s\n' "$name" "$verdict" "$(($(date +%s) - t0))" "$name.log" | tee -a "$summary"
  return "$rc"
}
skip() {
  printf '%-14s %-22s %5s     %s\n' "$1" "SKIPPED" "-" "$2" | tee -a "$summary"
}

# What ran where.
{
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown) $(git status --porcelain 2>/dev/null | wc -l) changed file(s)"
  echo "host: $(hostname) $(uname -r)"
  nvidia-smi --query-gpu=index,name,pci.bus_id,driver_version,memory.total --format=csv 2>&1 || echo "nvidia-smi failed"
  command -v nvcc >/dev/null && nvcc --version | tail -1
  [[ -n $bundle ]] && head -3 "$bundle/MANIFEST.txt"
} >"$out/environment.txt"
cat "$out/environment.txt"

ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
if ((ngpu < 1)); then
  echo "gpu_check.sh: no GPU visible (nvidia-smi -L lists none); run this on a GPU node" >&2
  exit 1
fi

mpi_flags=(--bind-to none)
if [[ $(id -u) -eq 0 ]]; then
  mpi_flags+=(--allow-run-as-root)
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
jobs=$(nproc)

if [[ -n $bundle ]]; then
  # 1. No build: the bundle's binaries. Its wrappers find the CUDA libraries on LD_LIBRARY_PATH or
  #    in /usr/local/cuda/lib64; a library found in neither (NCCL from a pip wheel, say) is looked
  #    for in the usual places and its directory appended, and the check says where each came from.
  bin="$bundle/bin/capscale"
  export PATH="$PATH:/usr/local/cuda/bin"
  mpirun_bin="$bundle/bin/mpirun"
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libnccl.so.2; do
    if ! CAPSCALE_BUNDLE=$bundle sh -c '. "$CAPSCALE_BUNDLE/lib/bundle-env.sh"; IFS=:; for d in $LD_LIBRARY_PATH; do [ -e "$d/$0" ] && exit 0; done; ldconfig -p 2>/dev/null | grep -q " $0 "' "$lib"; then
      found=$(find /usr/local /usr/lib /opt -name "$lib" \( -type f -o -type l \) 2>/dev/null | head -1)
      if [[ -n $found ]]; then
        found_dir=$(dirname "$found")
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$found_dir"
        echo "gpu_check.sh: $lib from $found_dir" | tee -a "$out/environment.txt"
      fi
    fi
  done
  step bundle_check 60 "$bundle/bin/capscale-bundle-check"
  # 2. The GPU tests, each in its own process, so that a CUDA error that poisons the context (an
  #    illegal address, say) fails one test and not the ones after it. A failed test runs again
  #    under compute-sanitizer's memcheck where the node has it, to name the faulting access.
  #    A test still running after its limit (60 s, then 20 s once one has hung) is a hang: the
  #    first one's host threads are printed through cuda-gdb (attach; no gdb on such nodes).
  #    The function runs in a child bash (through `declare -f`), so shellcheck sees no caller.
  # shellcheck disable=SC2317
  gpu_tests_isolated() {
    local tests=$1 failed_tests=() t pid log limit=60 dumped=0 waited rc
    log=$(mktemp)
    for t in $("$tests" --gtest_list_tests | awk '/^[^ ]/ {suite=$1} /^  / {print suite $1}'); do
      echo "=== $t"
      "$tests" --gtest_color=no --gtest_filter="$t" >"$log" 2>&1 &
      pid=$!
      waited=0
      while kill -0 "$pid" 2>/dev/null && ((waited < limit * 10)); do sleep 0.1; waited=$((waited + 1)); done
      if kill -0 "$pid" 2>/dev/null; then
        echo "=== HANG: $t still running after ${limit} s"
        if ((!dumped)) && command -v cuda-gdb >/dev/null; then
          timeout 60 cuda-gdb -p "$pid" -batch -ex "info threads" -ex "thread apply all bt 14" 2>&1 | grep -v '^\[New\|^warning' | tail -120
          dumped=1
        fi
        kill -9 "$pid" 2>/dev/null
        limit=20
      fi
      wait "$pid"
      rc=$?
      grep -v '^Note: Google Test filter' "$log"
      ((rc == 0)) || failed_tests+=("$t")
    done
    rm -f "$log"
    if ((${#failed_tests[@]})); then
      echo "=== FAILED: ${failed_tests[*]}"
      if command -v compute-sanitizer >/dev/null; then
        for t in "${failed_tests[@]}"; do
          echo "=== compute-sanitizer memcheck: $t"
          # shellcheck source=/dev/null
          (CAPSCALE_BUNDLE=$(cd "$(dirname "$tests")/.." && pwd) && . "$CAPSCALE_BUNDLE/lib/bundle-env.sh" &&
            timeout 60 compute-sanitizer --tool memcheck --show-backtrace device --print-limit 20 \
              "$tests.bin" --gtest_color=no --gtest_filter="$t" 2>&1 | tail -60)
        done
      fi
      return 1
    fi
  }
  step ctest_gpu 300 bash -o pipefail -c "$(declare -f gpu_tests_isolated); gpu_tests_isolated \"\$1\"" _ \
    "$bundle/bin/capscale_gpu_tests"
else
  # 1. Build (the cuda preset requires nvcc, cuBLAS and NCCL and fails at configure time without them).
  if ! command -v cmake >/dev/null || ! command -v mpirun >/dev/null || ! command -v h5dump >/dev/null; then
    step deps 900 ./launch/deps.sh || true
  fi
  step configure 300 cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES=native || {
    echo "configure failed; see $out/configure.log" >&2
    exit 1
  }
  step build 1800 cmake --build --preset cuda -j "$jobs" --target capscale capscale_cuda capscale_gpu_tests || {
    echo "build failed; see $out/build.log" >&2
    exit 1
  }
  bin="$repo_root/build/cuda/src/capscale"
  mpirun_bin=mpirun

  # 2. The GPU tests (every op family against host references; skipped without a device, which
  #    here would be a failure of the node, so a skip is reported as such in the log).
  step ctest_gpu 300 ctest --test-dir build/cuda -L gpu --output-on-failure -V
fi
if grep -qi "skipped" "$out/ctest_gpu.log"; then
  echo "ctest_gpu      NOTE: tests were skipped although a GPU is visible" | tee -a "$summary"
  failed=1
fi
# Fused attention throughput at Llama 3.1 8B's shape (printed by the GPU tests).
grep -o '\[ attention \].*' "$out/ctest_gpu.log" >>"$figures" || echo "[ attention ] no figure (see ctest_gpu.log)" >>"$figures"

# 3. Executor vs direct library calls (DESIGN.md budgets: GEMM >= 0.97 and 8192^3 bf16 >= 750
#    TFLOP/s on H100/H200; NCCL >= 0.95 of the direct loop).
step bench_gemm 120 bash -c "\"$bin\" bench gemm --backend cuda --json >\"$out/bench_gemm.json\""
# Executor vs direct cuBLASLt (>= 0.97) and 8192^3 bf16 (>= 750 TFLOP/s on H100/H200), from the JSON.
python3 - "$out/bench_gemm.json" >>"$figures" 2>&1 <<'PY' || echo "[ gemm ] no figures (see bench_gemm.json / bench_gemm.log)" >>"$figures"
import json, sys
rows = json.load(open(sys.argv[1]))
rows = rows.get("rows", rows) if isinstance(rows, dict) else rows
for r in rows:
    big = r.get("shape") == "8192x8192x8192"
    rate = r.get("path_rate", 0.0)
    ratio = r.get("ratio", 0.0)
    verdict = "PASS" if ratio >= 0.97 and (not big or rate >= 750) else "OVER BUDGET"
    print(f"[ gemm ] {r.get('shape')} {r.get('dtype')}: executor {rate:.1f} TFLOP/s, direct {r.get('direct_rate', 0.0):.1f}, "
          f"ratio {ratio:.3f} (budget 0.97{', 750 TFLOP/s' if big else ''}) {verdict}")
PY
if ((ngpu >= 2)); then
  step bench_comm 300 "$mpirun_bin" -np "$ngpu" "${mpi_flags[@]}" "$bin" bench comm --backend cuda --json
else
  skip bench_comm "needs 2 or more GPUs (one visible)"
fi

# 4. A real step of 8 Llama 3.1 8B layers on one GPU, emulated on four targets.
step run_8b 180 "$bin" run --model llama3.1-8b --num-layers 8 --backend cuda --steps 3 --warmup 1 \
  --emulate h200,h20,h800,h100@nvlink=400 --out "$out/run_8b.h5" --force --json

# The other precisions and layer kinds end to end: FP8 GEMMs (Transformer Engine's recipe) and a
# mixture-of-experts model (router, permutation, grouped expert GEMMs; ep 1 on one GPU).
step run_fp8 150 "$bin" run --model llama3.1-8b --num-layers 8 --precision fp8 --backend cuda --steps 3 --warmup 1 \
  --emulate h200,h20,h800 --out "$out/run_fp8.h5" --force --json
step run_moe 150 "$bin" run --model qwen3-30b-a3b --num-layers 4 --backend cuda --steps 3 --warmup 1 \
  --emulate h200,h20,h800 --out "$out/run_moe.h5" --force --json

# The virtual clock's cost: the same step with per-op CUDA events on and off (budget <= 2 %).
step bench_clock 90 "$bin" bench clock --backend cuda --model llama3.1-8b --num-layers 8 --iters 5

# H1's eager step with attention dropout 0.1 and with the core attention recomputed (Megatron's
# defaults for that run), each against the plain step: what capscale does not charge for the first
# and charges one attention forward for the second (docs/validation.md, "A fixed per-op gap").
if [[ -f bench/eager_gap.py ]] && python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
  step eager_variants 150 python3 bench/eager_gap.py --variants --reps 5 --out "$out/eager_variants.json"
else
  skip eager_variants "needs bench/eager_gap.py and PyTorch with CUDA"
fi

# 5. The interleaved pipeline (pp 2, vpp 2, more than 128 ops per chunk) over two GPUs: the path
#    that hung before the enqueue rule waited on compute ops only.
if ((ngpu >= 2)); then
  step run_vpp 600 "$mpirun_bin" -np 2 "${mpi_flags[@]}" "$bin" run --model llama3.1-8b --num-layers 8 --backend cuda \
    --pp 2 --vpp 2 --global-batch-size 8 --steps 2 --warmup 1 --emulate h200 --out "$out/run_vpp.h5" --force --json
else
  skip run_vpp "needs 2 GPUs (one visible)"
fi

# 6. Calibration of this device (GEMM efficiency over the model's shapes; bus bandwidth with >= 2 GPUs).
if ((ngpu >= 2)); then
  step calibrate 600 "$mpirun_bin" -np "$ngpu" "${mpi_flags[@]}" "$bin" calibrate --backend cuda \
    --out "$out/calibration.h5" --force
else
  step calibrate 600 "$bin" calibrate --backend cuda --out "$out/calibration.h5" --force
fi

{
  echo "# figures (also in figures.txt):"
  cat "$figures"
} | tee -a "$summary"
echo "# gpu_check.sh: results in $out ($(($(date +%s) - t_start)) s of the ${budget_s} s budget)" | tee -a "$summary"
exit "$failed"
