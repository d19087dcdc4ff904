// Reliability: a rank that dies or throws ends the whole job quickly with a message naming rank and
// host; SIGINT/kill -9 during a sweep keeps every finished point readable and a resume recomputes
// nothing (rows identical to an uninterrupted sweep); results are never overwritten silently.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "results/reader.hpp"
#include "run_util.hpp"

using namespace capscale;
using test::run;
namespace fs = std::filesystem;

namespace {
const std::string kRun = " run --model tiny-demo --backend cpu --global-batch-size 4 --steps 3 --warmup 1";
std::map<std::string, double> by_key(const results::ResultFile& f) {
  std::map<std::string, double> m;
  for (size_t i = 0; i < f.rows.size(); ++i) m[f.keys[i]] = f.rows[i].tokens_per_s_per_chip;
  return m;
}
}  // namespace

TEST(Reliability, KilledRankEndsTheJobQuickly) {
  const auto r = run(test::mpiexec(2) + " " + test::bin() + kRun + " --tp 2", 60, "CAPSCALE_FAULT=rank=1,step=1,op=5,mode=kill");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.seconds, 30.0);
}

TEST(Reliability, ThrowingRankNamesRankAndHost) {
  const auto r = run(test::mpiexec(2) + " " + test::bin() + kRun + " --tp 2", 60, "CAPSCALE_FAULT=rank=1,step=1,op=5,mode=throw");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.seconds, 30.0);
  EXPECT_NE(r.err.find("rank 1 on host"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("injected fault"), std::string::npos) << r.err;
}

TEST(Reliability, RefusesToOverwriteAndChecksTheDirectoryFirst) {
  const auto out = test::fresh_path("exists.h5");
  std::ofstream(out) << "precious";
  auto r = run(test::bin() + kRun + " --out " + out);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--force"), std::string::npos);
  EXPECT_EQ(test::slurp(out), "precious");
  r = run(test::bin() + kRun + " --tp 1 --out /nonexistent-dir/x.h5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos);
}

TEST(Reliability, InterruptedAndKilledSweepsResumeToIdenticalRows) {
  const std::string sweep = std::string(CAPSCALE_TEST_DATA) + "/sweeps/small.yaml";
  const auto ref_out = test::fresh_path("ref.h5");
  ASSERT_EQ(run(test::bin() + " sweep " + sweep + " --out " + ref_out, 300).exit_code, 0);
  const auto ref = by_key(results::read_result(ref_out));

  for (const char* mode : {"interrupt", "kill"}) {
    SCOPED_TRACE(mode);
    const auto out = test::fresh_path(std::string("resumed_") + mode + ".h5");
    auto r = run(test::bin() + " sweep " + sweep + " --out " + out, 300, std::string("CAPSCALE_SWEEP_FAULT=after=10,mode=") + mode);
    EXPECT_NE(r.exit_code, 0);
    ASSERT_TRUE(fs::exists(out + ".partial"));
    EXPECT_FALSE(fs::exists(out));
    const auto partial = results::read_result(out + ".partial");  // readable after SIGINT or kill -9
    EXPECT_EQ(partial.rows.size(), 10u);
    // Without --resume the partial file is protected.
    EXPECT_EQ(run(test::bin() + " sweep " + sweep + " --out " + out).exit_code, 2);
    r = run(test::bin() + " sweep " + sweep + " --out " + out + " --resume", 300);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("10 already done"), std::string::npos) << r.err;
    const auto done = results::read_result(out);
    EXPECT_EQ(done.rows.size(), ref.size());  // nothing recomputed twice
    EXPECT_EQ(by_key(done), ref);
  }
}

TEST(Reliability, SweepSplitsOverMpiRanks) {
  const std::string sweep = std::string(CAPSCALE_TEST_DATA) + "/sweeps/small.yaml";
  const auto one = test::fresh_path("one.h5"), four = test::fresh_path("four.h5");
  ASSERT_EQ(run(test::bin() + " sweep " + sweep + " --out " + one, 300).exit_code, 0);
  const auto r = run(test::mpiexec(4) + " " + test::bin() + " sweep " + sweep + " --out " + four, 300);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(by_key(results::read_result(four)), by_key(results::read_result(one)));
}

TEST(Reliability, RealSigintDuringRunAndSweepKeepsFinishedWork) {
  // A run of many steps interrupted by SIGINT once it has printed its first step writes the steps
  // it finished and exits 130.
  const auto out = test::fresh_path("sigint_run.h5");
  auto r = test::run_then_sigint(test::bin() + " run --model tiny-demo --backend cpu --global-batch-size 8 --steps 1000 --warmup 0 --out " + out,
                                 "# step 1/1000", false, 120);
  ASSERT_FALSE(r.timed_out) << r.out << r.err;
  ASSERT_TRUE(r.signalled) << "it ended before printing its first step: " << r.out << r.err;
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted"), std::string::npos) << r.err;
  const auto f = results::read_result(out);
  EXPECT_EQ(f.kind, "run");
  EXPECT_GT(f.measured_step_s, 0);
  // A sweep interrupted by SIGINT once it has written a point keeps its finished points in
  // .partial, readable, and says how to resume.
  const auto sweep_out = test::fresh_path("sigint_sweep.h5");
  r = test::run_then_sigint(test::bin() + " sweep " + std::string(CAPSCALE_SOURCE_DIR) + "/configs/sweeps/scaling.yaml --progress-every 1 --out " +
                                sweep_out,
                            "# progress: ", true, 120);
  ASSERT_FALSE(r.timed_out) << r.err;
  ASSERT_TRUE(r.signalled) << "it ended before writing its first point: " << r.err;
  EXPECT_EQ(r.exit_code, 130) << r.err;
  EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
  const auto partial = results::read_result(sweep_out + ".partial");
  EXPECT_GT(partial.rows.size(), 0u);
  EXPECT_LT(partial.rows.size(), 252u);
}
