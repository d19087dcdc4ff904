// Issue 14, a new user's first hour: predict with no plan flags searches (and says so); with some,
// searches the rest; when nothing fits it names the rule that ruled the plans out, with counts, and
// suggests chip counts and batch sizes that do admit a plan (checked here by asking for them);
// a config.json model is named by _name_or_path or its file, never "hf-model".
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>

#include "run_util.hpp"

namespace {

using capscale::test::bin;
using capscale::test::run;
namespace fs = std::filesystem;

TEST(FirstHour, NoPlanFlagsSearchesTheBestPlanAndSaysSo) {
  // The command: before, tp 1 pp 1 and "DOES NOT FIT (1452.6 GB needed, 92.0 GB usable)".
  const auto r = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 1024 --json", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.is_object()) << r.out;  // one row, as predict --json always printed
  EXPECT_TRUE(j.at("fits").get<bool>()) << r.out;
  EXPECT_GT(j["parallel"]["tp"].get<int>() * j["parallel"]["pp"].get<int>(), 1);
  EXPECT_EQ(j["gpus"], 1024);
  EXPECT_NE(r.err.find("# plan: searched: no plan flags given"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("# batch: global batch 1024 sequences (default: one per chip"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("verdict: fits"), std::string::npos) << r.err;
}

TEST(FirstHour, SomePlanFlagsSearchTheRest) {
  auto r = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 1024 --tp 4 --json", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"]["tp"], 4);
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_NE(r.err.find("searched the plan flags not given (fixed: --tp 4"), std::string::npos) << r.err;
  // --no-search: the flags are the whole plan, defaults for the rest (the old behaviour).
  r = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 1024 --tp 4 --no-search --json", 120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"]["tp"], 4);
  EXPECT_EQ(j["parallel"]["pp"], 1);
  EXPECT_EQ(j["parallel"]["recompute"], "none");
  EXPECT_NE(r.err.find("# plan: as given (--no-search"), std::string::npos) << r.err;
  // Contradictory requests are bad input.
  EXPECT_EQ(run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 8 --search --no-search").exit_code, 2);
}

// "1000 x h20: 992, 1024" → {992, 1024}.
std::vector<int64_t> numbers_after(const std::string& text, const std::string& label) {
  std::vector<int64_t> out;
  const auto at = text.find(label);
  if (at == std::string::npos) return out;
  const std::string rest = text.substr(at + label.size(), text.find_first_of(";\n", at + label.size()) - at - label.size());
  const std::regex num("[0-9]+");
  for (auto it = std::sregex_iterator(rest.begin(), rest.end(), num); it != std::sregex_iterator(); ++it) out.push_back(std::stoll(it->str()));
  return out;
}

TEST(FirstHour, NothingFitsSaysWhyAndWhatWouldFit) {
  // The command: memory is not the reason; no (tp, pp, cp, dp) divides 1000 chips and a
  // batch of 1024.
  const auto r = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 1000 --global-batch-size 1024 --search", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string& o = r.out;
  EXPECT_NE(o.find("no plan of llama3.1-70b fits 1000 x h20 with global batch 1024"), std::string::npos) << o;
  EXPECT_NE(o.find("not dividing 1000 chips"), std::string::npos) << o;
  EXPECT_NE(o.find("leave a global batch of 1024 not divisible by micro-batch x dp"), std::string::npos) << o;
  EXPECT_EQ(o.find("GB usable at every recompute level"), std::string::npos) << "memory is not the reason:\n" << o;
  EXPECT_NE(o.find("verdict: no plan fits"), std::string::npos) << o;
  const auto gpus = numbers_after(o, "nearest chip counts with a plan (global batch 1024): ");
  const auto batches = numbers_after(o, "nearest global batch sizes on 1000 chips: ");
  ASSERT_EQ(gpus.size(), 2u) << o;
  ASSERT_EQ(batches.size(), 2u) << o;
  EXPECT_LT(gpus[0], 1000);
  EXPECT_GT(gpus[1], 1000);
  EXPECT_LE(gpus[1], 1024);  // 1024 chips divide a batch of 1024 with plans that fit
  EXPECT_LT(batches[0], 1024);
  EXPECT_GT(batches[1], 1024);
  // Each suggestion admits a plan: the same search finds one.
  for (int64_t g : gpus) {
    const auto s = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus " + std::to_string(g) +
                           " --global-batch-size 1024 --search --top 1 --json", 300);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_FALSE(nlohmann::json::parse(s.out).empty()) << g << " chips were suggested but no plan fits";
  }
  for (int64_t b : batches) {
    const auto s = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 1000 --global-batch-size " + std::to_string(b) +
                           " --search --top 1 --json", 300);
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_FALSE(nlohmann::json::parse(s.out).empty()) << "global batch " << b << " was suggested but no plan fits";
  }
}

TEST(FirstHour, NothingFitsWithoutSearchFlagIsBadInputWithTheReason) {
  // No plan flags, nothing valid: there is no row to show, so exit 2 with the same explanation.
  const auto r = run(bin() + " predict --model llama3.1-70b --chip h20 --gpus 1000 --global-batch-size 1024", 300);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("nearest chip counts with a plan"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(FirstHour, MemoryIsNamedWhenItIsTheReason) {
  // 405B on 8 chips: every shape divides evenly, none fits memory; more chips do.
  const auto r = run(bin() + " predict --model llama3.1-405b --chip h100 --gpus 8 --global-batch-size 64 --search", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("GB usable at every recompute level"), std::string::npos) << r.out;
  const auto gpus = numbers_after(r.out, "nearest chip counts with a plan (global batch 64): ");
  ASSERT_FALSE(gpus.empty()) << r.out;
  EXPECT_GT(gpus.back(), 8);
}

TEST(FirstHour, HuggingFaceConfigIsNamedAfterItself) {
  const fs::path dir = fs::path(capscale::test::tmpdir()) / "first_hour_hf" / "my-llama";
  fs::create_directories(dir);
  const fs::path src = fs::path(CAPSCALE_TEST_DATA) / "good" / "hf" / "config.json";
  std::ifstream in(src);
  auto j = nlohmann::json::parse(in);
  auto model_of = [&](const std::string& args) {
    const auto r = run(args, 120);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out).at("model").get<std::string>() : std::string();
  };
  const std::string tail = " --chip h100 --gpus 8 --json";
  // Its own _name_or_path first.
  EXPECT_EQ(model_of(bin() + " predict --model " + src.string() + tail), "hostile/llama-tiny");
  j.erase("_name_or_path");
  std::ofstream(dir / "config.json") << j.dump();
  std::ofstream(dir / "tiny-llama-v2.json") << j.dump();
  // config.json: its folder, also when given as ./config.json from inside it.
  EXPECT_EQ(model_of(bin() + " predict --model " + (dir / "config.json").string() + tail), "my-llama");
  const std::string in_dir = "bash -c 'cd " + dir.string() + " && " + bin() + " predict --model ";
  EXPECT_EQ(model_of(in_dir + "config.json" + tail + "'"), "my-llama");
  EXPECT_EQ(model_of(in_dir + "./config.json" + tail + "'"), "my-llama");
  // Any other file name: its stem.
  EXPECT_EQ(model_of(bin() + " predict --model " + (dir / "tiny-llama-v2.json").string() + tail), "tiny-llama-v2");
  // A local path in _name_or_path: its last component.
  j["_name_or_path"] = "/data/checkpoints/Llama-3.1-8B/";
  std::ofstream(dir / "local.json") << j.dump();
  EXPECT_EQ(model_of(bin() + " predict --model " + (dir / "local.json").string() + tail), "Llama-3.1-8B");
}

}  // namespace
