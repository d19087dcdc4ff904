// What the CUDA executor's GEMMs are, free of any CUDA header so that CPU tests can check the
// layout bookkeeping (tests/unit/test_gemm_layouts.cpp): element types, Megatron's three layouts
// of a linear layer, the spec of one GEMM and the cublasLtMatmul operand shapes it maps to.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace capscale::exec::cuda {

/// Element types the executor moves. FP8 only ever appears as a GEMM input (e4m3 for weights and
/// activations, e5m2 for gradients, Transformer Engine's HYBRID recipe); fp32 only as a wgrad
/// GEMM's output (Megatron's main_grad).
enum class DType { kBf16, kFp16, kFp8E4m3, kFp8E5m2, kFp32 };
inline size_t dtype_bytes(DType t) {
  return t == DType::kFp8E4m3 || t == DType::kFp8E5m2 ? 1 : t == DType::kFp32 ? 4 : 2;
}
inline bool is_fp8(DType t) { return t == DType::kFp8E4m3 || t == DType::kFp8E5m2; }
inline std::string to_string(DType t) {
  switch (t) {
    case DType::kBf16: return "bf16";
    case DType::kFp16: return "fp16";
    case DType::kFp8E4m3: return "fp8_e4m3";
    case DType::kFp8E5m2: return "fp8_e5m2";
    case DType::kFp32: return "fp32";
  }
  return "?";
}

/// The three GEMMs of a linear layer as Megatron-Core runs them, in cuBLAS' column-major terms (all
/// tensors row-major; a row-major [r×c] matrix is a column-major c×r one, so no data is transposed).
/// The plan's GEMM op is C[m×k]·[k×n] → [m×n]; the executor's two input slots are the "A" operand
/// [m×k] (activations or output gradients) and the "W" operand [n×k] (weights, or for wgrad the
/// output gradient), the output slot C is [m×n]:
///  - kForwardTN: Y = X·Wᵀ, W [out×in] as nn.Linear holds it: C(n×m) = op_T(W k×n)·op_N(X k×m).
///  - kDgradNN:   dX = dY·W (m tokens, n = in, k = out): C(n×m) = op_N(W n×k)·op_N(dY k×m).
///  - kWgradNT:   main_grad += dYᵀ·X (m = in, n = out, k = tokens): C(m×n) = op_N(X m×k)·op_T(dY n×k),
///                fp32 C and β = 1: Megatron's gradient_accumulation_fusion (apex
///                fused_weight_gradient_mlp_cuda.wgrad_gemm_accum_fp32: cublasGemmEx N, T, β = 1, C fp32).
/// Under FP8 every GEMM is TN, as Transformer Engine runs them (it keeps FP8 transposed copies,
/// because TN is the only FP8 layout cuBLASLt offers on Hopper: cuBLAS docs, cublasLtMatmul), with
/// unit scale factors passed by device pointer as TE passes its amax-derived scales.
enum class GemmLayout : uint8_t { kForwardTN, kDgradNN, kWgradNT };
inline std::string to_string(GemmLayout l) {
  switch (l) {
    case GemmLayout::kForwardTN: return "forward";
    case GemmLayout::kDgradNN: return "dgrad";
    case GemmLayout::kWgradNT: return "wgrad";
  }
  return "?";
}

struct GemmSpec {
  GemmLayout layout = GemmLayout::kForwardTN;
  bool tn = true;            ///< cuBLAS TN whatever the layout's role (FP8); else the layout's own
  DType a = DType::kBf16;    ///< the [m×k] operand
  DType w = DType::kBf16;    ///< the [n×k] operand
  DType out = DType::kBf16;  ///< C
  bool accumulate = false;   ///< β = 1 (wgrad into the fp32 main_grad)
  bool fast_accum = false;   ///< FP8 forward: CUBLASLT_MATMUL_DESC_FAST_ACCUM (TE's fprop; dgrad/wgrad split-accumulate)
  int64_t m = 0, n = 0, k = 0, batch = 1;

  /// The spec Megatron / TE use for a GEMM of `layout` when forward GEMMs take `fwd` inputs
  /// (bf16, fp16 or fp8 e4m3): bf16/fp16 keep the layout's own transposes, bf16/fp16 out, fp32 out
  /// with β = 1 for wgrad; fp8 runs TN with e4m3 weights/activations and e5m2 gradients.
  static GemmSpec megatron(GemmLayout layout, DType fwd, int64_t m, int64_t n, int64_t k, int64_t batch);
  /// The same layout, roles and output in bf16 inputs (what an FP8 shape without a kernel runs as).
  GemmSpec as_bf16() const;
  std::array<int64_t, 9> key() const;
  std::string describe() const;  ///< e.g. "wgrad NT bf16×bf16→fp32 β=1 4096×1024×8192"
};

inline GemmSpec GemmSpec::megatron(GemmLayout layout, DType fwd, int64_t m, int64_t n, int64_t k, int64_t batch) {
  GemmSpec g;
  g.layout = layout;
  g.m = m, g.n = n, g.k = k, g.batch = batch;
  const bool wgrad = layout == GemmLayout::kWgradNT;
  g.accumulate = wgrad;
  if (is_fp8(fwd)) {
    // Transformer Engine's HYBRID recipe: e4m3 activations and weights, e5m2 gradients; fprop with
    // fast accumulation, dgrad and wgrad with split accumulation (TE's _2X_ACC_FPROP = False,
    // _2X_ACC_DGRAD = _2X_ACC_WGRAD = True); bf16 out, fp32 main_grad for wgrad.
    g.tn = true;
    g.a = layout == GemmLayout::kDgradNN ? DType::kFp8E5m2 : DType::kFp8E4m3;  // dgrad: dY; wgrad: Xᵀ
    g.w = layout == GemmLayout::kWgradNT ? DType::kFp8E5m2 : DType::kFp8E4m3;  // wgrad: dYᵀ
    g.out = wgrad ? DType::kFp32 : DType::kBf16;
    g.fast_accum = layout == GemmLayout::kForwardTN;
    return g;
  }
  g.tn = layout == GemmLayout::kForwardTN;
  g.a = g.w = fwd;
  g.out = wgrad ? DType::kFp32 : fwd;
  return g;
}

inline GemmSpec GemmSpec::as_bf16() const {
  GemmSpec g = megatron(layout, DType::kBf16, m, n, k, batch);
  return g;
}

inline std::array<int64_t, 9> GemmSpec::key() const {
  return {int64_t(layout), int64_t(tn), int64_t(a), int64_t(w), int64_t(out) * 4 + int64_t(accumulate) * 2 + int64_t(fast_accum), m, n, k,
          batch};
}

inline std::string GemmSpec::describe() const {
  const bool wgrad_nt = !tn && layout == GemmLayout::kWgradNT;
  const char* ops = tn ? "TN" : wgrad_nt ? "NT" : "NN";
  return to_string(layout) + " " + ops + " " + to_string(a) + "x" + to_string(w) + "->" + to_string(out) + (accumulate ? " beta=1" : "") +
         (fast_accum ? " fast-accum" : "") + " " + (batch > 1 ? std::to_string(batch) + "x" : "") + std::to_string(m) + "x" +
         std::to_string(n) + "x" + std::to_string(k);
}

/// cublasLtMatmul's operands for a spec, in its column-major terms: D = op(first)·op(second), each
/// stored rows × cols with leading dimension ld (= rows, all tensors contiguous), and which slot
/// (the [m×k] "a" or the [n×k] "w") is first. TN and NN multiply the w slot by the a slot into C
/// (n×m); NT multiplies the a slot by the w slot into C (m×n). tests/unit/test_gemm_layouts.cpp
/// evaluates these descriptors on the CPU against each layout's row-major meaning.
struct GemmDims {
  bool trans_first = true, trans_second = false;
  bool a_first = false;
  int64_t first_rows = 0, first_cols = 0, second_rows = 0, second_cols = 0, c_rows = 0, c_cols = 0;
  int64_t first_stride = 0, second_stride = 0, c_stride = 0;  ///< elements between batch entries
};

inline GemmDims gemm_dims(const GemmSpec& s) {
  GemmDims g;
  g.c_stride = s.m * s.n;
  if (s.tn) {  // W (k×n, op T), A (k×m), C (n×m)
    g.trans_first = true, g.trans_second = false;
    g.first_rows = s.k, g.first_cols = s.n, g.second_rows = s.k, g.second_cols = s.m, g.c_rows = s.n, g.c_cols = s.m;
    g.first_stride = s.n * s.k, g.second_stride = s.m * s.k;
  } else if (s.layout == GemmLayout::kDgradNN) {  // W (n×k), dY (k×m), C (n×m)
    g.trans_first = false, g.trans_second = false;
    g.first_rows = s.n, g.first_cols = s.k, g.second_rows = s.k, g.second_cols = s.m, g.c_rows = s.n, g.c_cols = s.m;
    g.first_stride = s.n * s.k, g.second_stride = s.m * s.k;
  } else {  // wgrad NT: X (m×k), dY (n×k, op T), C (m×n)
    g.trans_first = false, g.trans_second = true;
    g.a_first = true;
    g.first_rows = s.m, g.first_cols = s.k, g.second_rows = s.n, g.second_cols = s.k, g.c_rows = s.m, g.c_cols = s.n;
    g.first_stride = s.m * s.k, g.second_stride = s.n * s.k;
  }
  return g;
}

}  // namespace capscale::exec::cuda
