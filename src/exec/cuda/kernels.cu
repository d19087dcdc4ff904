// Kernels of the CUDA executor; see kernels.cuh (the cuBLASLt GEMM plan is lt_gemm.cpp). The kernels are kept
// simple and obviously right (llm.c's mainline spirit): what matters for the emulator is that each
// moves the bytes / does the FLOPs the plan says, at a rate close to what a tuned kernel reaches.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/kernels.cuh"

namespace capscale::exec::cuda {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kBf16: return CUDA_R_16BF;
    case DType::kFp16: return CUDA_R_16F;
    case DType::kFp8E4m3: return CUDA_R_8F_E4M3;
    case DType::kFp8E5m2: return CUDA_R_8F_E5M2;
    case DType::kFp32: return CUDA_R_32F;
  }
  return CUDA_R_16BF;
}

namespace {

constexpr int kThreads = 256;
// Grid-stride loops: enough blocks to fill any current GPU many times over, capped so the grid
// size stays a valid gridDim.x.
constexpr int64_t kMaxBlocks = 65535;

int blocks_for(int64_t work) {
  const int64_t b = (work + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : b > kMaxBlocks ? kMaxBlocks : b);
}

__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_fp8_e4m3 from_float<__nv_fp8_e4m3>(float v) { return __nv_fp8_e4m3(v); }
template <>
__device__ __forceinline__ __nv_fp8_e5m2 from_float<__nv_fp8_e5m2>(float v) { return __nv_fp8_e5m2(v); }
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }

// splitmix64's finaliser (Steele et al. 2014): a cheap, well-mixed hash of the element index.
__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>(x ^ (x >> 31));
}

template <typename T>
__global__ void fill_kernel(T* p, int64_t n, uint32_t seed) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    // 24 random bits → [-1, 1): finite in every type here (e4m3's largest finite value is 448).
    const float v = float(hash32(uint64_t(i) ^ (uint64_t(seed) << 40)) >> 8) * (2.0f / 16777216.0f) - 1.0f;
    p[i] = from_float<T>(v);
  }
}

// Online softmax state (running max m, sum of exp(x - m)) and its merge.
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float mm = fmaxf(m, m2);
  if (mm == -INFINITY) return;  // both empty
  s = s * __expf(m - mm) + s2 * __expf(m2 - mm);
  m = mm;
}

template <typename T>
__global__ void softmax_kernel(T* s, int64_t cols) {
  T* row = s + int64_t(blockIdx.x) * cols;
  float m = -INFINITY, sum = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) merge(m, sum, to_float(row[j]), 1.0f);
  // Warp then block reduction of (m, sum).
  for (int off = 16; off > 0; off >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, sum, off);
    merge(m, sum, m2, s2);
  }
  __shared__ float wm[kThreads / 32], ws[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) wm[warp] = m, ws[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    m = lane < kThreads / 32 ? wm[lane] : -INFINITY;
    sum = lane < kThreads / 32 ? ws[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, m, off), s2 = __shfl_xor_sync(0xffffffffu, sum, off);
      merge(m, sum, m2, s2);
    }
    if (lane == 0) wm[0] = m, ws[0] = sum;
  }
  __syncthreads();
  const float row_max = wm[0], inv = 1.0f / ws[0];
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) row[j] = from_float<T>(__expf(to_float(row[j]) - row_max) * inv);
}

// 16-byte vectors of 8 bf16 for full-width memory transactions; the (< 8) tail element-wise.
__global__ void axpby_kernel(const __nv_bfloat16* __restrict__ x, __nv_bfloat16* __restrict__ y, int64_t n, float a, float b) {
  const int64_t n8 = n / 8;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint4* x4 = reinterpret_cast<const uint4*>(x);
  uint4* y4 = reinterpret_cast<uint4*>(y);
  for (int64_t i = tid; i < n8; i += stride) {
    uint4 xv = x4[i], yv = y4[i];
    const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&xv);
    __nv_bfloat162* yp = reinterpret_cast<__nv_bfloat162*>(&yv);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float2 xf = __bfloat1622float2(xp[j]);
      float2 yf = __bfloat1622float2(yp[j]);
      yf.x = a * xf.x + b * yf.x;
      yf.y = a * xf.y + b * yf.y;
      yp[j] = __float22bfloat162_rn(yf);
    }
    y4[i] = yv;
  }
  const int64_t t = n8 * 8 + tid;
  if (t < n) y[t] = __float2bfloat16(a * __bfloat162float(x[t]) + b * __bfloat162float(y[t]));
}

}  // namespace

void fill_random(void* p, int64_t count, DType t, uint32_t seed, cudaStream_t s) {
  if (count <= 0) return;
  switch (t) {
    case DType::kBf16: fill_kernel<<<blocks_for(count), kThreads, 0, s>>>(static_cast<__nv_bfloat16*>(p), count, seed); break;
    case DType::kFp16: fill_kernel<<<blocks_for(count), kThreads, 0, s>>>(static_cast<__half*>(p), count, seed); break;
    case DType::kFp8E4m3: fill_kernel<<<blocks_for(count), kThreads, 0, s>>>(static_cast<__nv_fp8_e4m3*>(p), count, seed); break;
    case DType::kFp8E5m2: fill_kernel<<<blocks_for(count), kThreads, 0, s>>>(static_cast<__nv_fp8_e5m2*>(p), count, seed); break;
    case DType::kFp32: fill_kernel<<<blocks_for(count), kThreads, 0, s>>>(static_cast<float*>(p), count, seed); break;
  }
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
}

void softmax_rows(void* s, int64_t rows, int64_t cols, DType t, cudaStream_t st) {
  if (rows <= 0 || cols <= 0) return;
  if (rows > 0x7fffffff) {
    throw RuntimeError("softmax_rows: " + std::to_string(rows) + " rows exceed one grid; lower the attention chunk");
  }
  const dim3 grid(static_cast<unsigned>(rows));
  if (t == DType::kFp16) softmax_kernel<<<grid, kThreads, 0, st>>>(static_cast<__half*>(s), cols);
  else softmax_kernel<<<grid, kThreads, 0, st>>>(static_cast<__nv_bfloat16*>(s), cols);
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
}

void axpby_bf16(const void* x, void* y, int64_t n, float a, float b, cudaStream_t st) {
  if (n <= 0) return;
  axpby_kernel<<<blocks_for(n / 8 + 1), kThreads, 0, st>>>(static_cast<const __nv_bfloat16*>(x), static_cast<__nv_bfloat16*>(y), n, a, b);
  CAPSCALE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace capscale::exec::cuda
