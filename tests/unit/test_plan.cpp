// Plan builder: Megatron's uneven layer split, schedule orders, structural invariants (every
// receive has exactly one matching send, dependencies point backwards), op shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <numeric>

#include "common/error.hpp"
#include "config/model_config.hpp"
#include "model/accounting.hpp"
#include "plan/plan.hpp"

using namespace capscale;
using plan::OpKind;

namespace {
// Whether `op` waits for op `d` of its stage.
bool waits_for(const plan::Op& op, int32_t d) {
  return std::find(op.deps.begin(), op.deps.begin() + op.ndeps, d) != op.deps.begin() + op.ndeps;
}
}  // namespace

TEST(Plan, UnevenLayerSplitLikeMegatron) {
  // Llama 3 405B: 126 layers on pp 16 → 7 on the first and last stage, 8 elsewhere.
  const auto s = plan::split_layers(126, 16, 1);
  EXPECT_EQ(s.front(), 7);
  EXPECT_EQ(s.back(), 7);
  for (size_t i = 1; i + 1 < s.size(); ++i) EXPECT_EQ(s[i], 8);
  EXPECT_EQ(std::accumulate(s.begin(), s.end(), int64_t(0)), 126);
  EXPECT_EQ(plan::split_layers(80, 4, 5), std::vector<int64_t>(20, 4));
  const auto v = plan::split_layers(126, 8, 8);  // 64 chunks: first and last get 1 layer
  EXPECT_EQ(v.front(), 1);
  EXPECT_EQ(v.back(), 1);
  EXPECT_EQ(std::accumulate(v.begin(), v.end(), int64_t(0)), 126);
  // Megatron's --account-for-embedding/loss-in-pipeline-split: 30 layers + embedding + loss over
  // 4 stages = 8 each, so the end stages hold 7 decoder layers and the middle ones 8.
  EXPECT_EQ(plan::split_layers(30, 4, 1, true, true), (std::vector<int64_t>{7, 8, 8, 7}));
  EXPECT_EQ(plan::split_layers(31, 4, 1, false, true), (std::vector<int64_t>{8, 8, 8, 7}));
}

TEST(Plan, OneFOneBOrder) {
  config::ParallelConfig p;
  p.pp = 4, p.dp = 1, p.global_batch_size = 8, p.micro_batch_size = 1;
  // Stage 0: 3 warm-up forwards, then alternate, then 3 cool-down backwards.
  const auto o = plan::schedule_order(p, 0);
  ASSERT_EQ(o.size(), 16u);
  EXPECT_TRUE(o[0].forward && o[1].forward && o[2].forward);
  EXPECT_TRUE(o[3].forward && o[3].microbatch == 3);
  EXPECT_TRUE(!o[4].forward && o[4].microbatch == 0);
  EXPECT_TRUE(!o[15].forward && o[15].microbatch == 7);
  // Last stage: no warm-up, strict F/B alternation.
  const auto l = plan::schedule_order(p, 3);
  for (size_t i = 0; i < l.size(); ++i) EXPECT_EQ(l[i].forward, i % 2 == 0);
}

TEST(Plan, InterleavedOrderMatchesMegatron) {
  config::ParallelConfig p;
  p.pp = 2, p.vpp = 2, p.dp = 1, p.global_batch_size = 4, p.micro_batch_size = 1;
  // Megatron: virtual micro-batch k runs chunk (k mod 4)/2 and micro-batch (k/4)·2 + k mod 2.
  // Stage 0 warm-up = (2−0−1)·2 + (2−1)·2 = 4 forwards: (mb0,c0) (mb1,c0) (mb0,c1) (mb1,c1).
  const auto o = plan::schedule_order(p, 0);
  ASSERT_EQ(o.size(), 16u);
  const std::vector<std::pair<int64_t, int64_t>> warm = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(o[i].forward);
    EXPECT_EQ(o[i].microbatch, warm[i].first);
    EXPECT_EQ(o[i].chunk, warm[i].second);
  }
  // The first backward runs the last chunk of micro-batch 0.
  EXPECT_FALSE(o[5].forward);
  EXPECT_EQ(o[5].chunk, 1);
  EXPECT_EQ(o[5].microbatch, 0);
}

TEST(Plan, SendsMatchReceivesAndDepsPointBack) {
  const auto m = config::load_model("tiny-demo");
  for (auto [pp, vpp] : {std::pair{2, 1}, std::pair{4, 1}, std::pair{2, 2}}) {
    config::ParallelConfig p;
    p.tp = 2, p.pp = pp, p.vpp = vpp, p.sequence_parallel = true, p.global_batch_size = 8, p.zero = 1;
    p = config::resolve(p, m, 2 * pp * 2, "test");
    const auto plan = plan::build_plan(m, p);
    std::map<int64_t, int> sends, recvs;
    for (const auto& st : plan.stages) {
      for (size_t i = 0; i < st.ops.size(); ++i) {
        const auto& op = st.ops[i];
        for (int d = 0; d < op.ndeps; ++d) EXPECT_LT(op.deps[d], int32_t(i));
        if (op.kind == OpKind::kSendRecv) (op.is_send ? sends : recvs)[op.tag]++;
      }
    }
    EXPECT_EQ(sends, recvs) << "pp " << pp << " vpp " << vpp;
    for (const auto& [tag, n] : sends) EXPECT_EQ(n, 1);
    // Each of the m micro-batches crosses pp·vpp − 1 chunk boundaries forward and backward.
    EXPECT_EQ(int64_t(sends.size()), 2 * p.num_microbatches() * (pp * vpp - 1));
  }
}

TEST(Plan, GemmShapesFollowMegatronLinears) {
  const auto m = config::load_model("llama3.1-70b");
  config::ParallelConfig p;
  p.tp = 8, p.pp = 1, p.global_batch_size = 1, p.seq_length = 4096;
  p = config::resolve(p, m, 8, "test");
  const auto plan = plan::build_plan(m, p);
  const auto& ops = plan.stages[0].ops;
  auto find = [&](plan::OpName name, plan::Phase ph, bool wgrad) -> const plan::Op& {
    for (const auto& op : ops)
      if (op.name == name && op.phase == ph && op.wgrad == wgrad && op.kind == OpKind::kGemm) return op;
    throw std::runtime_error("op not found");
  };
  // QKV: [tokens × h]·[h × (q + 2·kv)/tp]; 64 heads, 8 groups, head dim 128.
  const auto& qkv = find(plan::OpName::kQkv, plan::Phase::kForward, false);
  EXPECT_EQ(qkv.m, 4096);
  EXPECT_EQ(qkv.n, (8192 + 2 * 8 * 128) / 8);
  EXPECT_EQ(qkv.k, 8192);
  // SwiGLU FC1 has the gate and up projections: 2·ffn/tp columns.
  EXPECT_EQ(find(plan::OpName::kFc1, plan::Phase::kForward, false).n, 2 * 28672 / 8);
  // FC2's wgrad: [ffn/tp × tokens]·[tokens × h].
  const auto& w = find(plan::OpName::kFc2, plan::Phase::kBackward, true);
  EXPECT_EQ(w.m, 28672 / 8);
  EXPECT_EQ(w.n, 8192);
  EXPECT_EQ(w.k, 4096);
}

TEST(Plan, Fp8ReducesAmaxesOverTheStageOncePerUnit) {
  // Transformer Engine's delayed scaling all-reduces the FP8 amaxes over Megatron's amax group
  // (tp·cp·dp, the whole stage) when a chunk's fp8_autocast region exits in forward and when its
  // backward ends: one fp32 per linear layer's input and weight forward (8 per dense layer), one
  // per output gradient backward (4). The unit's pipeline send waits for it. None in bf16, and
  // none when the stage is one rank.
  const auto m = config::load_model("tiny-gpt");
  for (const auto precision : {config::Precision::kFp8, config::Precision::kBf16}) {
    config::ParallelConfig p;
    p.tp = 2, p.pp = 2, p.vpp = 2, p.global_batch_size = 8, p.precision = precision;
    p = config::resolve(p, m, 8, "test");  // dp 2
    const auto plan = plan::build_plan(m, p);
    for (const auto& st : plan.stages) {
      int64_t forward = 0, backward = 0;
      for (size_t i = 0; i < st.ops.size(); ++i) {
        const auto& op = st.ops[i];
        if (op.name != plan::OpName::kAmaxReduce) continue;
        EXPECT_EQ(op.kind, OpKind::kCollective);
        EXPECT_EQ(op.coll, plan::CollKind::kAllReduce);
        EXPECT_EQ(op.group, parallel::Group::kTpCpDp);
        const int64_t layers = m.num_layers / (p.pp * p.vpp);
        EXPECT_EQ(op.bytes, layers * 4 * (op.phase == plan::Phase::kForward ? 2 : 1) * 4);
        (op.phase == plan::Phase::kForward ? forward : backward) += 1;
        // The unit's send (the next send before the next unit's reduction, if any) waits for it.
        for (size_t j = i + 1; j < st.ops.size() && st.ops[j].name != plan::OpName::kAmaxReduce; ++j) {
          if (st.ops[j].kind != OpKind::kSendRecv || !st.ops[j].is_send) continue;
          const auto& d = st.ops[j].deps;
          EXPECT_NE(std::find(d.begin(), d.begin() + st.ops[j].ndeps, int32_t(i)), d.begin() + st.ops[j].ndeps);
          break;
        }
      }
      const int64_t units = precision == config::Precision::kFp8 ? p.num_microbatches() * p.vpp : 0;
      EXPECT_EQ(forward, units) << config::to_string(precision) << " stage " << st.pp_rank;
      EXPECT_EQ(backward, units) << config::to_string(precision) << " stage " << st.pp_rank;
    }
  }
  config::ParallelConfig one;
  one.precision = config::Precision::kFp8, one.global_batch_size = 2;
  one = config::resolve(one, m, 1, "test");
  const auto single = plan::build_plan(m, one);
  for (const auto& op : single.stages[0].ops) EXPECT_NE(op.name, plan::OpName::kAmaxReduce);
}

TEST(Plan, GradientBytesFollowTheReductionPrecision) {
  // Megatron reduces bf16-trained gradients in fp32 unless --grad-reduce-in-bf16, and keeps
  // fp16-trained ones in fp16 (no --accumulate-allreduce-grads-in-fp32): the DP reduce-scatter
  // carries 4 (or 2) bytes per parameter of the rank, all buckets together.
  const auto m = config::load_model("tiny-gpt");
  for (bool bf16 : {false, true})
    for (auto precision : {config::Precision::kBf16, config::Precision::kFp16}) {
      config::ParallelConfig p;
      p.tp = 2, p.zero = 1, p.global_batch_size = 4, p.grad_reduce_in_bf16 = bf16, p.precision = precision;
      p = config::resolve(p, m, 4, "test");
      const auto plan = plan::build_plan(m, p);
      const auto& st = plan.stages[0];
      int64_t grad_bytes = 0, optimizer_bytes = 0;
      for (const auto& op : st.ops) {
        if (op.name == plan::OpName::kGradReduce) grad_bytes += op.bytes;
        if (op.name == plan::OpName::kOptimizerStep) optimizer_bytes = op.bytes;
      }
      const int64_t per_param = bf16 || precision == config::Precision::kFp16 ? 2 : 4;
      EXPECT_EQ(grad_bytes, st.params * per_param) << "bf16 " << bf16;
      // Adam on the 1/dp shard (30 B per parameter) plus the memset of the whole gradient buffer.
      EXPECT_EQ(optimizer_bytes, (st.params + 1) / 2 * 30 + st.params * per_param) << "bf16 " << bf16;
    }
}

TEST(Plan, OptimizerStepShardsDenseOverDpAndExpertsOverEdp) {
  // ZeRO-1 splits the dense parameters' Adam state over dp·cp and the routed experts' over the
  // expert-data-parallel group (tp·cp·dp / (ep·etp)), each rounded up; the gradient buffer's memset
  // covers every parameter. By hand: tp 2, dp 4, cp 1, ep 4, etp 1 → edp 2; 10 dense and 7 expert
  // parameters: (⌈10/4⌉ + ⌈7/2⌉)·30 + 17·4 (fp32 gradients) = 7·30 + 68 = 278 bytes.
  config::ParallelConfig p;
  p.tp = 2, p.dp = 4, p.cp = 1, p.ep = 4, p.etp = 1, p.zero = 1;
  ASSERT_EQ(p.edp(), 2);
  EXPECT_EQ(plan::optimizer_step_bytes(p, 10, 7), 278);
  EXPECT_TRUE(p.gathers_params());
  // Without ZeRO every rank updates all of them: 17·30 + 17·4; nothing is gathered.
  p.zero = 0;
  EXPECT_EQ(plan::optimizer_step_bytes(p, 10, 7), 17 * 30 + 17 * 4);
  EXPECT_FALSE(p.gathers_params());
  // One replica (dp 1, ep 2 → edp 1) shards and gathers nothing; bf16 gradients halve the memset.
  p.zero = 1, p.dp = 1, p.ep = 2, p.grad_reduce_in_bf16 = true;
  ASSERT_EQ(p.edp(), 1);
  EXPECT_EQ(plan::optimizer_step_bytes(p, 10, 7), 17 * 30 + 17 * 2);
  EXPECT_FALSE(p.gathers_params());
}

TEST(Plan, Fp8CastsTheLayersWeightsOncePerStep) {
  // Transformer Engine casts each FP8 linear layer's weight once per step (the first micro-batch;
  // later ones reuse the cached FP8 weight and its transpose): read 2 B, write 1 + 1 B per weight.
  // Llama 3.1 8B at tp 1 by hand: per layer QKV 4096·(4096 + 2·8·128), projection 4096², FC1
  // 2·14336·4096, FC2 14336·4096 and the two RMSNorms' 2·4096, 32 layers; the embedding and the
  // output layer stay bf16. The cast is per step, not per micro-batch.
  const auto m = config::load_model("llama3.1-8b");
  const int64_t layer = 4096LL * (4096 + 2 * 8 * 128) + 4096LL * 4096 + 2LL * 14336 * 4096 + 14336LL * 4096 + 2 * 4096;
  for (int64_t gbs : {2, 8}) {
    std::map<config::Precision, int64_t> optimizer_bytes;
    for (auto precision : {config::Precision::kBf16, config::Precision::kFp8}) {
      config::ParallelConfig p;
      p.global_batch_size = gbs, p.zero = 1, p.seq_length = 1024, p.precision = precision;
      p = config::resolve(p, m, 2, "test");
      const auto plan = plan::build_plan(m, p);
      for (const auto& op : plan.stages[0].ops)
        if (op.name == plan::OpName::kOptimizerStep) optimizer_bytes[precision] = op.bytes;
    }
    EXPECT_EQ(optimizer_bytes[config::Precision::kFp8] - optimizer_bytes[config::Precision::kBf16], 4 * 32 * layer)
        << "global batch " << gbs;
  }
}

TEST(Plan, GradAllReduceIsDeepSpeedsBf16Optimizer) {
  // DeepSpeed's BF16_Optimizer (BLOOM): the whole fp32 gradient all-reduced over dp, the optimizer
  // on the 1/dp shard, then the bf16 parameters all-gathered; on a ring that is 2(n − 1)/n · 4 + (n −
  // 1)/n · 2 bytes per parameter against the distributed optimizer's (n − 1)/n · (4 + 2).
  const auto m = config::load_model("tiny-gpt");
  config::ParallelConfig p;
  p.zero = 1, p.global_batch_size = 4, p.grad_all_reduce = true;
  p = config::resolve(p, m, 4, "test");
  const auto plan = plan::build_plan(m, p);
  const auto& st = plan.stages[0];
  int64_t all_reduced = 0, gathered = 0;
  for (const auto& op : st.ops) {
    if (op.name == plan::OpName::kGradReduce) {
      EXPECT_EQ(op.coll, plan::CollKind::kAllReduce);
      all_reduced += op.bytes;
    }
    if (op.name == plan::OpName::kParamGather) gathered += op.bytes;
  }
  EXPECT_EQ(all_reduced, st.params * 4);
  EXPECT_GT(gathered, 0);
  // Memory as ZeRO-1 (the optimizer state sharded over dp), with the bf16 .grad DeepSpeed keeps
  // beside the fp32 buffer: 2 bytes per parameter more.
  config::ParallelConfig z = p;
  z.grad_all_reduce = false;
  const auto with = model::memory_per_rank(m, p), without = model::memory_per_rank(m, z);
  EXPECT_DOUBLE_EQ(with.optimizer, without.optimizer);
  EXPECT_DOUBLE_EQ(with.grads - without.grads, 2.0 * double(st.params));
  // Without ZeRO-1 it means nothing and is refused, naming the flag.
  config::ParallelConfig bad;
  bad.zero = 0, bad.grad_all_reduce = true, bad.global_batch_size = 4;
  try {
    config::resolve(bad, m, 4, "test");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("grad-all-reduce"), std::string::npos) << e.what();
  }
}

TEST(Plan, EmbeddingBackwardAccumulatesADenseGradient) {
  // Lookup backward: read + write the [tokens × h] gradient (2 × 2 B), plus the dense
  // [V/tp × h] weight gradient: zero-fill 2 B, write 2 B, add into the main grad: read g + 2,
  // write g, with g = 4 B (fp32) or 2 B (--grad-reduce-in-bf16).
  const auto m = config::load_model("tiny-gpt");
  for (bool bf16 : {false, true}) {
    config::ParallelConfig p;
    p.tp = 2, p.global_batch_size = 1, p.sequence_parallel = true, p.grad_reduce_in_bf16 = bf16;
    p = config::resolve(p, m, 2, "test");
    const auto plan = plan::build_plan(m, p);
    int64_t bytes = -1;
    for (const auto& op : plan.stages[0].ops)
      if (op.name == plan::OpName::kEmbedding && op.phase == plan::Phase::kBackward) bytes = op.bytes;
    const int64_t tokens = p.seq_length * p.micro_batch_size;
    EXPECT_EQ(bytes, 2 * tokens * m.hidden_size * 2 + m.vocab_size / 2 * m.hidden_size * (bf16 ? 10 : 14)) << "bf16 " << bf16;
  }
}

namespace {
plan::Op on_stream(plan::Stream s) {
  plan::Op op;
  op.stream = s;
  return op;
}
}  // namespace

TEST(Plan, FifthProducerMergesOnlyWithASameStreamProducer) {
  using plan::Stream;
  // Producers 0..3 on four different streams, 4 on the tp stream after 1, 5 on a fifth stream.
  const std::vector<plan::Op> ops = {on_stream(Stream::kCompute), on_stream(Stream::kTp), on_stream(Stream::kDp),
                                     on_stream(Stream::kPpRecv),  on_stream(Stream::kTp), on_stream(Stream::kCp)};
  plan::Op op;
  for (int32_t i = 0; i < 4; ++i) op.add_dep(i, ops);
  op.add_dep(2, ops);  // a repeat is ignored
  ASSERT_EQ(op.ndeps, 4);
  // Op 4 runs after op 1 on the tp stream, so waiting for 4 implies waiting for 1: 1 is replaced.
  op.add_dep(4, ops);
  EXPECT_EQ(op.ndeps, 4);
  EXPECT_EQ((std::array<int32_t, 4>{0, 4, 2, 3}), op.deps);
  // An earlier same-stream producer after a later one changes nothing.
  op.add_dep(1, ops);
  EXPECT_EQ((std::array<int32_t, 4>{0, 4, 2, 3}), op.deps);
  // Op 5 is on the cp stream, held by no producer: dropping any would be unsound.
  EXPECT_THROW(op.add_dep(5, ops), RuntimeError);
  EXPECT_THROW(op.add_dep(17, ops), RuntimeError);  // out of range: a builder bug too
}

TEST(Plan, BuilderStaysWithinFourProducersOrSameStreamMerges) {
  // The richest dependency sets come with pp + vpp, cp, SP with TP comm overlap, ZeRO and a
  // non-overlapped DP reduction; add_dep throws if the builder ever needs a fifth producer on a
  // stream none of the four held ones is on.
  const auto m = config::load_model("tiny-demo");
  for (bool overlap_grad : {false, true}) {
    for (bool tp_overlap : {false, true}) {
      config::ParallelConfig p;
      p.tp = 2, p.pp = 2, p.vpp = 2, p.cp = 2, p.sequence_parallel = true, p.global_batch_size = 8, p.zero = 1;
      p.overlap_grad_reduce = overlap_grad, p.tp_comm_overlap = tp_overlap;
      p = config::resolve(p, m, 2 * 2 * 2 * 2, "test");
      EXPECT_NO_THROW(plan::build_plan(m, p)) << "overlap_grad_reduce " << overlap_grad << " tp_comm_overlap " << tp_overlap;
    }
  }
}

TEST(Plan, CopiedLayersEqualDerivedLayers) {
  // The builder copies repeated layers (BuildOptions::copy_layers); the reference derives every
  // op. Both must give the same plan, field by field, over schedules, recompute modes, SP with TP
  // comm overlap, CP, ZeRO and non-overlapped DP reductions.
  const auto same = [](const plan::Op& a, const plan::Op& b) {
    return a.kind == b.kind && a.stream == b.stream && a.phase == b.phase && a.name == b.name && a.coll == b.coll &&
           a.group == b.group && a.causal == b.causal && a.is_send == b.is_send && a.wgrad == b.wgrad &&
           a.fused == b.fused && a.overlap.partner == b.overlap.partner && a.overlap.chunks == b.overlap.chunks &&
           a.layer == b.layer && a.microbatch == b.microbatch && a.chunk == b.chunk && a.peer == b.peer &&
           a.tag == b.tag && a.m == b.m && a.n == b.n && a.k == b.k && a.batch == b.batch && a.bytes == b.bytes &&
           a.flops == b.flops && a.ndeps == b.ndeps && a.deps == b.deps;
  };
  // A compact plan (BuildOptions::compact) stores only the derived ops; StagePlan::op expands its
  // copies, which must give the same ops too.
  const auto tiny = config::load_model("tiny-demo");
  plan::BuildOptions derive, compact;
  derive.copy_layers = false;
  compact.compact = true;
  int copied_plans = 0;
  const auto check = [&](const config::ModelConfig& m, const config::ParallelConfig& p, int i) {
    const auto fast = plan::build_plan(m, p), ref = plan::build_plan(m, p, derive), small = plan::build_plan(m, p, compact);
    ASSERT_EQ(fast.stages.size(), ref.stages.size());
    for (size_t s = 0; s < ref.stages.size(); ++s) {
      ASSERT_EQ(fast.stages[s].ops.size(), ref.stages[s].ops.size()) << "config " << i << " stage " << s;
      ASSERT_EQ(small.stages[s].size(), int32_t(ref.stages[s].ops.size())) << "config " << i << " stage " << s;
      if (!small.stages[s].copies.empty()) {
        EXPECT_LT(small.stages[s].ops.size(), ref.stages[s].ops.size());
      }
      for (size_t j = 0; j < ref.stages[s].ops.size(); ++j) {
        ASSERT_TRUE(same(fast.stages[s].ops[j], ref.stages[s].ops[j])) << "config " << i << " stage " << s << " op " << j;
        ASSERT_TRUE(same(small.stages[s].op(int32_t(j)), ref.stages[s].ops[j])) << "compact config " << i << " stage " << s << " op " << j;
      }
    }
    EXPECT_EQ(small.num_ops(), ref.num_ops());
  };
  for (int i = 0; i < 96; ++i) {
    config::ParallelConfig p;
    p.tp = (i & 1) ? 2 : 1, p.pp = (i & 2) ? 2 : 1, p.vpp = (p.pp > 1 && (i & 4)) ? 2 : 1, p.cp = (i & 8) ? 2 : 1;
    p.sequence_parallel = p.tp > 1 && (i & 16), p.tp_comm_overlap = p.sequence_parallel && (i % 3 == 0);
    p.zero = (i & 32) ? 1 : 0, p.overlap_grad_reduce = (i % 5 != 0);
    p.recompute = i % 3 == 0 ? config::Recompute::kNone : i % 3 == 1 ? config::Recompute::kSelective : config::Recompute::kFull;
    p.global_batch_size = 8 * (1 + i % 2);
    auto m = tiny;
    m.num_layers = i % 4 == 0 ? 4 : i % 4 == 1 ? 7 : 12;  // 7: Megatron's uneven split
    if (!config::violations(p, m, 2 * p.tp * p.pp * p.cp).empty()) continue;
    p = config::resolve(p, m, 2 * p.tp * p.pp * p.cp, "test");
    check(m, p, i);
    ++copied_plans;
  }
  EXPECT_GT(copied_plans, 40);
  // Mixture of experts: expert parallelism with and without TP, the dense first layer, pipelines.
  const auto moe = config::load_model("tiny-moe");
  for (int i = 0; i < 8; ++i) {
    config::ParallelConfig p;
    p.tp = (i & 1) ? 2 : 1, p.pp = (i & 2) ? 2 : 1, p.ep = (i & 4) ? 4 : 2, p.zero = 1, p.global_batch_size = 16;
    p.sequence_parallel = p.tp > 1, p.recompute = config::Recompute::kSelective;
    const int64_t gpus = p.tp * p.pp * 4;
    if (!config::violations(p, moe, gpus).empty()) continue;
    check(moe, config::resolve(p, moe, gpus, "test"), 100 + i);
  }
}

TEST(Plan, ContextParallelExchangeIsPipelinedWithAttention) {
  // Transformer Engine's ring attention (AttnFuncWithCPAndKVP2P): attention runs chunk by chunk
  // behind the K/V exchange, and the K/V gradients travel back behind the attention backward. The
  // plan states both as overlap edges in cp pieces (the edge tp_comm_overlap uses).
  const auto m = config::load_model("tiny-demo");
  for (const auto recompute : {config::Recompute::kNone, config::Recompute::kFull}) {
    config::ParallelConfig p;
    p.tp = 2, p.cp = 2, p.pp = 2, p.global_batch_size = 8, p.recompute = recompute, p.sequence_parallel = true;
    p = config::resolve(p, m, 16, "test");
    const auto plan = plan::build_plan(m, p);
    int forward = 0, backward = 0;
    for (const auto& st : plan.stages) {
      for (size_t i = 0; i < st.ops.size(); ++i) {
        const plan::Op& op = st.ops[i];
        if (op.kind == plan::OpKind::kAttention && op.phase != plan::Phase::kBackward) {
          ASSERT_GE(op.overlap.partner, 0) << op.label();
          const plan::Op& kv = st.ops[size_t(op.overlap.partner)];
          EXPECT_EQ(kv.name, plan::OpName::kCpKv);
          EXPECT_EQ(kv.coll, plan::CollKind::kAllGather);
          EXPECT_EQ(kv.layer, op.layer);
          EXPECT_EQ(op.overlap.chunks, 2);
          ++forward;
        }
        if (op.name == plan::OpName::kCpKv && op.coll == plan::CollKind::kReduceScatter) {
          ASSERT_GE(op.overlap.partner, 0) << op.label();
          const plan::Op& att = st.ops[size_t(op.overlap.partner)];
          EXPECT_EQ(att.kind, plan::OpKind::kAttention);
          EXPECT_EQ(att.phase, plan::Phase::kBackward);
          EXPECT_EQ(att.layer, op.layer);
          EXPECT_EQ(op.overlap.chunks, 2);
          ++backward;
        }
      }
    }
    // Every layer of every micro-batch: forward (and its recompute) and backward.
    const int units = int(m.num_layers * p.num_microbatches());
    EXPECT_EQ(forward, units * (recompute == config::Recompute::kFull ? 2 : 1));
    EXPECT_EQ(backward, units);
  }
}

TEST(Plan, ZeroOneGathersEveryParameterBeforeItsFirstForward) {
  // The distributed optimizer all-gathers every bf16 parameter a stage holds, bucket by bucket in
  // forward order: the embedding (first stage), the layers, the output head (last stage). With
  // --overlap-param-gather each first forward waits for its own buckets; without it for the last.
  const auto m = config::load_model("llama3.1-8b");
  for (bool overlap : {true, false}) {
    config::ParallelConfig p;
    p.pp = 2, p.zero = 1, p.global_batch_size = 8, p.overlap_param_gather = overlap;
    p = config::resolve(p, m, 4, "test");  // dp 2
    const auto plan = plan::build_plan(m, p);
    for (const auto& st : plan.stages) {
      std::vector<int32_t> gathers;
      int64_t bytes = 0;
      for (int32_t i = 0; i < st.size(); ++i)
        if (st.op(i).name == plan::OpName::kParamGather) gathers.push_back(i), bytes += st.op(i).bytes;
      EXPECT_EQ(bytes, 2 * st.params) << "stage " << st.pp_rank;
      ASSERT_FALSE(gathers.empty());
      // The gathers open the step, in order, on the dp stream.
      EXPECT_EQ(gathers.front(), 0);
      EXPECT_EQ(gathers.back(), int32_t(gathers.size()) - 1);
      // First stage: the embedding lookup of micro-batch 0 waits for the embedding's bucket (the
      // first gathered: 525 M parameters, a bucket of its own); last stage: the final norm waits
      // for the head's (the last).
      for (int32_t i = 0; i < st.size(); ++i) {
        const plan::Op op = st.op(i);
        if (op.microbatch != 0 || op.phase != plan::Phase::kForward) continue;
        if (op.name == plan::OpName::kEmbedding) {
          EXPECT_EQ(st.op(gathers.front()).bytes, 2 * model::embedding_params_per_rank(m, 1));
          EXPECT_TRUE(waits_for(op, overlap ? gathers.front() : gathers.back()));
        }
        if (op.name == plan::OpName::kFinalNorm) {
          EXPECT_TRUE(waits_for(op, gathers.back()));
        }
        // A layer's first forward op waits for a gather ahead of it, and (with overlap) not for
        // all of them: the later layers' buckets are still in flight.
        if (op.name == plan::OpName::kInputNorm && op.layer == st.chunk_layers[0].front()) {
          const int32_t want = overlap ? gathers[st.pp_rank == 0 ? 3 : 2] : gathers.back();
          EXPECT_TRUE(waits_for(op, want)) << "stage " << st.pp_rank;
        }
      }
    }
  }
}

TEST(Plan, PipelineTransfersBlockTheNextUnitWithoutP2pOverlap) {
  // Megatron batches a unit's send with the next transfer (batch_isend_irecv), waits for both and
  // synchronizes: the compute stream's next op is a wait (p2p_wait) for the send and for the
  // receive that opens the next unit, and the next unit's compute follows it. That is Megatron's
  // only mode without interleaving (vpp 1 forces overlap_p2p_comm off) and Megatron-LM's only mode
  // before 2023; with --overlap-p2p-communication (interleaved) no op waits for a send. A receive
  // never waits for a send of its stage (an NCCL send ends when its peer's receive runs: two
  // neighbours' receives waiting for their own sends would wait for each other).
  const auto m = config::load_model("llama3.1-8b");
  struct Case {
    int64_t vpp;
    bool overlap, blocking;
  };
  for (const Case c : {Case{1, true, true}, Case{2, true, false}, Case{2, false, true}}) {
    config::ParallelConfig p;
    p.pp = 4, p.vpp = c.vpp, p.global_batch_size = 8, p.overlap_p2p_comm = c.overlap;
    p = config::resolve(p, m, 4, "test");
    EXPECT_EQ(p.p2p_blocking(), c.blocking);
    const auto plan = plan::build_plan(m, p);
    for (const auto& st : plan.stages) {
      int64_t sends = 0, waited = 0, waits = 0;
      for (int32_t i = 0; i < st.size(); ++i) {
        const plan::Op op = st.op(i);
        waits += op.name == plan::OpName::kP2pWait;
        if (op.kind == plan::OpKind::kSendRecv && !op.is_send) {
          for (uint8_t d = 0; d < op.ndeps; ++d) EXPECT_FALSE(st.op(op.deps[d]).kind == plan::OpKind::kSendRecv) << "op " << i;
        }
        if (op.kind != plan::OpKind::kSendRecv || !op.is_send) continue;
        ++sends;
        // The next compute op after the send (a DP bucket's reduction or the next receive may
        // come between): with blocking transfers the wait, depending on the send and on the
        // receive, if any, that the next unit opens with.
        int32_t j = i + 1, recv = -1;
        while (j < st.size() && st.op(j).stream != plan::Stream::kCompute) {
          if (st.op(j).kind == plan::OpKind::kSendRecv && !st.op(j).is_send) recv = j;
          ++j;
        }
        if (j == st.size()) continue;
        const plan::Op next = st.op(j);
        EXPECT_EQ(next.name == plan::OpName::kP2pWait, c.blocking) << "vpp " << c.vpp << " stage " << st.pp_rank << " op " << j;
        EXPECT_EQ(waits_for(next, i), c.blocking) << "vpp " << c.vpp << " stage " << st.pp_rank << " op " << j;
        if (c.blocking && recv >= 0) {
          EXPECT_TRUE(waits_for(next, recv)) << "stage " << st.pp_rank << " op " << j;
        }
        if (c.blocking) {
          EXPECT_FALSE(st.op(j + 1).name == plan::OpName::kP2pWait);
        }
        waited += waits_for(next, i);
      }
      EXPECT_GT(sends, 0);
      // Every send is waited for, the step's last by the optimizer's wait; none without blocking.
      EXPECT_EQ(waited, c.blocking ? sends : 0) << "stage " << st.pp_rank;
      EXPECT_EQ(waits, c.blocking ? sends : 0) << "stage " << st.pp_rank;
    }
  }
}

TEST(Plan, ScatterGatherSplitsPipelineMessagesOverTensorParallelRanks) {
  // Megatron-LM 2021-2023 without sequence parallelism: each tp rank sends 1/tp of the [s, b, h]
  // hidden states (split_tensor_into_1d_equal_chunks) and the receiver all-gathers them over tp
  // (gather_split_1d_tensor). Megatron-Core sends them whole from every tp rank; with sequence
  // parallelism they are [s/tp, b, h] either way and nothing is gathered.
  const auto m = config::load_model("llama3.1-8b");
  const int64_t s = 4096, b = 2, h = m.hidden_size, tp = 8;
  struct Case {
    bool sp, split;
    int64_t bytes;
    bool gathers;
  };
  for (const Case c : {Case{false, true, s * b * h * 2 / tp, true}, Case{false, false, s * b * h * 2, false},
                       Case{true, true, s / tp * b * h * 2, false}}) {
    config::ParallelConfig p;
    p.tp = tp, p.pp = 2, p.micro_batch_size = b, p.seq_length = s, p.global_batch_size = 4 * b;
    p.sequence_parallel = c.sp, p.p2p_scatter_gather = c.split;
    p = config::resolve(p, m, tp * 2, "test");
    const auto plan = plan::build_plan(m, p);
    for (const auto& st : plan.stages) {
      int64_t recvs = 0, gathers = 0;
      for (int32_t i = 0; i < st.size(); ++i) {
        const plan::Op op = st.op(i);
        if (op.kind == plan::OpKind::kSendRecv) {
          EXPECT_EQ(op.bytes, c.bytes);
        }
        if (op.kind == plan::OpKind::kSendRecv && !op.is_send) {
          ++recvs;
          const bool gathered = i + 1 < st.size() && st.op(i + 1).name == plan::OpName::kP2pGather;
          EXPECT_EQ(gathered, c.gathers);
          if (gathered) {
            const plan::Op g = st.op(i + 1);
            EXPECT_EQ(g.coll, plan::CollKind::kAllGather);
            EXPECT_EQ(g.group, parallel::Group::kTp);
            EXPECT_EQ(g.bytes, s * b * h * 2);  // the whole message, assembled
            EXPECT_TRUE(waits_for(g, i));
          }
        }
        gathers += op.name == plan::OpName::kP2pGather;
      }
      EXPECT_GT(recvs, 0);
      EXPECT_EQ(gathers, c.gathers ? recvs : 0);
    }
  }
}

TEST(Plan, DataParallelBucketsAreMegatrons) {
  // Megatron's DDP packs a chunk's parameters, backward-first, into buckets of at least
  // max(40 M, 1 M × dp) parameters, closing each at the parameter that fills it. Llama 3.1 8B at
  // tp 1: FC2 (4096 × 14336 = 58.7 M) and FC1 (117.4 M) each fill a bucket, the projection (16.8 M)
  // and QKV (25.2 M) one together; the embedding and the output head (525 M each) one each. The
  // last micro-batch's backward reduce-scatters them as they fill, the step's start gathers them.
  const auto m = config::load_model("llama3.1-8b");
  for (int64_t dp : {2, 64}) {
    config::ParallelConfig p;
    p.zero = 1, p.global_batch_size = 2 * dp;
    p = config::resolve(p, m, dp, "test");
    const auto plan = plan::build_plan(m, p);
    const auto& st = plan.stages[0];
    const int64_t bucket = std::max<int64_t>(40'000'000, 1'000'000 * dp);
    std::vector<int64_t> reduced, gathered;
    for (int32_t i = 0; i < st.size(); ++i) {
      const auto op = st.op(i);
      if (op.name == plan::OpName::kGradReduce) reduced.push_back(op.bytes / 4);
      if (op.name == plan::OpName::kParamGather) gathered.push_back(op.bytes / 2);
    }
    EXPECT_EQ(std::accumulate(reduced.begin(), reduced.end(), int64_t(0)), st.params) << "dp " << dp;
    EXPECT_EQ(std::accumulate(gathered.begin(), gathered.end(), int64_t(0)), st.params) << "dp " << dp;
    // Every bucket but the chunk's last holds at least a bucket's worth.
    for (size_t i = 0; i + 1 < reduced.size(); ++i) EXPECT_GE(reduced[i], bucket) << "dp " << dp;
    if (dp == 2) {
      EXPECT_EQ(reduced.size(), size_t(3 * m.num_layers + 2));
      EXPECT_EQ(gathered.size(), reduced.size());
      // Reduced backward-first (the head first), gathered forward-first (the embedding first).
      EXPECT_EQ(reduced.front(), model::head_params_per_rank(m, 1));
      EXPECT_EQ(gathered.front(), model::embedding_params_per_rank(m, 1));
    } else {
      // 64 M: FC2 and FC1 share a bucket, and the attention weights join the next layer's FC2:
      // two buckets per layer but the last, three with the embedding and head.
      EXPECT_EQ(reduced.size(), size_t(2 * m.num_layers + 1));
    }
  }
}

TEST(Plan, ColumnParallelBackwardRunsItsTpCommunicationBesideItsGemms) {
  // Megatron's LinearWithGradAccumulationAndAsyncCommunication (Megatron-LM since 2021-08) and TE's
  // Linear: in a column-parallel linear's backward (QKV, FC1, the output layer) the wgrad input's
  // all-gather (SP) runs beside the dgrad GEMM, the dgrad's reduction beside the wgrad GEMM. So: the
  // dgrad does not wait for the gather, the wgrad does; the reduction reads the dgrad; the wgrad
  // does not wait for it, the op after the wgrad does; the dgrad still waits for comm ops before
  // (CP's K/V reduce-scatter). Without async_tp_comm, and under tp_comm_overlap (chunked edges
  // instead), in series: [gather,] dgrad, wgrad, reduction.
  const auto m = config::load_model("tiny-gpt");
  struct C { bool sp, async, overlap; int64_t cp; };
  for (const C c : {C{false, true, false, 1}, C{false, false, false, 1}, C{true, true, false, 1}, C{true, false, false, 1},
                    C{true, true, false, 2}, C{false, true, false, 2}, C{true, true, true, 1}}) {
    SCOPED_TRACE(::testing::Message() << "sp " << c.sp << " async " << c.async << " overlap " << c.overlap << " cp " << c.cp);
    config::ParallelConfig p;
    p.tp = 2, p.cp = c.cp, p.global_batch_size = 1, p.sequence_parallel = c.sp, p.async_tp_comm = c.async;
    p.tp_comm_overlap = c.overlap;
    p = config::resolve(p, m, 2 * c.cp, "test");
    const auto plan = plan::build_plan(m, p);
    const auto& st = plan.stages[0];
    const bool async = c.async && !c.overlap;
    int checked = 0;
    for (int32_t i = 0; i < st.size(); ++i) {
      const auto& red = st.op(i);
      if (red.phase != plan::Phase::kBackward || red.name != plan::OpName::kTpReduce) continue;
      if (red.layer < 0 && st.op(async ? i - 1 : i - 2).name != plan::OpName::kLogits) continue;  // the embedding's
      const int32_t dgrad = async ? i - 1 : i - 2, wgrad = async ? i + 1 : i - 1, next = async ? i + 2 : i + 1;
      ASSERT_TRUE(st.op(dgrad).kind == OpKind::kGemm && !st.op(dgrad).wgrad);
      ASSERT_TRUE(st.op(wgrad).kind == OpKind::kGemm && st.op(wgrad).wgrad);
      ASSERT_EQ(st.op(dgrad).name, st.op(wgrad).name);
      const auto name = st.op(dgrad).name;
      EXPECT_TRUE(name == plan::OpName::kQkv || name == plan::OpName::kFc1 || name == plan::OpName::kLogits);
      EXPECT_TRUE(waits_for(red, async ? dgrad : wgrad));
      if (async) {
        EXPECT_FALSE(waits_for(st.op(wgrad), i));
      }
      EXPECT_TRUE(waits_for(st.op(next), i));
      const int32_t first = c.sp ? dgrad - 1 : dgrad;  // the linear's first op
      if (c.sp) {
        ASSERT_EQ(st.op(first).name, plan::OpName::kWgradGather);
        EXPECT_EQ(waits_for(st.op(dgrad), first), !async);
        if (async) {
          EXPECT_TRUE(waits_for(st.op(wgrad), first));
        }
      }
      if (c.cp > 1 && name == plan::OpName::kQkv) {  // after the attention backward's K/V reduce-scatter
        ASSERT_EQ(st.op(first - 1).name, plan::OpName::kCpKv);
        EXPECT_TRUE(waits_for(st.op(dgrad), first - 1));  // (the cp cases run async)
      }
      ++checked;
    }
    EXPECT_EQ(checked, 2 * m.num_layers + 1);  // QKV and FC1 in every layer, and the output layer
  }
}

TEST(Plan, MlaAndMtpProjectionsRunTheirTpCommunicationBesideTheirGemms) {
  // The same for MLA's two column-parallel up-projections (their input gradients reduced as one,
  // over the latents' width) and the MTP projection (2h wide): dgrads, then the reduction beside
  // the wgrads, which wait for the SP all-gather of their inputs but not for the reduction; the op
  // after the wgrads waits for it. DeepSeek-V3's layers, four of them (a proxy), tp 2 with SP.
  auto m = config::load_model("deepseek-v3");
  m.num_layers = 4;
  config::ParallelConfig p;
  p.tp = 2, p.global_batch_size = 1, p.sequence_parallel = true;
  p = config::resolve(p, m, 2, "test");
  const auto plan = plan::build_plan(m, p);
  const auto& st = plan.stages[0];
  const int64_t latents = m.q_lora_rank + m.kv_lora_rank + m.qk_pos_emb_head_dim;
  int mla = 0, mtp = 0;
  for (int32_t i = 0; i < st.size(); ++i) {
    const auto& red = st.op(i);
    if (red.phase != plan::Phase::kBackward || red.name != plan::OpName::kTpReduce || i == 0) continue;
    const auto name = st.op(i - 1).name;
    if (name != plan::OpName::kMlaUp && name != plan::OpName::kMtpProj) continue;
    const int32_t n = name == plan::OpName::kMlaUp ? 2 : 1;  // GEMMs in this linear
    const int32_t gather = i - n - 1, after = i + n + 1;
    ASSERT_EQ(st.op(gather).name, plan::OpName::kWgradGather);
    EXPECT_EQ(red.bytes, st.op(gather).bytes);
    EXPECT_EQ(red.bytes, int64_t(p.micro_batch_size * p.seq_length) * (n == 2 ? latents : 2 * m.hidden_size) * 2);
    for (int32_t j = 0; j < n; ++j) {
      const auto& dgrad = st.op(i - n + j);
      const auto& wgrad = st.op(i + 1 + j);
      EXPECT_TRUE(dgrad.kind == OpKind::kGemm && !dgrad.wgrad && dgrad.name == name);
      EXPECT_TRUE(wgrad.kind == OpKind::kGemm && wgrad.wgrad && wgrad.name == name);
      EXPECT_FALSE(waits_for(dgrad, gather));
      EXPECT_FALSE(waits_for(wgrad, i));
    }
    EXPECT_TRUE(waits_for(red, i - 1));
    EXPECT_TRUE(waits_for(st.op(i + 1), gather));
    EXPECT_TRUE(waits_for(st.op(after), i));
    ++(n == 2 ? mla : mtp);
  }
  EXPECT_EQ(mla, m.num_layers + m.mtp_num_layers);  // the MTP module's layer has MLA attention too
  EXPECT_EQ(mtp, m.mtp_num_layers);
}

// Megatron-Core's --pipeline-model-parallel-layout (config::parse_pipeline_layout): the syntax as
// Megatron parses it, its rules (chunks = pp × vpp, E first, L last, every layer once, MTP with
// the loss), and a plan that follows it.
TEST(Plan, PipelineLayoutParsesAsMegatronDoes) {
  std::string error;
  // NVIDIA's DeepSeek-V3 B200 recipe (Megatron-Bridge v0.4.2): 1 + 14 + 1 chunks of 4, 4, 1 layers.
  const auto ds = config::parse_pipeline_layout("Et*4|(t*4|)*14tmL", &error);
  ASSERT_EQ(ds.size(), 16u) << error;
  EXPECT_TRUE(ds.front().embedding);
  EXPECT_EQ(ds.front().decoder, 4);
  for (size_t c = 1; c + 1 < ds.size(); ++c) {
    EXPECT_EQ(ds[c].decoder, 4);
    EXPECT_FALSE(ds[c].embedding || ds[c].loss || ds[c].mtp);
  }
  EXPECT_EQ(ds.back().decoder, 1);
  EXPECT_EQ(ds.back().mtp, 1);
  EXPECT_TRUE(ds.back().loss);
  // Megatron's own docstring example, commas ignored: [E t t t] + [t t] x 29 + [m] + [L].
  const auto doc = config::parse_pipeline_layout("Ettt|(tt|)*29,m|L", &error);
  ASSERT_EQ(doc.size(), 32u);
  EXPECT_EQ(doc[0].decoder, 3);
  EXPECT_EQ(doc[29].decoder, 2);
  EXPECT_EQ(doc[30].mtp, 1);
  EXPECT_EQ(doc[30].decoder, 0);
  EXPECT_TRUE(doc[31].loss);
  // What Megatron would not parse is an error saying why, never a partial layout.
  for (const char* bad : {"Etx|L", "E(tt|L", "Ett)|L", "E((t)*2)*2|L", "Et*|L", "*t|L", "E(tt)|L", "Et*99999999|L", "EEt|L"}) {
    error.clear();
    EXPECT_TRUE(config::parse_pipeline_layout(bad, &error).empty()) << bad;
    EXPECT_FALSE(error.empty()) << bad;
  }
}

TEST(Plan, PipelineLayoutRulesAndThePlanThatFollowsIt) {
  const auto m = config::load_model("llama3.1-8b");  // 32 layers
  config::ParallelConfig p;
  p.pp = 4, p.vpp = 2, p.global_batch_size = 8;
  auto problems = [&](const std::string& layout) {
    auto q = p;
    q.pipeline_layout = layout;
    return config::join(config::violations(q, m, 4));
  };
  EXPECT_EQ(problems("Et*4|(t*4|)*6t*4L"), "");
  EXPECT_NE(problems("Et*4|(t*4|)*5t*4L").find("has 7 chunks; it needs pp x vpp = 8"), std::string::npos);
  EXPECT_NE(problems("Et*4|(t*4|)*6t*3L").find("has 31 decoder layers (t); llama3.1-8b has num_layers 32"), std::string::npos);
  EXPECT_NE(problems("t*4|(t*4|)*6Et*4L").find("embedding (E) once, in the first chunk"), std::string::npos);
  EXPECT_NE(problems("Et*4|(t*4|)*6t*4mL").find("has 1 MTP layers (m); llama3.1-8b has mtp_num_layers 0"), std::string::npos);
  EXPECT_NE(problems("Et*4|(t*4|)*6t*4x").find("pipeline-layout 'Et*4|(t*4|)*6t*4x' has 'x', not a layer"), std::string::npos);
  {
    auto q = p;
    q.pipeline_layout = "Et*4|(t*4|)*6t*4L";
    q.account_for_loss_in_pipeline_split = true;
    EXPECT_NE(config::join(config::violations(q, m, 4)).find("replaces account-for-embedding/loss"), std::string::npos);
  }
  const auto ds = config::load_model("deepseek-v3");  // one MTP layer: it must sit with the loss
  config::ParallelConfig d;
  d.pp = 16, d.ep = 8, d.global_batch_size = 16, d.pipeline_layout = "Et*3|(t*4|)*13,t*6m|L";  // 16 chunks, m in the 15th
  EXPECT_NE(config::join(config::violations(d, ds, 128)).find("places MTP layers outside the last chunk"), std::string::npos);

  // The even split written out as a layout is the same plan, op for op.
  const auto even = plan::build_plan(m, config::resolve(p, m, 4, "test"));
  auto q = p;
  q.pipeline_layout = "Et*4|(t*4|)*6t*4L";
  const auto written = plan::build_plan(m, config::resolve(q, m, 4, "test"));
  EXPECT_EQ(written.layers_per_chunk, even.layers_per_chunk);
  for (size_t s = 0; s < even.stages.size(); ++s) {
    ASSERT_EQ(written.stages[s].ops.size(), even.stages[s].ops.size());
    for (size_t i = 0; i < even.stages[s].ops.size(); ++i) {
      const auto &a = written.stages[s].ops[i], &b = even.stages[s].ops[i];
      ASSERT_TRUE(a.name == b.name && a.layer == b.layer && a.microbatch == b.microbatch && a.chunk == b.chunk &&
                  a.bytes == b.bytes && a.flops == b.flops && a.ndeps == b.ndeps && a.deps == b.deps)
          << "stage " << s << " op " << i;
    }
  }
  // Another layout moves the layers: stage 0 (chunks 0 and 4) holds 2 + 2, stage 3 (3 and 7) 6 + 6,
  // and the stages' weights follow.
  q.pipeline_layout = "Et*2|t*4|t*4|t*6|t*2|t*4|t*4|t*6L";
  const auto moved = plan::build_plan(m, config::resolve(q, m, 4, "test"));
  EXPECT_EQ(moved.layers_per_chunk, (std::vector<int64_t>{2, 4, 4, 6, 2, 4, 4, 6}));
  EXPECT_EQ(moved.stages[0].chunk_layers, (std::vector<std::vector<int64_t>>{{0, 1}, {16, 17}}));
  EXPECT_EQ(moved.stages[3].chunk_layers, (std::vector<std::vector<int64_t>>{{10, 11, 12, 13, 14, 15}, {26, 27, 28, 29, 30, 31}}));
  const int64_t layer = model::layer_params_per_rank(m, 0, 1);
  EXPECT_EQ(moved.stages[0].params - even.stages[0].params, -4 * layer);
  EXPECT_EQ(moved.stages[1].params, even.stages[1].params);
  EXPECT_EQ(moved.stages[3].params - even.stages[3].params, 4 * layer);
  const auto mem_moved = model::memory_per_stage(m, config::resolve(q, m, 4, "test"));
  const auto mem_even = model::memory_per_stage(m, config::resolve(p, m, 4, "test"));
  EXPECT_GT(mem_moved[3].total(), mem_even[3].total());
  EXPECT_LT(mem_moved[0].total(), mem_even[0].total());
}
