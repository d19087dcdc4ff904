// The timeline engine against hand-computed schedules, and the α–β collective model against its
// closed forms.
#include <gtest/gtest.h>

#include <algorithm>

#include "config/model_config.hpp"
#include "predict/cost_model.hpp"
#include "timeline/timeline.hpp"

using namespace capscale;
using plan::Op;
using plan::OpKind;
using plan::Stream;

namespace {
Op compute(int32_t dep = -1) {
  Op op;
  op.kind = OpKind::kGemm;
  op.stream = Stream::kCompute;
  if (dep >= 0) op.add_dep(dep, {});  // at most one producer: the op list is never read
  return op;
}
Op send(int64_t tag, int32_t dep) {
  Op op;
  op.kind = OpKind::kSendRecv;
  op.stream = Stream::kPpSend;
  op.is_send = true;
  op.tag = tag;
  op.add_dep(dep, {});
  return op;
}
Op recv(int64_t tag) {
  Op op;
  op.kind = OpKind::kSendRecv;
  op.stream = Stream::kPpRecv;
  op.tag = tag;
  return op;
}
}  // namespace

TEST(Timeline, TwoStageOneFOneBByHand) {
  // Two stages, two micro-batches, forward 1 s, backward 2 s, each transfer 0.5 s.
  // Stage 0 (1F1B, one warm-up): F0 S F1 S R B0 R B1.  Stage 1: R F0 B0 S R F1 B1 S.
  // By hand: stage 1 gets a0 at 1.5, runs F0 1.5–2.5, B0 2.5–4.5, sends g0 until 5.0, F1 4.5–5.5,
  // B1 5.5–7.5, g1 arrives at 8.0; stage 0 runs B0 5–7 and B1 8–10. Step 10 s; stage 0 computes
  // 6 s and waits 4 s for gradients (bubble).
  plan::Plan p;
  p.stages.resize(2);
  auto& s0 = p.stages[0].ops;
  s0 = {compute(), send(10, 0), compute(), send(11, 2), recv(20), compute(4), recv(21), compute(6)};
  auto& s1 = p.stages[1].ops;
  s1 = {recv(10), compute(0), compute(), send(20, 2), recv(11), compute(4), compute(), send(21, 6)};
  const std::vector<std::vector<double>> d = {{1, 0.5, 1, 0.5, 0, 2, 0, 2}, {0, 1, 2, 0.5, 0, 1, 2, 0.5}};
  timeline::TimelineOptions opt;
  opt.keep_timings = true;
  const auto r = timeline::simulate(p, d, opt);
  EXPECT_DOUBLE_EQ(r.step_time_s, 10.0);
  EXPECT_EQ(r.critical_stage, 0);
  EXPECT_DOUBLE_EQ(r.stage_end_s[1], 8.0);
  EXPECT_DOUBLE_EQ(r.timings[1][1].start_s, 1.5);
  EXPECT_DOUBLE_EQ(r.timings[0][5].start_s, 5.0);
  EXPECT_DOUBLE_EQ(r.breakdown.compute_s, 6.0);
  EXPECT_DOUBLE_EQ(r.breakdown.bubble_s, 4.0);
  EXPECT_DOUBLE_EQ(r.breakdown.total(), r.step_time_s);
}

TEST(Timeline, OverlapEdgePipelinedOrWholeAfterItsPartner) {
  // A GEMM of 4 s, then a reduce-scatter of 2 s on the tp stream pipelined behind it in 4 pieces
  // (tp_comm_overlap), then a GEMM of 1 s that needs the reduce-scatter. Pipelined: the collective
  // starts after the GEMM's first piece (1 s) and ends one of its pieces (0.5 s) after the GEMM
  // (4 s), at 4.5; the second GEMM ends at 5.5. Whole (the CPU executor's concurrent streams):
  // the collective runs 4–6 and the step ends at 7.
  plan::Plan p;
  p.stages.resize(1);
  Op rs;
  rs.kind = OpKind::kCollective;
  rs.stream = Stream::kTp;
  rs.coll = plan::CollKind::kReduceScatter;
  rs.overlap = {0, 4};
  p.stages[0].ops = {compute(), rs, compute(1)};
  const std::vector<std::vector<double>> d = {{4, 2, 1}};
  timeline::TimelineOptions opt;
  opt.keep_timings = true;
  auto r = timeline::simulate(p, d, opt);
  EXPECT_DOUBLE_EQ(r.timings[0][1].start_s, 1.0);
  EXPECT_DOUBLE_EQ(r.timings[0][1].end_s, 4.5);
  EXPECT_DOUBLE_EQ(r.step_time_s, 5.5);
  opt.chunked_overlap = false;
  r = timeline::simulate(p, d, opt);
  EXPECT_DOUBLE_EQ(r.timings[0][1].start_s, 4.0);
  EXPECT_DOUBLE_EQ(r.step_time_s, 7.0);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_comm_s, 2.0);
}

TEST(Timeline, CollectivesBesideTheComputeStreamSlowItByTheirShare) {
  // comm_contention s: while k collectives run on streams beside the compute stream, a compute op
  // progresses at 1 − k·s. A GEMM of 10 s from 0 beside a DP reduce-scatter of 4 s from 0 at
  // s = 0.25 does 3 s of work by t = 4 and the other 7 after: it ends at 11, and the 1 s it lost
  // is exposed communication, not compute.
  Op dp;
  dp.kind = OpKind::kCollective;
  dp.stream = Stream::kDp;
  dp.coll = plan::CollKind::kReduceScatter;
  plan::Plan p;
  p.stages.resize(1);
  p.stages[0].ops = {dp, compute()};
  timeline::TimelineOptions opt;
  opt.keep_timings = true;
  opt.comm_contention = 0.25;
  auto r = timeline::simulate(p, {{4, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.timings[0][1].end_s, 11.0);
  EXPECT_DOUBLE_EQ(r.step_time_s, 11.0);
  EXPECT_DOUBLE_EQ(r.breakdown.compute_s, 10.0);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_comm_s, 1.0);
  // Two at once (a CP exchange from 0 to 2 beside the DP one): 1 − 2·0.25 = 0.5 for 2 s (1 s of
  // work), 0.75 from 2 to 4 (1.5 s), then 7.5 s at full rate: ends at 11.5.
  Op cp = dp;
  cp.stream = Stream::kCp;
  p.stages[0].ops = {dp, cp, compute()};
  r = timeline::simulate(p, {{4, 2, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.timings[0][2].end_s, 11.5);
  EXPECT_DOUBLE_EQ(r.breakdown.exposed_comm_s, 1.5);
  // However many run, the compute stream keeps kMinComputeRate: at s = 0.5 two collectives
  // would stop it; it does 0.25·2 = 0.5 s of work by t = 2, 0.5·2 = 1 s by t = 4, then 8.5 s.
  opt.comm_contention = 0.5;
  r = timeline::simulate(p, {{4, 2, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.timings[0][2].end_s, 12.5);
  // A compute op that waits for the collective is not slowed by it (it is not beside it), and a
  // tensor-parallel collective under tp_comm_overlap (TE's userbuffers: all-gathers over the copy
  // engines) does not count, while one without it (NCCL, e.g. a column-parallel backward's
  // reduction beside the wgrad GEMM) does; nothing counts when the option is 0 (the default).
  opt.comm_contention = 0.25;
  p.stages[0].ops = {dp, compute(0)};
  r = timeline::simulate(p, {{4, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.step_time_s, 14.0);
  Op tp = dp;
  tp.stream = Stream::kTp;
  p.stages[0].ops = {tp, compute()};
  r = timeline::simulate(p, {{4, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.step_time_s, 11.0);
  p.parallel.tp_comm_overlap = true;
  r = timeline::simulate(p, {{4, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.step_time_s, 10.0);
  p.parallel.tp_comm_overlap = false;
  p.stages[0].ops = {dp, compute()};
  opt.comm_contention = 0;
  r = timeline::simulate(p, {{4, 10}}, opt);
  EXPECT_DOUBLE_EQ(r.step_time_s, 10.0);
}

TEST(Timeline, OneFOneBMakespanClosedForm) {
  // With uniform stages and free communication, 1F1B takes (m + p − 1)·(F + B)
  // (Narayanan et al. SC21 §2.2: bubble fraction (p − 1)/m).
  const auto m = config::load_model("tiny-gpt");
  config::ParallelConfig cfg;
  cfg.pp = 4, cfg.global_batch_size = 8;
  cfg = config::resolve(cfg, m, 4, "test");
  const auto plan = plan::build_plan(m, cfg);
  std::vector<std::vector<double>> d;
  double F = 0, B = 0;
  for (const auto& st : plan.stages) {
    d.emplace_back();
    for (const auto& op : st.ops) {
      const bool layer_gemm = op.kind == OpKind::kGemm && op.layer >= 0;
      d.back().push_back(layer_gemm ? 1e-3 : 0.0);
      if (layer_gemm && st.pp_rank == 0 && op.microbatch == 0) (op.phase == plan::Phase::kForward ? F : B) += 1e-3;
    }
  }
  const auto r = timeline::simulate(plan, d);
  EXPECT_NEAR(r.step_time_s, (8 + 4 - 1) * (F + B), 1e-9);
}

TEST(CostModel, RingAllReduceAlphaBeta) {
  collectives::LinkParams link;
  link.intra_Bps = 100e9, link.intra_alpha_s = 5e-6, link.inter_Bps = 40e9, link.inter_alpha_s = 10e-6;
  const double S = 1 << 30;
  // One domain of 8: 2(n−1)/n·S/B + 2(n−1)α.
  collectives::GroupSpan in_node{8, 8, 1};
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllReduce, S, in_node, link), 2 * 7.0 / 8 * S / 100e9 + 14 * 5e-6, 1e-12);
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllGather, S, in_node, link), 7.0 / 8 * S / 100e9 + 7 * 5e-6, 1e-12);
  // 2 domains × 8: NCCL's ring, each rank forwarding 15/16·S per phase, 7/8 of it over NVLink and
  // 1/8 over its NIC, pipelined: NVLink leg 15/16·7/8·S/100 GB/s against NIC leg 15/16·S/(8·40 GB/s);
  // the NVLink leg is the slower. Latency 7 NVLink steps + min(D−1, 2⌈log2 D⌉) = 1 NIC step per phase (the tree's;
  // the ring's 14 + 1 is more).
  collectives::GroupSpan two{16, 8, 2};
  const double nvlink_leg = 15.0 / 16 * 7.0 / 8 * S / 100e9, nic_leg = 15.0 / 16 * S / 320e9;
  EXPECT_GT(nvlink_leg, nic_leg);
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllReduce, S, two, link), 2 * (nvlink_leg + 7 * 5e-6 + 1 * 10e-6), 1e-12);
  // Reduce-scatter and all-gather run only as rings in NCCL (src/graph/tuning.cc): n−1 steps per
  // phase, D−1 of them through a NIC. 48 ranks in 6 domains: 42 NVLink + 5 NIC steps. 336 ranks,
  // 2 per domain (tp 4 on 8-GPU nodes): 168 NVLink + 167 NIC steps. An all-reduce over the latter
  // takes NCCL's tree instead: 1 NVLink + 2⌈log2 168⌉ = 16 NIC steps per phase.
  collectives::GroupSpan six{48, 8, 6}, wide{336, 2, 168};
  const double bw6 = std::max(47.0 / 48 * 7.0 / 8 * S / 100e9, 47.0 / 48 * S / (8 * 40e9));
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kReduceScatter, S, six, link), bw6 + 42 * 5e-6 + 5 * 10e-6, 1e-12);
  const double bw336 = std::max(335.0 / 336 * 0.5 * S / 100e9, 335.0 / 336 * S / (2 * 40e9));
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllGather, S, wide, link), bw336 + 168 * 5e-6 + 167 * 10e-6, 1e-12);
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllReduce, S, wide, link), 2 * (bw336 + 1 * 5e-6 + 16 * 10e-6), 1e-12);
  // One rank per domain (dp at tp 8): NCCL ≥ 2.23 runs it as PAT, ⌈log2 168⌉ = 8 NIC steps.
  collectives::GroupSpan flat{168, 1, 168};
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kReduceScatter, S, flat, link), 167.0 / 168 * S / 40e9 + 8 * 10e-6, 1e-12);
  // nccl-tests bus bandwidth factors.
  EXPECT_DOUBLE_EQ(collectives::bus_factor(plan::CollKind::kAllReduce, 8), 2 * 7.0 / 8);
  EXPECT_DOUBLE_EQ(collectives::bus_factor(plan::CollKind::kReduceScatter, 8), 7.0 / 8);
}

TEST(CostModel, GroupSpanFromLayout) {
  // tp 8 inside one 8-GPU node; dp groups stride 8 → one member per node.
  const parallel::Layout l(8, 1, 16, 2);
  const auto tp = collectives::group_span(l, parallel::Group::kTp, 8);
  EXPECT_EQ(tp.domains, 1);
  const auto dp = collectives::group_span(l, parallel::Group::kDp, 8);
  EXPECT_EQ(dp.size, 16);
  EXPECT_EQ(dp.domains, 16);
  EXPECT_EQ(dp.per_domain, 1);
}
