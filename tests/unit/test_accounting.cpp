// Accounting against independent closed forms and published figures:
// - the plan's executed FLOPs (full recompute) equal Narayanan et al. SC21 Eq. 3 for SC21 Table 1;
// - model FLOPs per token equal the DGXC README formulas (Llama: 4.74e14 per 8B sample; GPT-3
//   175B: 2.20e15 per sample) and SC21's no-recompute form;
// - parameter counts match the published model sizes;
// - activation memory matches Korthikanti et al. 2022 Table 2 by hand.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "model/accounting.hpp"
#include "plan/plan.hpp"
#include "predict/predictor.hpp"

using namespace capscale;

namespace {
config::ParallelConfig par(const config::ModelConfig& m, int64_t gpus, int64_t tp, int64_t pp, int64_t vpp, int64_t mbs,
                           int64_t gbs, config::Recompute rc) {
  config::ParallelConfig p;
  p.tp = tp, p.pp = pp, p.vpp = vpp, p.micro_batch_size = mbs, p.global_batch_size = gbs, p.recompute = rc;
  return config::resolve(p, m, gpus, "test");
}
}  // namespace

struct Sc21Row {
  const char* model;
  int64_t gpus, tp, pp, vpp, mbs, gbs;
};

class Sc21Table1 : public ::testing::TestWithParam<Sc21Row> {};

TEST_P(Sc21Table1, PlanFlopsMatchEq3WithFullRecompute) {
  const auto row = GetParam();
  const auto m = config::load_model(row.model);
  const auto p = par(m, row.gpus, row.tp, row.pp, row.vpp, row.mbs, row.gbs, config::Recompute::kFull);
  const double plan_flops = predict::executed_flops(plan::build_plan(m, p));
  const double eq3 = model::sc21_eq3_flops(m, row.gbs, m.seq_length);
  EXPECT_NEAR(plan_flops / eq3, 1.0, 0.005) << row.model;
  // Without recompute the plan equals the paper's 72Bslh²(1 + s/6h + V/12lh).
  const auto p0 = par(m, row.gpus, row.tp, row.pp, row.vpp, row.mbs, row.gbs, config::Recompute::kNone);
  EXPECT_NEAR(predict::executed_flops(plan::build_plan(m, p0)) / model::sc21_no_recompute_flops(m, row.gbs, m.seq_length), 1.0, 0.005);
}

// Rows A1–A6 of SC21 Table 1 (examples/sc21/run_table_1.sh); the larger rows build the same way.
INSTANTIATE_TEST_SUITE_P(Rows, Sc21Table1,
                         ::testing::Values(Sc21Row{"gpt-1.7b", 32, 1, 1, 1, 16, 512}, Sc21Row{"gpt-3.6b", 64, 2, 1, 1, 16, 512},
                                           Sc21Row{"gpt-7.5b", 128, 4, 1, 1, 16, 512}, Sc21Row{"gpt-18.4b", 256, 8, 1, 1, 8, 1024},
                                           Sc21Row{"gpt-39.1b", 512, 8, 2, 1, 4, 1536},
                                           Sc21Row{"gpt-76.1b", 1024, 8, 4, 3, 2, 1792}));

TEST(Accounting, ModelFlopsMatchDgxcFormulas) {
  // DGXC README worked example: Llama 3.1 8B, seq 8192 → 4.74e14 FLOPs per sample.
  const auto l8 = config::load_model("llama3.1-8b");
  EXPECT_NEAR(model::model_flops_per_token(l8, 8192) * 8192 / 4.74e14, 1.0, 0.005);
  // DGXC GPT-3 175B: (24Lh² + 12Lhs + 48Lh² + 6Vh)·s = 2.20e15 per sample at s = 2048.
  const auto g = config::load_model("gpt3-175b");
  EXPECT_NEAR(model::model_flops_per_token(g, 2048) * 2048 / 2.20e15, 1.0, 0.005);
  // Independent transcription of the Llama formula: 12Lh²(1 + G/H + s/h) + 18·L·ffn·h + 6Vh per token.
  for (const char* name : {"llama3.1-70b", "llama3.1-405b"}) {
    const auto m = config::load_model(name);
    const double L = m.num_layers, h = m.hidden_size, s = 8192, G = m.num_query_groups, H = m.num_attention_heads;
    const double dgxc = 12 * L * h * h * (1 + G / H + s / h) + 18 * L * m.ffn_hidden_size * h + 6 * m.vocab_size * h;
    EXPECT_NEAR(model::model_flops_per_token(m, 8192) / dgxc, 1.0, 1e-9) << name;
  }
  // MegaScale (NSDI 2024) Table 2's MFU: 72·l·h²·(1 + s/6h + V/12lh) per token, which reproduces
  // its iteration times; rows M9-M12 turn their published MFUs back into steps with it.
  for (const char* name : {"megascale-175b", "megascale-530b"}) {
    const auto m = config::load_model(name);
    const double l = m.num_layers, h = m.hidden_size, s = 2048, V = m.vocab_size;
    EXPECT_NEAR(model::model_flops_per_token(m, 2048) / (72 * l * h * h * (1 + s / (6 * h) + V / (12 * l * h))), 1.0, 1e-9)
        << name;
  }
  // SC21's no-recompute form per token for a GPT model.
  const auto g7 = config::load_model("gpt-7.5b");
  EXPECT_NEAR(model::model_flops_per_token(g7, 2048) * 2048 / model::sc21_no_recompute_flops(g7, 1, 2048), 1.0, 1e-9);
}

TEST(Accounting, ParameterCountsMatchPublishedSizes) {
  for (const char* name : {"llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "nemotron4-340b", "gpt3-175b", "gpt-7.5b",
                           "gpt-18.4b", "gpt-39.1b", "gpt-76.1b", "gpt-145.6b", "gpt-310.1b", "gpt-529.6b", "gpt-1008b"}) {
    const auto m = config::load_model(name);
    ASSERT_GT(m.published_params, 0) << name;
    EXPECT_NEAR(double(model::total_params(m)) / m.published_params, 1.0, 0.01) << name;
  }
  // SC21 prints 1.7B and 3.6B, rounded; its own formula P = 12lh²(1 + 13/12h + (V+s)/12lh) gives
  // 1.65B and 3.56B, which is what capscale must match exactly.
  for (const char* name : {"gpt-1.7b", "gpt-3.6b"}) {
    const auto m = config::load_model(name);
    const double l = m.num_layers, h = m.hidden_size, V = m.vocab_size, s = m.seq_length;
    const double sc21 = 12 * l * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * l * h));
    EXPECT_NEAR(double(model::total_params(m)) / sc21, 1.0, 0.001) << name;
  }
}

TEST(Accounting, ActivationMemoryMatchesKorthikanti) {
  const auto m = config::load_model("gpt3-175b");
  config::ParallelConfig p;
  p.tp = 8, p.seq_length = 2048, p.micro_batch_size = 1, p.flash_attention = false;
  const double s = 2048, b = 1, h = 12288, a = 96, t = 8;
  // TP without SP: sbh(10 + 24/t + 5as/(ht)).
  EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * b * h * (10 + 24 / t + 5 * a * s / (h * t)), 1);
  p.sequence_parallel = true;  // TP + SP: sbh/t·(34 + 5as/h)
  EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * b * h / t * (34 + 5 * a * s / h), 1);
  p.recompute = config::Recompute::kSelective;  // selective drops 5as/h
  EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * b * h / t * 34, 1);
  p.recompute = config::Recompute::kFull;  // full keeps the layer input, 2sbh (/t under SP)
  EXPECT_NEAR(model::activation_bytes_per_layer(m, p), 2 * s * b * h / t, 1);
}

TEST(Accounting, ActivationMemoryFollowsTheLayersShapes) {
  // Korthikanti's terms with each width read off the GEMM shapes (bytes per token, bf16, under SP
  // all ÷ t): two norm inputs 4h; QKV input 2h; Q, K, V 2(q + 2·kv); projection input 2q; FC1 input
  // 2h; FC1 output 2f per output matrix; FC2 input 2f; one 1-byte mask per hidden dropout.
  config::ParallelConfig p;
  p.tp = 8, p.seq_length = 4096, p.micro_batch_size = 1, p.sequence_parallel = true;
  const double s = 4096, t = 8;
  {
    // Llama 3.1 405B: h 16384, GQA 128 heads / 8 groups of 128, SwiGLU f 53248 = 3.25h, no dropout.
    const auto m = config::load_model("llama3.1-405b");
    const double h = 16384, kv = 8 * 128.0, f = 53248;
    const double per_token = 4 * h + 2 * h + 2 * (h + 2 * kv) + 2 * h + 2 * h + 2 * 2 * f + 2 * f;
    EXPECT_NEAR(per_token / h, 31.75, 1e-12);
    EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * per_token / t, 1);
  }
  {
    // Nemotron-4 340B: h 18432, 96 heads / 8 groups of 192, squared ReLU f 4h, no dropout: 28⅓ sbh.
    const auto m = config::load_model("nemotron4-340b");
    const double h = 18432;
    EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * h / t * (28.0 + 1.0 / 3.0), 1);
  }
  {
    // GPT-3 175B without dropout: the two masks go (32 sbh), and unfused attention keeps only the
    // softmax output (2as/h instead of 5as/h).
    auto m = config::load_model("gpt3-175b");
    m.hidden_dropout = m.attention_dropout = 0;
    const double h = 12288, a = 96;
    EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * h / t * 32, 1);
    p.flash_attention = false;
    EXPECT_NEAR(model::activation_bytes_per_layer(m, p), s * h / t * (32 + 2 * a * s / h), 1);
  }
}

namespace {
// Megatron-Core's interleaved schedule replayed step by step (schedules.py: get_schedule_table
// with groups of pp micro-batches, get_pp_rank_microbatches' warm-up, then forward-backward
// pairs), holding each chunk's activations from its forward to its backward.
double replay_peak(const std::vector<double>& chunk, int64_t pp, int64_t stage, int64_t m) {
  const int64_t vpp = int64_t(chunk.size());
  std::vector<int64_t> table;  // model chunk of each virtual micro-batch
  for (int64_t first = 0; first < m; first += pp) {
    const int64_t last = first + pp >= m ? m : first + pp;
    for (int64_t c = 0; c < vpp; ++c)
      for (int64_t mb = first; mb < last; ++mb) table.push_back(c);
  }
  const int64_t total = m * vpp;
  int64_t warmup = (pp - stage - 1) * 2 + (vpp - 1) * pp;
  if (warmup >= total) warmup = total;
  double held = 0, peak = 0;
  int64_t f = 0, b = 0;
  for (; f < warmup; ++f) held += chunk[size_t(table[size_t(f)])];
  peak = held;
  while (f < total) {
    held += chunk[size_t(table[size_t(f++)])];
    peak = std::max(peak, held);
    held -= chunk[size_t(vpp - 1 - table[size_t(b++)])];
  }
  return peak;
}
}  // namespace

TEST(Accounting, PipelineStagesHoldWhatMegatronsScheduleLeavesInFlight) {
  // 1F1B: min(pp − stage, m) micro-batches.
  EXPECT_DOUBLE_EQ(model::peak_stage_activations({3.0}, 8, 0, 64), 8 * 3.0);
  EXPECT_DOUBLE_EQ(model::peak_stage_activations({3.0}, 8, 5, 64), 3 * 3.0);
  EXPECT_DOUBLE_EQ(model::peak_stage_activations({3.0}, 8, 0, 4), 4 * 3.0);
  // Interleaved, even chunks: the first stage holds Korthikanti's pp·(1 + (pp − 1)/(pp·vpp))
  // micro-batches of the stage; the last (vpp − 1)·pp + 1 chunk-micro-batches; with m = pp all
  // m·vpp are in flight.
  const int64_t pp = 8, vpp = 4;
  const std::vector<double> even(vpp, 1.0);
  EXPECT_NEAR(model::peak_stage_activations(even, pp, 0, 64), pp * (1.0 + double(pp - 1) / (pp * vpp)) * vpp, 1e-9);
  EXPECT_NEAR(model::peak_stage_activations(even, pp, pp - 1, 64), double((vpp - 1) * pp + 1), 1e-9);
  EXPECT_NEAR(model::peak_stage_activations(even, pp, 0, pp), double(pp * vpp), 1e-9);
  // Uneven chunks (Llama 3.1 405B's 126 layers on pp 8 · vpp 8: the first chunk one layer, the rest
  // two), micro-batches a multiple of pp or not: the step-by-step replay.
  std::vector<double> uneven(8, 2.0);
  uneven[0] = 1.0;
  for (int64_t m : {8, 16, 20, 64, 67})
    for (int64_t st : {0, 3, 7}) {
      EXPECT_NEAR(model::peak_stage_activations(uneven, 8, st, m), replay_peak(uneven, 8, st, m), 1e-9) << m << " " << st;
    }
  // By hand: the first stage's warm-up and first forward are 71 chunk-micro-batches, eight through
  // each chunk (8·1 + 56·2 layers) and seven more through the one-layer chunk 0: 127 layer-micro-
  // batches, where the even-split formula's 8·(1 + 7/64)·15 gives 133.1.
  EXPECT_NEAR(model::peak_stage_activations(uneven, 8, 0, 64), 127.0, 1e-9);
}

TEST(Accounting, MlaKeepsItsUpProjectedHeadsAndLatents) {
  // DeepSeek-V3's attention block and norms per token (h 7168, 128 heads, Q and K 128 + 64 wide,
  // V 128, latents 1536 + 512, no dropout): norms 4h, QKV input 2h, latents' norm input and output
  // 4(1536 + 512), Q, K, V and the projection input 2·128·(192 + 192 + 128 + 128): 30.0 h. Its
  // first three layers are dense (FC1 input 2h, FC1 output 2·2f, FC2 input 2f with f 18432).
  const auto m = config::load_model("deepseek-v3");
  config::ParallelConfig p;
  p.tp = 1, p.seq_length = 4096, p.micro_batch_size = 1;
  const double h = 7168, f = 18432;
  const double attention = 4 * h + 2 * h + 4 * (1536 + 512) + 2 * 128 * (192 + 192 + 128 + 128);
  EXPECT_NEAR(attention / h, 30.0, 1e-12);
  EXPECT_NEAR(model::activation_bytes_per_layer(m, p, 0), 4096 * (attention + 2 * h + 4 * f + 2 * f), 1);
}

TEST(Accounting, TheMostLoadedStageSetsTheMemory) {
  // Llama 3.1 405B, tp 8 · pp 8 · vpp 8, cp 2, 64 micro-batches: 126 layers in 64 chunks leave the
  // first and last chunk one layer each. Stage 1 holds 16 layers (stage 0: 15 and the embedding)
  // and 69 chunk-micro-batches of two layers in flight (138 layer-micro-batches; stage 0: 127), so
  // it sets the estimate: 16 · 398.5 M parameters at 2 + 4 + 12/8 bytes, 138 layers of 31.75 sbh/t.
  const auto m = config::load_model("llama3.1-405b");
  config::ParallelConfig p;
  p.tp = 8, p.pp = 8, p.vpp = 8, p.cp = 2, p.micro_batch_size = 1, p.global_batch_size = 256, p.zero = 1;
  p.sequence_parallel = true, p.seq_length = 8192;
  p = config::resolve(p, m, 512, "test");
  ASSERT_EQ(p.num_microbatches(), 64);
  const double layer_params = double(model::layer_params_per_rank(m, 1, 8));
  const double acts = 138 * 4096.0 * 16384 * 31.75 / 8;
  const auto e = model::memory_per_rank(m, p);
  EXPECT_NEAR(e.weights, 2 * 16 * layer_params, 1);
  EXPECT_NEAR(e.optimizer, 12 * 16 * layer_params / 8, 1);
  EXPECT_NEAR(e.activations, acts, 1);
}

TEST(Accounting, FullRecomputeRerunsTheLargestLayerKindOfItsOwnStage) {
  // Under full recompute a stage's backward reruns one layer's forward at a time, holding that
  // layer's whole activations beside the 2sbh checkpoints: the rerun is the largest layer the stage
  // holds, not the model's. DeepSeek-V3's 61 layers at pp 2 split 30 / 31; with its first 30 layers
  // dense, stage 0 holds only dense layers and stage 1 only MoE layers (whose routed copies make a
  // rerun 1.7 times a dense one's).
  auto m = config::load_model("deepseek-v3");
  m.moe_first_k_dense = 30;
  config::ParallelConfig p;
  p.tp = 1, p.pp = 2, p.ep = 8, p.micro_batch_size = 1, p.global_batch_size = 64, p.seq_length = 4096;
  p.recompute = config::Recompute::kFull;
  p = config::resolve(p, m, 64, "test");
  ASSERT_EQ(model::split_layers(m.num_layers, 2, 1, false, false), (std::vector<int64_t>{30, 31}));
  config::ParallelConfig none = p;
  none.recompute = config::Recompute::kNone;
  const double dense_rerun = model::activation_bytes_per_layer(m, none, 0);
  const double moe_rerun = model::activation_bytes_per_layer(m, none, 60);
  ASSERT_GT(moe_rerun, 1.5 * dense_rerun);
  // Stage 0: 1F1B keeps pp − 0 = 2 micro-batches in flight, 30 checkpoints of 2sbh each, the
  // embedding's dropout mask when the model has dropout, and the dense rerun.
  const double sbh = 4096.0 * double(m.hidden_size);
  const double mask = m.hidden_dropout > 0 ? 2 * sbh : 0.0;
  const auto stages = model::memory_per_stage(m, p);
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_NEAR(stages[0].activations, 2 * 30 * 2 * sbh + mask + dense_rerun, 1);
  // Stage 1: one micro-batch in flight, 31 checkpoints and one per MTP module, the MoE rerun, and the
  // output heads' inputs and fp32 logits once each (4sbh + 4sbV at tp 1, Korthikanti §4.3).
  const double mtp = double(m.mtp_num_layers), sb = 4096.0, V = double(m.vocab_size);
  EXPECT_NEAR(stages[1].activations,
              (31 + mtp) * 2 * sbh + moe_rerun + (1 + mtp) * sb * (4 * double(m.hidden_size) + 4 * V), 1);
  EXPECT_DOUBLE_EQ(model::memory_per_rank(m, p).total(), std::max(stages[0].total(), stages[1].total()));
}

TEST(Accounting, OutputLayerKeepsItsInputsAndFp32LogitsOnce) {
  // Korthikanti et al. §4.3: the last stage keeps the final norm's and the output layer's inputs
  // (4sbh, ÷ t under SP) and the fp32 logits (4sbV/t) for one micro-batch. Llama 3.1 8B at tp 1,
  // pp 2, s 8192: 4·8192·(4096 + 128256) bytes on top of the layers and their in-flight copies.
  const auto m = config::load_model("llama3.1-8b");
  config::ParallelConfig p;
  p.tp = 1, p.pp = 2, p.micro_batch_size = 1, p.global_batch_size = 8, p.seq_length = 8192;
  p = config::resolve(p, m, 2, "test");
  const double layer = model::activation_bytes_per_layer(m, p, 0);
  const auto e = model::memory_per_rank(m, p);
  // Stage 0 (16 layers, two micro-batches in flight) against stage 1 (16 layers, one, and the head).
  const double stage0 = 2 * 16 * layer, stage1 = 16 * layer + 4.0 * 8192 * (4096 + 128256);
  const double params0 = double(model::embedding_params_per_rank(m, 1)), params1 = double(model::head_params_per_rank(m, 1));
  const double total0 = stage0 + 18 * params0, total1 = stage1 + 18 * params1;  // 2 + 4 + 12 B per parameter
  EXPECT_NEAR(e.activations, total0 > total1 ? stage0 : stage1, 1);
}

TEST(Accounting, Fp8KeepsLinearInputsInFp8) {
  // Transformer Engine saves the FP8-cast inputs of QKV, projection, FC1 and FC2 for the wgrad:
  // one byte less per element of the two norm outputs (sbh/t each under SP) and the FC2 input
  // (s·b·ffn/t); the projection's FP8 input is a copy beside the attention's bf16 output, one byte
  // more (s·b·q/t). Llama 3.1 70B at tp 4: (2 − 1 + 3.5)/4 · sbh.
  const auto m = config::load_model("llama3.1-70b");
  config::ParallelConfig p;
  p.tp = 4, p.seq_length = 8192, p.micro_batch_size = 1, p.sequence_parallel = true;
  const double sbh = 8192.0 * 8192.0;
  const double bf16 = model::activation_bytes_per_layer(m, p);
  p.precision = config::Precision::kFp8;
  EXPECT_NEAR(bf16 - model::activation_bytes_per_layer(m, p), (2 - 1 + 3.5) / 4 * sbh, 1);
  p.recompute = config::Recompute::kFull;  // only the layer input is kept, in bf16
  EXPECT_NEAR(model::activation_bytes_per_layer(m, p), 2 * sbh / 4, 1);
}

TEST(Accounting, HbmCapacityIsInGiB) {
  // An "80 GB" H100 is 80 GiB of HBM3 (nvidia-smi: 81,559 MiB after the driver's share).
  const auto h100 = config::load_chip("h100");
  EXPECT_DOUBLE_EQ(h100.usable_memory_bytes(), (80.0 - h100.reserved_gb) * 1073741824.0);
  EXPECT_GT(h100.usable_memory_bytes(), 81.5e9);
}

TEST(Accounting, MemoryStatesAndZero1) {
  const auto m = config::load_model("llama3.1-70b");
  config::ParallelConfig p;
  p.tp = 8, p.pp = 1, p.global_batch_size = 16, p.recompute = config::Recompute::kFull, p.sequence_parallel = true;
  p = config::resolve(p, m, 16, "test");
  const auto plain = model::memory_per_rank(m, p);
  const double params = double(model::total_params(m)) / 8;  // all weights but the norms split over tp 8
  EXPECT_NEAR(plain.weights / (2 * params), 1.0, 0.02);
  EXPECT_NEAR(plain.optimizer / (12 * params), 1.0, 0.02);
  p.zero = 1;  // ZeRO-1 shards the 12 B/param optimizer state over dp = 2
  EXPECT_NEAR(model::memory_per_rank(m, p).optimizer / plain.optimizer, 0.5, 1e-9);
}

TEST(Accounting, LayerParamGroupsAddUpToTheLayer) {
  // The weight groups Megatron's DDP buckets meet add up to the layer; a standard layer's are FC2,
  // FC1 with the pre-MLP norm, the projection, QKV with the input norm, each from its GEMM shape.
  for (const char* name : {"gpt3-175b", "llama3.1-8b", "deepseek-v3", "qwen3-30b-a3b", "mixtral-8x7b"}) {
    const auto m = config::load_model(name);
    for (int64_t tp : {1, 8})
      for (int64_t layer : {int64_t(0), m.num_layers - 1}) {
        const auto g = model::layer_param_groups(m, layer, tp);
        int64_t sum = 0;
        for (int64_t x : g) {
          EXPECT_GT(x, 0) << name;
          sum += x;
        }
        EXPECT_EQ(sum, model::layer_params_per_rank(m, layer, tp)) << name << " layer " << layer << " tp " << tp;
      }
  }
  // Llama 3.1 8B at tp 1, by hand: FC2 4096·14336, FC1 2·14336·4096 + the RMSNorm's 4096,
  // projection 4096·4096, QKV 4096·(4096 + 2·8·128) + 4096.
  const auto g = model::layer_param_groups(config::load_model("llama3.1-8b"), 0, 1);
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(g[0], 4096 * 14336);
  EXPECT_EQ(g[1], 2 * 14336 * 4096 + 4096);
  EXPECT_EQ(g[2], 4096 * 4096);
  EXPECT_EQ(g[3], 4096 * (4096 + 2 * 8 * 128) + 4096);
}
