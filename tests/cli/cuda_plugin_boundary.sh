#!/usr/bin/env bash
# The CUDA plugin boundary, checked on the built binary (label cli; no GPU needed):
#  1. capscale itself links no CUDA library (readelf NEEDED and the ldd closure);
#  2. `predict` maps neither the plugin nor any CUDA library (LD_DEBUG=files lists every load);
#  3. with the plugin absent (CAPSCALE_PLUGIN_DIR = an empty dir), `run --backend cuda` exits 2 with
#     one line saying the CUDA backend is not available and the path it looked at;
#  4. when the plugin was built (PLUGIN given): it exports only capscale_cuda_plugin, loads, and
#     without a device `run --backend cuda` exits 2 saying no device is usable (not "not found").
# Usage: cuda_plugin_boundary.sh CAPSCALE_BIN [PLUGIN_SO]
set -euo pipefail
bin=$1
plugin=${2:-}
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
readonly cuda_re='lib(cuda|cudart|cublas|cublasLt|nccl|cudnn)[.-]'

# 1. No CUDA library linked, directly or through a dependency.
if readelf -d "$bin" | grep NEEDED | grep -E "$cuda_re"; then fail "$bin has a CUDA library in its NEEDED entries"; fi
if ldd "$bin" | grep -E "$cuda_re"; then fail "$bin loads a CUDA library through its dependencies (ldd)"; fi

# 2. predict loads nothing of CUDA.
loads=$(LD_DEBUG=files "$bin" predict --model tiny-demo --chip h100 --gpus 8 2>&1 >/dev/null | grep -E 'file=.*\[0\];  needed by|calling init' || true)
if grep -E "$cuda_re|libcapscale_cuda" <<<"$loads"; then fail "capscale predict loaded CUDA libraries or the plugin"; fi

# 3. Plugin absent: a clear refusal, exit 2.
empty=$(mktemp -d)
trap 'rm -rf "$empty"' EXIT
set +e
msg=$(CAPSCALE_PLUGIN_DIR=$empty OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  "$bin" run --model tiny-demo --backend cuda --steps 1 --warmup 0 2>&1 >/dev/null)
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "run --backend cuda without the plugin exited $rc, not 2: $msg"
grep -q "CUDA backend\|'cuda' is not available" <<<"$msg" || fail "message does not name the CUDA backend: $msg"
grep -q "not available" <<<"$msg" || fail "message does not say 'not available': $msg"
grep -q "$empty/libcapscale_cuda.so" <<<"$msg" || fail "message does not name the path looked at: $msg"
echo "plugin absent -> exit 2: $msg"

# 4. The plugin, when built.
if [[ -n $plugin ]]; then
  [[ -f $plugin ]] || fail "plugin $plugin was not built"
  exported=$(nm -D --defined-only "$plugin" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^_\(init\|fini\|edata\|end\|_bss_start\)$' || true)
  [[ $exported == capscale_cuda_plugin ]] || fail "plugin exports more than capscale_cuda_plugin: $(head -5 <<<"$exported")"
  if [[ -e /dev/nvidia0 ]]; then
    echo "a GPU is present: the no-device check is left to ctest -L gpu"
    exit 0
  fi
  set +e
  msg=$(CAPSCALE_PLUGIN_DIR=$(dirname "$plugin") OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    "$bin" run --model tiny-demo --backend cuda --steps 1 --warmup 0 2>&1 >/dev/null)
  rc=$?
  set -e
  [[ $rc -eq 2 ]] || fail "run --backend cuda with the plugin and no GPU exited $rc, not 2: $msg"
  if grep -q "was not found\|cannot load\|ABI" <<<"$msg"; then
    # The plugin needs the CUDA libraries; without them on the loader path dlopen says so, clearly.
    grep -q "cannot load the CUDA" <<<"$msg" || fail "plugin did not load: $msg"
  else
    grep -q "no CUDA device" <<<"$msg" || fail "expected 'no CUDA device': $msg"
  fi
  echo "plugin present, no GPU -> exit 2: $msg"
fi
echo "OK"
