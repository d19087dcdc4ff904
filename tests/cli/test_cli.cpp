// The capscale binary end to end: run under mpiexec (tp2·pp2 and dp4 ZeRO-1) with emulated
// targets → valid HDF5 and --json; predict/search/sweep/report/validate; bad input → exit 2 with a
// message naming the field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <nlohmann/json.hpp>

#include "results/calibration_io.hpp"
#include "results/reader.hpp"
#include "run_util.hpp"

using namespace capscale;
using test::run;
namespace fs = std::filesystem;

namespace {
void expect_row_fields(const nlohmann::json& j) {
  for (const char* k : {"model", "target", "gpus", "parallel", "step_time_s", "tokens_per_s", "tokens_per_s_per_chip",
                        "tflops_per_chip", "mfu", "hfu", "memory_gb_per_chip", "fits", "breakdown_s", "source"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  for (const char* k : {"tp", "pp", "dp", "cp", "vpp", "micro_batch_size", "global_batch_size"}) EXPECT_TRUE(j["parallel"].contains(k)) << k;
  for (const char* k : {"compute", "exposed_comm", "bubble", "other"}) EXPECT_TRUE(j["breakdown_s"].contains(k)) << k;
  EXPECT_GT(j["step_time_s"].get<double>(), 0);
  EXPECT_GT(j["tokens_per_s_per_chip"].get<double>(), 0);
}
}  // namespace

TEST(Cli, RunTp2Pp2WithEmulatedTargets) {
  const auto out = test::fresh_path("tp2pp2.h5");
  // A chip file whose collectives hold SMs: the file keeps its share, so the trace is timed as run.
  const auto contended = test::fresh_path("contended.yaml");
  {
    std::ofstream y(contended);
    y << "name: contended\narch: hopper\npeak_tflops: {bf16: 989.4}\nhbm_gb: 80\nhbm_tbps: 3.35\nnvlink_gbyte_s: 900\n"
         "nvlink_domain: 8\nnic_gbit_s: 400\nsm_count: 132\ncomm_ctas: 24\n";
  }
  const auto r = run(test::mpiexec(4) + " " + test::bin() +
                         " run --model tiny-demo --backend cpu --tp 2 --pp 2 --global-batch-size 4 --steps 2 --warmup 1"
                         " --emulate h200,h20,h800,h200@nvlink=400," + contended + " --json --out " + out,
                     240);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["targets"].size(), 6u);
  EXPECT_EQ(j["targets"][0]["source"], "measured");
  EXPECT_EQ(j["targets"][4]["target"], "h200@nvlink=400");
  for (const auto& t : j["targets"]) expect_row_fields(t);
  EXPECT_TRUE(j.contains("engine_check"));
  const auto f = results::read_result(out);
  EXPECT_EQ(f.kind, "run");
  EXPECT_EQ(f.rows.size(), 6u);
  EXPECT_EQ(f.ranks, 4);
  ASSERT_EQ(f.targets.size(), 5u);
  EXPECT_EQ(f.targets[0].comm_contention, 0.0);
  EXPECT_DOUBLE_EQ(f.targets[4].comm_contention, 24.0 / 132.0);
  // report and its Perfetto trace
  const auto trace = test::fresh_path("trace.json");
  const auto rep = run(test::bin() + " report " + out + " --trace " + trace);
  ASSERT_EQ(rep.exit_code, 0) << rep.err;
  EXPECT_NE(rep.out.find("h200@nvlink=400"), std::string::npos);
  const auto tj = nlohmann::json::parse(test::slurp(trace));
  EXPECT_GT(tj["traceEvents"].size(), 100u);
}

TEST(Cli, RunDp4Zero1) {
  const auto out = test::fresh_path("dp4.h5");
  const auto r = run(test::mpiexec(4) + " " + test::bin() +
                         " run --model tiny-demo --backend cpu --zero 1 --global-batch-size 8 --steps 2 --warmup 1 --emulate h100 --json --out " + out,
                     240);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"]["dp"], 4);
  EXPECT_EQ(j["parallel"]["zero"], 1);
  EXPECT_EQ(results::read_result(out).rows.size(), 2u);
}

TEST(Cli, RunMixtureOfExpertsWithExpertParallelism) {
  // tiny-moe (8 experts, top-2, a shared expert, first layer dense) with its experts over 4 ranks,
  // then over 2 ranks beside tp 2: the dispatch and combine all-to-alls run as MPI_Alltoall on the
  // ep communicator, are timed in /ops and enter the emulated targets.
  for (const std::string flags : {"--ep 4", "--ep 2 --tp 2 --sequence-parallel"}) {
    const auto out = test::fresh_path("moe.h5");
    const auto r = run(test::mpiexec(4) + " " + test::bin() + " run --model tiny-moe --backend cpu " + flags +
                           " --global-batch-size 8 --steps 2 --warmup 1 --emulate h800,h20 --json --out " + out,
                       240);
    ASSERT_EQ(r.exit_code, 0) << flags << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["parallel"]["ep"], flags == "--ep 4" ? 4 : 2) << flags;
    EXPECT_EQ(j["targets"].size(), 3u);
    for (const auto& t : j["targets"]) expect_row_fields(t);
    EXPECT_TRUE(j.contains("engine_check"));
    EXPECT_NE(test::slurp(out).find("dispatch"), std::string::npos) << flags << ": no dispatch op in /ops";
  }
  // --ep on a dense model, or not dividing the experts: exit 2 naming the flag.
  auto bad = run(test::bin() + " predict --model llama3.1-8b --chip h100 --gpus 8 --ep 8");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("ep must be 1 for a dense model"), std::string::npos) << bad.err;
  bad = run(test::bin() + " predict --model mixtral-8x7b --chip h100 --gpus 48 --ep 3");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("ep must divide num_moe_experts (8), got 3"), std::string::npos) << bad.err;
}

TEST(Cli, RunWithConcurrentStreams) {
  // The CPU executor's streams run concurrently (compute on a worker thread, the pipeline transfers
  // and DP collectives through non-blocking MPI beside it) on an interleaved pp 2 plan with ZeRO-1
  // reductions; the engine check then replays the step with overlap and says which mode it checked.
  const auto out = test::fresh_path("streams.h5");
  const auto r = run(test::mpiexec(2) + " " + test::bin() +
                         " run --model tiny-gpt --backend cpu --pp 2 --vpp 2 --zero 1 --global-batch-size 8 --steps 2 --warmup 1"
                         " --streams concurrent --json --out " + out,
                     240);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string file = test::slurp(out);
  EXPECT_NE(file.find("engine_streams"), std::string::npos);
  EXPECT_NE(file.find("concurrent"), std::string::npos);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["engine_check"]["streams"], "concurrent");
  EXPECT_GT(j["engine_check"]["measured_step_s"].get<double>(), 0);
  EXPECT_NE(r.err.find("streams concurrent"), std::string::npos) << r.err;
  const auto bad = run(test::bin() + " run --model tiny-demo --backend cpu --streams parallel");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--streams"), std::string::npos) << bad.err;
}

TEST(Cli, PredictWithAPipelineLayout) {
  // Megatron-Core's --pipeline-model-parallel-layout, as NVIDIA's DeepSeek-V3 B200 recipe gives it:
  // the plan follows it and says so; a layout that does not fit the plan is exit 2 naming the flag.
  const std::string plan = " predict --model deepseek-v3 --chip b200 --gpus 256 --tp 1 --pp 8 --vpp 2 --ep 32 --cp 1"
                           " --micro-batch-size 1 --global-batch-size 4096 --recompute full --zero 1 --precision fp8"
                           " --moe-token-dispatcher flex --json";
  auto r = run(test::bin() + plan + " --pipeline-layout 'Et*4|(t*4|)*14tmL'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parallel"]["pipeline_layout"], "Et*4|(t*4|)*14tmL");
  const auto even = run(test::bin() + plan);
  ASSERT_EQ(even.exit_code, 0) << even.err;
  EXPECT_LT(j["step_time_s"].get<double>(), nlohmann::json::parse(even.out)["step_time_s"].get<double>());
  const auto bad = run(test::bin() + plan + " --pipeline-layout 'Et*4|(t*4|)*13tmL'");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("pipeline-layout 'Et*4|(t*4|)*13tmL' has 15 chunks; it needs pp x vpp = 16"), std::string::npos) << bad.err;
}

TEST(Cli, PredictAndSearch) {
  auto r = run(test::bin() + " predict --model llama3.1-70b --chip h100@nic=200 --gpus 64 --tp 8 --pp 2 --global-batch-size 128 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  expect_row_fields(j);
  EXPECT_EQ(j["target"], "h100@nic=200");
  r = run(test::bin() + " predict --model llama3.1-70b --chip h20 --gpus 64 --search --global-batch-size 128 --seq-length 4096 --json", 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto s = nlohmann::json::parse(r.out);
  ASSERT_FALSE(s.empty());
  EXPECT_TRUE(s[0]["fits"].get<bool>());
}

TEST(Cli, FlashAttention1IsTimedWhereTheChipGivesItsFigure) {
  // FlashAttention-1 has a measured fraction on Ampere (the a100 profile's efficiency.attention_fa1)
  // and none on Hopper. predict refuses it there, naming the file and the field; a sweep records
  // the point as invalid, as it does a plan the model cannot take, and times the rest.
  const std::string plan = " predict --model gpt-1.7b --gpus 8 --tp 1 --pp 1 --no-search --flash-attention-v1 --json";
  auto r = run(test::bin() + plan + " --chip a100");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double fa1 = nlohmann::json::parse(r.out)["step_time_s"].get<double>();
  r = run(test::bin() + " predict --model gpt-1.7b --gpus 8 --tp 1 --pp 1 --no-search --json --chip a100");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GT(fa1, nlohmann::json::parse(r.out)["step_time_s"].get<double>());
  r = run(test::bin() + plan + " --chip h100");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("h100.yaml: 'efficiency.attention_fa1'"), std::string::npos) << r.err;
  const auto yaml = test::fresh_path("fa1.yaml"), out = test::fresh_path("fa1.h5");
  {
    std::ofstream y(yaml);
    y << "name: fa1\ndescription: FlashAttention-1 on Ampere and Hopper\nmodels: [gpt-1.7b]\ntargets: [a100, h100]\n"
         "gpus: [8]\nglobal_batch_size_per_gpu: 1\nplans:\n  - {tp: 1, pp: 1, micro_batch_size: 1, flash_attention_v1: true}\n";
  }
  r = run(test::bin() + " sweep " + yaml + " --out " + out, 120);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto f = results::read_result(out);
  ASSERT_EQ(f.rows.size(), 2u);
  for (size_t i = 0; i < f.rows.size(); ++i) {
    if (f.rows[i].target == "a100") {
      EXPECT_EQ(f.statuses[i], "ok");
    } else {
      EXPECT_NE(f.statuses[i].find("invalid: flash-attention-v1: h100 gives no efficiency.attention_fa1"), std::string::npos)
          << f.statuses[i];
    }
  }
}

TEST(Cli, SweepReportAndEquivalence) {
  const auto out = test::fresh_path("small.h5");
  auto r = run(test::bin() + " sweep " + std::string(CAPSCALE_TEST_DATA) + "/sweeps/small.yaml --out " + out, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto f = results::read_result(out);
  EXPECT_EQ(f.rows.size(), 36u);
  // The sweep stored /analysis, and it is what the analysis module makes of the stored rows: report
  // (which prints the stored tables) and plot.py (which draws them) show one set of numbers.
  ASSERT_TRUE(f.analysis.has_value());
  const auto a = analysis::analyze(analysis::sweep_rows(f.rows, f.statuses, f.points), analysis::Reference{"h200", 64});
  EXPECT_EQ(f.analysis->models, a.models);
  EXPECT_EQ(f.analysis->targets, a.targets);
  ASSERT_EQ(f.analysis->scaling.size(), 2u * 3 * 3);
  for (size_t i = 0; i < a.scaling.size(); ++i) {
    EXPECT_EQ(f.analysis->scaling[i].ok, a.scaling[i].ok);
    EXPECT_EQ(f.analysis->scaling[i].tokens_per_s_per_chip, a.scaling[i].tokens_per_s_per_chip);
    EXPECT_EQ(f.analysis->scaling[i].tp, a.scaling[i].tp);
  }
  ASSERT_EQ(f.analysis->equivalence.size(), a.equivalence.size());
  EXPECT_FALSE(a.equivalence.empty());
  for (size_t i = 0; i < a.equivalence.size(); ++i) {
    EXPECT_EQ(f.analysis->equivalence[i].chips, a.equivalence[i].chips);
    EXPECT_EQ(f.analysis->equivalence[i].how, a.equivalence[i].how);
  }
  EXPECT_EQ(f.analysis->cliffs.size(), a.cliffs.size());
  r = run(test::bin() + " report " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("equivalence"), std::string::npos);
  // Each target's ratio to the first (h200) at the largest size, with its band around it: the H20's
  // own kernel fractions open it; the capped H200 shares every constant with the H200.
  for (const std::string model : {"llama3.1-8b", "llama3.1-70b"}) {
    EXPECT_NE(r.out.find("# " + model + " at 256 chips, tokens/s per chip vs h200 with its band"), std::string::npos) << r.out;
  }
  const std::regex band_line(R"(#  (\S+) +([0-9.]+) \(([0-9.]+) - ([0-9.]+)\))");
  int bands = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), band_line); it != std::sregex_iterator(); ++it, ++bands) {
    const double ratio = std::stod((*it)[2]), lo = std::stod((*it)[3]), hi = std::stod((*it)[4]);
    EXPECT_LE(lo, ratio + 5e-4) << it->str();
    EXPECT_GE(hi, ratio - 5e-4) << it->str();
    if ((*it)[1] == "h20") {
      EXPECT_GT(hi - lo, 0.002) << it->str();
    }
    if ((*it)[1] == "h200@nvlink=400") {
      EXPECT_LT(hi - lo, 0.01 * ratio) << it->str();
    }
  }
  EXPECT_EQ(bands, 4) << r.out;
  // The equivalence rows carry the same bands, carried to the chip count (first order).
  const std::regex eq_line(R"(\n (\S+) +\d+ +\d+ +([0-9.]+)x   ([0-9.]+) - ([0-9.]+)x)");
  int eq_bands = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), eq_line); it != std::sregex_iterator(); ++it, ++eq_bands) {
    const double ratio = std::stod((*it)[2]), lo = std::stod((*it)[3]), hi = std::stod((*it)[4]);
    EXPECT_LE(lo, ratio + 0.005) << it->str();
    EXPECT_GE(hi, ratio - 0.005) << it->str();
  }
  EXPECT_GE(eq_bands, 2) << r.out;
  EXPECT_EQ(r.out.find("re-predicted"), std::string::npos) << r.out;
  // A second run refuses to overwrite the finished file.
  r = run(test::bin() + " sweep " + std::string(CAPSCALE_TEST_DATA) + "/sweeps/small.yaml --out " + out);
  EXPECT_EQ(r.exit_code, 2);
  // --trace is for run files.
  EXPECT_EQ(run(test::bin() + " report " + out + " --trace /tmp/x.json").exit_code, 2);
}

TEST(Cli, BenchGemmAndCommPrintRatiosAgainstTheDirectCalls) {
  // The ratios themselves are speed targets (checked by running the benchmark, not here); the
  // command must measure both sides and report them consistently.
  auto check = [](const test::RunResult& r, const char* what) {
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto rows = nlohmann::json::parse(r.out);
    ASSERT_FALSE(rows.empty());
    for (const auto& row : rows) {
      EXPECT_EQ(row.at("what"), what);
      EXPECT_GT(row.at("path_s").get<double>(), 0);
      EXPECT_GT(row.at("direct_s").get<double>(), 0);
      EXPECT_NEAR(row.at("ratio").get<double>(), row.at("direct_s").get<double>() / row.at("path_s").get<double>(), 1e-9);
    }
  };
  check(run(test::bin() + " bench gemm --backend cpu --iters 1 --json"), "gemm");
  // Two ranks agree on the number of rounds (each run_step starts with a world barrier).
  check(run(test::mpiexec(2) + " " + test::bin() + " bench gemm --backend cpu --iters 1 --json", 120), "gemm");
  // bench comm: the all-reduce rows, then the all-to-all rows (a row per size each).
  const auto comm = run(test::mpiexec(2) + " " + test::bin() + " bench comm --backend cpu --sizes 1048576 --iters 2 --json");
  ASSERT_EQ(comm.exit_code, 0) << comm.err;
  const auto comm_rows = nlohmann::json::parse(comm.out);
  ASSERT_EQ(comm_rows.size(), 2u);
  EXPECT_EQ(comm_rows[0].at("what"), "all_reduce");
  EXPECT_EQ(comm_rows[1].at("what"), "alltoall");
  for (const auto& row : comm_rows) {
    EXPECT_GT(row.at("path_s").get<double>(), 0);
    EXPECT_NEAR(row.at("ratio").get<double>(), row.at("direct_s").get<double>() / row.at("path_s").get<double>(), 1e-9);
  }
  // The virtual clock: the same real step with and without per-op timing.
  const auto r = run(test::mpiexec(2) + " " + test::bin() + " bench clock --backend cpu --tp 2 --global-batch-size 2 --iters 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("what"), "clock");
  EXPECT_GT(j.at("timed_step_s").get<double>(), 0);
  EXPECT_GT(j.at("untimed_step_s").get<double>(), 0);
  EXPECT_NEAR(j.at("overhead").get<double>(), j.at("timed_step_s").get<double>() / j.at("untimed_step_s").get<double>() - 1, 1e-9);
  EXPECT_EQ(j.at("parallel").at("tp"), 2);
}

TEST(Cli, NumLayersMakesAProxyOfTheModel) {
  // Llama 3.1 8B does not fit one H100 with its optimizer state; 4 of its 32 layers do, with every
  // per-layer shape kept (what a one-GPU run of "Llama 3.1 8B layers" measures).
  auto r = run(test::bin() + " predict --model llama3.1-8b --chip h100 --gpus 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(r.out).at("fits").get<bool>());
  r = run(test::bin() + " predict --model llama3.1-8b --num-layers 4 --chip h100 --gpus 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("model"), "llama3.1-8b-4L");
  EXPECT_TRUE(j.at("fits").get<bool>());
}

TEST(Cli, ValidatePrintsTheTable) {
  const auto r = run(test::bin() + " validate");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("median |error|"), std::string::npos);
  EXPECT_NE(r.out.find("H19"), std::string::npos);
  EXPECT_NE(r.out.find("holdout rows"), std::string::npos);
  EXPECT_NE(r.out.find(": PASS"), std::string::npos) << r.out;
  const auto fit = run(test::bin() + " validate --fit");
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_NE(fit.out.find("fit hopper   efficiency.sustained = 0.83"), std::string::npos) << fit.out;
  EXPECT_NE(fit.out.find(", node_jitter = 0.02"), std::string::npos) << fit.out;
  EXPECT_NE(fit.out.find("host_step_gap_s = 0.057"), std::string::npos) << fit.out;
}

TEST(Cli, ValidateCrossValidation) {
  const auto r = run(test::bin() + " validate --cv --json", 280);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* part : {"cv", "in_sample"})
    for (const char* k : {"median_abs_err_pct", "max_abs_err_pct", "rows", "pass"}) EXPECT_TRUE(j.at(part).contains(k)) << part << " " << k;
  EXPECT_GE(j["cv"]["sources"].size(), 5u);
  EXPECT_GE(j["cv"]["max_abs_err_pct"].get<double>(), j["cv"]["median_abs_err_pct"].get<double>());
  ASSERT_GE(j["rows"].size(), 30u);
  for (const char* k : {"id", "source", "published", "predicted_cv", "error_cv", "predicted_in_sample", "error_in_sample"})
    EXPECT_TRUE(j["rows"][0].contains(k)) << k;
  EXPECT_NE(r.err.find("leave-one-source-out CV"), std::string::npos) << r.err;
}

TEST(Cli, ValidateSlopesListsTheWeakScalingSeries) {
  const auto r = run(test::bin() + " validate --slopes --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_GE(j.size(), 4u);
  for (const char* k : {"ids", "source", "nodes_first", "nodes_last", "published_change", "predicted_change", "sigma", "sigma_per_percent"})
    EXPECT_TRUE(j[0].contains(k)) << k;
  for (const auto& s : j) EXPECT_LT(s["nodes_first"].get<int64_t>(), s["nodes_last"].get<int64_t>());
  EXPECT_NE(r.err.find("weak-scaling series"), std::string::npos) << r.err;
}

TEST(Cli, PredictVsPrintsTheRatioWithItsBand) {
  const auto r = run(test::bin() + " predict --model llama3.1-8b --chip h20 --gpus 8 --tp 1 --cp 2 --global-batch-size 16 --vs h200 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("vs")) << r.out;
  const double ratio = j["vs"]["ratio_tokens_per_s_per_chip"].get<double>();
  EXPECT_GT(ratio, 0.1);
  EXPECT_LT(ratio, 0.5);
  EXPECT_LE(j["vs"]["band"][0].get<double>(), ratio);
  EXPECT_GE(j["vs"]["band"][1].get<double>(), ratio);
  EXPECT_NE(r.err.find("# vs h200: tokens/s per chip ratio"), std::string::npos) << r.err;
}

struct BadCase {
  const char* args;
  const char* must_mention;
};

class BadInput : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadInput, ExitsTwoWithOneClearLine) {
  const auto c = GetParam();
  const auto r = run(test::bin() + " " + c.args, 60);
  EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.err;
  EXPECT_NE(r.err.find(c.must_mention), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Traceback"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Cli, BadInput,
    ::testing::Values(
        BadCase{"predict --model no-such-model --chip h100 --gpus 8", "known:"},
        BadCase{"predict --model llama3.1-70b --chip h100@watts=300 --gpus 8", "allowed"},
        BadCase{"predict --model llama3.1-70b --chip h100@nvlink=-5 --gpus 8", "nvlink"},
        BadCase{"predict --model llama3.1-70b --chip h100@tflops=150% --gpus 8", "tflops"},
        BadCase{"predict --model llama3.1-70b --chip h100 --gpus 24 --tp 3", "num_attention_heads"},
        BadCase{"predict --model llama3.1-70b --chip h100 --gpus 256 --pp 32 --vpp 4", "num_layers"},
        BadCase{"predict --model llama3.1-70b --chip h100 --gpus 16 --tp 8 --pp 1 --global-batch-size 3", "global-batch-size"},
        BadCase{"predict --model llama3.1-70b --chip h100 --gpus 12 --tp 8", "world size"},
        BadCase{"predict --model llama3.1-70b --chip h100 --gpus 8 --recompute sometimes", "recompute"},
        BadCase{"predict --model llama3.1-8b --chip h100 --gpus 1 --num-layers 33", "num-layers"},
        BadCase{"predict --model llama3.1-8b --chip h100 --gpus 1 --num-layers -1", "num-layers"},
        BadCase{"predict --model llama3.1-8b --chip h100 --gpus 1 --num-layers 0", "num-layers"},
        BadCase{"bench gemm --backend cpu --tp 2", "bench clock"},
        BadCase{"bench gemm --backend cpu --sizes 1024", "bench comm"},
        BadCase{"predict --model /nonexistent/model.yaml --chip h100 --gpus 8", "known:"},
        BadCase{"run --model tiny-demo --backend cpu --tp 2", "world size"},
        BadCase{"run --model tiny-demo --backend tpu", "backend"},
        BadCase{"report /etc/hostname", "not an HDF5"},
        BadCase{"sweep /nonexistent/sweep.yaml", "cannot be opened"},
        // check --gpus N -- run ...: run's parser, the model, the plan for N ranks, memory per target.
        BadCase{"check --gpus 16 -- run --model llama3-70b --tp 8 --pp 2", "known:"},
        BadCase{"check --gpus 16 -- run --model llama3.1-70b --tpp 8", "--tpp"},
        BadCase{"check --gpus 12 -- run --model llama3.1-70b --tp 8", "world size"},
        BadCase{"check --gpus 16 -- run --model llama3.1-70b --tp 8 --pp 2 --emulate h200,h800", "h800: 'memory'"},
        BadCase{"check --gpus 16 -- predict --model llama3.1-70b", "expects a `run` command line"}));

TEST(Cli, CheckAcceptsARunCommandLineThatFits) {
  const auto r = run(test::bin() + " check --gpus 16 -- run --model llama3.1-70b --backend cuda --tp 8 --pp 2 "
                     "--sequence-parallel --recompute selective --seq-length 4096 --steps 10 --emulate h200,h20 --out x.h5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("tp8 pp2 dp1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fits h200 ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("h20 ("), std::string::npos) << r.out;
}

TEST(Cli, CalibrateThenPredictAndRunUseIt) {
  // Measure on this CPU under two ranks (GEMMs of tiny-gpt, collectives over both ranks) ...
  const auto cal = test::fresh_path("calibration.h5");
  auto r = run(test::mpiexec(2) + " " + test::bin() + " calibrate --backend cpu --models tiny-gpt --iters 2 --out " + cal, 240);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("efficiency"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("all_gather"), std::string::npos) << r.out;
  const auto c = results::read_calibration(cal);
  EXPECT_EQ(c.arch, "cpu");
  EXPECT_EQ(c.backend, "cpu");
  EXPECT_FALSE(c.device.empty());
  EXPECT_FALSE(c.gemm.empty());
  EXPECT_EQ(c.comm.size(), 21u);  // 3 kinds x 7 sizes (4 KiB ... 16 MiB)
  // ... then predict for the same architecture uses it.
  r = run(test::bin() + " predict --model tiny-gpt --chip cpu-host --gpus 2 --calibration " + cal + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  expect_row_fields(j);
  EXPECT_EQ(j["source"], "calibrated");
  // Another architecture's chip ignores it.
  r = run(test::bin() + " predict --model tiny-gpt --chip h100 --gpus 2 --calibration " + cal + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["source"], "roofline");
  // An existing file is kept without --force; a result file is not a calibration.
  EXPECT_EQ(run(test::bin() + " calibrate --backend cpu --models tiny-gpt --iters 1 --out " + cal).exit_code, 2);
  r = run(test::bin() + " predict --model tiny-gpt --chip cpu-host --gpus 2 --calibration /etc/hostname");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("/etc/hostname"), std::string::npos) << r.err;

  // A CPU host emulating Hopper targets with a Hopper calibration: those rows are "calibrated".
  predict::Calibration hopper = c;
  hopper.arch = "hopper", hopper.chip = "h100", hopper.backend = "cuda", hopper.peak_tflops = 989.4;
  const auto hcal = test::fresh_path("hopper-calibration.h5");
  results::write_calibration(hcal, hopper, false);
  r = run(test::mpiexec(2) + " " + test::bin() +
              " run --model tiny-gpt --backend cpu --steps 1 --warmup 1 --emulate h100,a100 --json --calibration " + hcal,
          240);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["targets"].size(), 3u);
  EXPECT_EQ(j["targets"][0]["source"], "measured");
  EXPECT_EQ(j["targets"][1]["source"], "calibrated");
  EXPECT_EQ(j["targets"][2]["source"], "roofline");
  fs::remove(cal);
  fs::remove(hcal);
}
