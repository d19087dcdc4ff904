// Config loading and validation: every bad input is an InputError that names the file/flag, the
// field and what is allowed; good configs load.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "config/paths.hpp"

using namespace capscale;
using namespace capscale::config;

namespace {
std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
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
  const auto bad = write_temp("bad.json", R"({"hidden_size": "big", "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 3})");
  EXPECT_NE(input_error([&] { load_model(bad); }).find("hidden_size"), std::string::npos);
}

TEST(Config, MixtureOfExpertsConfigJsonIsRejectedNamingTheField) {
  // Published MoE configs (tests/data/bad/hf/moe_*.json) name their expert count in three ways.
  const std::string hf = std::string(CAPSCALE_TEST_DATA) + "/bad/hf/";
  for (const auto& [file, field] : {std::pair{"moe_mixtral_8x7b.json", "'num_local_experts' = 8: "},
                                    std::pair{"moe_deepseek_v3.json", "'n_routed_experts' = 256: "},
                                    std::pair{"moe_qwen3_30b_a3b.json", "'num_experts' = 128: "},
                                    std::pair{"moe_top_k_only.json", "'num_experts_per_tok' = 2: "}}) {
    const std::string msg = input_error([&] { load_model(hf + file); });
    EXPECT_NE(msg.find(hf + file), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::string(field) + "mixture-of-experts models are not supported yet"), std::string::npos) << msg;
  }
  // Null or 0 experts is a dense model, whatever leftover MoE fields say.
  const auto dense = load_model(std::string(CAPSCALE_TEST_DATA) + "/good/hf/dense_null_or_zero_experts.json");
  EXPECT_EQ(dense.ffn_hidden_size, 1376);
  const auto zero = write_temp("zero_experts.json", R"({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
      "vocab_size": 100, "n_routed_experts": 0, "num_experts_per_tok": 2})");
  EXPECT_NO_THROW(load_model(zero));
  const auto str = write_temp("str_experts.json", R"({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2,
      "vocab_size": 100, "num_experts": "8"})");
  EXPECT_NE(input_error([&] { load_model(str); }).find("'num_experts' must be a non-negative integer"), std::string::npos);
}

TEST(Config, OldBandwidthKeysNameTheirReplacement) {
  const std::string chips = std::string(CAPSCALE_TEST_DATA) + "/bad/chips/";
  const std::string nvlink = input_error([&] { load_chip(chips + "old_key_nvlink_gbps.yaml"); });
  EXPECT_NE(nvlink.find("'nvlink_gbps' was renamed nvlink_gbyte_s (GB/s"), std::string::npos) << nvlink;
  const std::string nic = input_error([&] { load_chip(chips + "old_key_nic_gbps.yaml"); });
  EXPECT_NE(nic.find("'nic_gbps' was renamed nic_gbit_s (Gb/s per GPU"), std::string::npos) << nic;
  EXPECT_NE(nic.find(chips + "old_key_nic_gbps.yaml"), std::string::npos) << nic;
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
