#!/usr/bin/env bash
# Regenerates the shipped answers in results/: runs every sweep in configs/sweeps (predict-only,
# split over N MPI ranks), writes results/<name>.h5, its report (results/<name>.txt) and its PNGs.
#   launch/results.sh [RANKS]      default RANKS = number of cores
# Builds the capscale binary first (preset `cpu`), so the results always come from this checkout.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
ranks="${1:-$(nproc)}"
./launch/deps.sh
cmake --preset cpu > /dev/null
cmake --build --preset cpu -j"$(nproc)" --target capscale
bin=build/cpu/src/capscale
mpi_flags=(--oversubscribe -np "$ranks")
if [[ "$(id -u)" -eq 0 ]]; then
  mpi_flags=(--allow-run-as-root "${mpi_flags[@]}")
fi
py=/usr/bin/python3
[[ -x "$py" ]] || py=python3

mkdir -p results
for sweep in configs/sweeps/*.yaml; do
  name="$(basename "$sweep" .yaml)"
  echo "# sweep $name"
  mpirun "${mpi_flags[@]}" "$bin" sweep "$sweep" --out "results/$name.h5" --force
  "$bin" report "results/$name.h5" > "results/$name.txt"
  "$py" launch/plot.py "results/$name.h5" --out results/
done
echo "results.sh: done; see results/*.txt and results/*.png"
