// The fused attention kernels (FlashAttention-2 forward and backward, see attention.cu), in a header
// of their own so that tests/unit/test_attention_sim.cpp can run the very same code on the CPU
// through a SIMT emulation (tests/sim/cuda_sim.hpp) where no GPU is present. Device code only;
// included inside namespace capscale::exec::cuda::flash by exactly one .cu file and by that test.
// Expects nvcuda::wmma, __nv_bfloat16/__half and CAPSCALE_DYNAMIC_SMEM from its includer.
#pragma once

using namespace nvcuda;

constexpr int kBM = 64;  // query rows per tile (16 per warp)
constexpr int kBN = 64;  // keys per tile
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }

// Shared-memory strides, padded against bank conflicts and kept multiples of 8 (16-bit) or 4
// (fp32) elements with 32-byte aligned 16-row steps, as WMMA loads require.
template <int D>
struct Ld {
  static constexpr int kIn = D + 8;     // bf16/fp16 tiles [rows][kIn]
  static constexpr int kS = kBN + 4;    // fp32 score tiles
  static constexpr int kP = kBN + 8;    // bf16/fp16 probability tiles
  static constexpr int kO = D + 4;      // fp32 output tiles
};

template <typename T, int D>
constexpr size_t fwd_smem_bytes() {
  return size_t(3 * kBM * Ld<D>::kIn) * sizeof(T) + size_t(kBM * Ld<D>::kS) * 4 + size_t(kBM * Ld<D>::kP) * sizeof(T) +
         size_t(kBM * Ld<D>::kO) * 4;
}
template <typename T, int D>
constexpr size_t bwd_smem_bytes() {
  return size_t(4 * kBM * Ld<D>::kIn) * sizeof(T) + size_t(2 * kBM * Ld<D>::kS) * 4 + size_t(2 * kBM * Ld<D>::kP) * sizeof(T) +
         size_t(kBM * Ld<D>::kO) * 4 + size_t(2 * kBM) * 4;
}

// Rows [r0, r0 + 64) of a [rows][d] tensor into a [64][D] tile, zero beyond `rows` and `d`.
// 16-byte vectors when d == D (every row then starts 16-byte aligned).
template <typename T, int D>
__device__ void load_tile(T* dst, const T* src, int d, int r0, int rows) {
  if (d == D) {
    constexpr int kVec = D / 8;
    for (int i = threadIdx.x; i < kBM * kVec; i += kThreads) {
      const int r = i / kVec, c = (i % kVec) * 8;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (r0 + r < rows) v = *reinterpret_cast<const uint4*>(src + int64_t(r0 + r) * d + c);
      *reinterpret_cast<uint4*>(dst + r * Ld<D>::kIn + c) = v;
    }
    return;
  }
  for (int i = threadIdx.x; i < kBM * D; i += kThreads) {
    const int r = i / D, c = i % D;
    dst[r * Ld<D>::kIn + c] = (r0 + r < rows && c < d) ? src[int64_t(r0 + r) * d + c] : from_f<T>(0.0f);
  }
}

// Causal visibility of key j to query i. m == n: the lower triangle, j <= i. m < n (a
// context-parallel rank's m = s/cp queries against all n = s keys): j·m < (i + 1)·n, the diagonal
// stretched over the keys; under Megatron's load-balanced CP each rank holds query chunks c and
// 2cp−1−c, which together see half of the keys they face, and the stretched diagonal gives a
// contiguous block of m queries that same m·n/2 of work. m > n (sliding-window attention, the plan's
// n being the window): j <= i, so the first n queries see a triangle and every later one the whole
// window, as a band of width n does.
__device__ __forceinline__ bool visible(int i, int j, int m, int n, bool causal) {
  if (j >= n) return false;
  if (!causal) return true;
  return m >= n ? j <= i : int64_t(j) * m < int64_t(i + 1) * n;
}
// Keys [0, end) hold every key visible to queries [0, q_end).
__device__ __forceinline__ int visible_keys_end(int q_end, int m, int n) {
  const int64_t end = m >= n ? int64_t(q_end) : (int64_t(q_end) * n + m - 1) / m;
  return end < n ? int(end) : n;
}
// The first query that sees key j.
__device__ __forceinline__ int first_query_seeing(int j, int m, int n) { return m >= n ? j : int(int64_t(j) * m / n); }

// Forward: one block per 64 query rows of one (batch, head); each warp owns 16 rows. Per key tile:
// S = Q·Kᵀ (WMMA), online softmax in base 2 (two lanes per row), O = diag(α)·O + P·V (WMMA on an
// fp32 shared tile). Writes O and the row log-sum-exp (base 2, of the scaled scores) for backward.
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_fwd(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                                      T* __restrict__ o, float* __restrict__ lse, int m, int n, int d, float scale_log2,
                                                      bool causal) {
  using L = Ld<D>;
  CAPSCALE_DYNAMIC_SMEM(smem);
  T* q_s = reinterpret_cast<T*>(smem);
  T* k_s = q_s + kBM * L::kIn;
  T* v_s = k_s + kBN * L::kIn;
  float* s_s = reinterpret_cast<float*>(v_s + kBN * L::kIn);
  T* p_s = reinterpret_cast<T*>(s_s + kBM * L::kS);
  float* o_s = reinterpret_cast<float*>(p_s + kBM * L::kP);

  const int64_t bh = blockIdx.y;
  const int q0 = blockIdx.x * kBM;
  q += bh * m * d, o += bh * m * d, lse += bh * m;
  k += bh * n * d, v += bh * n * d;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = warp * 16 + lane / 2, half = lane % 2;  // this lane's row of the tile, and half of it
  const int qi = q0 + row;

  load_tile<T, D>(q_s, q, d, q0, m);
  for (int i = threadIdx.x; i < kBM * L::kO; i += kThreads) o_s[i] = 0.0f;
  float row_max = -INFINITY, row_sum = 0.0f;
  const int n_end = causal ? visible_keys_end(q0 + kBM, m, n) : n;  // keys past the tile's last row's diagonal: never visible
  __syncthreads();
  for (int k0 = 0; k0 < n_end; k0 += kBN) {
    load_tile<T, D>(k_s, k, d, k0, n);
    load_tile<T, D>(v_s, v, d, k0, n);
    __syncthreads();
    {  // S rows of this warp = Q_w · K_tileᵀ
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kBN / 16];
#pragma unroll
      for (int j = 0; j < kBN / 16; ++j) wmma::fill_fragment(acc[j], 0.0f);
#pragma unroll
      for (int kk = 0; kk < D; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, q_s + warp * 16 * L::kIn + kk, L::kIn);
#pragma unroll
        for (int j = 0; j < kBN / 16; ++j) {
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;  // Kᵀ: K's rows read as columns
          wmma::load_matrix_sync(b, k_s + j * 16 * L::kIn + kk, L::kIn);
          wmma::mma_sync(acc[j], a, b, acc[j]);
        }
      }
#pragma unroll
      for (int j = 0; j < kBN / 16; ++j) wmma::store_matrix_sync(s_s + warp * 16 * L::kS + j * 16, acc[j], L::kS, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax (Milakov & Gimelshein 2018) over this lane's 32 columns, merged with its pair.
    float* srow = s_s + row * L::kS + half * 32;
    float tile_max = -INFINITY;
    for (int c = 0; c < 32; ++c) {
      const float x = visible(qi, k0 + half * 32 + c, m, n, causal) ? srow[c] * scale_log2 : -INFINITY;
      srow[c] = x;
      tile_max = fmaxf(tile_max, x);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float new_max = fmaxf(row_max, tile_max);
    const float base = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing visible yet stays empty
    const float alpha = exp2f(row_max - base);
    float sum = 0.0f;
    T* prow = p_s + row * L::kP + half * 32;
    for (int c = 0; c < 32; ++c) {
      const float p = exp2f(srow[c] - base);
      sum += p;
      prow[c] = from_f<T>(p);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    row_sum = row_sum * alpha + sum;
    row_max = new_max;
    for (int c = half; c < D; c += 2) o_s[row * L::kO + c] *= alpha;
    __syncwarp();
    // O rows of this warp += P_w · V_tile
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, o_s + warp * 16 * L::kO + j * 16, L::kO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBN; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, p_s + warp * 16 * L::kP + kk, L::kP);
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(b, v_s + kk * L::kIn + j * 16, L::kIn);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(o_s + warp * 16 * L::kO + j * 16, acc, L::kO, wmma::mem_row_major);
    }
    __syncthreads();  // k_s, v_s are reloaded next
  }
  if (qi < m) {
    const float inv = row_sum > 0.0f ? 1.0f / row_sum : 0.0f;
    for (int c = half; c < d; c += 2) o[int64_t(qi) * d + c] = from_f<T>(o_s[row * L::kO + c] * inv);
    if (half == 0) lse[qi] = row_sum > 0.0f ? row_max + log2f(row_sum) : -INFINITY;
  }
}

// Backward preprocessing: Δ_i = Σ_c dO[i][c]·O[i][c] (FlashAttention-2, Alg. 2 line 4), one warp a row.
template <typename T>
__global__ void flash_bwd_dot(const T* __restrict__ o, const T* __restrict__ dout, float* __restrict__ delta, int64_t rows, int d) {
  const int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  float s = 0.0f;
  for (int c = lane; c < d; c += 32) s += to_f(o[r * d + c]) * to_f(dout[r * d + c]);
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (lane == 0) delta[r] = s;
}

// Backward: one block per 64 keys of one (batch, head); each warp owns 16 keys of dK and dV, kept in
// WMMA accumulators across the query tiles. Per query tile: S = Q·Kᵀ and dP = dO·Vᵀ (the warp's 16
// key columns), P = exp2(S·scale·log2e − LSE), dS = P∘(dP − Δ)·scale, dV += Pᵀ·dO, dK += dSᵀ·Q, and
// dQ += dS·K added to an fp32 accumulator in global memory (FlashAttention-2, Alg. 2).
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) flash_bwd(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                                      const T* __restrict__ dout, const float* __restrict__ lse,
                                                      const float* __restrict__ delta, float* __restrict__ dq_acc, T* __restrict__ dk,
                                                      T* __restrict__ dv, int m, int n, int d, float scale_log2, float scale, bool causal) {
  using L = Ld<D>;
  CAPSCALE_DYNAMIC_SMEM(smem);
  T* k_s = reinterpret_cast<T*>(smem);
  T* v_s = k_s + kBN * L::kIn;
  T* q_s = v_s + kBN * L::kIn;
  T* do_s = q_s + kBM * L::kIn;
  float* s_s = reinterpret_cast<float*>(do_s + kBM * L::kIn);
  float* dp_s = s_s + kBM * L::kS;
  T* p_s = reinterpret_cast<T*>(dp_s + kBM * L::kS);
  T* ds_s = p_s + kBM * L::kP;
  float* dq_s = reinterpret_cast<float*>(ds_s + kBM * L::kP);
  float* lse_s = dq_s + kBM * L::kO;
  float* delta_s = lse_s + kBM;

  const int64_t bh = blockIdx.y;
  const int k0 = blockIdx.x * kBN;
  q += bh * m * d, dout += bh * m * d, dq_acc += bh * m * d, lse += bh * m, delta += bh * m;
  k += bh * n * d, v += bh * n * d, dk += bh * n * d, dv += bh * n * d;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  load_tile<T, D>(k_s, k, d, k0, n);
  load_tile<T, D>(v_s, v, d, k0, n);
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[D / 16], dv_acc[D / 16];
#pragma unroll
  for (int j = 0; j < D / 16; ++j) wmma::fill_fragment(dk_acc[j], 0.0f), wmma::fill_fragment(dv_acc[j], 0.0f);
  // Query tiles before the first query that sees key k0 see none of this block's keys.
  const int q_first = causal ? first_query_seeing(k0, m, n) / kBM * kBM : 0;
  for (int q0 = q_first; q0 < m; q0 += kBM) {
    __syncthreads();  // the previous tile's q_s, do_s, ds_s, dq_s are done with
    load_tile<T, D>(q_s, q, d, q0, m);
    load_tile<T, D>(do_s, dout, d, q0, m);
    for (int i = threadIdx.x; i < kBM; i += kThreads) {
      lse_s[i] = q0 + i < m ? lse[q0 + i] : 0.0f;
      delta_s[i] = q0 + i < m ? delta[q0 + i] : 0.0f;
    }
    __syncthreads();
    // S[:, warp's keys] = Q·K_wᵀ, then dP[:, warp's keys] = dO·V_wᵀ (one after the other: fewer
    // accumulators live at once).
    for (int pass = 0; pass < 2; ++pass) {
      const T* rows = pass == 0 ? q_s : do_s;
      const T* cols = pass == 0 ? k_s : v_s;
      float* out = pass == 0 ? s_s : dp_s;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kBM / 16];
#pragma unroll
      for (int r = 0; r < kBM / 16; ++r) wmma::fill_fragment(acc[r], 0.0f);
#pragma unroll
      for (int kk = 0; kk < D; kk += 16) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;  // the warp's 16 keys read as columns
        wmma::load_matrix_sync(b, cols + warp * 16 * L::kIn + kk, L::kIn);
#pragma unroll
        for (int r = 0; r < kBM / 16; ++r) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::load_matrix_sync(a, rows + r * 16 * L::kIn + kk, L::kIn);
          wmma::mma_sync(acc[r], a, b, acc[r]);
        }
      }
#pragma unroll
      for (int r = 0; r < kBM / 16; ++r) wmma::store_matrix_sync(out + r * 16 * L::kS + warp * 16, acc[r], L::kS, wmma::mem_row_major);
    }
    __syncwarp();
    for (int e = lane; e < kBM * 16; e += 32) {
      const int r = e / 16, col = warp * 16 + e % 16;
      const int qi = q0 + r, j = k0 + col;
      const float p = (qi < m && visible(qi, j, m, n, causal)) ? exp2f(s_s[r * L::kS + col] * scale_log2 - lse_s[r]) : 0.0f;
      p_s[r * L::kP + col] = from_f<T>(p);
      ds_s[r * L::kP + col] = from_f<T>(p * (dp_s[r * L::kS + col] - delta_s[r]) * scale);
    }
    __syncwarp();
    // dV_w += P_wᵀ·dO and dK_w += dS_wᵀ·Q: the warp's key columns of P and dS read as rows (col_major).
#pragma unroll
    for (int kk = 0; kk < kBM; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> pt, dst;
      wmma::load_matrix_sync(pt, p_s + kk * L::kP + warp * 16, L::kP);
      wmma::load_matrix_sync(dst, ds_s + kk * L::kP + warp * 16, L::kP);
#pragma unroll
      for (int j = 0; j < D / 16; ++j) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(b, do_s + kk * L::kIn + j * 16, L::kIn);
        wmma::mma_sync(dv_acc[j], pt, b, dv_acc[j]);
        wmma::load_matrix_sync(b, q_s + kk * L::kIn + j * 16, L::kIn);
        wmma::mma_sync(dk_acc[j], dst, b, dk_acc[j]);
      }
    }
    __syncthreads();  // every warp's dS columns are in ds_s
    // dQ rows of this warp (16 queries) = dS_w·K_tile, added to the fp32 accumulator.
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < kBN; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::load_matrix_sync(a, ds_s + warp * 16 * L::kP + kk, L::kP);
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> b;
        wmma::load_matrix_sync(b, k_s + kk * L::kIn + j * 16, L::kIn);
        wmma::mma_sync(acc, a, b, acc);
      }
      wmma::store_matrix_sync(dq_s + warp * 16 * L::kO + j * 16, acc, L::kO, wmma::mem_row_major);
    }
    __syncwarp();
    for (int e = lane; e < 16 * d; e += 32) {
      const int r = e / d, c = e % d, qi = q0 + warp * 16 + r;
      if (qi < m) atomicAdd(dq_acc + int64_t(qi) * d + c, dq_s[(warp * 16 + r) * L::kO + c]);
    }
  }
  // dK and dV of this warp's 16 keys, through its rows of dq_s.
  __syncthreads();
  float* stage = dq_s + warp * 16 * L::kO;
#pragma unroll
  for (int j = 0; j < D / 16; ++j) wmma::store_matrix_sync(stage + j * 16, dk_acc[j], L::kO, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 16 * d; e += 32) {
    const int r = e / d, c = e % d, key = k0 + warp * 16 + r;
    if (key < n) dk[int64_t(key) * d + c] = from_f<T>(stage[r * L::kO + c]);
  }
  __syncwarp();
#pragma unroll
  for (int j = 0; j < D / 16; ++j) wmma::store_matrix_sync(stage + j * 16, dv_acc[j], L::kO, wmma::mem_row_major);
  __syncwarp();
  for (int e = lane; e < 16 * d; e += 32) {
    const int r = e / d, c = e % d, key = k0 + warp * 16 + r;
    if (key < n) dv[int64_t(key) * d + c] = from_f<T>(stage[r * L::kO + c]);
  }
}

template <typename T>
__global__ void convert_from_f32(const float* __restrict__ x, T* __restrict__ y, int64_t count) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) y[i] = from_f<T>(x[i]);
}
