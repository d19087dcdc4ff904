// The CUDA executor's GEMM bookkeeping (src/exec/cuda/gemm_spec.hpp) without a GPU: the operand
// shapes handed to cublasLtMatmul for each Megatron layout, evaluated here as the column-major
// product cuBLAS defines (D = op(first)·op(second), every matrix contiguous with ld = rows), give
// each layout's row-major meaning: forward Y = X·Wᵀ, dgrad dX = dY·W, wgrad main_grad += dYᵀ·X.
// ctest -L gpu runs the same comparison through cuBLASLt on a device.
#include <gtest/gtest.h>

#include <vector>

#include "exec/cuda/gemm_spec.hpp"

namespace capscale {
namespace {

using exec::cuda::DType;
using exec::cuda::GemmDims;
using exec::cuda::GemmLayout;
using exec::cuda::GemmSpec;

// cuBLAS' column-major GEMM on the stored operands: D(i, j) = Σ_p op(F)(i, p)·op(S)(p, j).
std::vector<double> column_major_product(const GemmDims& g, const std::vector<double>& first, const std::vector<double>& second) {
  const int64_t rows = g.trans_first ? g.first_cols : g.first_rows, inner = g.trans_first ? g.first_rows : g.first_cols;
  const int64_t cols = g.trans_second ? g.second_rows : g.second_cols, inner2 = g.trans_second ? g.second_cols : g.second_rows;
  EXPECT_EQ(inner, inner2) << "inner dimensions of op(first) and op(second) differ";
  EXPECT_EQ(rows, g.c_rows);
  EXPECT_EQ(cols, g.c_cols);
  auto f = [&](int64_t i, int64_t p) { return g.trans_first ? first[size_t(p + i * g.first_rows)] : first[size_t(i + p * g.first_rows)]; };
  auto s = [&](int64_t p, int64_t j) {
    return g.trans_second ? second[size_t(j + p * g.second_rows)] : second[size_t(p + j * g.second_rows)];
  };
  std::vector<double> d(size_t(rows * cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t p = 0; p < inner; ++p) d[size_t(i + j * rows)] += f(i, p) * s(p, j);
  return d;
}

void check_layout(const GemmSpec& spec) {
  SCOPED_TRACE(spec.describe());
  const int64_t m = spec.m, n = spec.n, k = spec.k;
  std::vector<double> a(size_t(m * k)), w(size_t(n * k));  // the [m×k] and [n×k] slots, flat
  for (size_t i = 0; i < a.size(); ++i) a[i] = double(int(i * 7 + 3) % 11 - 5);
  for (size_t i = 0; i < w.size(); ++i) w[i] = double(int(i * 5 + 1) % 13 - 6);
  const GemmDims g = exec::cuda::gemm_dims(spec);
  EXPECT_EQ(g.first_rows * g.first_cols, g.a_first ? m * k : n * k);
  EXPECT_EQ(g.second_rows * g.second_cols, g.a_first ? n * k : m * k);
  EXPECT_EQ(g.c_rows * g.c_cols, m * n);
  EXPECT_EQ(g.first_stride, g.first_rows * g.first_cols);
  EXPECT_EQ(g.second_stride, g.second_rows * g.second_cols);
  EXPECT_EQ(g.c_stride, m * n);
  const std::vector<double> d = column_major_product(g, g.a_first ? a : w, g.a_first ? w : a);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double ref = 0;
      int64_t at = i * n + j;  // row-major [m×n]
      if (spec.tn) {
        for (int64_t p = 0; p < k; ++p) ref += a[size_t(i * k + p)] * w[size_t(j * k + p)];  // X [m×k] · (W [n×k])ᵀ
      } else if (spec.layout == GemmLayout::kDgradNN) {
        for (int64_t p = 0; p < k; ++p) ref += a[size_t(i * k + p)] * w[size_t(p * n + j)];  // dY [m×k] · W [k×n]
      } else {
        for (int64_t p = 0; p < k; ++p) ref += a[size_t(p * m + i)] * w[size_t(p * n + j)];  // (X [k×m])ᵀ · dY [k×n]
        at = j * m + i;  // main_grad [n×m]: nn.Linear's [out × in]
      }
      ASSERT_EQ(d[size_t(at)], ref) << "C(" << i << ", " << j << ")";
    }
  }
}

TEST(GemmLayouts, DescriptorsGiveEachLayoutsMeaning) {
  for (DType t : {DType::kBf16, DType::kFp16, DType::kFp8E4m3})
    for (GemmLayout l : {GemmLayout::kForwardTN, GemmLayout::kDgradNN, GemmLayout::kWgradNT}) {
      check_layout(GemmSpec::megatron(l, t, 5, 3, 4, 1));
      check_layout(GemmSpec::megatron(l, t, 2, 7, 6, 1));
    }
}

TEST(GemmLayouts, MegatronSpecs) {
  const GemmSpec f = GemmSpec::megatron(GemmLayout::kForwardTN, DType::kBf16, 8, 16, 32, 1);
  EXPECT_TRUE(f.tn);
  EXPECT_FALSE(f.accumulate);
  EXPECT_EQ(f.out, DType::kBf16);
  const GemmSpec d = GemmSpec::megatron(GemmLayout::kDgradNN, DType::kBf16, 8, 16, 32, 1);
  EXPECT_FALSE(d.tn);
  EXPECT_FALSE(d.accumulate);
  EXPECT_EQ(d.out, DType::kBf16);
  // wgrad: Megatron's gradient_accumulation_fusion, fp32 main_grad with β = 1.
  const GemmSpec w = GemmSpec::megatron(GemmLayout::kWgradNT, DType::kBf16, 8, 16, 32, 1);
  EXPECT_FALSE(w.tn);
  EXPECT_TRUE(w.accumulate);
  EXPECT_EQ(w.out, DType::kFp32);
  EXPECT_TRUE(exec::cuda::gemm_dims(w).a_first);
  EXPECT_EQ(GemmSpec::megatron(GemmLayout::kForwardTN, DType::kFp16, 8, 16, 32, 1).out, DType::kFp16);
  // FP8 as Transformer Engine: all TN, e4m3 activations/weights, e5m2 gradients, fast accumulation
  // in forward only, bf16 out, fp32 main_grad.
  for (GemmLayout l : {GemmLayout::kForwardTN, GemmLayout::kDgradNN, GemmLayout::kWgradNT}) {
    const GemmSpec s = GemmSpec::megatron(l, DType::kFp8E4m3, 16, 32, 64, 1);
    EXPECT_TRUE(s.tn);
    EXPECT_EQ(s.fast_accum, l == GemmLayout::kForwardTN);
    EXPECT_EQ(s.accumulate, l == GemmLayout::kWgradNT);
    EXPECT_EQ(s.out, l == GemmLayout::kWgradNT ? DType::kFp32 : DType::kBf16);
    EXPECT_EQ(s.a, l == GemmLayout::kDgradNN ? DType::kFp8E5m2 : DType::kFp8E4m3);
    EXPECT_EQ(s.w, l == GemmLayout::kWgradNT ? DType::kFp8E5m2 : DType::kFp8E4m3);
    EXPECT_FALSE(exec::cuda::is_fp8(s.as_bf16().a));
    EXPECT_EQ(s.as_bf16().layout, l);
  }
  EXPECT_NE(f.key(), d.key());
  EXPECT_NE(d.key(), w.key());
  EXPECT_NE(f.key(), GemmSpec::megatron(GemmLayout::kForwardTN, DType::kFp8E4m3, 8, 16, 32, 1).key());
}

}  // namespace
}  // namespace capscale
