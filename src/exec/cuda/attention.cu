// Fused causal attention, forward and backward, as users run it: FlashAttention-2's algorithm (Dao
// 2023, "FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning"), scores
// never stored, causal tiles above the diagonal skipped. Kept simple (WMMA tensor-core tiles, no
// asynchronous copies or warp specialisation), so it reaches less than cuDNN's or FA3's rate; it
// does the FLOPs and moves the bytes a flash kernel does. Why not cuDNN: the cudnn_frontend headers
// are not installed here, and the SDPA operation of the cuDNN 9.19 backend headers has no causal or
// diagonal-band attribute (only a block mask whose layout is not documented), so a cuDNN path would
// have been the frontend's many-node graph rebuilt by hand, blind, against an API none of us could
// run. tests/unit/test_attention_sim.cpp runs these kernels' source on the CPU instead.
// Tensors are row-major [batch·heads][rows][d] (BHSD), bf16 or fp16; statistics are fp32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/kernels.cuh"

namespace capscale::exec::cuda {
namespace flash {
#define CAPSCALE_DYNAMIC_SMEM(name) extern __shared__ __align__(128) unsigned char name[]
#include "exec/cuda/attention_kernels.cuh"
}  // namespace flash
namespace {
using namespace flash;

int padded_head_dim(int64_t d) { return d <= 64 ? 64 : d <= 128 ? 128 : d <= 192 ? 192 : 0; }

unsigned grid_for(int64_t work) { return unsigned(std::min<int64_t>(std::max<int64_t>((work + 255) / 256, 1), 65535)); }

// Shared memory above 48 KiB needs an opt-in per kernel (cudaFuncSetAttribute); each launch_*
// instantiation does it once (a static per instantiation; one device per process).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes, bool& done) {
  if (!done) CAPSCALE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  done = true;
}

template <typename T, int D>
void launch_fwd(const FlashArgs& a, cudaStream_t s) {
  constexpr size_t smem = fwd_smem_bytes<T, D>();
  static bool opted_in = false;
  allow_smem(flash_fwd<T, D>, smem, opted_in);
  const dim3 grid(unsigned((a.m + kBM - 1) / kBM), unsigned(a.batch));
  flash_fwd<T, D><<<grid, kThreads, smem, s>>>(static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
                                               static_cast<T*>(a.o), a.lse, int(a.m), int(a.n), int(a.d),
                                               a.scale * kLog2e, a.causal);
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
}

template <typename T, int D>
void launch_bwd(const FlashArgs& a, cudaStream_t s) {
  const int64_t rows = a.batch * a.m;
  flash_bwd_dot<T><<<unsigned((rows + 7) / 8), 256, 0, s>>>(static_cast<const T*>(a.o), static_cast<const T*>(a.dout), a.delta, rows,
                                                            int(a.d));
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
  CAPSCALE_CUDA_CHECK(cudaMemsetAsync(a.dq_acc, 0, size_t(rows * a.d) * 4, s));
  constexpr size_t smem = bwd_smem_bytes<T, D>();
  static bool opted_in = false;
  allow_smem(flash_bwd<T, D>, smem, opted_in);
  const dim3 grid(unsigned((a.n + kBN - 1) / kBN), unsigned(a.batch));
  flash_bwd<T, D><<<grid, kThreads, smem, s>>>(static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
                                               static_cast<const T*>(a.dout), a.lse, a.delta, a.dq_acc, static_cast<T*>(a.dk),
                                               static_cast<T*>(a.dv), int(a.m), int(a.n), int(a.d), a.scale * kLog2e, a.scale, a.causal);
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
  convert_from_f32<T><<<grid_for(rows * a.d), 256, 0, s>>>(a.dq_acc, static_cast<T*>(a.dq), rows * a.d);
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
}

template <typename T>
void dispatch(const FlashArgs& a, bool backward, cudaStream_t s) {
  switch (padded_head_dim(a.d)) {
    case 64: return backward ? launch_bwd<T, 64>(a, s) : launch_fwd<T, 64>(a, s);
    case 128: return backward ? launch_bwd<T, 128>(a, s) : launch_fwd<T, 128>(a, s);
    case 192: return backward ? launch_bwd<T, 192>(a, s) : launch_fwd<T, 192>(a, s);
    default: break;
  }
  throw RuntimeError("fused attention: head dim " + std::to_string(a.d) + " is not supported (at most 192)");
}

}  // namespace

bool flash_supported(int64_t head_dim) { return head_dim >= 1 && padded_head_dim(head_dim) > 0; }

size_t flash_smem_bytes(int64_t head_dim, bool backward) {
  // bf16 and fp16 tiles are the same size.
  switch (padded_head_dim(head_dim)) {
    case 64: return backward ? bwd_smem_bytes<__nv_bfloat16, 64>() : fwd_smem_bytes<__nv_bfloat16, 64>();
    case 128: return backward ? bwd_smem_bytes<__nv_bfloat16, 128>() : fwd_smem_bytes<__nv_bfloat16, 128>();
    case 192: return backward ? bwd_smem_bytes<__nv_bfloat16, 192>() : fwd_smem_bytes<__nv_bfloat16, 192>();
    default: break;
  }
  return 0;
}

void flash_forward(const FlashArgs& a, cudaStream_t s) {
  if (a.batch < 1 || a.m < 1 || a.n < 1) return;
  if (a.batch > 65535 || a.m > INT32_MAX / 2 || a.n > INT32_MAX / 2) throw RuntimeError("fused attention: shape exceeds one grid");
  if (a.t == DType::kFp16) dispatch<__half>(a, false, s);
  else dispatch<__nv_bfloat16>(a, false, s);
}

void flash_backward(const FlashArgs& a, cudaStream_t s) {
  if (a.batch < 1 || a.m < 1 || a.n < 1) return;
  if (a.batch > 65535 || a.m > INT32_MAX / 2 || a.n > INT32_MAX / 2) throw RuntimeError("fused attention: shape exceeds one grid");
  if (a.t == DType::kFp16) dispatch<__half>(a, true, s);
  else dispatch<__nv_bfloat16>(a, true, s);
}

}  // namespace capscale::exec::cuda
