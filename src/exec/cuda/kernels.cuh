// The CUDA executor's building blocks, shared with its bench and tests: a few simple kernels
// (random fill, row softmax, a bandwidth-bound a·x + b·y pass), the fused attention entry points
// (attention.cu) and a cuBLASLt GEMM planned and tuned once per GemmSpec (gemm_spec.hpp,
// lt_gemm.cpp). Host-callable declarations only (no __global__ here), so plain C++ files can include it.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "exec/cuda/gemm_spec.hpp"

namespace capscale::exec::cuda {

cudaDataType_t cuda_type(DType t);

/// Fills `count` elements with pseudo-random values in [-1, 1). Timings on all-zero operands are
/// optimistic (tensor cores draw less power on zeros, so clocks stay higher), hence random data.
void fill_random(void* p, int64_t count, DType t, uint32_t seed, cudaStream_t s);

/// Row softmax in place over `rows` rows of `cols` elements (bf16 or fp16), fp32 arithmetic:
/// one block per row, an online max/sum pass then a normalising pass (Milakov & Gimelshein 2018,
/// "Online normalizer calculation for softmax"), so a row is read twice and written once.
void softmax_rows(void* s, int64_t rows, int64_t cols, DType t, cudaStream_t st);

/// y = a·x + b·y over n bf16 elements: 6 bytes moved per element (read x, read y, write y).
void axpby_bf16(const void* x, void* y, int64_t n, float a, float b, cudaStream_t st);

/// One fused attention call (attention.cu): `batch` (micro-batch × heads) independent heads, Q and O
/// [m×d], K and V [n×d], row-major and contiguous per head; `lse` holds batch·m fp32 row statistics
/// (written by forward, read by backward). Backward also reads `dout` (dO) and writes dq, dk, dv,
/// with `delta` (batch·m floats) and `dq_acc` (batch·m·d floats) as its scratch.
struct FlashArgs {
  DType t = DType::kBf16;  ///< bf16 or fp16
  int64_t batch = 0, m = 0, n = 0, d = 0;
  bool causal = false;
  float scale = 0;  ///< softmax scale, 1/√d
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;
  const void* dout = nullptr;
  float* delta = nullptr;
  float* dq_acc = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
};
/// Whether the fused kernels take this head dim (1..192; run padded to 64, 128 or 192).
bool flash_supported(int64_t head_dim);
/// Shared memory one block of the fused forward or backward kernel takes at this head dim.
size_t flash_smem_bytes(int64_t head_dim, bool backward);
/// FlashAttention-2 forward / backward (attention.cu), enqueued on `s`. Causal is the lower triangle
/// when m == n; for a context-parallel rank's m < n queries the diagonal is stretched to the m·n/2
/// work of Megatron's load-balanced CP; for m > n (a sliding window of n keys) query i sees keys
/// j <= i. Tiles the mask covers whole are skipped (attention_kernels.cuh, visible()).
void flash_forward(const FlashArgs& a, cudaStream_t s);
void flash_backward(const FlashArgs& a, cudaStream_t s);

/// One planned cuBLASLt GEMM (GemmSpec), fp32 accumulation (CUBLAS_COMPUTE_32F). The algorithm is
/// cublasLtMatmulAlgoGetHeuristic's first at construction; tune() times the top few on the real
/// buffers and keeps the fastest (the heuristic's first is not always the fastest on a given part).
class LtGemm {
 public:
  /// `scale_one`: a device float holding 1.0f, the FP8 operands' scale (unused otherwise).
  LtGemm(cublasLtHandle_t lt, const GemmSpec& spec, size_t workspace_bytes, const float* scale_one);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  /// False when the heuristic offered no algorithm (FP8 with dims that are not multiples of 16).
  bool has_algo() const { return !algos_.empty(); }
  const GemmSpec& spec() const { return spec_; }
  DType in_type() const { return spec_.a; }
  DType out_type() const { return spec_.out; }
  size_t a_bytes() const { return size_t(spec_.batch * spec_.m * spec_.k) * dtype_bytes(spec_.a); }
  size_t w_bytes() const { return size_t(spec_.batch * spec_.n * spec_.k) * dtype_bytes(spec_.w); }
  size_t c_bytes() const { return size_t(spec_.batch * spec_.m * spec_.n) * dtype_bytes(spec_.out); }
  int64_t m() const { return spec_.m; }
  int64_t n() const { return spec_.n; }
  int64_t k() const { return spec_.k; }
  int64_t batch() const { return spec_.batch; }
  /// Heuristic candidates held, and the index of the one run (0 until tune()).
  int candidates() const { return int(algos_.size()); }
  int chosen() const { return chosen_; }

  /// Enqueues the GEMM on `s`: a is the [m×k] operand, w the [n×k] one, c the [m×n] output (read
  /// too when spec().accumulate); `workspace` holds at least the bytes given at construction.
  void run(const void* a, const void* w, void* c, void* workspace, cudaStream_t s) const;
  /// Times each candidate `iters` times on these buffers (after one untimed call) and keeps the
  /// fastest; a candidate that fails to launch is skipped. Synchronises `s`. Returns the seconds per
  /// call of the one kept.
  double tune(const void* a, const void* w, void* c, void* workspace, cudaStream_t s, int iters);

  // The raw pieces, for cuda_bench.cu's direct cublasLtMatmul loop (same descriptors, same algo).
  cublasLtHandle_t handle() const { return lt_; }
  cublasLtMatmulDesc_t desc() const { return desc_; }
  /// cublasLtMatmul's A and B operands are (first, second) of (w, a), or (a, w) for kWgradNT.
  bool a_first() const { return gemm_dims(spec_).a_first; }
  cublasLtMatrixLayout_t first_layout() const { return first_layout_; }
  cublasLtMatrixLayout_t second_layout() const { return second_layout_; }
  cublasLtMatrixLayout_t c_layout() const { return c_layout_; }
  const cublasLtMatmulAlgo_t& algo() const { return algos_[size_t(chosen_)]; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  const float* alpha() const { return &alpha_; }
  const float* beta() const { return &beta_; }

 private:
  void release();
  cublasStatus_t launch(const cublasLtMatmulAlgo_t& algo, const void* a, const void* w, void* c, void* ws, cudaStream_t s) const;

  cublasLtHandle_t lt_;
  GemmSpec spec_;
  size_t workspace_bytes_;
  float alpha_ = 1.0f, beta_ = 0.0f;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t first_layout_ = nullptr, second_layout_ = nullptr, c_layout_ = nullptr;
  std::vector<cublasLtMatmulAlgo_t> algos_;
  int chosen_ = 0;
};

/// What cuda_bench.cu needs from the CUDA executor beyond the Executor contract: the executor's
/// own GEMM plan for a shape, so the direct loop runs the very same descriptors and algorithm.
class CudaExecutorAccess {
 public:
  virtual ~CudaExecutorAccess() = default;
  /// The plan the executor uses for a (batch 1) forward GEMM of this shape, created and tuned if it
  /// has none yet.
  virtual const LtGemm& gemm_plan(int64_t m, int64_t n, int64_t k) = 0;
  virtual int device_id() const = 0;
};

}  // namespace capscale::exec::cuda
