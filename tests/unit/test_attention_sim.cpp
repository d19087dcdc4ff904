// The fused attention kernels (src/exec/cuda/attention_kernels.cuh, the very source the GPU runs)
// against a double-precision host reference, executed on the CPU by tests/sim/cuda_sim.hpp: the
// tiling, causal tile skipping, online softmax, shared-memory layout and synchronisation are
// checked without a GPU (ctest -L gpu checks the same on a device, WMMA included). The launches
// mirror attention.cu's launch_fwd / launch_bwd: grid, block size and shared memory bytes.
#include "sim/cuda_sim.hpp"
//
#include "sim/attention_reference.hpp"
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

  capscale_test::expect_attention_close(capscale_test::attention_errors(b, m, n, d, c.causal, f, q, k, v, dout, o, dq, dk, dv));
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
