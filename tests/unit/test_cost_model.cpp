// Cost model scale paths: the closed-form group span against the enumeration of the group's ranks
// it replaced (the slow, obviously-right reference), over many small layouts and domain sizes.
#include <gtest/gtest.h>

#include <set>

#include "common/error.hpp"
#include "parallel/layout.hpp"
#include "predict/cost_model.hpp"

using namespace capscale;

namespace {
// The pre-closed-form group_span: list rank 0's group and count the domains it touches.
collectives::GroupSpan enumerated_span(const parallel::Layout& layout, parallel::Group g, int64_t domain) {
  const auto members = layout.members(g, 0);
  std::set<int64_t> domains;
  for (int64_t r : members) domains.insert(r / domain);
  collectives::GroupSpan s;
  s.size = int64_t(members.size());
  s.domains = int64_t(domains.size());
  s.per_domain = std::max<int64_t>(1, s.size / s.domains);
  return s;
}
}  // namespace

TEST(CostModel, ClosedFormGroupSpanMatchesEnumeration) {
  int checked = 0;
  for (int64_t tp : {1, 2, 3, 4, 8})
    for (int64_t cp : {1, 2, 3})
      for (int64_t dp : {1, 2, 5, 8, 16})
        for (int64_t pp : {1, 2, 3, 4})
          for (int64_t domain : {1, 2, 3, 4, 6, 8, 16, 18, 32, 64, 72, 1000}) {
            const parallel::Layout layout(tp, cp, dp, pp);
            for (auto g : {parallel::Group::kTp, parallel::Group::kCp, parallel::Group::kDp, parallel::Group::kPp,
                           parallel::Group::kDpCp, parallel::Group::kEmbedding, parallel::Group::kTpCpDp}) {
              const auto want = enumerated_span(layout, g, domain);
              const auto got = collectives::group_span(layout, g, domain);
              ASSERT_EQ(got.size, want.size) << parallel::to_string(g) << " tp" << tp << " cp" << cp << " dp" << dp << " pp" << pp << " D" << domain;
              ASSERT_EQ(got.domains, want.domains) << parallel::to_string(g) << " tp" << tp << " cp" << cp << " dp" << dp << " pp" << pp << " D" << domain;
              ASSERT_EQ(got.per_domain, want.per_domain) << parallel::to_string(g) << " tp" << tp << " cp" << cp << " dp" << dp << " pp" << pp << " D" << domain;
              ++checked;
            }
          }
  EXPECT_GT(checked, 5000);
}

TEST(CostModel, GroupSpanOfABillionChipsIsImmediate) {
  // dp = 1.25·10^8: the enumeration would allocate a gigabyte; the closed form answers at once.
  const parallel::Layout layout(8, 1, 125'000'000, 1);
  const auto dp = collectives::group_span(layout, parallel::Group::kDp, 72);
  EXPECT_EQ(dp.size, 125'000'000);
  EXPECT_EQ(dp.domains, (125'000'000 - 1) * 8 / 72 + 1);
  const auto tp = collectives::group_span(layout, parallel::Group::kTp, 72);
  EXPECT_EQ(tp.domains, 1);
}

namespace {
// A Hopper calibration measured on an H100: one large GEMM at 0.75 of the bf16 peak and an 8-rank
// all-reduce at 370 GB/s bus bandwidth.
predict::Calibration h100_calibration() {
  predict::Calibration c;
  c.arch = "hopper", c.chip = "h100", c.backend = "cuda", c.gemm_dtype = "bf16";
  c.peak_tflops = 989.4, c.nvlink_gbyte_s = 900, c.world = 8;
  c.gemm.push_back({8192, 8192, 8192, 0.0, 0.75});
  c.comm.push_back({"all_reduce", int64_t(1) << 28, 8, 0.0, 370e9});
  return c;
}

plan::Op tp_all_reduce(int64_t bytes) {
  plan::Op op;
  op.kind = plan::OpKind::kCollective;
  op.coll = plan::CollKind::kAllReduce;
  op.group = parallel::Group::kTp;
  op.bytes = bytes;
  return op;
}
}  // namespace

TEST(CostModel, CalibratedBusBandwidthHonoursTheNvlinkCap) {
  // Issue 13, mechanism 6: with a calibration an H800 was an H100 inside a node. The measured time
  // keeps its non-wire part; the wire part moves from the H100's link to the H800's (or a cap's).
  const auto cal = h100_calibration();
  const parallel::Layout layout(8, 1, 1, 1);
  const auto h100 = config::load_chip("h100"), h800 = config::load_chip("h800");
  const auto capped = config::apply_caps(h100, config::parse_target("h100@nvlink=400", "test"));
  const predict::CostModel m100(h100, config::Precision::kBf16, layout, &cal), m800(h800, config::Precision::kBf16, layout, &cal),
      mcap(capped, config::Precision::kBf16, layout, &cal);
  const auto op = tp_all_reduce(int64_t(1) << 28);
  ASSERT_TRUE(m100.calibrated(op));
  ASSERT_TRUE(m800.calibrated(op));
  const double S = double(op.bytes) * 2.0 * 7.0 / 8.0;  // bus bytes, nccl-tests factor 2(n−1)/n
  EXPECT_NEAR(m100.duration(op), S / 370e9, 1e-12);     // the calibrating chip: as measured
  const double b100 = 450e9 * h100.efficiency.nvlink, b800 = 200e9 * h800.efficiency.nvlink;
  EXPECT_NEAR(m800.duration(op), S / 370e9 + S * (1 / b800 - 1 / b100), 1e-9);
  EXPECT_GT(m800.duration(op), 2.0 * m100.duration(op));
  EXPECT_NEAR(mcap.duration(op), m800.duration(op), 1e-12);  // a cap is the same chip as the H800
}

TEST(CostModel, CalibratedGemmEfficiencyIsRescaledForComputeCaps) {
  // The calibrated fraction e moves to a lower peak as apply_caps moves a profile's:
  // e' = 1 / (1 + r(1/e − 1)), r = target peak / calibrating peak.
  const auto cal = h100_calibration();
  const parallel::Layout layout(1, 1, 1, 1);
  const auto h100 = config::load_chip("h100"), h20 = config::load_chip("h20");
  const auto capped = config::apply_caps(h100, config::parse_target("h100@tflops=148", "test"));
  const double F = 2.0 * 8192.0 * 8192.0 * 8192.0;
  for (const auto* chip : {&h20, &capped}) {
    const predict::CostModel m(*chip, config::Precision::kBf16, layout, &cal);
    const double P = chip->peak_flops(config::Precision::kBf16), r = P / 989.4e12;
    const double e = 1.0 / (1.0 + r * (1.0 / 0.75 - 1.0));
    EXPECT_NEAR(m.gemm_time(8192, 8192, 8192, F), F / (P * e * chip->efficiency.sustained), 1e-9) << chip->name;
    EXPECT_GT(e, 0.94);  // not the H100's 0.75
  }
  // The calibrating chip itself, and an H800 (same peak), keep the measured fraction.
  const predict::CostModel m100(h100, config::Precision::kBf16, layout, &cal);
  EXPECT_NEAR(m100.gemm_time(8192, 8192, 8192, F), F / (989.4e12 * 0.75 * h100.efficiency.sustained), 1e-9);
}

TEST(CostModel, Fp8RunsAsTransformerEngineRunsIt) {
  // Issue 13, mechanism 4. FP8 GEMMs at the FP8 peak with efficiency.gemm_fp8 plus the cast and
  // transpose of their activation-side input (4 B per element through HBM); attention and the
  // output layer at the bf16 rate; wgrad GEMMs reuse the casts.
  const parallel::Layout layout(1, 1, 1, 1);
  const auto h100 = config::load_chip("h100");
  const predict::CostModel bf16(h100, config::Precision::kBf16, layout), fp8(h100, config::Precision::kFp8, layout);
  plan::Op g;
  g.kind = plan::OpKind::kGemm, g.name = plan::OpName::kFc1, g.m = 8192, g.n = 8192, g.k = 8192;
  g.flops = 2.0 * 8192.0 * 8192.0 * 8192.0;
  auto fill = [](double x) { return x / (x + 64.0); };
  const double f3 = fill(8192) * fill(8192) * fill(8192), s = h100.efficiency.sustained;
  const double compute = g.flops / (1978.9e12 * h100.efficiency.gemm_fp8 * s * f3) + predict::CostModel::kKernelOverheadS;
  const double cast = 4.0 * 8192.0 * 8192.0 / (h100.hbm_Bps() * h100.efficiency.hbm) + predict::CostModel::kKernelOverheadS;
  EXPECT_NEAR(fp8.duration(g), compute + cast, 1e-12);
  g.wgrad = true;
  EXPECT_NEAR(fp8.duration(g), compute, 1e-12);
  // The gain over bf16 is the ratio of achieved rates, not the 2x of the peaks.
  g.wgrad = false;
  EXPECT_LT(bf16.duration(g) / fp8.duration(g), 1.0 * 1978.9 * 0.71 / (989.4 * 0.78));
  g.name = plan::OpName::kLogits;
  EXPECT_DOUBLE_EQ(fp8.duration(g), bf16.duration(g));
  plan::Op a;
  a.kind = plan::OpKind::kAttention, a.batch = 32, a.m = 8192, a.n = 8192, a.k = 128, a.causal = true;
  a.flops = 4.0 * 32 * 8192.0 * 8192.0 * 128, a.bytes = 2 * 32 * 4 * 8192 * 128;
  EXPECT_DOUBLE_EQ(fp8.duration(a), bf16.duration(a));
}

TEST(CostModel, AscendFullMeshGroupsBelowEightGetTheirLinksOnly) {
  // Issue 13, mechanism 3: on a 910B server's HCCS full mesh a group of n < 8 NPUs drives n−1 of 7
  // links. Published: a 2-NPU all_reduce reaches busbw 18 GB/s, 1/7 of the 8-NPU figure.
  const auto npu = config::load_chip("ascend-910b2");
  ASSERT_TRUE(npu.full_mesh);
  const double b8 = npu.nvlink_Bps_per_direction() * npu.efficiency.nvlink;  // 8-NPU bus bandwidth
  for (int64_t n : {2, 4, 8}) {
    const parallel::Layout layout(n, 1, 8 / n, 1);
    const predict::CostModel m(npu, config::Precision::kBf16, layout);
    const double S = double(int64_t(1) << 30);
    const double busbw = b8 * double(n - 1) / 7.0;
    const double want = 2.0 * double(n - 1) / double(n) * S / busbw + 2.0 * double(n - 1) * npu.nvlink_latency_us * 1e-6;
    EXPECT_NEAR(m.duration(tp_all_reduce(int64_t(1) << 30)), want, 1e-9) << n;
    if (n == 2) {
      EXPECT_NEAR(busbw / 1e9, 18.2, 0.5);  // the measured 18 GB/s
    }
  }
  // A switched domain (910C's UB Clos, H100's NVSwitch) gives any group the full figure.
  const auto ub = config::load_chip("ascend-910c");
  EXPECT_FALSE(ub.full_mesh);
  const predict::CostModel m(ub, config::Precision::kBf16, parallel::Layout(2, 1, 8, 1));
  const double S = double(int64_t(1) << 30), b = ub.nvlink_Bps_per_direction() * ub.efficiency.nvlink;
  EXPECT_NEAR(m.duration(tp_all_reduce(int64_t(1) << 30)), S / b + 2.0 * ub.nvlink_latency_us * 1e-6, 1e-9);
}

TEST(CostModel, NvlsAllReduceMatchesPublishedBusBandwidth) {
  // Issue 13, mechanism 3: on HGX H100 NCCL runs an 8-GPU all-reduce as NVLink SHARP. By hand:
  // ring rate 450 GB/s × 0.82 = 369 GB/s; NVLS rate 369 × 0.83 = 306.27 GB/s over (n+1)/n·S.
  const auto h100 = config::load_chip("h100");
  ASSERT_TRUE(h100.nvls);
  const double S = double(int64_t(1) << 32);
  const predict::CostModel m8(h100, config::Precision::kBf16, parallel::Layout(8, 1, 1, 1));
  const double t8 = 9.0 / 8.0 * S / 306.27e9 + 2 * 3.4e-6;
  EXPECT_NEAR(m8.duration(tp_all_reduce(int64_t(1) << 32)), t8, 1e-6 * t8);
  // nccl-tests busbw = S/t · 2(n−1)/n: ~480 GB/s measured (nccl-tests #212), algbw ~275.
  EXPECT_NEAR(S / t8 * 2 * 7 / 8 / 1e9, 480, 10);
  EXPECT_NEAR(S / t8 / 1e9, 275, 5);
  // 4 GPUs: the ring, 2·3/4·S/369 GB/s (busbw ~370 measured for both algorithms, NVIDIA/nccl #1455).
  const predict::CostModel m4(h100, config::Precision::kBf16, parallel::Layout(4, 1, 2, 1));
  EXPECT_NEAR(m4.duration(tp_all_reduce(int64_t(1) << 32)), 1.5 * S / 369e9 + 6 * 3.4e-6, 1e-9);
  // H800 (200 GB/s each way): busbw 2·7/8 · 200·0.82·0.83·8/9 = 211.7 GB/s; measured 215 (NVIDIA/nccl #1374).
  const predict::CostModel m800(config::load_chip("h800"), config::Precision::kBf16, parallel::Layout(8, 1, 1, 1));
  EXPECT_NEAR(S / m800.duration(tp_all_reduce(int64_t(1) << 32)) * 2 * 7 / 8 / 1e9, 215, 5);
  // A100's NVSwitch2 has no SHARP: the ring, 2·7/8·S / (300 GB/s × 0.77).
  const auto a100 = config::load_chip("a100");
  EXPECT_FALSE(a100.nvls);
  const predict::CostModel ma(a100, config::Precision::kBf16, parallel::Layout(8, 1, 1, 1));
  EXPECT_NEAR(ma.duration(tp_all_reduce(int64_t(1) << 32)), 1.75 * S / 231e9 + 14 * 3.4e-6, 1e-9);
}

TEST(CostModel, MultiNodeRingMatchesPublishedBusBandwidth) {
  // A tp-1 dp-16 all-reduce over 2 DGX A100 nodes (8 × 200 Gb/s HDR NICs each): per rank 15/16·2S,
  // 7/8 over NVLink at 300 × 0.77 = 231 GB/s, 1/8 over the NIC at 25 × 0.94 = 23.5 GB/s, pipelined:
  // NVLink leg 2·15/16·S·7/8/231e9 = S/140.8 GB/s, NIC leg 2·15/16·S/(8·23.5e9) = S/100.3 GB/s.
  const auto a100 = config::load_chip("a100");
  const predict::CostModel m(a100, config::Precision::kBf16, parallel::Layout(1, 1, 16, 1));
  plan::Op op = tp_all_reduce(int64_t(1) << 32);
  op.group = parallel::Group::kDp;
  ASSERT_EQ(m.span(parallel::Group::kDp).domains, 2);
  const double S = double(op.bytes);
  const double want = 2 * 15.0 / 16.0 * S / (8 * 23.5e9) + 2 * (7 * 3.4e-6 + 1 * 14e-6);
  EXPECT_NEAR(m.duration(op), want, 1e-9);
  // busbw = 8 NICs × 23.5 = 188 GB/s; measured 192 on DGX A100 (AddyLaddy, NVIDIA/nccl #812, quoted in #1576).
  EXPECT_NEAR(S / m.duration(op) * 2 * 15 / 16 / 1e9, 192, 6);
}

TEST(CostModel, WeightGradientReadsAndWritesItsFp32MainGrad) {
  // Megatron's gradient accumulation fusion: a wgrad GEMM adds into the fp32 main_grad (β = 1), so
  // its HBM traffic is bf16 A and B once plus the fp32 m×n gradient read and written (8 B per
  // element), 4 B with --grad-reduce-in-bf16. An expert's wgrad over its 256 tokens (Qwen3-30B-A3B's
  // fc1, 128 experts in one grouped GEMM, as `run` timed it on an H200) is then memory-bound: the
  // H200 took 1.20 ms, the bf16-output model 0.46 ms, this model 0.85 ms.
  const parallel::Layout layout(1, 1, 1, 1);
  const auto h200 = config::load_chip("h200");
  const predict::CostModel fp32_grad(h200, config::Precision::kBf16, layout), bf16_grad(h200, config::Precision::kBf16, layout, nullptr, 2);
  plan::Op g;
  g.kind = plan::OpKind::kGemm, g.name = plan::OpName::kExpertFc1, g.m = 2048, g.n = 1536, g.k = 256, g.batch = 128;
  g.flops = 2.0 * 128 * 2048.0 * 1536.0 * 256.0;
  g.wgrad = true;
  const double hbm = 4.8e12 * 0.85;  // configs/chips/h200.yaml: hbm_tbps 4.8, efficiency.hbm 0.85
  const double ab = 2.0 * 128 * (2048.0 * 256 + 256.0 * 1536), c = 128 * 2048.0 * 1536;
  EXPECT_NEAR(fp32_grad.duration(g), (ab + 8 * c) / hbm + predict::CostModel::kKernelOverheadS, 1e-12);
  // With a bf16 gradient buffer the traffic halves and the GEMM is at the compute bound (just above).
  EXPECT_GE(bf16_grad.duration(g), (ab + 4 * c) / hbm + predict::CostModel::kKernelOverheadS - 1e-12);
  EXPECT_LT(bf16_grad.duration(g), 0.6 * fp32_grad.duration(g));
  EXPECT_NEAR(fp32_grad.duration(g), 0.85e-3, 0.01e-3);
  // The forward GEMM writes bf16 once, and a dense wgrad over many tokens stays compute-bound.
  g.wgrad = false;
  EXPECT_LT(fp32_grad.duration(g), 0.5e-3);
  plan::Op d;
  d.kind = plan::OpKind::kGemm, d.name = plan::OpName::kQkv, d.m = 2048, d.n = 5120, d.k = 4096, d.wgrad = true;
  d.flops = 2.0 * 2048 * 5120.0 * 4096;
  plan::Op d_fwd = d;
  d_fwd.wgrad = false;
  EXPECT_DOUBLE_EQ(fp32_grad.duration(d), fp32_grad.duration(d_fwd));
}

TEST(CostModel, UnfusedAttentionMovesItsScoresThroughHbmAsMegatronsKernelsDo) {
  // Megatron's unfused core attention (SC21-era runs) in 2-byte passes over the b·a·s² scores.
  // Forward 6.5: QKᵀ writes S; the fused scale-mask-softmax reads S, writes P; dropout reads P,
  // writes P_d and a 1-byte mask; PV reads P_d. Backward 9.5: dO·Vᵀ writes dP_d; dV reads P_d;
  // dropout's backward reads dP_d and the mask, writes dP; the softmax backward reads P and dP,
  // writes dS; dQ and dK read dS once each. The backward has twice the forward's GEMMs, so
  // backward − 2 × forward leaves (9.5 − 13) passes and one launch fewer. Without dropout the
  // forward loses dropout's read of P, its writes of P_d and the mask (2.5 passes), and so does the
  // backward (dropout's backward reads dP_d and the mask and writes dP): 4 and 7 passes.
  const parallel::Layout layout(1, 1, 1, 1);
  const auto a100 = config::load_chip("a100");
  const predict::CostModel cost(a100, config::Precision::kFp16, layout);
  plan::Op fwd;
  fwd.kind = plan::OpKind::kAttention, fwd.name = plan::OpName::kCoreAttention, fwd.fused = false, fwd.causal = true;
  fwd.dropout = true;
  fwd.batch = 16 * 24, fwd.m = 2048, fwd.n = 2048, fwd.k = 96;  // A1: micro-batch 16, 24 heads of 96, s 2048
  fwd.flops = 4.0 * double(fwd.batch) * 2048.0 * 2048.0 * 96.0;
  plan::Op bwd = fwd;
  bwd.phase = plan::Phase::kBackward;
  bwd.flops = 2 * fwd.flops;
  const double scores = double(fwd.batch) * 2048.0 * 2048.0;
  const double bw = a100.hbm_Bps() * a100.efficiency.hbm;
  EXPECT_NEAR(cost.duration(bwd) - 2 * cost.duration(fwd), -3.5 * 2.0 * scores / bw - predict::CostModel::kKernelOverheadS,
              1e-9);
  EXPECT_GT(cost.duration(fwd), 6.5 * 2.0 * scores / bw);
  plan::Op fwd_nd = fwd, bwd_nd = bwd;
  fwd_nd.dropout = bwd_nd.dropout = false;
  EXPECT_NEAR(cost.duration(fwd) - cost.duration(fwd_nd), 2.5 * 2.0 * scores / bw, 1e-9);
  EXPECT_NEAR(cost.duration(bwd) - cost.duration(bwd_nd), 2.5 * 2.0 * scores / bw, 1e-9);
}

TEST(CostModel, ChannelLimitedCommunicatorsMoveAtMostTheirChannelsBandwidth) {
  // NVIDIA's MLPerf configs give NCCL's cp communicator one thread block (maxCTAs 1), dp 8, pp 2. A
  // collective over k channels reaches at most k × the per-channel rate, NCCL's own tuner cap
  // (src/graph/tuning.cc, perChMaxRingLL128Bws): 36.7 GB/s on Hopper, 40.0 on Blackwell, 20.0 on Ampere.
  const auto h200 = config::load_chip("h200"), b200 = config::load_chip("b200"), a100 = config::load_chip("a100");
  EXPECT_DOUBLE_EQ(h200.nccl_channel_gbyte_s, 36.7);
  EXPECT_DOUBLE_EQ(b200.nccl_channel_gbyte_s, 40.0);
  EXPECT_DOUBLE_EQ(a100.nccl_channel_gbyte_s, 20.0);
  // Llama 3.1 8B at 4,096 tokens per rank, cp 2 inside one HGX H200: each rank's K and V (8 groups ×
  // 128 × 2 tensors × 2 bytes per token) is 16.78 MB, the all-gather's S twice that. One channel:
  // (n−1)/n · S / 36.7 GB/s = 0.457 ms, where NVLink (450 × 0.82 = 369 GB/s) takes 0.045 ms + one 3.4 µs hop.
  const parallel::Layout layout(1, 2, 4, 1);
  plan::Op kv;
  kv.kind = plan::OpKind::kCollective, kv.coll = plan::CollKind::kAllGather, kv.group = parallel::Group::kCp;
  kv.bytes = int64_t(4096) * 1024 * 2 * 2 * 2;
  const double S = double(kv.bytes);
  const predict::CostModel free(h200, config::Precision::kBf16, layout);
  EXPECT_NEAR(free.duration(kv), 0.5 * S / 369e9 + 3.4e-6, 1e-9);
  const predict::CostModel one(h200, config::Precision::kBf16, layout, nullptr, 4, {0, 1, 0});
  EXPECT_NEAR(one.duration(kv), 0.5 * S / 36.7e9, 1e-12);
  EXPECT_NEAR(one.duration(kv) * 1e3, 0.457, 0.001);
  // Other groups keep their rate: a dp reduce-scatter under a cp-only limit, and a limit wide enough
  // (16 channels, 587 GB/s) not to bind.
  plan::Op rs = kv;
  rs.coll = plan::CollKind::kReduceScatter, rs.group = parallel::Group::kDpCp;
  const double rs_free = free.duration(rs);
  EXPECT_DOUBLE_EQ(one.duration(rs), rs_free);
  EXPECT_DOUBLE_EQ(predict::CostModel(h200, config::Precision::kBf16, layout, nullptr, 4, {16, 0, 0}).duration(rs), rs_free);
  // Two channels on the dp·cp group (8 ranks): 7/8 · S / 73.4 GB/s.
  EXPECT_NEAR(predict::CostModel(h200, config::Precision::kBf16, layout, nullptr, 4, {2, 0, 0}).duration(rs), 7.0 / 8.0 * S / 73.4e9,
              1e-12);
  // A pipeline transfer inside the domain through 2 channels: S / 73.4 GB/s + one NVLink hop.
  plan::Op send;
  send.kind = plan::OpKind::kSendRecv, send.is_send = true, send.group = parallel::Group::kPp, send.bytes = kv.bytes;
  const parallel::Layout pipe(1, 1, 1, 8);
  EXPECT_NEAR(predict::CostModel(h200, config::Precision::kBf16, pipe).duration(send), S / 369e9 + 3.4e-6, 1e-12);
  EXPECT_NEAR(predict::CostModel(h200, config::Precision::kBf16, pipe, nullptr, 4, {0, 0, 2}).duration(send), S / 73.4e9 + 3.4e-6,
              1e-12);
  // A receive completes with its send; across nodes (pp 16 over two HGX nodes) the NIC (400 Gb/s ×
  // efficiency.nic, 46 GB/s) is slower than 2 channels, so the limit does not bind.
  plan::Op recv = send;
  recv.is_send = false;
  EXPECT_EQ(predict::CostModel(h200, config::Precision::kBf16, pipe, nullptr, 4, {0, 0, 2}).duration(recv), 0.0);
  const parallel::Layout two_nodes(1, 1, 1, 16);
  const double nic = h200.nic_Bps() * h200.efficiency.nic;
  ASSERT_LT(nic, 73.4e9);
  EXPECT_NEAR(predict::CostModel(h200, config::Precision::kBf16, two_nodes, nullptr, 4, {0, 0, 2}).duration(send),
              S / nic + h200.nic_latency_us * 1e-6, 1e-12);
  // A chip that does not give the per-channel rate (Ascend: HCCL, not NCCL) ignores the limits.
  const auto npu = config::load_chip("ascend-910c");
  EXPECT_EQ(npu.nccl_channel_gbyte_s, 0);
  EXPECT_DOUBLE_EQ(predict::CostModel(npu, config::Precision::kBf16, layout, nullptr, 4, {1, 1, 1}).duration(kv),
                   predict::CostModel(npu, config::Precision::kBf16, layout).duration(kv));
}

TEST(CostModel, FlashAttentionPaysForDropoutAndForItsKernelGeneration) {
  // The chip fractions against the published measurements they come from.
  const auto a100 = config::load_chip("a100"), h100 = config::load_chip("h100"), b200 = config::load_chip("b200");
  // FlashAttention-1 paper, App. E.6 (A100, dropout 0.1, fwd + bwd): 9.16 / 7.64, 36.70 / 30.09, 146.13 / 118.50 ms.
  EXPECT_NEAR(a100.efficiency.attention_dropout, 3.0 / (9.16 / 7.64 + 36.70 / 30.09 + 146.13 / 118.50), 0.01);
  // TransformerEngine issue #3312 (H200, cuDNN, fwd + bwd): 0.594 ms without dropout, 0.614 ms with 0.1.
  EXPECT_NEAR(h100.efficiency.attention_dropout, 0.594 / 0.614, 0.005);
  // flash-attention PR #2597 (GB200): forward at 0.75-0.85, backward at 0.60-0.70 of the no-dropout rate,
  // the backward doing 2.5x the forward's FLOPs.
  EXPECT_NEAR(b200.efficiency.attention_dropout, 3.5 / (1 / 0.80 + 2.5 / 0.65), 0.01);
  // FlashAttention-2 paper, A100 fwd + bwd, causal, sequence 2k: FA1 69 vs FA2 155 TFLOP/s at head
  // dim 128, 77 vs 140 at 64; their mean ratio applied to the FA2-class efficiency.attention.
  EXPECT_NEAR(a100.efficiency.attention_fa1, a100.efficiency.attention * (69.0 / 155 + 77.0 / 140) / 2, 0.005);

  // A compute-bound causal flash attention op takes its executed FLOPs (half the accounted ones)
  // at the peak times the kernel fraction, times the dropout fraction when it drops out scores,
  // times the sustained derate, plus one launch.
  const parallel::Layout layout(1, 1, 1, 1);
  const predict::CostModel cost(a100, config::Precision::kBf16, layout);
  plan::Op op;
  op.kind = plan::OpKind::kAttention, op.name = plan::OpName::kCoreAttention, op.fused = true, op.causal = true;
  op.batch = 96, op.m = 2048, op.n = 2048, op.k = 128;
  op.flops = 4.0 * 96 * 2048.0 * 2048.0 * 128.0;
  op.bytes = int64_t(96) * 4 * 2048 * 128 * 2;
  const double peak = a100.peak_flops(config::Precision::kBf16), sus = a100.efficiency.sustained;
  auto expect = [&](double kernel, double keep) { return 0.5 * op.flops / (peak * kernel * keep * sus) + predict::CostModel::kKernelOverheadS; };
  EXPECT_NEAR(cost.duration(op), expect(a100.efficiency.attention, 1.0), 1e-12);
  op.dropout = true;
  EXPECT_NEAR(cost.duration(op), expect(a100.efficiency.attention, a100.efficiency.attention_dropout), 1e-12);
  op.fa1 = true;
  EXPECT_NEAR(cost.duration(op), expect(a100.efficiency.attention_fa1, a100.efficiency.attention_dropout), 1e-12);

  // A chip with no FlashAttention-1 figure refuses such a run, naming the field.
  const predict::CostModel hopper(h100, config::Precision::kBf16, layout);
  try {
    hopper.duration(op);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.field(), "efficiency.attention_fa1");
  }
}
