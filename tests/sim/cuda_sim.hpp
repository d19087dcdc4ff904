// A small SIMT emulation of what the fused attention kernels use (src/exec/cuda/attention_kernels.cuh),
// so their very source runs on a CPU where no GPU is present: every CUDA thread of a block is a
// std::thread, __syncthreads and __syncwarp are barriers, __shfl_xor_sync goes through a per-warp
// slot array, atomicAdd is std::atomic_ref, and WMMA fragments are whole 16×16 tiles held by every
// lane, loaded and stored in warp lockstep (a barrier on each side, lane 0 stores). Slow and exact
// in its own way: products in fp32 from the same bf16/fp16 operands the tensor cores read.
// Shared memory starts filled with 0xFF bytes (NaN in every type), so a read before a write shows.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <vector_functions.h>
#include <vector_types.h>

#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

// Host compilation: CUDA's execution-space attributes mean nothing here.
#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

namespace capscale_sim {

constexpr int kWarp = 32;

struct Block {
  std::vector<unsigned char> smem;
  std::unique_ptr<std::barrier<>> all;
  std::vector<std::unique_ptr<std::barrier<>>> warps;
  std::vector<std::array<float, kWarp>> slots;
};

inline thread_local Block* tl_block = nullptr;
inline thread_local unsigned tl_tid = 0;

inline void warp_sync() { tl_block->warps[tl_tid / kWarp]->arrive_and_wait(); }
inline bool lane0() { return tl_tid % kWarp == 0; }

}  // namespace capscale_sim

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#define CAPSCALE_DYNAMIC_SMEM(name) unsigned char* name = ::capscale_sim::tl_block->smem.data()

inline void __syncthreads() { ::capscale_sim::tl_block->all->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::capscale_sim::warp_sync(); }
inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  auto& slots = ::capscale_sim::tl_block->slots[::capscale_sim::tl_tid / ::capscale_sim::kWarp];
  const unsigned lane = ::capscale_sim::tl_tid % ::capscale_sim::kWarp;
  slots[lane] = v;
  ::capscale_sim::warp_sync();
  const float r = slots[lane ^ unsigned(lane_mask)];
  ::capscale_sim::warp_sync();
  return r;
}
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulation knows 16x16x16 tiles only");
  float x[256];
};

inline float f32(float v) { return v; }
inline float f32(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float f32(__half v) { return __half2float(v); }

template <typename Use, typename T, typename L>
void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, float v) {
  for (float& e : f.x) e = v;
}

template <typename Use, typename T, typename L>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ld) {
  ::capscale_sim::warp_sync();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) f.x[i * 16 + j] = f32(std::is_same_v<L, row_major> ? p[i * ld + j] : p[i + j * ld]);
  ::capscale_sim::warp_sync();
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ld, layout_t l) {
  ::capscale_sim::warp_sync();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) f.x[i * 16 + j] = l == mem_row_major ? p[i * ld + j] : p[i + j * ld];
  ::capscale_sim::warp_sync();
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld, layout_t l) {
  ::capscale_sim::warp_sync();
  if (::capscale_sim::lane0())
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) (l == mem_row_major ? p[i * ld + j] : p[i + j * ld]) = f.x[i * 16 + j];
  ::capscale_sim::warp_sync();
}

template <typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[256];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float s = c.x[i * 16 + j];
      for (int k = 0; k < 16; ++k) s += a.x[i * 16 + k] * b.x[k * 16 + j];
      out[i * 16 + j] = s;
    }
  for (int i = 0; i < 256; ++i) d.x[i] = out[i];
}

}  // namespace nvcuda::wmma

namespace capscale_sim {

/// Runs `body` (a kernel call) as `grid` blocks of `threads` threads with `smem_bytes` of shared
/// memory, one block after another.
template <typename F>
void launch(dim3 grid, unsigned threads, size_t smem_bytes, F&& body) {
  for (unsigned by = 0; by < grid.y; ++by) {
    for (unsigned bx = 0; bx < grid.x; ++bx) {
      Block b;
      b.smem.assign(smem_bytes, 0xFF);
      b.all = std::make_unique<std::barrier<>>(std::ptrdiff_t(threads));
      for (unsigned w = 0; w < (threads + kWarp - 1) / kWarp; ++w) b.warps.push_back(std::make_unique<std::barrier<>>(kWarp));
      b.slots.resize(b.warps.size());
      std::vector<std::thread> ts;
      for (unsigned t = 0; t < threads; ++t) {
        ts.emplace_back([&, t, bx, by] {
          tl_block = &b;
          tl_tid = t;
          threadIdx = dim3(t);
          blockIdx = dim3(bx, by);
          blockDim = dim3(threads);
          gridDim = grid;
          body();
        });
      }
      for (auto& th : ts) th.join();
    }
  }
}

}  // namespace capscale_sim
