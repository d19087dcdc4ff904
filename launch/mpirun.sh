#!/usr/bin/env bash
# Launches capscale with Open MPI, one rank per GPU, on one node or on many from a hostfile.
#
#   launch/mpirun.sh -np 8 -- run --model llama3.1-8b --tp 8 --emulate h20,h800 --out results/a.h5
#   launch/mpirun.sh --hostfile hosts.txt --np 16 --per-node 8 -- run --model llama3.1-70b --tp 8 --pp 2 --sequence-parallel --recompute selective --emulate h200,h20
#
# Options (before --):
#   -np N | --np N       total ranks (default: --per-node × nodes in the hostfile, or --per-node)
#   --hostfile FILE      multi-node; Open MPI hostfile, one line per node: "node01 slots=8"
#   --per-node G         ranks per node = GPUs per node (default: -np on one node, else GPUs
#                        visible here, else 1)
#   --bind none|cores    none (default): --bind-to none, the OS places ranks.
#                        cores: --map-by ppr:G:node:PE=C --bind-to core, i.e. G ranks per node,
#                        each pinned to C consecutive cores (C = --cpus-per-rank). Pick this on
#                        dual-socket hosts where ranks 0..G/2-1 sit near the GPUs on socket 0.
#   --cpus-per-rank C    cores per rank for --bind cores (default: cores here / G)
#   --oversubscribe      allow more ranks than cores (CPU backend on a laptop)
#   --dry-run            print the mpirun command line and exit
# After --: the capscale command line. If it starts with a subcommand (run, predict, ...), the binary
# $CAPSCALE_BIN (default build/release/src/capscale) is put in front; otherwise it is run as given.
#
# Environment passed to every rank with -x when set: NCCL_DEBUG (INFO to see the rings/trees NCCL
# chose), NCCL_IB_HCA (which InfiniBand/RoCE HCAs to use, e.g. mlx5_0,mlx5_1), NCCL_SOCKET_IFNAME
# (bootstrap/TCP interface, e.g. eth0 or ^lo,docker), CUDA_DEVICE_MAX_CONNECTIONS (Megatron sets 1
# so compute and communication kernels queue in issue order), CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS.
#
# GPUs: do not set CUDA_VISIBLE_DEVICES per rank. capscale picks its device itself as
# node-local rank (OMPI_COMM_WORLD_LOCAL_RANK, or SLURM_LOCALID under srun) modulo the number of
# visible devices. A CUDA_VISIBLE_DEVICES set here only restricts the set (the same on every node),
# and --per-node should equal the number of devices it leaves visible.
# Only Open MPI is supported; under SLURM use srun (launch/capscale.sbatch).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
}

die() {
  echo "mpirun.sh: $*" >&2
  exit 2
}

np=""
hostfile=""
per_node=""
bind="none"
cpus_per_rank=""
oversubscribe=0
dry_run=0

while (($#)); do
  case "$1" in
    -np | --np)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      np="$2"
      shift 2
      ;;
    --hostfile)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      hostfile="$2"
      shift 2
      ;;
    --per-node)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      per_node="$2"
      shift 2
      ;;
    --bind)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      bind="$2"
      shift 2
      ;;
    --cpus-per-rank)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      cpus_per_rank="$2"
      shift 2
      ;;
    --oversubscribe)
      oversubscribe=1
      shift
      ;;
    --dry-run)
      dry_run=1
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    *) die "unknown option '$1' (capscale arguments go after --; see --help)" ;;
  esac
done

(($#)) || die "no capscale command line after -- (see --help)"

is_count() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

# GPUs visible on this node: CUDA_VISIBLE_DEVICES if set, else nvidia-smi, else none.
local_gpus() {
  if [[ -n "${CUDA_VISIBLE_DEVICES:-}" ]]; then
    local -a ids
    IFS=',' read -r -a ids <<<"$CUDA_VISIBLE_DEVICES"
    echo "${#ids[@]}"
  elif command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true
  else
    echo 0
  fi
}

if [[ -n "$np" ]]; then
  is_count "$np" || die "-np must be a positive integer, got '$np'"
fi
if [[ -z "$per_node" && -z "$hostfile" && -n "$np" ]]; then
  per_node="$np" # one node: all ranks on it
elif [[ -z "$per_node" ]]; then
  per_node="$(local_gpus)"
  [[ "$per_node" =~ ^[1-9] ]] || per_node=1
fi
is_count "$per_node" || die "--per-node must be a positive integer, got '$per_node'"

if [[ -n "$hostfile" ]]; then
  [[ -r "$hostfile" ]] || die "cannot read hostfile '$hostfile'"
  if [[ -z "$np" ]]; then
    nodes="$(grep -cEv '^[[:space:]]*(#|$)' "$hostfile" || true)"
    np=$((nodes * per_node))
  fi
else
  np="${np:-$per_node}"
fi
is_count "$np" || die "-np must be a positive integer, got '$np'"

if ! mpirun --version 2>&1 | grep -q "Open MPI"; then
  echo "mpirun.sh: mpirun is not Open MPI ($(command -v mpirun || echo 'not found')); only Open MPI is supported" >&2
  exit 1
fi

cmd=(mpirun -np "$np")
if [[ "$(id -u)" -eq 0 ]]; then
  cmd+=(--allow-run-as-root)
fi
if [[ -n "$hostfile" ]]; then
  cmd+=(--hostfile "$hostfile")
fi
if ((oversubscribe)); then
  cmd+=(--oversubscribe)
fi

case "$bind" in
  none)
    cmd+=(--map-by "ppr:${per_node}:node" --bind-to none)
    ;;
  cores)
    if [[ -z "$cpus_per_rank" ]]; then
      cpus_per_rank=$(($(nproc) / per_node))
      ((cpus_per_rank >= 1)) || cpus_per_rank=1
    fi
    is_count "$cpus_per_rank" || die "--cpus-per-rank must be a positive integer, got '$cpus_per_rank'"
    cmd+=(--map-by "ppr:${per_node}:node:PE=${cpus_per_rank}" --bind-to core)
    ;;
  *) die "--bind must be none or cores, got '$bind'" ;;
esac

# Pass through only variables that are set: Open MPI's -x VAR copies the launcher's value, and
# forwarding an unset one would be an error on some versions.
for var in NCCL_DEBUG NCCL_IB_HCA NCCL_SOCKET_IFNAME CUDA_DEVICE_MAX_CONNECTIONS \
  CUDA_VISIBLE_DEVICES OMP_NUM_THREADS; do
  if [[ -n "${!var+x}" ]]; then
    cmd+=(-x "$var")
  fi
done

case "$1" in
  run | predict | sweep | report | bench | check | list | calibrate)
    bin="${CAPSCALE_BIN:-${repo_root}/build/release/src/capscale}"
    [[ -x "$bin" ]] || ((dry_run)) || die "capscale binary '$bin' not found; build it (cmake --preset release && cmake --build --preset release) or set CAPSCALE_BIN"
    cmd+=("$bin")
    ;;
esac
cmd+=("$@")

if ((dry_run)); then
  printf '%q ' "${cmd[@]}"
  echo
  exit 0
fi
exec "${cmd[@]}"
