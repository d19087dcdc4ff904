// libcapscale_cuda.so's one exported symbol: the table of exec/cuda_plugin.hpp, filled with the
// CUDA backend's entry points (cuda_backend.hpp). Everything else in the plugin is hidden.
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>

#include "exec/cuda/cuda_backend.hpp"
#include "exec/cuda_plugin.hpp"

namespace capscale::exec {
namespace {

int device_count(std::string* why) { return cuda::device_count(why); }
Executor* make_executor(const ExecContext* ctx) { return cuda::make_executor(*ctx).release(); }
void bench_gemm(Executor* ex, const BenchOptions* o, std::vector<BenchRow>* rows) { *rows = cuda::bench_gemm(*ex, *o); }
void bench_comm(Executor* ex, const ExecContext* ctx, const BenchOptions* o, std::vector<BenchRow>* rows) {
  *rows = cuda::bench_comm(*ex, *ctx, *o);
}

// What the plugin was built against (compile-time versions: the loaded libraries may be newer).
const std::string& description() {
  static const std::string d = "CUDA runtime " + std::to_string(CUDART_VERSION) + ", NCCL " + std::to_string(NCCL_VERSION_CODE);
  return d;
}

}  // namespace
}  // namespace capscale::exec

extern "C" __attribute__((visibility("default"))) const capscale::exec::CapscaleCudaPlugin* capscale_cuda_plugin(int abi_version) {
  using namespace capscale::exec;
  if (abi_version != kCudaPluginAbi) return nullptr;
  static const CapscaleCudaPlugin table{kCudaPluginAbi, description().c_str(), &device_count, &make_executor, &bench_gemm, &bench_comm};
  return &table;
}
