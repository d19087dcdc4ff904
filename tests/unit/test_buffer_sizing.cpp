// The CUDA executor's scratch sizing (exec/buffer_sizing.hpp) on the largest shipped plans, no GPU:
// GEMM and attention buffers hold the largest op's operands, elementwise and communication buffers
// stay bounded although single ops move tens of GB (the optimizer step, the DP grad reduction), and
// the chunked passes cover each op's bytes exactly.
#include <gtest/gtest.h>

#include <algorithm>

#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "exec/buffer_sizing.hpp"
#include "plan/plan.hpp"

namespace capscale {
namespace {

using namespace exec;
constexpr double kGiB = double(size_t(1) << 30);

plan::Plan make_plan(const std::string& model_name, int64_t layers, int64_t tp, int64_t pp, int64_t vpp, int64_t world, int64_t gbs) {
  config::ModelConfig m = config::load_model(model_name);
  if (layers > 0) m.num_layers = layers;
  config::ParallelConfig p;
  p.tp = tp, p.pp = pp, p.vpp = vpp, p.global_batch_size = gbs;
  p = config::resolve(p, m, world, "test");
  return plan::build_plan(m, p);
}

struct Case {
  const char* model;
  int64_t layers, tp, pp, vpp, world, gbs;
  double max_total_gib;  // what the stage's scratch may take at most
};

class BufferSizing : public ::testing::TestWithParam<Case> {};

TEST_P(BufferSizing, BoundedBuffersCoverTheLargestOps) {
  const Case c = GetParam();
  const plan::Plan plan = make_plan(c.model, c.layers, c.tp, c.pp, c.vpp, c.world, c.gbs);
  const BufferTypes types;  // bf16
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const auto& ops = plan.stages[s].ops;
    const BufferBytes need = size_buffers(ops, types);
    int64_t largest_ew = 0, largest_comm = 0;
    size_t largest_gemm_c = 0, largest_scratch = 0;
    bool any_unfused = false;
    for (const auto& op : ops) {
      if (op.kind == plan::OpKind::kElementwise) largest_ew = std::max(largest_ew, op.bytes);
      if (op.kind == plan::OpKind::kCollective || op.kind == plan::OpKind::kSendRecv) largest_comm = std::max(largest_comm, op.bytes);
      // wgrad writes Megatron's fp32 main_grad; forward and dgrad bf16.
      if (op.kind == plan::OpKind::kGemm) largest_gemm_c = std::max(largest_gemm_c, size_t(op.batch * op.m * op.n) * (op.wgrad ? 4 : 2));
      if (op.kind == plan::OpKind::kAttention) {
        any_unfused = any_unfused || !op.fused;
        if (op.fused) largest_scratch = std::max(largest_scratch, fused_attention_scratch(op, 2).end);
      }
    }
    // Whole operands for GEMMs, plus the L2 rotation ring.
    EXPECT_EQ(need[kGemmC], largest_gemm_c + kL2RotationBytes);
    // Fused attention stores no scores; its scratch covers the largest op's statistics and gradients.
    if (!any_unfused) {
      EXPECT_EQ(need[kAttnS], 0u);
    }
    EXPECT_EQ(need[kAttnX], largest_scratch);
    // Bounded elementwise and communication buffers; the chunked passes move every byte.
    EXPECT_LE(need[kEwX], kElementwiseBufferBytes);
    EXPECT_LE(need[kEwY], kElementwiseBufferBytes);
    for (int q = 0; q < plan::kNumStreams; ++q) EXPECT_LE(need[size_t(kComm0 + q)], 2 * kCommBufferBytes);  // 2: all-to-all
    const int64_t per = elementwise_chunk_elems(), count = largest_ew / 6;
    EXPECT_GE(((count + per - 1) / std::max<int64_t>(per, 1)) * per, count);
    const double total_gib = double(total_bytes(need)) / kGiB;
    EXPECT_LE(total_gib, c.max_total_gib) << "stage " << s;
    if (s == 0) {
      std::cout << "[ sizing ] " << c.model << ", " << plan.stages.size() << " stage(s): largest elementwise "
                << double(largest_ew) / kGiB << " GiB, largest comm " << double(largest_comm) / kGiB
                << " GiB; scratch " << total_gib << " GiB (old rule: elementwise alone " << 2.0 * double(largest_ew / 6 * 2) / kGiB
                << " GiB)\n";
    }
  }
}

// The 59 GiB case of the issue (8 Llama 3.1 8B layers on one GPU) and the largest shipped models.
INSTANTIATE_TEST_SUITE_P(LargestPlans, BufferSizing,
                         ::testing::Values(Case{"llama3.1-8b", 8, 1, 1, 1, 1, 1, 9.0}, Case{"llama3.1-8b", 0, 1, 1, 1, 1, 1, 12.0},
                                           Case{"llama3.1-70b", 0, 8, 4, 2, 32, 16, 12.0},
                                           Case{"llama3.1-405b", 0, 8, 16, 1, 128, 16, 16.0},
                                           Case{"gpt-1008b", 0, 8, 64, 1, 512, 64, 16.0}));

// The gradient scratch of a fused backward is laid out without overlap, each part 256-byte aligned.
TEST(BufferSizing, FusedAttentionScratchParts) {
  plan::Op op;
  op.kind = plan::OpKind::kAttention;
  op.phase = plan::Phase::kBackward;
  op.batch = 3, op.m = 100, op.n = 130, op.k = 96;
  const FusedAttentionScratch f = fused_attention_scratch(op, 2);
  const size_t starts[] = {f.lse, f.delta, f.dq_acc, f.dout, f.dq, f.dk, f.dv, f.end};
  const size_t sizes[] = {300 * 4, 300 * 4, 300 * 96 * 4, 300 * 96 * 2, 300 * 96 * 2, 390 * 96 * 2, 390 * 96 * 2};
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(starts[i] % 256, 0u) << i;
    EXPECT_GE(starts[i + 1], starts[i] + sizes[i]) << i;
  }
  op.phase = plan::Phase::kForward;
  EXPECT_EQ(fused_attention_scratch(op, 2).end, (300 * 4 + 255) / 256 * 256);  // forward keeps only the statistics
}

// All-to-all runs out of place (exec/cuda/ops.cpp): its stream's buffer holds the sent and the
// received chunk.
TEST(BufferSizing, AllToAllHoldsSendAndReceiveChunks) {
  plan::Op a2a;
  a2a.kind = plan::OpKind::kCollective;
  a2a.coll = plan::CollKind::kAllToAll;
  a2a.stream = plan::Stream::kTp;
  a2a.bytes = 3 << 20;
  plan::Op ar = a2a;
  ar.coll = plan::CollKind::kAllReduce;
  EXPECT_EQ(size_buffers({a2a}, BufferTypes{})[size_t(kComm0 + int(plan::Stream::kTp))], size_t(6) << 20);
  EXPECT_EQ(size_buffers({ar}, BufferTypes{})[size_t(kComm0 + int(plan::Stream::kTp))], size_t(3) << 20);
  a2a.bytes = int64_t(kCommBufferBytes) * 4;
  EXPECT_EQ(size_buffers({a2a}, BufferTypes{})[size_t(kComm0 + int(plan::Stream::kTp))], 2 * kCommBufferBytes);
}

TEST(BufferSizing, CommChunksKeepShardsWhole) {
  for (int64_t n : {1, 2, 3, 7, 8, 64, 1000}) {
    const int64_t c = comm_chunk_bytes(n);
    EXPECT_EQ(c % (2 * n), 0) << n;
    EXPECT_LE(size_t(c), kCommBufferBytes);
    EXPECT_GT(c, 0);
  }
}

}  // namespace
}  // namespace capscale
