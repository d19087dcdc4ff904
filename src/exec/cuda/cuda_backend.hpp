// The CUDA backend's entry points inside the plugin (plugin.cpp exports them through the C table of
// exec/cuda_plugin.hpp); the GPU tests link them directly. Host-only header.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "exec/bench.hpp"
#include "exec/executor.hpp"

namespace capscale::exec::cuda {

/// Number of usable CUDA devices through the runtime; 0 with the runtime's reason in *why.
int device_count(std::string* why);
/// The CUDA executor over ctx; InputError (naming --backend) without a usable device or when the
/// device cannot run ctx.precision.
std::unique_ptr<Executor> make_executor(const ExecContext& ctx);
/// bench.hpp's CUDA benchmarks: the executor's path vs direct cuBLASLt / ncclAllReduce loops.
std::vector<BenchRow> bench_gemm(Executor& ex, const BenchOptions& o);
std::vector<BenchRow> bench_comm(Executor& ex, const ExecContext& ctx, const BenchOptions& o);

}  // namespace capscale::exec::cuda
