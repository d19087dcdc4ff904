// The cuBLASLt GEMM plan of the CUDA executor (kernels.cuh: LtGemm) for a GemmSpec (gemm_spec.hpp):
// Megatron's three layouts, FP8 as Transformer Engine runs it, and a small autotune over the
// heuristic's top algorithms. Host code only, so the host compiler builds it.
#include <cmath>

#include "common/error.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/kernels.cuh"

namespace capscale::exec::cuda {

namespace {
// How many of the heuristic's algorithms tune() tries: its first few cover the tile shapes that
// matter (PyTorch's TunableOp and TE's autotuning sweep a similar handful).
constexpr int kCandidates = 8;
}  // namespace

LtGemm::LtGemm(cublasLtHandle_t lt, const GemmSpec& spec, size_t workspace_bytes, const float* scale_one)
    : lt_(lt), spec_(spec), workspace_bytes_(workspace_bytes) {
  const int64_t m = spec.m, n = spec.n, k = spec.k, batch = spec.batch;
  if (m < 1 || n < 1 || k < 1 || batch < 1) throw RuntimeError("LtGemm: bad shape " + spec.describe());
  beta_ = spec.accumulate ? 1.0f : 0.0f;
  cublasLtMatmulPreference_t pref = nullptr;
  try {
    CAPSCALE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    // cuBLAS' (A, B) = (first, second) and their stored column-major shapes (gemm_spec.hpp).
    const GemmDims g = gemm_dims(spec);
    const cublasOperation_t ta = g.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
    const DType first = g.a_first ? spec.a : spec.w, second = g.a_first ? spec.w : spec.a;
    CAPSCALE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CAPSCALE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (is_fp8(spec.a) || is_fp8(spec.w)) {
      // Per-tensor scales by device pointer, as Transformer Engine passes its amax-derived scale
      // inverses (unit here: the data is generated in range).
      CAPSCALE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &scale_one, sizeof scale_one));
      CAPSCALE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &scale_one, sizeof scale_one));
      const int8_t fast = spec.fast_accum ? 1 : 0;
      CAPSCALE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
    }
    CAPSCALE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&first_layout_, cuda_type(first), uint64_t(g.first_rows), uint64_t(g.first_cols),
                                                     g.first_rows));
    CAPSCALE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&second_layout_, cuda_type(second), uint64_t(g.second_rows),
                                                     uint64_t(g.second_cols), g.second_rows));
    CAPSCALE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c_layout_, cuda_type(spec.out), uint64_t(g.c_rows), uint64_t(g.c_cols), g.c_rows));
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      const int64_t strides[3] = {g.first_stride, g.second_stride, g.c_stride};
      cublasLtMatrixLayout_t layouts[3] = {first_layout_, second_layout_, c_layout_};
      for (int i = 0; i < 3; ++i) {
        CAPSCALE_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
        CAPSCALE_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                               &strides[i], sizeof strides[i]));
      }
    }
    CAPSCALE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = workspace_bytes_;
    CAPSCALE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int returned = 0;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, desc_, first_layout_, second_layout_, c_layout_, c_layout_, pref,
                                                             kCandidates, results, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    pref = nullptr;
    for (int i = 0; st == CUBLAS_STATUS_SUCCESS && i < returned; ++i)
      if (results[i].state == CUBLAS_STATUS_SUCCESS) algos_.push_back(results[i].algo);
    // FP8 without an algorithm is the caller's cue to fall back to bf16; bf16/fp16 always have one.
    if (algos_.empty() && !is_fp8(spec.a) && !is_fp8(spec.w)) {
      throw_lib_error("cuBLAS", "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__,
                      "no algorithm for " + spec.describe() + " (status " + cublasGetStatusName(st) + ")");
    }
  } catch (...) {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    release();
    throw;
  }
}

LtGemm::~LtGemm() { release(); }

void LtGemm::release() {
  if (c_layout_) cublasLtMatrixLayoutDestroy(c_layout_);
  if (second_layout_) cublasLtMatrixLayoutDestroy(second_layout_);
  if (first_layout_) cublasLtMatrixLayoutDestroy(first_layout_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
  c_layout_ = second_layout_ = first_layout_ = nullptr;
  desc_ = nullptr;
}

cublasStatus_t LtGemm::launch(const cublasLtMatmulAlgo_t& algo, const void* a, const void* w, void* c, void* ws, cudaStream_t s) const {
  const void* first = a_first() ? a : w;
  const void* second = a_first() ? w : a;
  return cublasLtMatmul(lt_, desc_, &alpha_, first, first_layout_, second, second_layout_, &beta_, c, c_layout_, c, c_layout_, &algo, ws,
                        workspace_bytes_, s);
}

void LtGemm::run(const void* a, const void* w, void* c, void* workspace, cudaStream_t s) const {
  if (algos_.empty()) throw RuntimeError("LtGemm::run: no algorithm for " + spec_.describe());
  CAPSCALE_CUBLAS_CHECK(launch(algos_[size_t(chosen_)], a, w, c, workspace, s));
}

double LtGemm::tune(const void* a, const void* w, void* c, void* workspace, cudaStream_t s, int iters) {
  if (algos_.empty()) return 0;
  cudaEvent_t ev[2] = {};
  CAPSCALE_CUDA_CHECK(cudaEventCreate(&ev[0]));
  if (const cudaError_t e = cudaEventCreate(&ev[1]); e != cudaSuccess) {
    cudaEventDestroy(ev[0]);
    CAPSCALE_CUDA_CHECK(e);
  }
  double best = INFINITY;
  int best_i = 0;
  cudaError_t err = cudaSuccess;
  for (int i = 0; i < int(algos_.size()) && err == cudaSuccess; ++i) {
    // A candidate the library cannot run on this shape (a heuristic's "supported" is not a
    // guarantee for every alignment) is skipped, not fatal.
    if (launch(algos_[size_t(i)], a, w, c, workspace, s) != CUBLAS_STATUS_SUCCESS) continue;
    err = cudaEventRecord(ev[0], s);
    bool ok = true;
    for (int r = 0; r < iters && ok && err == cudaSuccess; ++r) ok = launch(algos_[size_t(i)], a, w, c, workspace, s) == CUBLAS_STATUS_SUCCESS;
    if (err == cudaSuccess) err = cudaEventRecord(ev[1], s);
    if (err == cudaSuccess) err = cudaEventSynchronize(ev[1]);
    float ms = 0;
    if (err == cudaSuccess) err = cudaEventElapsedTime(&ms, ev[0], ev[1]);
    if (ok && err == cudaSuccess && ms / float(iters) < best) best = ms / float(iters), best_i = i;
  }
  cudaEventDestroy(ev[0]);
  cudaEventDestroy(ev[1]);
  CAPSCALE_CUDA_CHECK(err);
  chosen_ = best_i;
  return std::isfinite(best) ? best * 1e-3 : 0;
}

}  // namespace capscale::exec::cuda
