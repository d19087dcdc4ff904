// analysis::analyze against hand-computed closed forms: power-law interpolation, best plan per
// point, the cap cliff on a crafted table, the equivalence rows; and the /analysis tables' HDF5
// round trip (results/analysis_io).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "analysis/sweep_analysis.hpp"
#include "common/error.hpp"
#include "results/analysis_io.hpp"
#include "results/h5.hpp"

namespace capscale::analysis {
namespace {

// A power law t = a·g^b: what interpolate_log_log assumes between two grid points.
double power_law(double a, double b, double g) { return a * std::pow(g, b); }

TEST(Analysis, LogLogInterpolationIsExactOnAPowerLaw) {
  const double a = 1234.5, b = 0.83;
  for (double g : {17.0, 23.5, 40.0, 63.0}) {
    const double got = interpolate_log_log(16, power_law(a, b, 16), 64, power_law(a, b, 64), power_law(a, b, g));
    EXPECT_NEAR(got, g, 1e-9 * g) << "g = " << g;
  }
  // At the upper end it returns the grid point itself.
  EXPECT_NEAR(interpolate_log_log(8, 10, 16, 30, 30), 16, 1e-12);
  EXPECT_THROW(interpolate_log_log(16, 10, 8, 30, 20), RuntimeError);  // g1 < g0
  EXPECT_THROW(interpolate_log_log(8, 10, 16, 30, 40), RuntimeError);  // need beyond t1
}

/// Rows of a sweep; each row one plan at one point. `point` numbers follow grid order.
struct Grid {
  std::vector<predict::SummaryRow> rows;
  std::vector<std::string> statuses;
  std::vector<int64_t> points;
  void add(const std::string& t, int64_t g, double per_chip, int64_t point, const std::string& status = "ok", int64_t tp = 1) {
    predict::SummaryRow r;
    r.model = "m", r.target = t, r.gpus = g;
    r.tokens_per_s_per_chip = per_chip, r.tokens_per_s = per_chip * double(g);
    r.parallel.tp = tp, r.parallel.pp = 1, r.parallel.cp = 1, r.parallel.dp = g / tp;
    rows.push_back(r), statuses.push_back(status), points.push_back(point);
  }
  SweepAnalysis analyze(std::optional<Reference> ref = std::nullopt) const {
    return analysis::analyze(sweep_rows(rows, statuses, points), ref);
  }
};

TEST(Analysis, BestPlanPerPointInGridOrder) {
  Grid g;
  // Completion order (as under MPI) differs from grid order; targets come out in grid order.
  g.add("b", 16, 50, 3);
  g.add("a", 8, 100, 0, "ok", 8);
  g.add("a", 8, 120, 1, "ok", 4);        // the better plan of point (a, 8)
  g.add("a", 8, 999, 2, "does not fit");  // not ok: never the best, whatever it holds
  g.add("b", 8, 0, 4, "invalid: tp");
  const SweepAnalysis a = g.analyze();
  EXPECT_EQ(a.targets, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(a.gpus, (std::vector<int64_t>{8, 16}));
  ASSERT_EQ(a.scaling.size(), 4u);  // 1 model × 2 targets × 2 gpus
  const ScalingRow* best = a.at("m", "a", 8);
  ASSERT_TRUE(best && best->ok);
  EXPECT_EQ(best->tokens_per_s_per_chip, 120);
  EXPECT_EQ(best->tp, 4);
  EXPECT_EQ(best->point, 1);
  EXPECT_FALSE(a.at("m", "a", 16)->ok);  // no row at all
  EXPECT_FALSE(a.at("m", "b", 8)->ok);   // only an invalid row
  EXPECT_EQ(a.at("m", "b", 16)->tokens_per_s, 800);
  EXPECT_EQ(a.rows, 5);
  EXPECT_EQ(a.not_ok, 2);
  EXPECT_EQ(a.at("m", "c", 8), nullptr);
}

TEST(Analysis, CliffIsTheFirstTargetBelowNinetyPercentOfTheFirst) {
  Grid g;
  int64_t p = 0;
  // At 8 chips: 100, 95, 80, 50 → c (80 %) is the first below 90 %. At 16: 100, 89 → b (89 %).
  // At 32 nothing falls below 90 %: no cliff.
  const std::vector<std::pair<std::string, std::vector<double>>> table = {
      {"h200@nvlink=900", {100, 100, 100}}, {"h200@nvlink=400", {95, 89, 91}},
      {"h200@nvlink=200", {80, 70, 90}},    {"h200@nvlink=100", {50, 40, 95}}};
  for (const auto& [t, v] : table)
    for (size_t i = 0; i < 3; ++i) g.add(t, int64_t(8) << i, v[i], p++);
  const SweepAnalysis a = g.analyze();
  ASSERT_EQ(a.cliffs.size(), 2u);
  EXPECT_EQ(a.cliffs[0].gpus, 8);
  EXPECT_EQ(a.cliffs[0].target, "h200@nvlink=200");
  EXPECT_EQ(a.cliffs[0].baseline_target, "h200@nvlink=900");
  EXPECT_DOUBLE_EQ(a.cliffs[0].fraction, 0.8);
  EXPECT_EQ(a.cliffs[1].gpus, 16);
  EXPECT_EQ(a.cliffs[1].target, "h200@nvlink=400");
  EXPECT_DOUBLE_EQ(a.cliffs[1].fraction, 0.89);

  // Two targets are a comparison, not a cap sweep: no cliffs.
  Grid two;
  two.add("x", 8, 100, 0), two.add("y", 8, 10, 1);
  EXPECT_TRUE(two.analyze().cliffs.empty());
}

TEST(Analysis, EquivalenceMatchesThePowerLawClosedForm) {
  // Whole-cluster tokens/s: ref T_r(g) = 1000·g^0.9, slow target T_s(g) = 300·g^0.8. Chips of slow
  // that match 64 × ref: g = (T_r(64)/300)^(1/0.8), between grid points 256 and 512.
  Grid g;
  int64_t p = 0;
  const std::vector<int64_t> gpus = {8, 16, 32, 64, 128, 256, 512};
  for (int64_t n : gpus) g.add("ref", n, power_law(1000, 0.9, double(n)) / double(n), p++);
  for (int64_t n : gpus) g.add("slow", n, power_law(300, 0.8, double(n)) / double(n), p++);
  for (int64_t n : gpus) g.add("fast", n, power_law(50000, 0.9, double(n)) / double(n), p++);
  for (int64_t n : gpus) g.add("tiny", n, 1, p++);
  const SweepAnalysis a = g.analyze(Reference{"ref", 64});
  ASSERT_EQ(a.equivalence.size(), 4u);
  const double need = power_law(1000, 0.9, 64);
  const auto& ref = a.equivalence[0];
  EXPECT_EQ(ref.target, "ref");
  EXPECT_EQ(ref.how, "exact");
  EXPECT_EQ(ref.chips, 64);
  EXPECT_DOUBLE_EQ(ref.ratio, 1);
  EXPECT_DOUBLE_EQ(ref.reference_tokens_per_s, need);

  const auto& slow = a.equivalence[1];
  const double expect = std::pow(need / 300, 1 / 0.8);
  ASSERT_GT(expect, 256);
  ASSERT_LT(expect, 512);
  EXPECT_EQ(slow.how, "interp");
  EXPECT_EQ(slow.grid_gpus, 512);
  EXPECT_NEAR(slow.chips, expect, 1e-9 * expect);
  EXPECT_NEAR(slow.ratio, expect / 64, 1e-9 * expect);

  EXPECT_EQ(a.equivalence[2].how, "at most");  // 8 fast chips already beat 64 ref chips
  EXPECT_EQ(a.equivalence[2].chips, 8);
  EXPECT_EQ(a.equivalence[3].how, "more than");  // 512 chips at 1 token/s never do
  EXPECT_EQ(a.equivalence[3].grid_gpus, 0);
  EXPECT_EQ(a.equivalence[3].chips, 512);

  // A reference without a valid row asks no question.
  EXPECT_TRUE(g.analyze(Reference{"ref", 48}).equivalence.empty());
}

TEST(Analysis, Hdf5RoundTripAndRefusesLongStrings) {
  Grid g;
  int64_t p = 0;
  for (const char* t : {"a", "b", "c"})
    for (int64_t n : {8, 16}) g.add(t, n, t[0] == 'c' ? 10.0 * double(n) : 100.0 * double(n), p++);
  g.statuses[1] = "does not fit";
  const SweepAnalysis a = g.analyze(Reference{"a", 16});
  const std::string path = (std::filesystem::temp_directory_path() / ("capscale_analysis_" + std::to_string(::getpid()) + ".h5")).string();
  {
    results::h5::quiet();
    results::h5::Handle f = results::h5::create_file(path);
    results::write_analysis(f.id(), a);
  }
  results::h5::Handle f = results::h5::open_file(path, false);
  const auto b = results::read_analysis(f.id());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->models, a.models);
  EXPECT_EQ(b->targets, a.targets);
  EXPECT_EQ(b->gpus, a.gpus);
  ASSERT_EQ(b->scaling.size(), a.scaling.size());
  for (size_t i = 0; i < a.scaling.size(); ++i) {
    EXPECT_EQ(b->scaling[i].ok, a.scaling[i].ok);
    EXPECT_EQ(b->scaling[i].tokens_per_s, a.scaling[i].tokens_per_s);
    EXPECT_EQ(b->scaling[i].tp, a.scaling[i].tp);
    EXPECT_EQ(b->scaling[i].recompute, a.scaling[i].recompute);
  }
  ASSERT_EQ(b->cliffs.size(), a.cliffs.size());
  ASSERT_EQ(b->equivalence.size(), a.equivalence.size());
  for (size_t i = 0; i < a.equivalence.size(); ++i) {
    EXPECT_EQ(b->equivalence[i].chips, a.equivalence[i].chips);
    EXPECT_EQ(b->equivalence[i].how, a.equivalence[i].how);
  }
  EXPECT_EQ(b->reference->target, "a");
  EXPECT_EQ(b->not_ok, 1);
  f.reset();

  // A name longer than its column is refused, not cut.
  SweepAnalysis long_name = a;
  long_name.scaling[0].target = std::string(300, 'x');
  results::h5::Handle f2 = results::h5::create_file(path);
  EXPECT_THROW(results::write_analysis(f2.id(), long_name), RuntimeError);
  f2.reset();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace capscale::analysis
