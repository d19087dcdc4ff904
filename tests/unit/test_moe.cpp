// Mixture of experts end to end below the CLI: the expert layout (Megatron-Core parallel folding),
// the all-to-all α–β model against its closed form, memory accounting of sharded experts, the
// plan's MoE ops and FLOPs, and the validation of ep / etp / imbalance.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "collectives/collectives.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "model/accounting.hpp"
#include "parallel/layout.hpp"
#include "plan/plan.hpp"

using namespace capscale;
using parallel::Group;
using parallel::Layout;

namespace {
config::ParallelConfig moe_plan(const config::ModelConfig& m, int64_t world, int64_t tp, int64_t pp, int64_t ep, int64_t etp = 1) {
  config::ParallelConfig p;
  p.tp = tp, p.pp = pp, p.ep = ep, p.etp = etp, p.sequence_parallel = tp > 1;
  p.global_batch_size = 2 * world / (tp * pp) * pp;
  return config::resolve(p, m, world, "test");
}
}  // namespace

TEST(Moe, ExpertGroupsFoldOntoTheAttentionRanksLikeMegatron) {
  // Megatron-Core's expert RankGenerator (order "tp-ep-dp-pp" with tp = etp, dp = edp) over the
  // ranks of each pipeline stage. 16 ranks, tp 2, pp 2 (stages 0–7, 8–15), ep 2, etp 2: edp 2.
  const Layout l(/*tp=*/2, /*cp=*/1, /*dp=*/4, /*pp=*/2, /*ep=*/2, /*etp=*/2);
  EXPECT_EQ(l.size(Group::kEdp), 2);
  const std::vector<std::vector<int64_t>> etp = {{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}};
  const std::vector<std::vector<int64_t>> ep = {{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}};
  const std::vector<std::vector<int64_t>> edp = {{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}};
  EXPECT_EQ(l.all_groups(Group::kEtp), etp);
  EXPECT_EQ(l.all_groups(Group::kEp), ep);
  EXPECT_EQ(l.all_groups(Group::kEdp), edp);
  // Attention's groups are untouched by ep: the dense numbering stays.
  EXPECT_EQ(l.members(Group::kTp, 5), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(l.members(Group::kDp, 1), (std::vector<int64_t>{1, 3, 5, 7}));
  // Megatron's MoE example: 8 GPUs, ep 8, tp 1: one expert group of all ranks, no expert DP.
  const Layout all(1, 1, 8, 1, 8, 1);
  EXPECT_EQ(all.all_groups(Group::kEp), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(all.size(Group::kEdp), 1);
  EXPECT_THROW(Layout(2, 1, 3, 1, 4, 1), InputError);  // ep 4 does not divide the 6 ranks of a stage
}

TEST(Moe, ExpertGroupSpansMatchTheirMembers) {
  // group_span's closed form (strides 1, etp, etp·ep) against the enumerated members.
  for (int64_t ep : {1, 2, 4, 8, 16}) {
    for (int64_t etp : {1, 2}) {
      const Layout l(2, 1, 16, 2, ep, etp);
      for (Group g : {Group::kEp, Group::kEtp, Group::kEdp}) {
        for (int64_t domain : {4, 8, 72}) {
          const auto members = l.members(g, 0);
          std::set<int64_t> domains;
          for (int64_t r : members) domains.insert(r / domain);
          const auto span = collectives::group_span(l, g, domain);
          EXPECT_EQ(span.size, int64_t(members.size()));
          EXPECT_EQ(span.domains, int64_t(domains.size())) << parallel::to_string(g) << " ep" << ep << " etp" << etp << " D" << domain;
        }
      }
    }
  }
}

TEST(Moe, AllToAllTimeIsItsClosedForm) {
  collectives::LinkParams link;
  link.intra_Bps = 400e9, link.intra_alpha_s = 3e-6, link.inter_Bps = 45e9, link.inter_alpha_s = 8e-6;
  const double S = 256e6;
  // One domain of 8: 7/8 of S over NVLink, 7 latencies. nccl-tests factor (n−1)/n.
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllToAll, int64_t(S), {8, 8, 1}, link), S * 7 / 8 / 400e9 + 7 * 3e-6, 1e-12);
  EXPECT_DOUBLE_EQ(collectives::bus_factor(plan::CollKind::kAllToAll, 8), 7.0 / 8.0);
  // 64 ranks over 8 domains: 7/64 of S on NVLink, 56/64 on the NIC, concurrently: the NIC sets it.
  const collectives::GroupSpan span{64, 8, 8};
  const double nic = S * 56 / 64 / 45e9 + 7 * 8e-6;
  EXPECT_NEAR(collectives::time_s(plan::CollKind::kAllToAll, int64_t(S), span, link), nic, 1e-12);
  // Node-limited routing (top-8 to at most 4 nodes): half the cross-node copies take the NIC and
  // every remote copy is forwarded over the receiving node's NVLink.
  const double limited_nic = S * 56 / 64 * 0.5 / 45e9 + 7 * 8e-6;
  const double limited_nvl = (S * 7 / 64 + S * 56 / 64) / 400e9 + 7 * 3e-6;
  EXPECT_NEAR(collectives::all_to_all::time_s(S, span, link, 0.5), std::max(limited_nic, limited_nvl), 1e-12);
  EXPECT_LT(collectives::all_to_all::time_s(S, span, link, 0.5), collectives::all_to_all::time_s(S, span, link, 1.0));
}

TEST(Moe, ExpertMemoryIsShardedOverEpAndEtpAndItsOptimizerOverExpertDp) {
  const auto m = config::load_model("mixtral-8x7b");
  const int64_t h = m.hidden_size, f = m.moe_ffn_hidden_size;
  // One expert: 3·h·f (SwiGLU, no bias); 8 per layer.
  EXPECT_EQ(model::expert_params_per_rank(m, 0, 1, 1), 8 * 3 * h * f);
  EXPECT_EQ(model::expert_params_per_rank(m, 0, 8, 1), 3 * h * f);
  EXPECT_EQ(model::expert_params_per_rank(m, 0, 4, 2), 2 * 3 * h * f / 2);
  auto p1 = moe_plan(m, 64, 1, 1, 1), p8 = moe_plan(m, 64, 1, 1, 8);
  const double experts_all = 32.0 * 8 * 3 * double(h) * double(f);  // 32 layers
  const auto e1 = model::memory_per_rank(m, p1), e8 = model::memory_per_rank(m, p8);
  EXPECT_NEAR(e1.weights - e8.weights, 2.0 * experts_all * (1 - 1.0 / 8), 1.0);
  EXPECT_NEAR(e1.grads - e8.grads, 4.0 * experts_all * (1 - 1.0 / 8), 1.0);
  // ZeRO-1: dense optimizer state ÷ dp (64), expert state ÷ edp (64 / 8 = 8).
  p8.zero = 1;
  const auto z8 = model::memory_per_rank(m, p8);
  const double dense = double(model::embedding_params_per_rank(m, 1) + model::head_params_per_rank(m, 1)) +
                       32.0 * double(model::layer_params_per_rank(m, 0, 1));
  EXPECT_NEAR(z8.optimizer, 12.0 * dense / 64 + 12.0 * experts_all / 8 / 8, 1.0);
}

TEST(Moe, PlanRoutesTokensThroughAllToAllAndGroupedGemms) {
  const auto m = config::load_model("tiny-moe");
  const auto p = moe_plan(m, 4, 1, 1, 4);
  const auto plan = plan::build_plan(m, p);
  const auto& ops = plan.stages[0].ops;
  const int64_t Td = p.micro_batch_size * p.seq_length, k = m.moe_router_topk;
  int a2a = 0, grouped = 0, router = 0;
  for (const auto& op : ops) {
    if (op.coll == plan::CollKind::kAllToAll) {
      ++a2a;
      EXPECT_EQ(op.group, Group::kEp);
      EXPECT_EQ(op.stream, plan::Stream::kEp);
      EXPECT_EQ(op.bytes, Td * k * m.hidden_size * 2);  // every routed copy, bf16
      EXPECT_GE(op.layer, m.moe_first_k_dense);
    }
    if (op.kind == plan::OpKind::kGemm && op.name == plan::OpName::kExpertFc1 && op.phase == plan::Phase::kForward) {
      ++grouped;
      EXPECT_EQ(op.batch, m.num_moe_experts / 4);                    // local experts
      EXPECT_EQ(op.m * op.batch, Td * k);                            // balanced: the copies this rank sent
      EXPECT_EQ(op.n, 2 * m.moe_ffn_hidden_size);                    // gate and up projections
    }
    router += op.name == plan::OpName::kRouter && op.kind == plan::OpKind::kGemm && op.phase == plan::Phase::kForward;
  }
  const int64_t moe_layers = m.num_moe_layers(), mb = p.num_microbatches();
  EXPECT_EQ(a2a, 4 * moe_layers * mb);  // dispatch and combine, forward and backward
  EXPECT_EQ(grouped, moe_layers * mb);
  EXPECT_EQ(router, moe_layers * mb);
  // Executed FLOPs without recompute equal the model FLOPs (6 per active weight + attention):
  // the plan and the accounting agree on what a token costs.
  double flops = 0;
  for (const auto& op : ops)
    if (op.kind == plan::OpKind::kGemm || op.kind == plan::OpKind::kAttention) flops += op.flops;
  const double tokens_per_rank = double(p.global_batch_size * p.seq_length) / 4;
  EXPECT_NEAR(flops / (model::model_flops_per_token(m, p.seq_length) * tokens_per_rank), 1.0, 1e-9);
}

TEST(Moe, ParallelChecksNameTheFieldAndWhatIsAllowed) {
  const auto moe = config::load_model("tiny-moe"), dense = config::load_model("tiny-demo");
  auto v = [](const config::ParallelConfig& p, const config::ModelConfig& m, int64_t world) {
    return config::join(config::violations(p, m, world));
  };
  config::ParallelConfig p;
  p.ep = 4;
  EXPECT_NE(v(p, dense, 4).find("ep must be 1 for a dense model"), std::string::npos);
  p.ep = 3;
  EXPECT_NE(v(p, moe, 6).find("ep must divide num_moe_experts (8), got 3"), std::string::npos);
  p.ep = 8;
  EXPECT_NE(v(p, moe, 4).find("ep x etp x pp (8 x 1 x 1) must divide the world size (4)"), std::string::npos);
  p.ep = 2, p.etp = 3;
  EXPECT_NE(v(p, moe, 6).find("etp must divide moe_ffn_hidden_size (352), got 3"), std::string::npos);
  p.etp = 1, p.moe_imbalance = 5;
  EXPECT_NE(v(p, moe, 4).find("moe-imbalance must be <= num_moe_experts / moe_router_topk"), std::string::npos);
  p.moe_imbalance = 1, p.tp = 2;
  EXPECT_NE(v(p, moe, 4).find("sequence-parallel is required for MoE with tp > 1"), std::string::npos);
  p.sequence_parallel = true;
  EXPECT_EQ(v(p, moe, 4), "");
}

TEST(Moe, FlexDispatcherSendsATokenOncePerRemoteNode) {
  // k copies uniformly over D nodes reach D·(1 − (1 − 1/D)^k)·(D−1)/D remote nodes against
  // k·(D−1)/D remote copies. Qwen3-30B-A3B (top-8) over 2 nodes: 2·(1 − 2^−8)/8.
  EXPECT_NEAR(collectives::all_to_all::flex_cross_share({8, 0}, 2), 2.0 * (1 - std::pow(0.5, 8)) / 8, 1e-12);
  // DeepSeek-V3 (top-8, at most 4 of 8 nodes): the node limit binds, 4/8.
  EXPECT_NEAR(collectives::all_to_all::flex_cross_share({8, 4}, 8), 0.5, 1e-12);
  EXPECT_EQ(collectives::all_to_all::flex_cross_share({0, 0}, 8), 1.0);  // plain all-to-all
  EXPECT_EQ(collectives::all_to_all::flex_cross_share({8, 0}, 1), 1.0);  // one node: nothing crosses
  // The plan marks only flex all-to-alls.
  const auto m = config::load_model("tiny-moe");
  auto p = moe_plan(m, 4, 1, 1, 4);
  const auto plain = plan::build_plan(m, p);
  for (const auto& op : plain.stages[0].ops) EXPECT_EQ(op.route_topk, 0);
  p.moe_token_dispatcher = config::Dispatcher::kFlex;
  int flex = 0;
  const auto flexed = plan::build_plan(m, p);
  for (const auto& op : flexed.stages[0].ops) flex += op.route_topk == m.moe_router_topk;
  EXPECT_GT(flex, 0);
}
