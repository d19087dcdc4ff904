// The fused attention kernels (src/exec/cuda/attention_kernels.cuh, the very source the GPU runs)
// against a double-precision host reference, executed on the CPU by tests/sim/cuda_sim.hpp: the
// tiling, causal tile skipping, online softmax, shared-memory layout and synchronisation are
// checked without a GPU (ctest -L gpu checks the same on a device, WMMA included). The launches
// mirror attention.cu's launch_fwd / launch_bwd: grid, block size and shared memory bytes.
#include "sim/cuda_sim.hpp"
//
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace capscale::exec::cuda::flash {
#include "exec/cuda/attention_kernels.cuh"
}  // namespace capscale::exec::cuda::flash

namespace capscale {
namespace {

namespace fl = exec::cuda::flash;
using Bf16 = __nv_bfloat16;

struct Case {
  int64_t batch, m, n, d;
  bool causal;
};

std::vector<Bf16> random_bf16(size_t n, uint32_t seed) {
  std::vector<Bf16> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    e = __float2bfloat16(float(x >> 40) / float(1 << 24) * 2.0f - 1.0f);
  }
  return v;
}

double f(const std::vector<Bf16>& x, int64_t i) { return double(__bfloat162float(x[size_t(i)])); }

template <int D>
void run_case(const Case& c) {
  SCOPED_TRACE("batch " + std::to_string(c.batch) + " m " + std::to_string(c.m) + " n " + std::to_string(c.n) + " d " +
               std::to_string(c.d) + (c.causal ? " causal" : ""));
  const int64_t b = c.batch, m = c.m, n = c.n, d = c.d;
  const auto q = random_bf16(size_t(b * m * d), 1), k = random_bf16(size_t(b * n * d), 2), v = random_bf16(size_t(b * n * d), 3),
             dout = random_bf16(size_t(b * m * d), 4);
  std::vector<Bf16> o(q.size()), dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<float> lse(size_t(b * m)), delta(size_t(b * m)), dq_acc(size_t(b * m * d), 0.0f);
  const float scale = 1.0f / std::sqrt(float(d)), scale_log2 = scale * fl::kLog2e;

  capscale_sim::launch(dim3(unsigned((m + fl::kBM - 1) / fl::kBM), unsigned(b)), fl::kThreads, fl::fwd_smem_bytes<Bf16, D>(), [&] {
    fl::flash_fwd<Bf16, D>(q.data(), k.data(), v.data(), o.data(), lse.data(), int(m), int(n), int(d), scale_log2, c.causal);
  });
  const int64_t rows = b * m;
  capscale_sim::launch(dim3(unsigned((rows + 7) / 8)), 256, 0,
                       [&] { fl::flash_bwd_dot<Bf16>(o.data(), dout.data(), delta.data(), rows, int(d)); });
  capscale_sim::launch(dim3(unsigned((n + fl::kBN - 1) / fl::kBN), unsigned(b)), fl::kThreads, fl::bwd_smem_bytes<Bf16, D>(), [&] {
    fl::flash_bwd<Bf16, D>(q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(), dq_acc.data(), dk.data(), dv.data(),
                           int(m), int(n), int(d), scale_log2, scale, c.causal);
  });
  capscale_sim::launch(dim3(4), 256, 0, [&] { fl::convert_from_f32<Bf16>(dq_acc.data(), dq.data(), rows * d); });

  const double sc = 1.0 / std::sqrt(double(d));
  double max_o = 0, err_o = 0, max_gq = 0, err_gq = 0, max_gk = 0, err_gk = 0, max_gv = 0, err_gv = 0;
  for (int64_t h = 0; h < b; ++h) {
    std::vector<double> p(size_t(m * n), 0.0), ds(size_t(m * n), 0.0);
    auto vis = [&](int64_t i, int64_t j) { return !c.causal || (m >= n ? j <= i : j * m < (i + 1) * n); };
    for (int64_t i = 0; i < m; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        if (!vis(i, j)) continue;
        double s = 0;
        for (int64_t t = 0; t < d; ++t) s += f(q, (h * m + i) * d + t) * f(k, (h * n + j) * d + t);
        p[size_t(i * n + j)] = s * sc;
        mx = std::max(mx, s * sc);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        double& e = p[size_t(i * n + j)];
        e = vis(i, j) ? std::exp(e - mx) : 0.0;
        sum += e;
      }
      for (int64_t j = 0; j < n; ++j) p[size_t(i * n + j)] = sum > 0 ? p[size_t(i * n + j)] / sum : 0.0;
      for (int64_t t = 0; t < d; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += p[size_t(i * n + j)] * f(v, (h * n + j) * d + t);
        max_o = std::max(max_o, std::abs(acc));
        err_o = std::max(err_o, std::abs(acc - f(o, (h * m + i) * d + t)));
      }
      double dl = 0;  // Δ from the kernel's own O, as FlashAttention-2 computes it
      for (int64_t t = 0; t < d; ++t) dl += f(dout, (h * m + i) * d + t) * f(o, (h * m + i) * d + t);
      for (int64_t j = 0; j < n; ++j) {
        double dp = 0;
        for (int64_t t = 0; t < d; ++t) dp += f(dout, (h * m + i) * d + t) * f(v, (h * n + j) * d + t);
        ds[size_t(i * n + j)] = p[size_t(i * n + j)] * (dp - dl);
      }
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t t = 0; t < d; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += ds[size_t(i * n + j)] * f(k, (h * n + j) * d + t);
        acc *= sc;
        max_gq = std::max(max_gq, std::abs(acc));
        err_gq = std::max(err_gq, std::abs(acc - f(dq, (h * m + i) * d + t)));
      }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < d; ++t) {
        double ak = 0, av = 0;
        for (int64_t i = 0; i < m; ++i) {
          ak += ds[size_t(i * n + j)] * f(q, (h * m + i) * d + t);
          av += p[size_t(i * n + j)] * f(dout, (h * m + i) * d + t);
        }
        ak *= sc;
        max_gk = std::max(max_gk, std::abs(ak));
        err_gk = std::max(err_gk, std::abs(ak - f(dk, (h * n + j) * d + t)));
        max_gv = std::max(max_gv, std::abs(av));
        err_gv = std::max(err_gv, std::abs(av - f(dv, (h * n + j) * d + t)));
      }
  }
  // bf16 operands and outputs (8 significant bits) and P, dS rounded to bf16 before their GEMMs, as
  // on the GPU: within 2 % of each output's largest magnitude.
  EXPECT_LE(err_o, 0.02 * max_o + 1e-3) << "O, largest " << max_o;
  EXPECT_LE(err_gq, 0.02 * max_gq + 1e-3) << "dQ, largest " << max_gq;
  EXPECT_LE(err_gk, 0.02 * max_gk + 1e-3) << "dK, largest " << max_gk;
  EXPECT_LE(err_gv, 0.02 * max_gv + 1e-3) << "dV, largest " << max_gv;
  EXPECT_GT(max_o, 0.01);
  EXPECT_GT(max_gk, 1e-4);
}

TEST(AttentionSim, FusedKernelsMatchHostReference) {
  run_case<64>({2, 100, 100, 64, true});   // two query tiles, a partial one
  run_case<64>({1, 100, 100, 64, false});
  run_case<64>({1, 64, 160, 64, true});    // a CP rank's queries: the stretched diagonal, tiles skipped
  run_case<64>({1, 96, 320, 64, true});    // the same over several query and key tiles
  run_case<64>({1, 200, 70, 64, true});    // a sliding window of 70 keys: later queries see all of them
  run_case<64>({1, 70, 70, 48, true});     // head dim padded to 64
  run_case<128>({1, 80, 80, 128, true});
}

}  // namespace
}  // namespace capscale
