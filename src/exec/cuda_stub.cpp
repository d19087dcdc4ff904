// Stand-in for the CUDA executor factory when capscale is built without the CUDA backend
// (compiled only then; exec/cuda/cuda_executor.cu defines these otherwise).
#include "common/error.hpp"
#include "exec/bench.hpp"
#include "exec/executor.hpp"

namespace capscale::exec {

std::unique_ptr<Executor> make_cuda_executor(const ExecContext&) {
  throw InputError("--backend", "cuda", "is not available: this capscale was built without the CUDA backend "
                                        "(configure with -DCAPSCALE_WITH_CUDA=ON); use --backend cpu");
}
bool cuda_device_available() { return false; }
std::vector<BenchRow> bench_cuda_gemm(Executor&, const BenchOptions&) { return {}; }
std::vector<BenchRow> bench_cuda_comm(Executor&, const ExecContext&, const BenchOptions&) { return {}; }

}  // namespace capscale::exec
