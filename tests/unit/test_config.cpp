// Config loading and validation: every bad input is an InputError that names the file/flag, the
// field and what is allowed; good configs load.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "model/accounting.hpp"
#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "config/paths.hpp"
#include "unit/temp_path.hpp"

using namespace capscale;
using namespace capscale::config;

namespace {
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = capscale::test_util::temp_path(name);
  std::ofstream(path) << text;
  return path;
}

// Runs f and returns the InputError message (fails the test if nothing or something else is thrown).
template <typename F>
std::string input_error(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected InputError, got: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected InputError, nothing thrown";
  return "";
}

const char* kGoodModel = R"(name: m
num_layers: 4
hidden_size: 256
ffn_hidden_size: 1024
num_attention_heads: 8
vocab_size: 1000
seq_length: 128
)";
}  // namespace

TEST(Config, EveryShippedConfigLoads) {
  for (const auto& n : list_configs("models")) EXPECT_NO_THROW(load_model(n)) << n;
  for (const auto& n : list_configs("chips")) EXPECT_NO_THROW(load_chip(n)) << n;
  EXPECT_GE(list_configs("models").size(), 17u);
  EXPECT_GE(list_configs("chips").size(), 10u);
}

TEST(Config, ModelErrorsNameFileFieldAndAllowed) {
  const auto unknown = write_temp("unknown.yaml", std::string(kGoodModel) + "hiden_size: 3\n");
  auto msg = input_error([&] { load_model_yaml(unknown); });
  EXPECT_NE(msg.find(unknown), std::string::npos);
  EXPECT_NE(msg.find("hiden_size"), std::string::npos);
  EXPECT_NE(msg.find("allowed"), std::string::npos);

  const auto negative = write_temp("neg.yaml", std::string(kGoodModel).replace(std::string(kGoodModel).find("num_layers: 4"), 13, "num_layers: -4"));
  msg = input_error([&] { load_model_yaml(negative); });
  EXPECT_NE(msg.find("num_layers"), std::string::npos);

  const auto nan = write_temp("nan.yaml", std::string(kGoodModel) + "published_params: .nan\n");
  EXPECT_NE(input_error([&] { load_model_yaml(nan); }).find("published_params"), std::string::npos);

  const auto dropout = write_temp("dropout.yaml", std::string(kGoodModel) + "hidden_dropout: 1\n");
  msg = input_error([&] { load_model_yaml(dropout); });
  EXPECT_NE(msg.find("hidden_dropout"), std::string::npos) << msg;

  const auto groups = write_temp("groups.yaml", std::string(kGoodModel) + "num_query_groups: 3\n");
  EXPECT_NE(input_error([&] { load_model_yaml(groups); }).find("num_query_groups"), std::string::npos);

  const auto malformed = write_temp("bad.yaml", "name: [unclosed\n");
  EXPECT_NE(input_error([&] { load_model_yaml(malformed); }).find("not valid YAML"), std::string::npos);
  EXPECT_NE(input_error([&] { load_model_yaml(write_temp("empty.yaml", "")); }).find("empty"), std::string::npos);
  EXPECT_NE(input_error([&] { load_model("no-such-model"); }).find("known:"), std::string::npos);
  EXPECT_NE(input_error([&] { load_model_yaml("/nonexistent/x.yaml"); }).find("cannot be opened"), std::string::npos);
}

TEST(Config, HuggingFaceConfigJson) {
  const auto path = write_temp("config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
    "tie_word_embeddings": false, "vocab_size": 128256})");
  const auto m = load_model(path);
  const auto ref = load_model("llama3.1-8b");
  EXPECT_EQ(m.hidden_size, ref.hidden_size);
  EXPECT_EQ(m.num_query_groups, 8);
  EXPECT_EQ(m.activation, Activation::kSwiglu);
  EXPECT_EQ(m.normalization, Normalization::kRmsNorm);
  EXPECT_FALSE(m.tie_embeddings);
  EXPECT_EQ(m.hidden_dropout, 0.0);  // none given: none
  const auto bad = write_temp("bad.json", R"({"hidden_size": "big", "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 3})");
  EXPECT_NE(input_error([&] { load_model(bad); }).find("hidden_size"), std::string::npos);
  // Dropout under transformers' names, and a probability out of range named with its allowed values.
  const auto gpt2 = write_temp("gpt2.json", R"({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "vocab_size": 100, "resid_pdrop": 0.1, "attn_pdrop": 0.05})");
  EXPECT_DOUBLE_EQ(load_model(gpt2).hidden_dropout, 0.1);
  EXPECT_DOUBLE_EQ(load_model(gpt2).attention_dropout, 0.05);
  const auto drop = write_temp("drop.json", R"({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
    "vocab_size": 100, "attention_dropout": 1.5})");
  const auto msg = input_error([&] { load_model(drop); });
  EXPECT_NE(msg.find("attention_dropout"), std::string::npos);
  EXPECT_NE(msg.find("[0, 0.99]"), std::string::npos);
}

TEST(Config, MixtureOfExpertsConfigJsonImportsWithPublishedParameterCounts) {
  // The published config.json of each family (tests/data/good/hf/, written by
  // tests/data/bad/generate.py) against the parameter counts their papers and model cards state
  // (total / active per token, 1e9): Mixtral paper §2 (46.7 / 12.9 from the model page), DeepSeek-V3
  // report §1 (671 / 37, MTP excluded), Qwen3 report Table 2 (30.5 / 3.3).
  const std::string hf = std::string(CAPSCALE_TEST_DATA) + "/good/hf/";
  struct Case {
    const char* file;
    const char* shipped;
    double total_b, active_b;
  };
  for (const Case& c : {Case{"mixtral_8x7b.json", "mixtral-8x7b", 46.7, 12.9}, Case{"deepseek_v3.json", "deepseek-v3", 671, 37},
                        Case{"qwen3_30b_a3b.json", "qwen3-30b-a3b", 30.5, 3.3}}) {
    const auto m = load_model(hf + c.file);
    EXPECT_TRUE(m.is_moe()) << c.file;
    EXPECT_NEAR(double(model::total_params(m)) / 1e9 / c.total_b, 1.0, 0.02) << c.file;
    EXPECT_NEAR(double(model::active_params(m)) / 1e9 / c.active_b, 1.0, 0.02) << c.file;
    // The shipped YAML describes the same model.
    const auto y = load_model(c.shipped);
    EXPECT_EQ(model::total_params(m), model::total_params(y)) << c.file;
    EXPECT_EQ(model::active_params(m), model::active_params(y)) << c.file;
    EXPECT_EQ(m.mtp_num_layers, y.mtp_num_layers) << c.file;
  }
  const auto ds = load_model(hf + "deepseek_v3.json");
  EXPECT_EQ(ds.moe_first_k_dense, 3);
  EXPECT_EQ(ds.num_moe_layers(), 58);
  EXPECT_EQ(ds.moe_shared_expert_intermediate_size, 2048);
  EXPECT_EQ(ds.moe_router_num_groups, 8);
  EXPECT_EQ(ds.moe_router_group_topk, 4);
  EXPECT_TRUE(ds.multi_latent_attention());
  EXPECT_EQ(ds.qk_dim(), 192);
  // GPT-OSS: alternating sliding-window layers (layer_types) become window_attn_skip_freq 2.
  const auto oss = load_model(hf + "gpt_oss_120b.json");
  EXPECT_EQ(oss.window_size, 128);
  EXPECT_EQ(oss.window_attn_skip_freq, 2);
  EXPECT_EQ(oss.attended_keys(0, 4096), 128);
  EXPECT_EQ(oss.attended_keys(1, 4096), 4096);
  EXPECT_NEAR(double(model::total_params(oss)) / 116.83e9, 1.0, 0.01);
  // Null or 0 experts is a dense model, whatever leftover MoE fields say.
  const auto dense = load_model(hf + "dense_null_or_zero_experts.json");
  EXPECT_EQ(dense.ffn_hidden_size, 1376);
  EXPECT_FALSE(dense.is_moe());
  const auto zero = write_temp("zero_experts.json", R"({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
      "vocab_size": 100, "n_routed_experts": 0, "num_experts_per_tok": 2})");
  EXPECT_NO_THROW(load_model(zero));
}

TEST(Config, MixtureOfExpertsFieldsCapscaleCannotReadAreErrorsNamingThem) {
  const std::string bad = std::string(CAPSCALE_TEST_DATA) + "/bad/hf/";
  for (const auto& [file, text] :
       {std::pair{"moe_top_k_only.json", "'num_experts_per_tok' = 2 describes experts, but no expert count"},
        std::pair{"moe_negative_experts.json", "'num_local_experts' must be in [0, 65536]"},
        std::pair{"moe_unknown_key.json", "'moe_num_experts' is a mixture-of-experts field capscale does not understand"},
        std::pair{"moe_topk_above_experts.json", "'num_experts_per_tok' must be in [1, 8]"},
        std::pair{"moe_sparse_step.json", "'decoder_sparse_step' = 2: only 1"},
        std::pair{"moe_layer_types_irregular.json", "'layer_types' must be periodic"}}) {
    const std::string msg = input_error([&] { load_model(bad + file); });
    EXPECT_NE(msg.find(bad + file), std::string::npos) << msg;
    EXPECT_NE(msg.find(text), std::string::npos) << file << ": " << msg;
  }
  const auto str = write_temp("str_experts.json", R"({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
      "vocab_size": 100, "num_experts": "8"})");
  EXPECT_NE(input_error([&] { load_model(str); }).find("'num_experts' must be an integer"), std::string::npos);
  // YAML: MoE fields without experts, top-k above the count, a group limit that does not divide.
  const auto yaml = [&](const std::string& extra) {
    return write_temp("moe.yaml", "name: m\nnum_layers: 4\nhidden_size: 64\nffn_hidden_size: 128\nnum_attention_heads: 4\n"
                                  "vocab_size: 100\nseq_length: 64\n" + extra);
  };
  EXPECT_NE(input_error([&] { load_model(yaml("moe_router_topk: 2\n")); }).find("'num_moe_experts' must be > 0"), std::string::npos);
  EXPECT_NE(input_error([&] { load_model(yaml("num_moe_experts: 4\nmoe_router_topk: 5\n")); }).find("'moe_router_topk' must be in [1, num_moe_experts = 4]"),
            std::string::npos);
  EXPECT_NE(input_error([&] { load_model(yaml("num_moe_experts: 4\nmoe_router_topk: 0\n")); }).find("moe_router_topk"), std::string::npos);
  const auto groups = yaml("num_moe_experts: 8\nmoe_router_topk: 2\nmoe_router_num_groups: 3\nmoe_router_group_topk: 1\n");
  EXPECT_NE(input_error([&] { load_model(groups); }).find("'moe_router_num_groups' must divide num_moe_experts = 8"), std::string::npos);
  EXPECT_NE(input_error([&] { load_model(yaml("kv_lora_rank: 16\n")); }).find("'qk_head_dim' must be >= 1"), std::string::npos);
}

TEST(Config, OldBandwidthKeysNameTheirReplacement) {
  const std::string chips = std::string(CAPSCALE_TEST_DATA) + "/bad/chips/";
  const std::string nvlink = input_error([&] { load_chip(chips + "old_key_nvlink_gbps.yaml"); });
  EXPECT_NE(nvlink.find("'nvlink_gbps' was renamed nvlink_gbyte_s (GB/s"), std::string::npos) << nvlink;
  const std::string nic = input_error([&] { load_chip(chips + "old_key_nic_gbps.yaml"); });
  EXPECT_NE(nic.find("'nic_gbps' was renamed nic_gbit_s (Gb/s per GPU"), std::string::npos) << nic;
  EXPECT_NE(nic.find(chips + "old_key_nic_gbps.yaml"), std::string::npos) << nic;
}

TEST(Config, CommunicationContentionNeedsTheSmCount) {
  // comm_ctas / sm_count is the share of the compute rate a running collective takes; a chip
  // that gives the blocks must give the SMs, and fewer blocks than SMs.
  const std::string base = "name: c\narch: hopper\npeak_tflops: {bf16: 100}\nhbm_gb: 10\nhbm_tbps: 1\n"
                           "nvlink_gbyte_s: 100\nnvlink_domain: 8\nnic_gbit_s: 100\n";
  const auto ok = load_chip(write_temp("/contention_ok.yaml", base + "sm_count: 132\ncomm_ctas: 24\n"));
  EXPECT_DOUBLE_EQ(ok.comm_contention(), 24.0 / 132.0);
  EXPECT_EQ(load_chip(write_temp("/contention_none.yaml", base)).comm_contention(), 0.0);
  const std::string path = write_temp("/contention_bad.yaml", base + "comm_ctas: 24\n");
  const std::string e = input_error([&] { load_chip(path); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("comm_ctas"), std::string::npos) << e;
  EXPECT_NE(e.find("must be below sm_count (0)"), std::string::npos) << e;
}

TEST(Config, SustainedFromNamesTheArchitectureAChipBorrowsItsConstantFrom) {
  // A chip of an architecture no published run fits takes another's fitted efficiency.sustained:
  // validate, --fit and the cross-validation then treat it as that architecture's, as shipped.
  const std::string base = "name: c\narch: blackwell\npeak_tflops: {bf16: 100}\nhbm_gb: 10\nhbm_tbps: 1\n"
                           "nvlink_gbyte_s: 100\nnvlink_domain: 8\nnic_gbit_s: 100\n";
  const auto own = load_chip(write_temp("/sustained_own.yaml", base));
  EXPECT_EQ(own.sustained_arch(), "blackwell");
  const auto borrowed = load_chip(write_temp("/sustained_from.yaml", base + "efficiency: {sustained: 0.789, sustained_from: hopper}\n"));
  EXPECT_EQ(borrowed.sustained_from, "hopper");
  EXPECT_EQ(borrowed.sustained_arch(), "hopper");
  EXPECT_EQ(borrowed.arch, "blackwell");
  struct Bad {
    std::string from, want;
  };
  for (const Bad& b : {Bad{"blackwell", "names the chip's own architecture (blackwell)"}, Bad{"volta", "hopper"}}) {
    const std::string path = write_temp("/sustained_from_bad.yaml", base + "efficiency: {sustained_from: " + b.from + "}\n");
    const std::string e = input_error([&] { load_chip(path); });
    EXPECT_NE(e.find(path), std::string::npos) << e;
    EXPECT_NE(e.find("sustained_from"), std::string::npos) << e;
    EXPECT_NE(e.find(b.want), std::string::npos) << b.from << ": " << e;
  }
}

TEST(Config, EfficiencyRangesHoldTheShippedValueAndFollowComputeCaps) {
  const std::string base = "name: c\narch: hopper\npeak_tflops: {bf16: 100}\nhbm_gb: 10\nhbm_tbps: 1\n"
                           "nvlink_gbyte_s: 100\nnvlink_domain: 8\nnic_gbit_s: 100\nefficiency: {gemm: 0.8, attention: 0.6}\n";
  const auto ok = load_chip(write_temp("/ranges_ok.yaml", base + "efficiency_ranges: {attention: [0.5, 0.7]}\n"));
  ASSERT_EQ(ok.efficiency_ranges.size(), 1u);
  EXPECT_EQ(ok.efficiency_ranges.at("attention"), std::make_pair(0.5, 0.7));
  struct Bad {
    std::string ranges, want;
  };
  for (const Bad& b : {Bad{"{attention: [0.65, 0.7]}", "efficiency_ranges.attention"},  // excludes the shipped 0.6
                       Bad{"{attention: [0.5, 1.2]}", "<= high <= 1"},
                       Bad{"{attention: 0.5}", "must be [low, high]"},
                       Bad{"{attention: [a, b]}", "two numbers"},
                       Bad{"{sustained: [0.7, 0.9]}", "allowed: gemm, gemm_fp8, attention, hbm, nvlink, nic"}}) {
    const std::string path = write_temp("/ranges_bad.yaml", base + "efficiency_ranges: " + b.ranges + "\n");
    const std::string e = input_error([&] { load_chip(path); });
    EXPECT_NE(e.find(path), std::string::npos) << e;
    EXPECT_NE(e.find(b.want), std::string::npos) << b.ranges << ": " << e;
  }
  // A compute cap moves the range's ends by the same rule as the fraction itself:
  // e' = 1 / (1 + r(1/e - 1)) at r = capped / own peak.
  const auto h100 = load_chip("h100");
  const auto capped = resolve_target(parse_target("h100@tflops=148"));
  const double r = 148.0 / h100.peak_tflops.at("bf16");
  auto rule = [r](double e) { return 1.0 / (1.0 + r * (1.0 / e - 1.0)); };
  const auto [lo, hi] = h100.efficiency_ranges.at("attention");
  EXPECT_NEAR(capped.efficiency_ranges.at("attention").first, rule(lo), 1e-12);
  EXPECT_NEAR(capped.efficiency_ranges.at("attention").second, rule(hi), 1e-12);
  EXPECT_LE(capped.efficiency_ranges.at("attention").first, capped.efficiency.attention);
  EXPECT_GE(capped.efficiency_ranges.at("attention").second, capped.efficiency.attention);
}

TEST(Config, B200Fp8GemmFractionIsItsBf16OneTimesTheRatioMeasuredOnB200) {
  // No large-shape cuBLAS FP8 figure on B200 is public; vLLM measured FP8 and bf16 GEMMs side by side
  // on one (vllm-project/vllm PR #19566, M=16384, N=K=4096): FP8 2545 TFLOP/s of 4500, bf16 1513 of
  // 2250. The profile scales its large-GEMM bf16 fraction by that ratio; the range's high end by the
  // ratio of PR #18778's N=6144 K=4096 table at M=1024 (FP8 2585, bf16 1433).
  const auto b200 = load_chip("b200");
  const double ratio = (2545.0 / 4500.0) / (1513.0 / 2250.0), high_ratio = (2585.0 / 4500.0) / (1433.0 / 2250.0);
  EXPECT_NEAR(b200.efficiency.gemm_fp8, b200.efficiency.gemm * ratio, 0.005);
  ASSERT_EQ(b200.efficiency_ranges.count("gemm_fp8"), 1u);
  EXPECT_DOUBLE_EQ(b200.efficiency_ranges.at("gemm_fp8").first, b200.efficiency.gemm_fp8);
  EXPECT_NEAR(b200.efficiency_ranges.at("gemm_fp8").second, b200.efficiency.gemm * high_ratio, 0.005);
  // FP8's fraction trails bf16's by more on Blackwell than on Hopper (h100.yaml: 0.71 / 0.78).
  const auto h100 = load_chip("h100");
  EXPECT_LT(b200.efficiency.gemm_fp8 / b200.efficiency.gemm, h100.efficiency.gemm_fp8 / h100.efficiency.gemm);
}

TEST(Config, TargetSpecsAndCaps) {
  auto t = parse_target("h200@nvlink=400,nic=50%");
  EXPECT_EQ(t.chip_name, "h200");
  ASSERT_EQ(t.caps.size(), 2u);
  const auto capped = resolve_target(t);
  EXPECT_DOUBLE_EQ(capped.nvlink_gbyte_s, 400);
  EXPECT_DOUBLE_EQ(capped.nic_gbit_s, 200);
  EXPECT_EQ(capped.name, "h200@nvlink=400,nic=50%");
  // A list where caps continue the previous target.
  const auto list = parse_target_list("h200,h20,h800,h200@nvlink=400,nic=200,b200", "--emulate");
  ASSERT_EQ(list.size(), 5u);
  EXPECT_EQ(list[3].spec, "h200@nvlink=400,nic=200");
  // Percent caps scale every dtype's peak together (H20-like: 15 % of an H100).
  const auto h20ish = resolve_target(parse_target("h100@tflops=15%"));
  EXPECT_NEAR(h20ish.peak_tflops.at("bf16"), 0.15 * 989.4, 1e-6);
  EXPECT_NEAR(h20ish.peak_tflops.at("fp8"), 0.15 * 1978.9, 1e-3);
  EXPECT_NE(input_error([] { parse_target("h100@foo=1"); }).find("allowed"), std::string::npos);
  EXPECT_NE(input_error([] { parse_target("h100@nvlink=-5"); }).find("> 0"), std::string::npos);
  EXPECT_NE(input_error([] { parse_target("h100@tflops=150%"); }).find("(0, 100]"), std::string::npos);
  EXPECT_NE(input_error([] { parse_target("h100@nvlink=abc"); }).find("number"), std::string::npos);
  EXPECT_NE(input_error([] { parse_target("@nvlink=3"); }).find("no chip"), std::string::npos);
  EXPECT_NE(input_error([] { resolve_target(parse_target("nosuchchip")); }).find("known:"), std::string::npos);
  EXPECT_NE(input_error([] { resolve_target(parse_target("h100@hbm_gb=2")); }).find("reserved"), std::string::npos);
}

TEST(Config, ParallelViolationsAreAllReported) {
  const auto m = load_model("llama3.1-70b");  // 64 heads, 8 query groups, 80 layers
  ParallelConfig p;
  p.tp = 16, p.pp = 16, p.vpp = 8, p.global_batch_size = 7;
  const auto v = violations(p, m, 1024);
  // tp 16 does not divide 8 query groups; pp·vpp = 128 > 80 layers; 7 not divisible by mbs·dp.
  auto has = [&](const std::string& s) {
    for (const auto& x : v)
      if (x.find(s) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("num_query_groups"));
  EXPECT_TRUE(has("num_layers"));
  EXPECT_TRUE(has("global-batch-size"));
  EXPECT_THROW(resolve(p, m, 1024, "test"), InputError);
  ParallelConfig w;
  w.tp = 2, w.pp = 2;
  EXPECT_NE(input_error([&] { resolve(w, m, 6, "run"); }).find("world size"), std::string::npos);
  ParallelConfig ok;
  ok.tp = 8, ok.pp = 2, ok.global_batch_size = 64;
  const auto r = resolve(ok, m, 64, "run");
  EXPECT_EQ(r.dp, 4);
  EXPECT_EQ(r.num_microbatches(), 16);
  EXPECT_EQ(r.seq_length, 8192);
}
