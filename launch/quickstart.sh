#!/usr/bin/env bash
# One command from a fresh Debian 12 checkout to a result: installs dependencies, builds the
# capscale binary (CPU-only preset `cpu`, so no CUDA objects or tests: a couple of minutes on
# 2 cores), runs a 4-rank CPU demo (tp 2 × pp 2) emulated on H200, H20, H800 and an
# NVLink-capped H200, prints the report and, if launch/plot.py exists, writes plots to results/.
# Uses Open MPI's mpirun. Under SLURM use `srun --mpi=pmix -n 4 build/cpu/src/capscale run ...`
# instead (see launch/capscale.sbatch).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

./launch/deps.sh

cmake --preset cpu
cmake --build --preset cpu -j"$(nproc)" --target capscale
bin=build/cpu/src/capscale

# --oversubscribe and --allow-run-as-root are Open MPI flags; MPICH/Intel MPI spell things differently
# and are not supported by this script.
if ! mpirun --version 2>&1 | grep -q "Open MPI"; then
  echo "quickstart.sh: mpirun is not Open MPI ($(command -v mpirun || echo 'not found')); install openmpi-bin" >&2
  exit 1
fi
mpi_flags=(--oversubscribe -np 4)
if [[ "$(id -u)" -eq 0 ]]; then
  mpi_flags=(--allow-run-as-root "${mpi_flags[@]}")
fi

mkdir -p results
mpirun "${mpi_flags[@]}" "$bin" run \
  --model tiny-demo --backend cpu --tp 2 --pp 2 \
  --global-batch-size 8 --micro-batch-size 1 --steps 5 --warmup 1 \
  --emulate h200,h20,h800,h200@nvlink=400 \
  --out results/quickstart.h5 --force

"$bin" report results/quickstart.h5
if (( $(nproc) < 4 )); then
  echo "quickstart.sh: 4 ranks ran on $(nproc) core(s): ranks that share a core slow each other in ways the" \
       "engine check does not see (it read -11 % to +3 % on a 2-core VM, within +-3 % with a core per rank; README)"
fi

# Debian's interpreter carries python3-h5py and python3-matplotlib (launch/deps.sh); another python3
# earlier on PATH (pyenv, conda) usually does not.
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3
"$py" launch/plot.py results/quickstart.h5 --out results/

echo "quickstart.sh: done; results in ${repo_root}/results/quickstart.h5"
