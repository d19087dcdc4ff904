// A double-precision host reference for fused attention, forward and backward, shared by the
// simulated kernel test (unit/test_attention_sim.cpp) and the device test (gpu/): O =
// softmax(QKᵀ/√d)·V with the causal mask as attention_kernels.cuh's visible() draws it (the
// diagonal stretched over the keys when m < n, a CP rank's queries), and dQ, dK, dV from dO, with
// Δ_i = dO_i·O_i taken from the kernel's own O as FlashAttention-2 computes it. Buffers are
// [batch][rows][d]; `x(buffer, i)` reads element i as a double.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace capscale_test {

struct AttentionErrors {
  double max_o = 0, err_o = 0, max_gq = 0, err_gq = 0, max_gk = 0, err_gk = 0, max_gv = 0, err_gv = 0;
};

/// The largest |reference| and |reference − kernel| of O, dQ, dK and dV.
template <typename Buf, typename Get>
AttentionErrors attention_errors(int64_t b, int64_t m, int64_t n, int64_t d, bool causal, Get x, const Buf& q, const Buf& k,
                                 const Buf& v, const Buf& dout, const Buf& o, const Buf& dq, const Buf& dk, const Buf& dv) {
  const double sc = 1.0 / std::sqrt(double(d));
  AttentionErrors e;
  auto at = [n](int64_t i, int64_t j) { return size_t(i * n + j); };
  auto vis = [&](int64_t i, int64_t j) { return !causal || (m >= n ? j <= i : j * m < (i + 1) * n); };
  for (int64_t h = 0; h < b; ++h) {
    std::vector<double> p(size_t(m * n), 0.0), ds(size_t(m * n), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        if (!vis(i, j)) continue;
        double s = 0;
        for (int64_t t = 0; t < d; ++t) s += x(q, (h * m + i) * d + t) * x(k, (h * n + j) * d + t);
        p[at(i, j)] = s * sc;
        mx = std::max(mx, s * sc);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        p[at(i, j)] = vis(i, j) ? std::exp(p[at(i, j)] - mx) : 0.0;
        sum += p[at(i, j)];
      }
      for (int64_t j = 0; j < n; ++j) p[at(i, j)] = sum > 0 ? p[at(i, j)] / sum : 0.0;
      for (int64_t t = 0; t < d; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += p[at(i, j)] * x(v, (h * n + j) * d + t);
        e.max_o = std::max(e.max_o, std::abs(acc));
        e.err_o = std::max(e.err_o, std::abs(acc - x(o, (h * m + i) * d + t)));
      }
      double delta = 0;
      for (int64_t t = 0; t < d; ++t) delta += x(dout, (h * m + i) * d + t) * x(o, (h * m + i) * d + t);
      for (int64_t j = 0; j < n; ++j) {
        double dp = 0;
        for (int64_t t = 0; t < d; ++t) dp += x(dout, (h * m + i) * d + t) * x(v, (h * n + j) * d + t);
        ds[at(i, j)] = p[at(i, j)] * (dp - delta);
      }
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t t = 0; t < d; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += ds[at(i, j)] * x(k, (h * n + j) * d + t);
        acc *= sc;
        e.max_gq = std::max(e.max_gq, std::abs(acc));
        e.err_gq = std::max(e.err_gq, std::abs(acc - x(dq, (h * m + i) * d + t)));
      }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < d; ++t) {
        double ak = 0, av = 0;
        for (int64_t i = 0; i < m; ++i) {
          ak += ds[at(i, j)] * x(q, (h * m + i) * d + t);
          av += p[at(i, j)] * x(dout, (h * m + i) * d + t);
        }
        ak *= sc;
        e.max_gk = std::max(e.max_gk, std::abs(ak));
        e.err_gk = std::max(e.err_gk, std::abs(ak - x(dk, (h * n + j) * d + t)));
        e.max_gv = std::max(e.max_gv, std::abs(av));
        e.err_gv = std::max(e.err_gv, std::abs(av - x(dv, (h * n + j) * d + t)));
      }
  }
  return e;
}

/// bf16 operands and outputs (8 significant bits), P and dS rounded to bf16 before their GEMMs as
/// in FlashAttention: each output within 2 % of its largest magnitude, and the outputs not
/// vanishingly small (a kernel writing zeros would otherwise pass).
inline void expect_attention_close(const AttentionErrors& e) {
  EXPECT_LE(e.err_o, 0.02 * e.max_o + 1e-3) << "O, largest |O| " << e.max_o;
  EXPECT_LE(e.err_gq, 0.02 * e.max_gq + 1e-3) << "dQ, largest |dQ| " << e.max_gq;
  EXPECT_LE(e.err_gk, 0.02 * e.max_gk + 1e-3) << "dK, largest |dK| " << e.max_gk;
  EXPECT_LE(e.err_gv, 0.02 * e.max_gv + 1e-3) << "dV, largest |dV| " << e.max_gv;
  EXPECT_GT(e.max_o, 0.01);
  EXPECT_GT(e.max_gk, 1e-4);
}

}  // namespace capscale_test
