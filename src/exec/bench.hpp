// `capscale bench gemm|comm`: the executor's own path (a one-op-kind stage plan run through
// Executor::run_step) against direct library calls on the same shapes in the same run. The ratio
// direct_s / path_s is ≥ 1 when the executor is at least as fast as calling the library directly;
// DESIGN.md's budgets ask for ≥ 0.95 (CPU, MPI, NCCL) and ≥ 0.97 (cuBLAS).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "exec/executor.hpp"

namespace capscale::exec {

struct BenchOptions {
  int iters = 20;   ///< timed repetitions of each shape / size
  int warmup = 3;   ///< untimed repetitions first
  std::vector<std::array<int64_t, 3>> gemm_shapes;  ///< m, n, k
  std::vector<int64_t> comm_bytes;                   ///< all-reduce buffer sizes
};

struct BenchRow {
  std::string what;    ///< "gemm" or "all_reduce"
  std::string shape;   ///< "4096x4096x4096" or "16777216 B"
  std::string dtype;   ///< e.g. "fp32", "bf16"
  double path_s = 0;   ///< median seconds per op through the executor
  double direct_s = 0; ///< median seconds per direct library call
  double path_rate = 0, direct_rate = 0;  ///< TFLOP/s (gemm) or bus GB/s (comm, nccl-tests busbw)
  double ratio = 0;    ///< direct_s / path_s
};

/// A collective of `bytes` (nccl-tests' convention) on the tp group, which the benchmarks and
/// calibration make the whole world.
plan::Op world_collective_op(plan::CollKind kind, int64_t bytes);

/// A stage plan of `count` copies of one op, for driving an executor in a benchmark.
plan::StagePlan repeated_op_plan(const plan::Op& op, int count);

/// CPU: GEMMs through the CPU executor vs cblas_sgemm/cblas_sbgemm; all-reduce and all-to-all
/// through the executor vs MPI_Allreduce / MPI_Alltoall loops on the same communicator (world, as a
/// tp group of size world).
std::vector<BenchRow> bench_cpu_gemm(Executor& ex, const BenchOptions& o);
std::vector<BenchRow> bench_cpu_comm(Executor& ex, const ExecContext& ctx, const BenchOptions& o);
/// CUDA counterparts (exec/cuda): vs cublasLt / cuBLAS, vs a direct ncclAllReduce loop.
std::vector<BenchRow> bench_cuda_gemm(Executor& ex, const BenchOptions& o);
std::vector<BenchRow> bench_cuda_comm(Executor& ex, const ExecContext& ctx, const BenchOptions& o);

}  // namespace capscale::exec
