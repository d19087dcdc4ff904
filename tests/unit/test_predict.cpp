// Predictor: scale, search, caps, memory verdicts, and emulation from host measurements.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>

#include "common/error.hpp"
#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "emulate/emulate.hpp"
#include "predict/predictor.hpp"

using namespace capscale;

namespace {
config::ParallelConfig par(const config::ModelConfig& m, int64_t gpus, int64_t tp, int64_t pp, int64_t gbs) {
  config::ParallelConfig p;
  p.tp = tp, p.pp = pp, p.global_batch_size = gbs, p.sequence_parallel = tp > 1, p.zero = 1;
  p.recompute = config::Recompute::kSelective;
  return config::resolve(p, m, gpus, "test");
}

/// Up to `count` valid plans drawn at random from the search's space (tp up to the NVLink domain,
/// cp with seq divisible by 2·cp, tp·cp·pp dividing the chips, vpp up to layers/pp, micro-batch
/// 1..max_mbs (MoE: 1), ep up to the experts, SP, TP overlap, ZeRO and recompute each drawn),
/// resolved; only those that fit memory when `fitting`.
std::vector<config::ParallelConfig> random_plans(const config::ModelConfig& m, const config::ChipProfile& chip, int64_t gpus,
                                                 int64_t gbs, int64_t seq, int count, int64_t max_mbs, bool fitting,
                                                 std::mt19937_64& rng) {
  auto pick = [&](const auto& v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; };
  std::vector<std::array<int64_t, 3>> meshes;
  for (int64_t tp = 1; tp <= chip.nvlink_domain; tp *= 2)
    for (int64_t cp = 1; cp == 1 || seq % (2 * cp) == 0; cp *= 2)
      for (int64_t pp = 1; pp <= std::min<int64_t>(128, m.num_layers); ++pp)
        if (gpus % (tp * cp * pp) == 0) meshes.push_back({tp, cp, pp});
  std::vector<int64_t> eps = {1};
  for (int64_t ep = 2; m.is_moe() && ep <= m.num_moe_experts; ep *= 2) eps.push_back(ep);
  const std::vector<config::Recompute> levels = {config::Recompute::kNone, config::Recompute::kSelective, config::Recompute::kFull};
  std::vector<config::ParallelConfig> out;
  for (int tries = 0; tries < 200000 && int(out.size()) < count; ++tries) {
    const auto [tp, cp, pp] = pick(meshes);
    config::ParallelConfig p;
    p.tp = tp, p.cp = cp, p.pp = pp, p.global_batch_size = gbs, p.seq_length = seq;
    p.vpp = pp == 1 ? 1 : std::uniform_int_distribution<int64_t>(1, m.num_layers / pp)(rng);
    p.micro_batch_size = m.is_moe() ? 1 : std::uniform_int_distribution<int64_t>(1, max_mbs)(rng);
    p.ep = pick(eps);
    // TP comm overlap drawn on and off independently: the search tries both under SP, since a
    // column-parallel backward without it hides its collectives whole (search.cpp, top).
    p.sequence_parallel = rng() % 2, p.tp_comm_overlap = rng() % 2, p.zero = int64_t(rng() % 2);
    p.recompute = pick(levels);
    if (!config::violations(p, m, gpus).empty()) continue;
    p = config::resolve(p, m, gpus, "test");
    if (fitting && !predict::fits_memory(m, chip, p)) continue;
    out.push_back(p);
  }
  return out;
}
}  // namespace

TEST(Predict, Llama405bOnSixteenThousandChips) {
  const auto m = config::load_model("llama3.1-405b");
  // Full recompute: with selective recompute 16 micro-batches in flight do not fit 80 GB.
  auto p = par(m, 16384, 8, 16, 2048);
  p.recompute = config::Recompute::kFull;
  const auto r = predict::predict(m, config::load_chip("h100"), p).row;
  EXPECT_TRUE(std::isfinite(r.step_time_s));
  EXPECT_GT(r.step_time_s, 0);
  // Closed-form ceiling: the chip's GEMM rate (gemm × sustained of peak) × the 1F1B busy fraction
  // m/(m+p−1) with m = 2048/128 = 16 micro-batches on p = 16 stages × 3/4 for full recompute (four
  // forward passes' worth of FLOPs for the three counted). Communication only lowers it.
  const auto chip = config::load_chip("h100");
  const double ceiling = chip.efficiency.gemm * chip.efficiency.sustained * 16.0 / 31.0 * 0.75;
  EXPECT_LT(r.mfu, ceiling);
  EXPECT_GT(r.mfu, 0.6 * ceiling);
  EXPECT_NEAR(r.tokens_per_s, 2048.0 * 8192 / r.step_time_s, 1e-6 * r.tokens_per_s);
  EXPECT_NEAR(r.breakdown.total(), r.step_time_s, 1e-9 * r.step_time_s);
  EXPECT_TRUE(r.fits);
}

TEST(Predict, ExpectedMaximumOfNormalsMatchesClosedForms) {
  EXPECT_EQ(predict::expected_max_of_normals(1), 0.0);
  EXPECT_NEAR(predict::expected_max_of_normals(2), 1.0 / std::sqrt(M_PI), 1e-7);        // E[max of 2]
  EXPECT_NEAR(predict::expected_max_of_normals(3), 1.5 / std::sqrt(M_PI), 1e-7);        // E[max of 3]
  EXPECT_NEAR(predict::expected_max_of_normals(8), 1.42360, 1e-5);                       // Tippett (1925) tables
  EXPECT_NEAR(predict::expected_max_of_normals(100), 2.50759, 1e-5);
  // Extreme-value asymptote b_n + γ/a_n (a_n = √(2 ln n), b_n = a_n − (ln ln n + ln 4π)/(2 a_n)),
  // within its own O(1/ln n) error at a million nodes.
  const double n = 1e6, a = std::sqrt(2 * std::log(n));
  const double asymptote = a - (std::log(std::log(n)) + std::log(4 * M_PI)) / (2 * a) + 0.5772156649 / a;
  EXPECT_NEAR(predict::expected_max_of_normals(1000000), asymptote, 0.05);
  for (int64_t k = 2; k < 1 << 20; k *= 4)
    EXPECT_LT(predict::expected_max_of_normals(k), predict::expected_max_of_normals(4 * k));
}

TEST(Predict, NodeJitterMakesEveryRankWaitForTheSlowestNode) {
  // σ = 2 % over 64 GPUs = 8 HGX nodes: the compute-bound part of the step (compute, other but
  // the host's step-boundary gap, bubble) grows by σ·E[max of 8] = 0.02 × 1.42360, spent waiting
  // in collectives; the gap, idle time, does not stretch.
  const auto m = config::load_model("llama3.1-70b");
  const auto p = par(m, 64, 8, 2, 128);
  const auto h100 = config::load_chip("h100");
  ASSERT_GT(h100.host_step_gap_s, 0);
  const auto base = predict::predict(m, config::resolve_target(config::parse_target("h100@node_jitter=0")), p).row;
  const auto jit = predict::predict(m, config::resolve_target(config::parse_target("h100@node_jitter=0.02")), p).row;
  const auto& b = base.breakdown;
  const double wait = (b.compute_s + b.other_s - h100.host_step_gap_s + b.bubble_s) * 0.02 * 1.42360;
  EXPECT_NEAR(jit.step_time_s, base.step_time_s + wait, 1e-6 * base.step_time_s);
  EXPECT_NEAR(jit.breakdown.exposed_comm_s, b.exposed_comm_s + wait, 1e-6 * base.step_time_s);
  EXPECT_DOUBLE_EQ(jit.breakdown.compute_s, b.compute_s);
  // One node: nobody to wait for.
  const auto p8 = par(m, 8, 8, 1, 8);
  EXPECT_DOUBLE_EQ(predict::predict(m, config::resolve_target(config::parse_target("h100@node_jitter=0.02")), p8).row.step_time_s,
                   predict::predict(m, config::resolve_target(config::parse_target("h100@node_jitter=0")), p8).row.step_time_s);
  // As a cap: a fraction in [0, 0.5], not a percentage.
  EXPECT_EQ(config::resolve_target(config::parse_target("h100@node_jitter=0")).node_jitter, 0.0);
  for (const char* bad : {"h100@node_jitter=2%", "h100@node_jitter=0.7", "h100@node_jitter=-0.1"}) {
    try {
      config::parse_target(bad);
      ADD_FAILURE() << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("node_jitter"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("[0, 0.5]"), std::string::npos) << e.what();
    }
  }
}

TEST(Predict, DoesNotFitIsReportedNotHidden) {
  const auto m = config::load_model("llama3.1-405b");
  const auto r = predict::predict(m, config::load_chip("h100"), par(m, 8, 8, 1, 8)).row;
  EXPECT_FALSE(r.fits);
  EXPECT_GT(r.memory_gb_per_chip, r.memory_capacity_gb);
}

TEST(Predict, CappedH100BehavesLikeH20) {
  // DESIGN: h100@tflops=148,hbm_gb=96,hbm_tbps=4.0 must behave like the H20 profile.
  const auto m = config::load_model("llama3.1-70b");
  const auto p = par(m, 64, 8, 2, 128);
  const auto capped = predict::predict(m, config::resolve_target(config::parse_target("h100@tflops=148,hbm_gb=96,hbm_tbps=4.0")), p).row;
  const auto h20 = predict::predict(m, config::load_chip("h20"), p).row;
  EXPECT_NEAR(capped.tokens_per_s_per_chip / h20.tokens_per_s_per_chip, 1.0, 0.05);
  EXPECT_NEAR(capped.memory_capacity_gb, h20.memory_capacity_gb, 1e-9);
}

TEST(Predict, CapsNeverSpeedThingsUp) {
  const auto m = config::load_model("llama3.1-70b");
  const auto p = par(m, 256, 8, 4, 256);
  double prev = INFINITY;
  for (const char* spec : {"h200", "h200@nvlink=400", "h200@nvlink=100", "h200@nvlink=25"}) {
    const auto r = predict::predict(m, config::resolve_target(config::parse_target(spec)), p).row;
    EXPECT_LE(r.tokens_per_s_per_chip, prev * (1 + 1e-12)) << spec;
    prev = r.tokens_per_s_per_chip;
  }
  const auto full = predict::predict(m, config::load_chip("h200"), p).row;
  const auto slow_nic = predict::predict(m, config::resolve_target(config::parse_target("h200@nic=25")), p).row;
  EXPECT_LT(slow_nic.tokens_per_s_per_chip, full.tokens_per_s_per_chip);
}

TEST(Predict, SearchFindsTheBestFittingPlan) {
  const auto m = config::load_model("llama3.1-70b");
  predict::SearchOptions o;
  o.gpus = 64, o.global_batch_size = 128, o.seq_length = 4096, o.top = 5;
  const auto r = predict::search(m, config::load_chip("h100"), o);
  ASSERT_FALSE(r.ranked.empty());
  EXPECT_GT(r.candidates, r.fitting);
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    EXPECT_TRUE(r.ranked[i].fits);
    if (i) {
      EXPECT_GE(r.ranked[i - 1].tokens_per_s_per_chip, r.ranked[i].tokens_per_s_per_chip);
    }
  }
  // The winner beats an arbitrary fitting plan of the same size.
  const auto other = predict::predict(m, config::load_chip("h100"), [&] {
    auto p = par(m, 64, 8, 8, 128);
    p.seq_length = 4096;
    p.recompute = config::Recompute::kFull;
    return p;
  }()).row;
  EXPECT_GE(r.ranked[0].tokens_per_s_per_chip, other.tokens_per_s_per_chip);
  // Options that apply to every candidate reach them: bf16 gradient reduction halves the DP
  // traffic, so the best plan can only get faster.
  o.grad_reduce_in_bf16 = true;
  const auto b = predict::search(m, config::load_chip("h100"), o);
  ASSERT_FALSE(b.ranked.empty());
  for (const auto& row : b.ranked) EXPECT_TRUE(row.parallel.grad_reduce_in_bf16);
  EXPECT_GE(b.ranked[0].tokens_per_s_per_chip, r.ranked[0].tokens_per_s_per_chip);
}

TEST(Predict, SearchKeepsFixedKnobsAndSaysWhyNothingFits) {
  const auto m = config::load_model("llama3.1-70b");
  const auto h20 = config::load_chip("h20");
  predict::SearchOptions o;
  o.gpus = 64, o.global_batch_size = 128, o.seq_length = 4096, o.top = 3;
  o.fixed = {"tp", "recompute"};
  o.given.tp = 4, o.given.recompute = config::Recompute::kFull;
  const auto fixed = predict::search(m, h20, o);
  ASSERT_FALSE(fixed.ranked.empty());
  for (const auto& row : fixed.ranked) {
    EXPECT_EQ(row.parallel.tp, 4);
    EXPECT_EQ(row.parallel.recompute, config::Recompute::kFull);
  }
  // Issue 14: 1000 chips and a batch of 1024 admit no (tp, cp, pp, dp); memory is not the reason.
  predict::SearchOptions none;
  none.gpus = 1000, none.global_batch_size = 1024;
  const auto r = predict::search(m, h20, none);
  EXPECT_TRUE(r.ranked.empty());
  const auto& x = r.rejected;
  EXPECT_EQ(x.memory, 0);
  EXPECT_GT(x.chips, 0);
  EXPECT_GT(x.batch, 0);
  EXPECT_EQ(x.heads + x.layers + x.chips + x.batch + x.sequence + x.other + x.memory, r.shapes);  // each shape once
  const auto n = predict::nearest_fitting(m, h20, none);
  ASSERT_GT(n.gpus_below, 0);
  EXPECT_LT(n.gpus_below, 1000);
  EXPECT_GT(n.gpus_above, 1000);
  EXPECT_LE(n.gpus_above, 1024);
  EXPECT_LT(n.batch_below, 1024);
  EXPECT_GT(n.batch_above, 1024);
  // Every suggestion admits a plan, and nothing nearer does (checked by searching each size between).
  for (int64_t g : {n.gpus_below, n.gpus_above}) {
    auto at = none;
    at.gpus = g, at.top = 1;
    EXPECT_FALSE(predict::search(m, h20, at).ranked.empty()) << g;
  }
  for (int64_t b : {n.batch_below, n.batch_above}) {
    auto at = none;
    at.global_batch_size = b, at.top = 1;
    EXPECT_FALSE(predict::search(m, h20, at).ranked.empty()) << b;
  }
  for (int64_t g = n.gpus_below + 1; g < n.gpus_above; g += (g < 990 || g > 1010) ? 7 : 1) {
    auto at = none;
    at.gpus = g, at.top = 1;
    EXPECT_TRUE(predict::search(m, h20, at).ranked.empty()) << g << " chips admit a plan but were not suggested";
  }
}

// The branch and bound loses nothing: on chip counts of several nodes, where the slowest node's
// wait (apply_node_jitter) is part of every step and of the bound, the pruned search's best
// equals the best of every fitting candidate timed (dense with an uneven layer split, and MoE).
TEST(Predict, BranchAndBoundFindsTheBestOfEveryCandidate) {
  struct Case {
    const char* model;
    const char* chip;
    int64_t gpus, gbs, seq;
    bool fa1 = false;  // FlashAttention-1 (flash_attention_v1)
  };
  const Case cases[] = {{"llama3.1-8b", "h100", 32, 64, 8192}, {"llama3.1-70b", "a100", 32, 64, 4096}, {"mixtral-8x7b", "h800", 16, 32, 4096},
                        {"tiny-moe", "h100", 16, 64, 2048},  // MoE without and with a shared expert
                        {"gpt-7.5b", "a100", 16, 64, 2048, true}};  // attention dropout 0.1 under FlashAttention-1
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    const auto m = config::load_model(c.model);
    const auto chip = config::load_chip(c.chip);
    ASSERT_GT(chip.node_jitter, 0.0);
    predict::SearchOptions o;
    o.gpus = c.gpus, o.global_batch_size = c.gbs, o.seq_length = c.seq, o.top = 1;
    o.given.flash_attention_v1 = c.fa1;
    const auto pruned = predict::search(m, chip, o);
    o.branch_and_bound = false;
    const auto all = predict::search(m, chip, o);
    ASSERT_FALSE(pruned.ranked.empty());
    EXPECT_EQ(all.evaluated, all.fitting);
    EXPECT_LT(pruned.evaluated, all.evaluated);
    EXPECT_EQ(pruned.ranked[0].step_time_s, all.ranked[0].step_time_s)
        << config::parallel_text(pruned.ranked[0].parallel) << " vs " << config::parallel_text(all.ranked[0].parallel);
  }
}

// The same for a model with MLA, MTP and a dense first layer (DeepSeek-V3's kinds, cut to 6 layers
// and 16 experts so that every candidate can be timed): the bound times its routed experts' grouped
// GEMMs and puts the MTP module on the last stage; the top 5 must be the unpruned search's.
TEST(Predict, BranchAndBoundKeepsTheBestPlansOfAnMoeModelWithMlaAndMtp) {
  auto m = config::load_model("deepseek-v3");
  m.num_layers = 6, m.moe_first_k_dense = 1, m.num_moe_experts = 16;
  const auto chip = config::load_chip("h100");
  predict::SearchOptions o;
  o.gpus = 32, o.global_batch_size = 64, o.seq_length = 4096, o.top = 5;
  const auto pruned = predict::search(m, chip, o);
  o.branch_and_bound = false;
  const auto all = predict::search(m, chip, o);
  ASSERT_EQ(pruned.ranked.size(), 5u);
  ASSERT_EQ(all.ranked.size(), 5u);
  EXPECT_LT(pruned.evaluated * 4, all.evaluated);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(pruned.ranked[i].step_time_s, all.ranked[i].step_time_s)
        << i << ": " << config::parallel_text(pruned.ranked[i].parallel) << " vs " << config::parallel_text(all.ranked[i].parallel);
}

// Issue 13 item 7: the search's best plan is at least as fast as every valid, fitting plan of its
// space (tp, cp, pp, vpp, micro-batch, ep, SP, TP overlap, ZeRO, recompute), checked against a
// fixed-seed random sample of named plans. Along the way the two dominance rules the search prunes
// by hold on every sampled plan: TP comm overlap never slows a sequence-parallel plan, and no
// recompute is never slower than selective or full.
TEST(Predict, SearchBeatsEveryRandomlyDrawnValidPlan) {
  struct Case {
    const char* model;
    const char* chip;
    int64_t gpus, gbs, seq;
  };
  const Case cases[] = {{"llama3.1-70b", "h100", 1024, 1024, 8192},  // the bench's search
                        {"llama3.1-70b", "h100", 64, 128, 4096},
                        {"llama3.1-8b", "h20", 32, 64, 8192},
                        {"mixtral-8x7b", "h100", 32, 64, 4096}};
  std::mt19937_64 rng(20261130);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    const auto m = config::load_model(c.model);
    const auto chip = config::load_chip(c.chip);
    predict::SearchOptions o;
    o.gpus = c.gpus, o.global_batch_size = c.gbs, o.seq_length = c.seq, o.top = 1;
    const auto best = predict::search(m, chip, o);
    ASSERT_FALSE(best.ranked.empty());
    const double top = best.ranked[0].tokens_per_s_per_chip;
    const auto plans = random_plans(m, chip, c.gpus, c.gbs, c.seq, 40, 8, true, rng);
    for (const auto& p : plans) {
      const auto row = predict::predict(m, chip, p).row;
      EXPECT_GE(top, row.tokens_per_s_per_chip * (1 - 1e-9)) << config::parallel_text(p) << " beats the search's "
                                                              << config::parallel_text(best.ranked[0].parallel);
      if (p.recompute != config::Recompute::kNone) {
        auto q = p;
        q.recompute = config::Recompute::kNone;
        EXPECT_GE(predict::predict(m, chip, q).row.tokens_per_s_per_chip, row.tokens_per_s_per_chip * (1 - 1e-9))
            << "recompute speeds up " << config::parallel_text(p);
      }
    }
    EXPECT_GE(plans.size(), 30u);
  }
}

// The search orders and prunes its candidates by a lower bound on each plan's step (search.cpp,
// lower_bound_s): over randomly drawn valid plans of dense, windowed, MoE (with and without shared
// experts) and MLA + MTP models, predict()'s step is never below it. (The branch-and-bound test
// above only sees the bound where it would change the winner.)
TEST(Predict, SearchLowerBoundIsNeverAboveThePredictedStep) {
  struct Case {
    const char* model;
    const char* chip;
    int64_t gpus, gbs, seq;
  };
  const Case cases[] = {{"llama3.1-70b", "h100", 256, 256, 8192}, {"gpt-7.5b", "a100", 64, 128, 2048},
                        {"mixtral-8x7b", "h800", 64, 128, 4096}, {"tiny-moe", "h100", 32, 64, 2048},
                        {"qwen3-30b-a3b", "h100", 64, 256, 4096}, {"deepseek-v3", "h100", 512, 512, 4096},
                        {"gpt-oss-120b", "b200", 64, 128, 4096}};
  std::mt19937_64 rng(20261203);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.model);
    const auto m = config::load_model(c.model);
    const auto chip = config::load_chip(c.chip);
    const auto plans = random_plans(m, chip, c.gpus, c.gbs, c.seq, 60, 4, false, rng);
    for (const auto& p : plans) {
      const double bound = predict::search_lower_bound_s(m, chip, p);
      EXPECT_GT(bound, 0.0);
      EXPECT_LE(bound, predict::predict(m, chip, p).row.step_time_s * (1 + 1e-9)) << config::parallel_text(p);
    }
    EXPECT_GE(plans.size(), 50u);
  }
  // Fixed cases: the plan the CP term once put above its step (70B, cp ring across nodes, full
  // recompute), and a dense model whose layers alternate windowed and full attention (its last
  // stage may hold fewer full layers than the average stage).
  {
    const auto m = config::load_model("llama3.1-70b");
    config::ParallelConfig p;
    p.tp = 2, p.pp = 4, p.cp = 16, p.vpp = 4, p.micro_batch_size = 4, p.global_batch_size = 256, p.seq_length = 8192;
    p.recompute = config::Recompute::kFull, p.sequence_parallel = true;
    p = config::resolve(p, m, 256, "test");
    const auto chip = config::load_chip("h100");
    EXPECT_LE(predict::search_lower_bound_s(m, chip, p), predict::predict(m, chip, p).row.step_time_s * (1 + 1e-9));
  }
  auto windowed = config::load_model("llama3.1-8b");
  windowed.window_size = 512, windowed.window_attn_skip_freq = 4;
  const auto chip = config::load_chip("h100");
  for (int64_t pp : {2, 4, 8})
    for (int64_t vpp : {1, 2})
      for (int64_t cp : {1, 2}) {
        config::ParallelConfig p;
        p.tp = 2, p.pp = pp, p.vpp = vpp, p.cp = cp, p.global_batch_size = 64, p.seq_length = 8192, p.sequence_parallel = true;
        if (!config::violations(p, windowed, 64).empty()) continue;
        p = config::resolve(p, windowed, 64, "test");
        EXPECT_LE(predict::search_lower_bound_s(windowed, chip, p), predict::predict(windowed, chip, p).row.step_time_s * (1 + 1e-9))
            << config::parallel_text(p);
      }
}

TEST(Emulate, DilationKeepsTheTimeTheHostSpentBeyondItsModel) {
  // Host H100 measured at its modelled durations × 1.25: an H200 target sees its own modelled
  // durations plus the host's extra 0.25 × (the H100's), tagged "dilated"; a host at 0.8 × its
  // model moves by the ratio (0.8 × the H200's).
  const auto m = config::load_model("tiny-demo");
  auto p = par(m, 4, 2, 2, 8);
  const auto plan = plan::build_plan(m, p);
  const auto h100 = config::load_chip("h100"), h200 = config::load_chip("h200");
  const parallel::Layout layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp);
  const auto model_h = predict::model_durations(plan, predict::CostModel(h100, p.precision, layout));
  const auto modelled = predict::model_durations(plan, predict::CostModel(h200, p.precision, layout));
  for (const double k : {1.25, 0.8}) {
    auto host = model_h;
    for (auto& st : host)
      for (auto& d : st) d *= k;
    const auto t = emulate::emulate_target(plan, host, h100, h200);
    for (size_t s = 0; s < host.size(); ++s)
      for (size_t i = 0; i < host[s].size(); ++i) {
        if (host[s][i] == 0) continue;
        const double want = k > 1 ? modelled[s][i] + (k - 1) * model_h[s][i] : k * modelled[s][i];
        EXPECT_NEAR(t.durations[s][i], want, 1e-12 * want);
        EXPECT_EQ(t.sources[s][i], "dilated");
      }
  }
  // From a CPU host the target durations are modelled, not dilated.
  const auto cpu = emulate::emulate_target(plan, model_h, config::load_chip("cpu-host"), h200);
  EXPECT_EQ(cpu.row.source, "roofline");
}

TEST(Emulate, DilationUnderAComputeCapIsTheCapRule) {
  // A large GEMM measured on an H100 at t_h, dilated to h100@tflops=148 (an H20's compute): the cap
  // rule says only F/P shrinks or grows with the peak (config::apply_caps: e' = 1/(1 + r(1/e − 1))),
  // so the target takes t_h + F·(1/P_t − 1/P_h)/(s·f³), with s the whole-step derate and
  // f = 8192/8256 the tile fill of each dimension. A host that ran 10 % over its model keeps that
  // time, it does not turn it into 10 % more of the capped chip's six-times-longer compute.
  const int64_t n = 8192;
  const double F = 2.0 * double(n) * n * n, fill = double(n) / (n + 64.0);
  const auto h100 = config::load_chip("h100");
  const auto capped = config::resolve_target(config::parse_target("h100@tflops=148"));
  const double s = h100.efficiency.sustained;
  ASSERT_EQ(capped.efficiency.sustained, s);
  const double Ph = h100.peak_tflops.at("bf16") * 1e12, Pt = capped.peak_tflops.at("bf16") * 1e12;
  const parallel::Layout layout(1, 1, 1, 1, 1, 1);
  const auto op = plan::gemm_op(n, n, n);
  const double model_h = predict::CostModel(h100, config::Precision::kBf16, layout).duration(op);
  const double model_t = predict::CostModel(capped, config::Precision::kBf16, layout).duration(op);
  EXPECT_NEAR(model_t - model_h, F * (1 / Pt - 1 / Ph) / (s * fill * fill * fill), 1e-9 * model_t);
  const double t_h = 1.1 * model_h;
  const double t_t = emulate::dilate(t_h, model_h, model_t);
  EXPECT_NEAR(t_t, t_h + F * (1 / Pt - 1 / Ph) / (s * fill * fill * fill), 1e-9 * t_t);
  EXPECT_LT(t_t, 1.1 * model_t - 0.05 * model_t);  // the multiplicative rule's 1.1 × its model
  // Through the emulator (a capped H100 is the host's architecture, so it is dilated): every GEMM
  // of a plan measured at 1.1 × its H100 model keeps the host's extra 0.1 × that model.
  const auto m = config::load_model("tiny-demo");
  auto p = par(m, 4, 2, 2, 8);
  const auto plan = plan::build_plan(m, p);
  const parallel::Layout lp(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp);
  const auto on_h = predict::model_durations(plan, predict::CostModel(h100, p.precision, lp));
  const auto on_t = predict::model_durations(plan, predict::CostModel(capped, p.precision, lp));
  auto host = on_h;
  for (auto& st : host)
    for (auto& d : st) d *= 1.1;
  const auto e = emulate::emulate_target(plan, host, h100, capped);
  int gemms = 0;
  for (size_t st = 0; st < plan.stages.size(); ++st)
    for (size_t i = 0; i < plan.stages[st].ops.size(); ++i) {
      if (plan.stages[st].ops[i].kind != plan::OpKind::kGemm) continue;
      ++gemms;
      EXPECT_EQ(e.sources[st][i], "dilated");
      EXPECT_NEAR(e.durations[st][i], on_t[st][i] + 0.1 * on_h[st][i], 1e-12 * e.durations[st][i]);
      EXPECT_GE(on_t[st][i], on_h[st][i]);  // the cap never shortens a GEMM
    }
  EXPECT_GT(gemms, 0);
}

TEST(Emulate, PackAndUnpackRoundTrip) {
  // Two stages with different op counts, two steps each: what the ranks gather and rank 0 unpacks.
  const auto m = config::load_model("tiny-gpt");
  config::ParallelConfig p;
  p.pp = 2, p.global_batch_size = 2;
  p = config::resolve(p, m, 2, "test");
  const auto plan = plan::build_plan(m, p);
  std::vector<double> all;
  std::vector<int> offsets, counts;
  for (int r = 0; r < 2; ++r) {
    const size_t nops = plan.stages[r].ops.size();
    std::vector<std::vector<double>> op_s(2, std::vector<double>(nops));
    for (int k = 0; k < 2; ++k)
      for (size_t i = 0; i < nops; ++i) op_s[k][i] = 1000.0 * r + 100.0 * k + double(i);
    const auto pack = emulate::pack_rank(op_s, {10.0 + r, 20.0 + r});
    offsets.push_back(int(all.size())), counts.push_back(int(pack.size()));
    all.insert(all.end(), pack.begin(), pack.end());
  }
  const auto meas = emulate::unpack_gathered(plan, {0, 1}, all, offsets, counts, 2);
  ASSERT_EQ(meas.op_s.size(), 2u);
  EXPECT_EQ(meas.op_s[1][1][3], 1103.0);
  EXPECT_EQ(meas.op_s[0][0].size(), plan.stages[0].ops.size());
  EXPECT_EQ(meas.wall_s[1][0], 11.0);
  EXPECT_EQ(meas.wall_s[0][1], 20.0);
  // A rank whose pack does not fit its stage (it ran another plan) is named, not misread.
  counts[1] -= 1;
  try {
    emulate::unpack_gathered(plan, {0, 1}, all, offsets, counts, 2);
    FAIL() << "expected a RuntimeError";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
  }
}

TEST(Emulate, AggregationIgnoresWaiting) {
  // A collective where rank 1 arrived late: rank 0 waited 5 s, rank 1 (last to arrive) 1 s. The
  // collective's own time is the last arriver's.
  plan::Plan p;
  p.stages.resize(1);
  plan::Op c;
  c.kind = plan::OpKind::kCollective;
  p.stages[0].ops = {c};
  emulate::Measurements m;
  m.rank_stage = {0, 0};
  m.op_s = {{{5.0}, {5.2}, {4.9}}, {{1.0}, {1.1}, {0.9}}};
  m.wall_s = {{6, 6, 6}, {6, 6, 6}};
  EXPECT_DOUBLE_EQ(emulate::aggregate(p, m)[0][0], 1.0);
  EXPECT_DOUBLE_EQ(emulate::measured_step_s(m), 6.0);
}

TEST(Emulate, ReplayReproducesASynchronousGroup) {
  // Two ranks compute (2 s and 4 s), then meet in a collective that itself takes 1 s: rank 0
  // waits 2 s. Wall: 5 s on both. The representative rank computes the mean, 3 s; with the mean
  // collective time, (3 + 1) / 2 = 2 s, it ends at 5 s like the ranks; with the collective's own
  // time (1 s) it would end at 4 s.
  plan::Plan p;
  p.stages.resize(1);
  plan::Op g, c;
  g.kind = plan::OpKind::kGemm;
  c.kind = plan::OpKind::kCollective;
  c.deps[0] = 0, c.ndeps = 1;
  p.stages[0].ops = {g, c};
  emulate::Measurements m;
  m.rank_stage = {0, 0};
  m.op_s = {{{2.0, 3.0}}, {{4.0, 1.0}}};
  m.wall_s = {{5.0}, {5.0}};
  timeline::TimelineOptions serial;
  serial.serialize = true;
  const auto replay = emulate::aggregate(p, m, emulate::CollectiveTime::kReplay);
  EXPECT_DOUBLE_EQ(timeline::simulate(p, replay, serial).step_time_s, emulate::measured_step_s(m));
  EXPECT_DOUBLE_EQ(timeline::simulate(p, emulate::aggregate(p, m), serial).step_time_s, 4.0);
}

TEST(Predict, FoldingWaitsForUnevenChunksToSettle) {
  // 70B on tp 4 · pp 2 · cp 2 with vpp 6 and the loss counted in the split (chunks of 7, 6 and 5
  // layers): the step grows by 0.856, 0.873, 0.875, 0.875 s per round of pp micro-batches from
  // 2·pp on, so a fold measured from 2·pp read 1.28 % short of the full simulation. Uneven plans
  // are folded from 4·pp.
  const auto m = config::load_model("llama3.1-70b");
  const auto chip = config::load_chip("h100");
  config::ParallelConfig p;
  p.tp = 4, p.pp = 2, p.vpp = 6, p.cp = 2, p.global_batch_size = 16, p.seq_length = 8192;
  p.sequence_parallel = p.tp_comm_overlap = true, p.zero = 1, p.account_for_loss_in_pipeline_split = true;
  p = config::resolve(p, m, 16, "test");
  ASSERT_EQ(p.num_microbatches(), 16);
  predict::PredictOptions full;
  full.fold_microbatches = false;
  const auto exact = predict::predict(m, chip, p, full).row, folded = predict::predict(m, chip, p).row;
  EXPECT_NEAR(folded.step_time_s / exact.step_time_s, 1.0, 1e-6);
  EXPECT_NEAR(folded.breakdown.bubble_s, exact.breakdown.bubble_s, 1e-6 * exact.step_time_s);
  EXPECT_GE(folded.breakdown.bubble_s, 0.0);
}

TEST(Predict, MicrobatchFoldingMatchesFullSimulation) {
  // The folded prediction (a steady round measured in short schedules, extended to m) against
  // simulating every micro-batch: 1F1B, interleaved and no pipelining, with and without DP overlap
  // tails, TP overlap, CP, uneven layer splits and MoE; with collectives beside the compute stream
  // free, and slowing it by their SM share (comm_contention: 24 of 132 SMs).
  struct C {
    const char* model;
    int64_t gpus, tp, pp, vpp, gbs, cp = 1, ep = 1;
    bool overlap = true, flash = true;
    int64_t zero = 1;
  };
  for (const C& c : {C{"llama3.1-70b", 64, 8, 4, 1, 256}, C{"llama3.1-70b", 128, 8, 4, 2, 1024}, C{"llama3.1-70b", 64, 8, 1, 1, 256},
                    C{"llama3.1-70b", 256, 4, 8, 2, 2048}, C{"llama3.1-70b", 128, 4, 4, 5, 1024, 2, 1, false},
                    C{"llama3.1-405b", 2048, 8, 16, 1, 1024}, C{"gpt3-175b", 1024, 8, 8, 2, 1536, 1, 1, false, false},
                    C{"gpt3-175b", 512, 8, 8, 3, 1024, 1, 1, true, true, 0}, C{"qwen3-235b-a22b", 256, 2, 8, 4, 1536, 1, 32},
                    C{"mixtral-8x7b", 64, 2, 4, 1, 512, 1, 8}, C{"tiny-moe", 8, 1, 2, 1, 64, 1, 4}})
  for (const int64_t ctas : {0, 24}) {
    const auto m = config::load_model(c.model);
    auto chip = config::load_chip("h100");
    chip.sm_count = 132, chip.comm_ctas = ctas;
    config::ParallelConfig p;
    p.tp = c.tp, p.pp = c.pp, p.vpp = c.vpp, p.cp = c.cp, p.ep = c.ep, p.global_batch_size = c.gbs, p.seq_length = 4096;
    p.sequence_parallel = c.tp > 1, p.tp_comm_overlap = c.overlap && c.tp > 1, p.zero = c.zero, p.flash_attention = c.flash;
    p.recompute = config::Recompute::kFull;
    p.account_for_embedding_in_pipeline_split = p.account_for_loss_in_pipeline_split = m.is_moe() && c.pp > 4;
    p = config::resolve(p, m, c.gpus, "test");
    ASSERT_GT(p.num_microbatches(), (c.vpp > 1 ? 3 : 2) * c.pp) << c.model << ": the case must fold";
    predict::PredictOptions full;
    full.fold_microbatches = false;
    const auto exact = predict::predict(m, chip, p, full).row;
    const auto folded = predict::predict(m, chip, p).row;
    const std::string what = std::string(c.model) + " pp " + std::to_string(c.pp) + " vpp " + std::to_string(c.vpp) +
                             " comm_ctas " + std::to_string(ctas);
    EXPECT_NEAR(folded.step_time_s / exact.step_time_s, 1.0, 0.002) << what;
    EXPECT_NEAR(folded.hfu / exact.hfu, 1.0, 0.002) << what;
    EXPECT_NEAR(folded.breakdown.total() / folded.step_time_s, 1.0, 1e-9) << what;
    EXPECT_NEAR(folded.breakdown.bubble_s, exact.breakdown.bubble_s, 0.002 * exact.step_time_s) << what;
    EXPECT_NEAR(folded.breakdown.exposed_comm_s, exact.breakdown.exposed_comm_s, 0.002 * exact.step_time_s) << what;
    // Compact plans (copied layers' timings shifted from their source's) against every op
    // simulated: the same up to rounding (1e-9; folding amplifies it), folded or not.
    for (const bool fold : {false, true}) {
      predict::PredictOptions a = fold ? predict::PredictOptions{} : full, b = a;
      b.compact_plans = false;
      const auto x = predict::predict(m, chip, p, a), y = predict::predict(m, chip, p, b);
      EXPECT_NEAR(x.row.step_time_s / y.row.step_time_s, 1.0, 1e-9) << what;
      EXPECT_NEAR(x.row.hfu / y.row.hfu, 1.0, 1e-9) << what;
      EXPECT_NEAR(x.timeline.breakdown.compute_s, y.timeline.breakdown.compute_s, 1e-9 * y.row.step_time_s) << what;
      EXPECT_NEAR(x.timeline.breakdown.exposed_comm_s, y.timeline.breakdown.exposed_comm_s, 1e-9 * y.row.step_time_s) << what;
      EXPECT_NEAR(x.timeline.breakdown.bubble_s, y.timeline.breakdown.bubble_s, 1e-9 * y.row.step_time_s) << what;
      EXPECT_EQ(x.timeline.critical_stage, y.timeline.critical_stage) << what;
    }
  }
}

TEST(Predict, ExtremeConfigsStayFiniteOrAreRejected) {
  // 10^6 chips, a 1T-parameter model, and caps at the smallest allowed values: every number is
  // finite (or the input is rejected as an InputError), never NaN/Inf or a silent wrap.
  const auto big = config::load_model("gpt-1008b");
  config::ParallelConfig p;
  p.tp = 8, p.pp = 64, p.global_batch_size = 2048 * 16, p.recompute = config::Recompute::kFull;
  p.sequence_parallel = true, p.zero = 1;
  p = config::resolve(p, big, 1 << 20, "test");
  for (const char* spec : {"h100", "h100@nvlink=0.001,nic=0.001", "h100@tflops=0.01%", "b200@hbm_tbps=0.001"}) {
    const auto r = predict::predict(big, config::resolve_target(config::parse_target(spec)), p).row;
    for (double v : {r.step_time_s, r.tokens_per_s, r.mfu, r.hfu, r.memory_gb_per_chip, r.breakdown.total()}) {
      EXPECT_TRUE(std::isfinite(v)) << spec;
      EXPECT_GE(v, 0) << spec;
    }
  }
  EXPECT_THROW(config::parse_target("h100@nvlink=1e-300"), InputError);
  EXPECT_THROW(config::parse_target("h100@nic=1e400"), InputError);
}

TEST(Predict, ModelDurationsEqualPerOpDurations) {
  // model_durations reuses the duration of an earlier op with the same inputs; it must equal
  // CostModel::duration op by op (unfused and flash attention, CP, SP, ZeRO, tied embeddings, MoE),
  // including the ops the builder copied from an earlier layer (plan::CopyRange).
  struct C { const char* model; int64_t gpus, tp, pp, vpp, cp; bool flash; int64_t ep = 1; };
  for (const C c : {C{"gpt3-175b", 64, 8, 8, 1, 1, false}, C{"llama3.1-70b", 128, 4, 4, 2, 2, true}, C{"tiny-gpt", 16, 2, 4, 1, 1, true},
                    C{"tiny-moe", 8, 1, 2, 1, 1, true, 4}}) {
    const auto m = config::load_model(c.model);
    config::ParallelConfig p;
    p.tp = c.tp, p.pp = c.pp, p.vpp = c.vpp, p.cp = c.cp, p.ep = c.ep, p.global_batch_size = 16, p.seq_length = 4096;
    p.sequence_parallel = c.tp > 1, p.zero = 1, p.flash_attention = c.flash, p.recompute = config::Recompute::kSelective;
    p = config::resolve(p, m, c.gpus, "test");
    const auto plan = plan::build_plan(m, p);
    const predict::CostModel cost(config::load_chip("h100"), p.precision, parallel::Layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp));
    const auto d = predict::model_durations(plan, cost);
    size_t copied = 0;
    for (size_t s = 0; s < plan.stages.size(); ++s) {
      for (size_t i = 0; i < plan.stages[s].ops.size(); ++i) ASSERT_EQ(d[s][i], cost.duration(plan.stages[s].ops[i])) << c.model;
      for (const auto& r : plan.stages[s].copies) copied += size_t(r.end - r.begin);
    }
    EXPECT_GT(copied, 0u) << c.model;  // the copies were exercised
    // The FLOPs behind HFU, summed with the copies' totals, equal executed_flops' op-by-op sum.
    const auto row = predict::predict(m, config::load_chip("h100"), p).row;
    EXPECT_NEAR(row.hfu * row.step_time_s * double(p.world()) * config::load_chip("h100").peak_flops(p.precision) /
                    predict::executed_flops(plan), 1.0, 1e-12) << c.model;
  }
}

TEST(Predict, ParamGatherOutsideTheForwardIsExposedWhole) {
  // ZeRO-1 on one 8-GPU H100 node (tp 1, dp 8): every all-gather is a ring inside the NVLink domain,
  // 7/8·S/B + 7α each (S = 2 B per parameter of the gather; B = NVLink per direction × its
  // efficiency; α = the hop latency). Without --overlap-param-gather the step's first compute op
  // starts after all of them: 7/8·2·params/B + 7α per gather; with it, after the embedding's
  // bucket alone (its 525 M parameters fill a bucket by themselves).
  const auto m = config::load_model("llama3.1-8b");
  const auto chip = config::load_chip("h100");
  const double B = chip.nvlink_gbyte_s * 1e9 / 2 * chip.efficiency.nvlink, alpha = chip.nvlink_latency_us * 1e-6;
  auto p = par(m, 8, 1, 1, 8);
  predict::PredictOptions keep;
  keep.keep_timings = true;
  auto first_compute_start = [&](bool overlap, int64_t* gathers, int64_t* params) {
    p.overlap_param_gather = overlap;
    const auto plan = plan::build_plan(m, p);
    const auto& st = plan.stages[0];
    *params = st.params, *gathers = 0;
    for (int32_t i = 0; i < st.size(); ++i) *gathers += st.op(i).name == plan::OpName::kParamGather;
    const auto tl = predict::predict(m, chip, p, keep).timeline;
    for (int32_t i = 0; i < st.size(); ++i)
      if (st.op(i).stream == plan::Stream::kCompute) return tl.timings[0][size_t(i)].start_s;
    return -1.0;
  };
  int64_t gathers = 0, params = 0;
  const double off = first_compute_start(false, &gathers, &params);
  // Megatron's buckets (max(40 M, 1 M × dp) parameters; Plan.DataParallelBucketsAreMegatrons):
  // three per Llama 8B layer, one each for the embedding and the head.
  EXPECT_EQ(gathers, 3 * m.num_layers + 2);
  EXPECT_NEAR(off, 7.0 / 8 * 2.0 * double(params) / B + double(gathers) * 7 * alpha, 1e-9);
  const double on = first_compute_start(true, &gathers, &params);
  EXPECT_NEAR(on, 7.0 / 8 * 2.0 * double(model::embedding_params_per_rank(m, 1)) / B + 7 * alpha, 1e-9);
  // Exposed whole, the gather lengthens the step by at least what overlapping it hid.
  p.overlap_param_gather = false;
  const double step_off = predict::predict(m, chip, p).row.step_time_s;
  p.overlap_param_gather = true;
  EXPECT_GT(step_off, predict::predict(m, chip, p).row.step_time_s + 0.9 * (off - on));
}

TEST(Predict, GradientReductionWithoutOverlapRunsOncePerStageAfterItsBackward) {
  // Megatron without --overlap-grad-reduce reduces each stage's whole gradient buffer after that
  // stage's last backward (finalize_model_grads), every stage on its own: the step is the slowest
  // stage's end without data parallelism plus its own reduction, not a chain of per-layer waits
  // handed from stage to stage through the pipeline's backward.
  const auto m = config::load_model("llama3.1-8b");
  const auto chip = config::load_chip("h100");
  auto plan_of = [&](int64_t dp) {
    config::ParallelConfig p;
    p.tp = 1, p.pp = 4, p.global_batch_size = 8 * dp, p.zero = 0, p.overlap_grad_reduce = false;
    return config::resolve(p, m, 4 * dp, "test");
  };
  const auto p1 = plan_of(1), p2 = plan_of(2);
  const auto plan2 = plan::build_plan(m, p2);
  const predict::CostModel cost(chip, p2.precision, parallel::Layout(p2.tp, p2.cp, p2.dp, p2.pp, p2.ep, p2.etp), nullptr,
                                p2.grad_bytes());
  const auto d = predict::model_durations(plan2, cost);
  predict::PredictOptions keep;
  keep.keep_timings = true;
  const auto base = predict::predict(m, chip, p1, keep).timeline;
  double want = 0;
  for (const auto& st : plan2.stages) {
    int32_t reduce = -1, last_backward = -1, reductions = 0;
    for (int32_t i = 0; i < st.size(); ++i) {
      const auto op = st.op(i);
      if (op.name == plan::OpName::kGradReduce) reduce = i, ++reductions;
      if (op.stream == plan::Stream::kCompute && op.phase == plan::Phase::kBackward) last_backward = i;
    }
    ASSERT_EQ(reductions, 1) << "stage " << st.pp_rank;
    EXPECT_GT(reduce, last_backward);
    EXPECT_EQ(st.op(reduce).bytes, st.params * p2.grad_bytes());
    want = std::max(want, base.stage_end_s[size_t(st.pp_rank)] + d[size_t(st.pp_rank)][size_t(reduce)]);
  }
  want += predict::host_step_gap(chip, p2);  // then the host's step-boundary gap, once
  EXPECT_NEAR(predict::predict(m, chip, p2).row.step_time_s, want, 1e-9 * want);
}

TEST(Predict, BlockingPipelineSendDelaysTheNextUnitByItsTransfer) {
  // Without overlap_p2p_comm (and always without interleaving) the unit after a send starts when
  // the send has completed: one message through the NIC, S/(B·e) + α, with S = (s/tp)·h·2 bytes
  // under sequence parallelism, B the NIC's line rate and e its efficiency (pp crosses nodes at
  // tp 8 on 8-GPU H100 nodes). With --overlap-p2p-communication the next unit starts beside it.
  const auto m = config::load_model("llama3.1-8b");
  const auto chip = config::load_chip("h100");
  const int64_t s = 4096, tp = 8;
  const double bytes = double(s / tp) * double(m.hidden_size) * 2;
  const double transfer = bytes / (chip.nic_gbit_s * 1e9 / 8 * chip.efficiency.nic) + chip.nic_latency_us * 1e-6;
  predict::PredictOptions keep;
  keep.keep_timings = true;
  struct Case {
    int64_t vpp;
    bool overlap, blocking;
  };
  for (const Case c : {Case{1, true, true}, Case{2, false, true}, Case{2, true, false}}) {
    config::ParallelConfig p;
    p.tp = tp, p.pp = 2, p.vpp = c.vpp, p.seq_length = s, p.global_batch_size = 4, p.sequence_parallel = true;
    p.overlap_p2p_comm = c.overlap;
    p = config::resolve(p, m, 16, "test");
    const auto plan = plan::build_plan(m, p);
    const auto tl = predict::predict(m, chip, p, keep).timeline;
    const auto& st = plan.stages[0];
    int32_t send = 0;
    while (!(st.op(send).kind == plan::OpKind::kSendRecv && st.op(send).is_send)) ++send;
    int32_t next = send + 1;
    while (st.op(next).stream != plan::Stream::kCompute) ++next;
    const auto& ts = tl.timings[0];
    EXPECT_NEAR(ts[size_t(send)].end_s - ts[size_t(send)].start_s, transfer, 1e-12);
    if (c.blocking) {
      // Stage 0's next unit (micro-batch 1's forward of the same chunk) receives nothing: the wait
      // starts when the send ends, and the unit's first op after its one launch gap.
      EXPECT_EQ(st.op(next).name, plan::OpName::kP2pWait);
      EXPECT_NEAR(ts[size_t(next)].start_s, ts[size_t(send)].end_s, 1e-12) << "vpp " << c.vpp;
      EXPECT_NEAR(ts[size_t(next) + 1].start_s, ts[size_t(send)].end_s + predict::CostModel::kKernelOverheadS, 1e-12);
    } else {
      EXPECT_LT(ts[size_t(next)].start_s, ts[size_t(send)].end_s - 0.5 * transfer);
    }
  }
}

TEST(Predict, OneH200StepOfH1sModelTakesTheTimeEagerPyTorchMeasured) {
  // bench/eager_gap.py on an H200 (PyTorch 2.11, 2026-11-30; bench/eager_gap-h200-2026-11-30.json):
  // forward and backward of the Megatron-Core README's 1.7B GPT (row H1: 24 layers, h 2048, 16
  // heads, vocabulary 131072, sequence 4096; LayerNorm, biases, GELU, flash SDPA, dropout 0.1 on
  // the residual paths) at micro-batch 1 took 89.2 ms eager. capscale's step on one H200 (tp 1, no
  // recompute) without its optimizer pass is that forward and backward. At Hopper's sustained
  // fitted without a host gap (0.806) it was 2 % short; fitted with it (0.831, with σ 0.0217: the
  // whole-step fit with the gap and the larger straggler wait puts ~3 % more into sustained) about
  // 6 % short, and the script's own elementwise kernels are unfused (a separate GELU, dropout and
  // residual add) where capscale prices Megatron's fused bias-GELU and bias-dropout-add. It must be
  // within 7 % (docs/validation.md, "The host's gap at each step"). This is what rules out the
  // per-op cost model as H1's +18 % (docs/validation.md, "A fixed per-op gap").
  const auto m = config::parse_model_node(YAML::Load(R"(
    name: h1-1.7b
    num_layers: 24
    hidden_size: 2048
    ffn_hidden_size: 8192
    num_attention_heads: 16
    vocab_size: 131072
    seq_length: 4096
    activation: gelu
    normalization: layernorm
    add_bias_linear: true
    position_embedding: learned
    tie_embeddings: false
    hidden_dropout: 0.1)"), "test");
  config::ParallelConfig p;
  p.global_batch_size = 1, p.micro_batch_size = 1, p.recompute = config::Recompute::kNone, p.zero = 0;
  p = config::resolve(p, m, 1, "test");
  predict::PredictOptions keep;
  keep.keep_timings = true, keep.fold_microbatches = false, keep.compact_plans = false;
  const auto plan = plan::build_plan(m, p);
  const auto& st = plan.stages[0];
  const auto tl = predict::predict(m, config::load_chip("h200"), p, keep).timeline;
  ASSERT_EQ(tl.timings[0].size(), size_t(st.size()));
  double fwd_bwd_end = 0, optimizer = 0;
  for (int32_t i = 0; i < st.size(); ++i) {
    const auto& t = tl.timings[0][size_t(i)];
    if (st.op(i).phase == plan::Phase::kOptimizer) optimizer += t.end_s - t.start_s;
    else fwd_bwd_end = std::max(fwd_bwd_end, t.end_s);
  }
  EXPECT_GT(optimizer, 0);
  EXPECT_NEAR(fwd_bwd_end / 0.0892, 1.0, 0.07);
}

TEST(Predict, OneLayerTakesTheTimeKorthikantiMeasuredOnEightA100s) {
  // Korthikanti et al. 2022 (arXiv 2205.05198), Table 4: one transformer layer of their 22B GPT
  // (h 6144, 64 heads, s 2048, micro-batch 4, 16-bit, unfused attention with dropout) on 8 A100
  // 80 GB at tp 8 (Selene), forward / backward in ms, the backward with its recompute. Megatron-LM
  // of 2022 runs a column-parallel linear's TP communication beside its GEMMs (async_tp_comm):
  // modelled so, the backward is within 3 % of the table and the forward within 6 %; in series the
  // backward is 9-14 % over it. The Ampere sustained this uses is fit to whole steps (SC21 Table 1
  // and this paper's Table 5), not to these per-layer times; SC21's rows alone (0.887) give 0-3 %.
  // A layer's time on the plan's timeline: the end of its last op minus the end of its
  // neighbour's (layer 1 of 4 forward, layer 1 of 4 backward after layer 2's).
  const auto m = config::parse_model_node(YAML::Load(R"(
    name: gpt-22b
    num_layers: 4
    hidden_size: 6144
    ffn_hidden_size: 24576
    num_attention_heads: 64
    vocab_size: 51200
    seq_length: 2048
    activation: gelu
    normalization: layernorm
    add_bias_linear: true
    position_embedding: learned
    tie_embeddings: true
    hidden_dropout: 0.1
    attention_dropout: 0.1)"), "test");
  const auto chip = config::load_chip("a100");
  struct Row { config::Recompute recompute; bool sp; double fwd_ms, bwd_ms; };
  const Row rows[] = {{config::Recompute::kNone, false, 7.7, 11.9},       // baseline, no recompute
                      {config::Recompute::kNone, true, 7.2, 11.8},        // sequence parallelism
                      {config::Recompute::kFull, false, 7.7, 19.5},       // baseline with recompute
                      {config::Recompute::kSelective, false, 7.7, 13.2},  // selective recompute
                      {config::Recompute::kSelective, true, 7.2, 13.1}};  // selective + sequence
  predict::PredictOptions keep;
  keep.keep_timings = true, keep.fold_microbatches = false, keep.compact_plans = false;
  // Forward and backward ms of layer 1, and the time layer 1's backward TP reductions took.
  auto layer = [&](const Row& r, bool async, double* reductions_ms) {
    config::ParallelConfig p;
    p.tp = 8, p.global_batch_size = 4, p.micro_batch_size = 4, p.sequence_parallel = r.sp, p.recompute = r.recompute;
    p.precision = config::Precision::kFp16, p.flash_attention = false, p.async_tp_comm = async;
    p = config::resolve(p, m, 8, "test");
    const auto plan = plan::build_plan(m, p);
    const auto& st = plan.stages[0];
    const auto tl = predict::predict(m, chip, p, keep).timeline;
    EXPECT_EQ(tl.timings[0].size(), size_t(st.size()));  // the plan predict() timed is this one
    std::array<double, 4> fwd{}, bwd{};
    *reductions_ms = 0;
    for (int32_t i = 0; i < st.size(); ++i) {
      const auto& op = st.op(i);
      if (op.layer < 0) continue;
      const auto& t = tl.timings[0][size_t(i)];
      auto& end = op.phase == plan::Phase::kForward ? fwd[size_t(op.layer)] : bwd[size_t(op.layer)];
      end = std::max(end, t.end_s);
      if (op.layer == 1 && op.phase == plan::Phase::kBackward && op.name == plan::OpName::kTpReduce)
        *reductions_ms += (t.end_s - t.start_s) * 1e3;
    }
    return std::array<double, 2>{(fwd[1] - fwd[0]) * 1e3, (bwd[1] - bwd[2]) * 1e3};
  };
  for (const Row& r : rows) {
    double reductions = 0, unused = 0;
    const auto async = layer(r, true, &reductions), serial = layer(r, false, &unused);
    const std::string what = std::string(config::enum_name(r.recompute)) + (r.sp ? " sp" : "");
    EXPECT_NEAR(async[0] / r.fwd_ms, 1.0, 0.06) << what;
    // One node, so none of the fitted straggler wait. Within 4 % at Ampere's sustained fitted
    // without a host gap (0.927); about 6 % short at most (no recompute) at the one fitted with it
    // (0.958, σ 0.0217): the whole-step fit with σ and the gap puts ~3 % more into sustained than
    // these per-layer times show (docs/validation.md, "The host's gap at each step").
    EXPECT_NEAR(async[1] / r.bwd_ms, 1.0, 0.065) << what;
    EXPECT_GT(serial[1] / async[1], 1.08) << what;  // the overlap the measurement shows saves more than 8 %
    EXPECT_EQ(serial[0], async[0]) << what;  // the forward's reductions are Megatron's blocking ones either way
    // Each dgrad reduction is shorter than the wgrad GEMM beside it, so overlapping them saves
    // exactly their time (without SP; under SP the wgrad's all-gather moves beside the dgrad too).
    if (!r.sp) {
      EXPECT_NEAR(serial[1] - async[1], reductions, 1e-9) << what;
    }
  }
}

TEST(Predict, HostStepGapIsChargedOncePerStepUnlessTheIterationIsOneGraph) {
  // The host's step-boundary gap (ChipProfile::host_step_gap_s) is idle time added once per step:
  // not per micro-batch (the folded prediction extends the micro-batch line and keeps it once), not
  // stretched by the straggler wait, booked as `other`; a full-iteration CUDA graph has none.
  const auto m = config::load_model("llama3.1-70b");
  const auto p = par(m, 64, 8, 2, 128);  // 128 micro-batches per pipeline: the step is folded
  auto chip = config::load_chip("h100");
  chip.host_step_gap_s = 0;
  const auto none = predict::predict(m, chip, p).row;
  chip.host_step_gap_s = 0.25;
  const auto gap = predict::predict(m, chip, p).row;
  EXPECT_NEAR(gap.step_time_s - none.step_time_s, 0.25, 1e-9);
  EXPECT_NEAR(gap.breakdown.other_s - none.breakdown.other_s, 0.25, 1e-9);
  EXPECT_DOUBLE_EQ(gap.breakdown.exposed_comm_s, none.breakdown.exposed_comm_s);  // the straggler wait is unchanged
  EXPECT_NEAR(gap.tokens_per_s, none.tokens_per_s * none.step_time_s / (none.step_time_s + 0.25), 1e-9 * none.tokens_per_s);
  auto graphed = p;
  graphed.full_iteration_cuda_graph = true;
  EXPECT_DOUBLE_EQ(predict::predict(m, chip, graphed).row.step_time_s, none.step_time_s);
  EXPECT_DOUBLE_EQ(predict::host_step_gap(chip, graphed), 0.0);
  EXPECT_DOUBLE_EQ(predict::host_step_gap(chip, p), 0.25);
}
