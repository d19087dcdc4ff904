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
    size_t largest_gemm_c = 0;
    for (const auto& op : ops) {
      if (op.kind == plan::OpKind::kElementwise) largest_ew = std::max(largest_ew, op.bytes);
      if (op.kind == plan::OpKind::kCollective || op.kind == plan::OpKind::kSendRecv) largest_comm = std::max(largest_comm, op.bytes);
      if (op.kind == plan::OpKind::kGemm) largest_gemm_c = std::max(largest_gemm_c, size_t(op.batch * op.m * op.n) * 2);
    }
    // Whole operands for GEMMs.
    EXPECT_EQ(need[kGemmC], largest_gemm_c);
    // Bounded elementwise and communication buffers; the chunked passes move every byte.
    EXPECT_LE(need[kEwX], kElementwiseBufferBytes);
    EXPECT_LE(need[kEwY], kElementwiseBufferBytes);
    for (int q = 0; q < plan::kNumStreams; ++q) EXPECT_LE(need[size_t(kComm0 + q)], kCommBufferBytes);
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
                         ::testing::Values(Case{"llama3.1-8b", 8, 1, 1, 1, 1, 1, 8.0}, Case{"llama3.1-8b", 0, 1, 1, 1, 1, 1, 12.0},
                                           Case{"llama3.1-70b", 0, 8, 4, 2, 32, 16, 12.0},
                                           Case{"llama3.1-405b", 0, 8, 16, 1, 128, 16, 16.0},
                                           Case{"gpt-1008b", 0, 8, 64, 1, 512, 64, 16.0}));

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
