// The CUDA executor's building blocks, shared with its bench and tests: a few simple kernels
// (random fill, row softmax, a bandwidth-bound a·x + b·y pass) and a cuBLASLt GEMM planned once per
// shape. Host-callable declarations only (no __global__ here), so plain C++ files can include it.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace capscale::exec::cuda {

/// Element types the executor moves. kFp8E4m3 only ever appears as a GEMM input.
enum class DType { kBf16, kFp16, kFp8E4m3 };
inline size_t dtype_bytes(DType t) { return t == DType::kFp8E4m3 ? 1 : 2; }
std::string to_string(DType t);
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

/// C[m×n] = A[m×k] · Wᵀ, all row-major, W [n×k] held as an nn.Linear weight is (Megatron's
/// layout), `batch` strided copies; fp32 accumulation (CUBLAS_COMPUTE_32F), output bf16 (fp16 when
/// the inputs are fp16). In cuBLAS' column-major terms this is the "TN" GEMM Cᵀ = W·Aᵀ with
/// transa = T on W (k×n, ld k) and transb = N on A (k×m, ld k): row-major data through a
/// column-major library by transposition, and TN is the one layout cuBLASLt's FP8 kernels accept on
/// Hopper (cuBLAS docs, cublasLtMatmul: "A must be transposed and B non-transposed").
/// The algorithm comes from cublasLtMatmulAlgoGetHeuristic once, at construction.
class LtGemm {
 public:
  LtGemm(cublasLtHandle_t lt, DType in, int64_t m, int64_t n, int64_t k, int64_t batch, size_t workspace_bytes);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  /// False when the heuristic offered no algorithm (FP8 with dims that are not multiples of 16).
  bool has_algo() const { return has_algo_; }
  DType in_type() const { return in_; }
  DType out_type() const { return in_ == DType::kFp16 ? DType::kFp16 : DType::kBf16; }
  size_t a_bytes() const { return size_t(batch_ * m_ * k_) * dtype_bytes(in_); }
  size_t w_bytes() const { return size_t(batch_ * n_ * k_) * dtype_bytes(in_); }
  size_t c_bytes() const { return size_t(batch_ * m_ * n_) * dtype_bytes(out_type()); }
  int64_t m() const { return m_; }
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t batch() const { return batch_; }

  /// Enqueues the GEMM on `s`; `workspace` holds at least the bytes given at construction.
  void run(const void* a, const void* w, void* c, void* workspace, cudaStream_t s) const;

  // The raw pieces, for cuda_bench.cu's direct cublasLtMatmul loop (same descriptors, same algo).
  cublasLtHandle_t handle() const { return lt_; }
  cublasLtMatmulDesc_t desc() const { return desc_; }
  cublasLtMatrixLayout_t w_layout() const { return w_layout_; }
  cublasLtMatrixLayout_t a_layout() const { return a_layout_; }
  cublasLtMatrixLayout_t c_layout() const { return c_layout_; }
  const cublasLtMatmulAlgo_t& algo() const { return algo_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  void release();

  cublasLtHandle_t lt_;
  DType in_;
  int64_t m_, n_, k_, batch_;
  size_t workspace_bytes_;
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t w_layout_ = nullptr, a_layout_ = nullptr, c_layout_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  bool has_algo_ = false;
};

/// What cuda_bench.cu needs from the CUDA executor beyond the Executor contract: the executor's
/// own GEMM plan for a shape, so the direct loop runs the very same descriptors and algorithm.
class CudaExecutorAccess {
 public:
  virtual ~CudaExecutorAccess() = default;
  /// The plan the executor uses for a (batch 1) GEMM of this shape, created if it has none yet.
  virtual const LtGemm& gemm_plan(int64_t m, int64_t n, int64_t k) = 0;
  virtual int device_id() const = 0;
};

}  // namespace capscale::exec::cuda
