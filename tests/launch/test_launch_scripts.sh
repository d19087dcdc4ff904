#!/usr/bin/env bash
# The launch scripts must run as shipped: launch/capscale.sbatch's default capscale command line and
# the usage examples at the top of capscale.sbatch and mpirun.sh are put through
# `capscale check --gpus N -- run ...` (run's own flag parser, the model, the plan for N ranks, and
# memory on every --emulate target) with the GPU count each would get. Nothing is launched: the
# sbatch script prints its arguments under CAPSCALE_DRY_RUN=1, mpirun.sh prints its mpirun command
# under --dry-run.
#   tests/launch/test_launch_scripts.sh REPO_ROOT CAPSCALE_BIN
# Exit 0 all accepted, 1 a command line rejected (each is printed with capscale's message), 2 usage.
set -euo pipefail

if [[ $# -ne 2 || ! -d "$1" || ! -x "$2" ]]; then
  echo "usage: $0 REPO_ROOT CAPSCALE_BIN" >&2
  exit 2
fi
root="$(cd "$1" && pwd)"
bin="$2"
sbatch_script="$root/launch/capscale.sbatch"
mpirun_script="$root/launch/mpirun.sh"
status=0
checked=0

# check WHAT GPUS ARGS...: one capscale check of a run command line.
check() {
  local what="$1" gpus="$2" out
  shift 2
  checked=$((checked + 1))
  if out="$("$bin" check --gpus "$gpus" -- "$@" 2>&1)"; then
    echo "ok   $what ($gpus ranks): $out"
  else
    echo "FAIL $what ($gpus ranks): capscale ${*}" >&2
    echo "     $out" >&2
    status=1
  fi
}

# A value from the script's own #SBATCH header, so the test follows the script.
sbatch_header() {
  sed -n "s/^#SBATCH --$1=\([0-9][0-9]*\)\$/\1/p" "$sbatch_script" | head -n 1
}
default_nodes="$(sbatch_header nodes)"
per_node="$(sbatch_header ntasks-per-node)"
if [[ -z "$default_nodes" || -z "$per_node" ]]; then
  echo "FAIL $sbatch_script: no '#SBATCH --nodes=N' or '#SBATCH --ntasks-per-node=G' header" >&2
  exit 1
fi

# sbatch_args NODES [ARGS...]: the capscale arguments the batch script would run, as an array.
sbatch_args() {
  local nodes="$1" line
  shift
  line="$(env -u SLURM_JOB_ID -u SLURM_SUBMIT_DIR CAPSCALE_ROOT="$root" SLURM_NNODES="$nodes" CAPSCALE_DRY_RUN=1 \
    bash "$sbatch_script" "$@")"
  eval "args=($line)"
}

# 1. The default job: `sbatch launch/capscale.sbatch` with the header's node count.
declare -a args
sbatch_args "$default_nodes"
check "capscale.sbatch default" $((default_nodes * per_node)) "${args[@]}"

# 2. The usage examples in the header comment: "#   sbatch [--nodes=N] launch/capscale.sbatch [ARGS]".
while IFS= read -r line; do
  read -r -a words <<<"${line#\#}"
  nodes="$default_nodes"
  rest=()
  seen_script=0
  for w in "${words[@]:1}"; do
    if ((seen_script)); then
      rest+=("$w")
    elif [[ "$w" == --nodes=* ]]; then
      nodes="${w#--nodes=}"
    elif [[ "$w" == launch/capscale.sbatch ]]; then
      seen_script=1
    fi
  done
  sbatch_args "$nodes" "${rest[@]}"
  [[ "${args[0]}" == run ]] || continue # only run command lines have a plan to check
  check "capscale.sbatch example '${line#\#   }'" $((nodes * per_node)) "${args[@]}"
done < <(grep -E '^#   sbatch ' "$sbatch_script")

# 3. mpirun.sh's usage examples "#   launch/mpirun.sh OPTIONS -- ARGS", through its --dry-run, in a
# scratch directory holding the hosts.txt an example may name (two nodes).
if mpirun --version 2>&1 | grep -q "Open MPI"; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  printf 'node01 slots=8\nnode02 slots=8\n' >"$scratch/hosts.txt"
  while IFS= read -r line; do
    read -r -a words <<<"${line#\#}"
    printed="$(cd "$scratch" && CAPSCALE_BIN="$bin" bash "$mpirun_script" --dry-run "${words[@]:1}")"
    declare -a cmd=()
    eval "cmd=($printed)"
    np=""
    run_args=()
    for ((i = 0; i < ${#cmd[@]}; i++)); do
      if [[ "${cmd[i]}" == -np ]]; then
        np="${cmd[i + 1]}"
      elif [[ "${cmd[i]}" == "$bin" ]]; then
        run_args=("${cmd[@]:i+1}")
        break
      fi
    done
    if [[ -z "$np" || ${#run_args[@]} -eq 0 ]]; then
      echo "FAIL mpirun.sh example '${line#\#   }': cannot read -np and the capscale arguments from: $printed" >&2
      status=1
      continue
    fi
    check "mpirun.sh example '${line#\#   }'" "$np" "${run_args[@]}"
  done < <(grep -E '^#   launch/mpirun\.sh ' "$mpirun_script")
else
  echo "skip mpirun.sh examples: mpirun is not Open MPI here"
fi

if ((checked < 3)); then
  echo "FAIL only $checked command lines found; the scripts' examples moved?" >&2
  status=1
fi
exit "$status"
