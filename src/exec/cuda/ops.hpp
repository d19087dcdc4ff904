// The CUDA executor's op families, one method each, enqueued on a given stream: GEMMs through
// cuBLASLt in Megatron's layouts, fused (flash) attention, or where the plan asks for it unfused
// attention as two strided-batched cuBLAS GEMMs around a row softmax, elementwise ops as
// a bandwidth pass over the plan's bytes, collectives through a table of NCCL implementations
// indexed by collectives::index(kind), pipeline send/recv through NCCL. Each returns false when
// the op has nothing to do on this rank (it is then not timed). Host-only header.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <array>
#include <map>
#include <memory>
#include <string>

#include "exec/buffer_sizing.hpp"
#include "exec/cuda/device.hpp"
#include "exec/cuda/kernels.cuh"
#include "exec/cuda/nccl_comms.hpp"
#include "plan/plan.hpp"

namespace capscale::exec::cuda {

class Ops {
 public:
  /// gemm_type: forward GEMM inputs (bf16, fp16 or fp8 e4m3); attn_type: attention (bf16/fp16).
  Ops(Device& dev, NcclComms& nccl, GroupComms& comms, DType gemm_type, DType attn_type);
  ~Ops();
  Ops(const Ops&) = delete;
  Ops& operator=(const Ops&) = delete;

  /// Element sizes for buffer_sizing.hpp and the type each buffer is filled with.
  BufferTypes buffer_types() const;
  std::array<DType, kNumBufferRoles> fill_types() const;
  /// Plans every GEMM of the stage (so a step never waits on cuBLASLt's heuristic) and tunes each
  /// new one over the heuristic's top algorithms on the prepared buffers (LtGemm::tune); cached
  /// per GemmSpec, so a shape is tuned once per executor.
  void plan_gemms(const plan::StagePlan& stage);
  /// Refuses (RuntimeError, at prepare rather than mid-step) fused attention ops the kernels or this
  /// device cannot run: head dims above 192, or more shared memory per block than the device has.
  void check_attention(const plan::StagePlan& stage) const;
  /// What a plan GEMM op runs as: forward TN, backward dgrad NN, wgrad NT into fp32 (kernels.cuh).
  GemmSpec gemm_spec(const plan::Op& op) const;
  /// What --precision ran as, e.g. "bf16 (cublasLt)".
  std::string gemm_dtype() const;

  /// Enqueues op `op` on stream `s` (plan stream `si`); `what` names it in errors.
  bool run(const plan::Op& op, int si, cudaStream_t s, const std::string& what);

  bool gemm(const plan::Op& op, cudaStream_t s, const std::string& what);
  bool attention(const plan::Op& op, cudaStream_t s, const std::string& what);
  bool fused_attention(const plan::Op& op, cudaStream_t s, const std::string& what);
  bool unfused_attention(const plan::Op& op, cudaStream_t s, const std::string& what);
  bool elementwise(const plan::Op& op, cudaStream_t s, const std::string& what);
  bool collective(const plan::Op& op, int si, cudaStream_t s, const std::string& what);
  bool sendrecv(const plan::Op& op, int si, cudaStream_t s, const std::string& what);

  /// The plan for a GEMM of this spec, created (and with `tune`, tuned) if there is none yet (an FP8
  /// spec without a kernel for its shape falls back to bf16). cuda_bench.cu runs the forward one
  /// directly. Never tune inside a step: tuning synchronises the compute stream, which the step's
  /// gate holds until every op is enqueued.
  const LtGemm& gemm_plan(const GemmSpec& spec, bool tune = true);

 private:
  Device& dev_;
  NcclComms& nccl_;
  GroupComms& comms_;
  DType gemm_type_, attn_type_;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cudaStream_t blas_stream_ = nullptr;  // the stream blas_ is set to (null until the first attention)
  DeviceBuffer lt_ws_, blas_ws_;
  DeviceBuffer scale_one_;  ///< one device float 1.0f: the FP8 GEMMs' scale factors
  std::map<std::array<int64_t, 9>, std::unique_ptr<LtGemm>> gemms_;
};

}  // namespace capscale::exec::cuda
