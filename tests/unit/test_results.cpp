// HDF5 results: a run file and a sweep file are written, read back field for field; a sweep left
// unfinished (as after kill -9 between points) stays readable and resumes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <hdf5.h>
#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "config/record_json.hpp"
#include "results/h5.hpp"
#include "results/reader.hpp"
#include "results/writer.hpp"
#include "unit/temp_path.hpp"

using namespace capscale;
namespace fs = std::filesystem;

namespace {
predict::SummaryRow row(const std::string& target, double tps) {
  predict::SummaryRow r;
  r.model = "tiny-demo", r.target = target, r.gpus = 4, r.step_time_s = 1.5, r.tokens_per_s = tps * 4;
  r.tokens_per_s_per_chip = tps, r.mfu = 0.4, r.hfu = 0.5, r.fits = true, r.source = "roofline";
  r.parallel.tp = 2, r.parallel.pp = 2, r.parallel.dp = 1, r.parallel.recompute = config::Recompute::kSelective;
  r.breakdown.compute_s = 1.0, r.breakdown.bubble_s = 0.5;
  return r;
}
std::string tmp(const std::string& name) { return capscale::test_util::fresh_temp_path(name); }
}  // namespace

TEST(Results, RunFileRoundTrip) {
  const auto m = config::load_model("tiny-demo");
  config::ParallelConfig p;
  p.tp = 2, p.pp = 2, p.global_batch_size = 4;
  p = config::resolve(p, m, 4, "test");
  const auto plan = plan::build_plan(m, p);
  results::RunData d;
  d.meta = {"run", "capscale run --test", "0.1.0", "abc123"};
  d.model_json = R"({"name":"tiny-demo"})";
  d.parallel_json = "{}";
  d.plan = &plan;
  d.ranks.push_back({0, "host0", "cpu", "cpu", "fp32", 0, 0, 0, 0});
  d.ops.push_back({0, 0, 0, &plan.stages[0].ops[0], 1e-3});
  d.steps.push_back({0, 0, 2.0});
  d.summary = {row("host:cpu-host", 10), row("h200@nvlink=400", 1e5)};
  results::TargetOps t;
  t.spec = "h200@nvlink=400";
  for (const auto& st : plan.stages) {
    t.durations.emplace_back(st.ops.size(), 1e-6);
    t.sources.emplace_back(st.ops.size(), "roofline");
  }
  d.targets.push_back(t);
  d.engine_step_s = 2.02, d.measured_step_s = 2.0;
  const auto path = tmp("run.h5");
  results::write_run(path, d, false);
  EXPECT_THROW(results::write_run(path, d, false), InputError);  // refuses to overwrite without --force
  const auto f = results::read_result(path);
  EXPECT_EQ(f.kind, "run");
  EXPECT_EQ(f.schema_version, results::kSchemaVersion);
  ASSERT_EQ(f.rows.size(), 2u);
  EXPECT_EQ(f.rows[1].target, "h200@nvlink=400");
  EXPECT_DOUBLE_EQ(f.rows[1].tokens_per_s_per_chip, 1e5);
  EXPECT_EQ(f.rows[1].parallel.recompute, config::Recompute::kSelective);
  EXPECT_NEAR(f.engine_error, 0.01, 1e-12);
  ASSERT_EQ(f.targets.size(), 1u);
  EXPECT_EQ(f.targets[0].durations.size(), plan.stages.size());
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST(Results, NonFiniteNumbersNeverReachAFile) {
  auto r = row("h200", 1);
  r.mfu = std::nan("");
  auto t = results::summary_table();
  EXPECT_THROW(results::add_summary_row(t, r, 0, "k", "ok"), RuntimeError);
  // The one exception: a measured host row on a GPU without a chip profile has no MFU/HFU (NaN);
  // an infinite value is still refused there.
  r.source = "measured";
  r.hfu = std::nan("");
  EXPECT_NO_THROW(results::add_summary_row(t, r, 0, "k", "ok"));
  r.mfu = INFINITY;
  EXPECT_THROW(results::add_summary_row(t, r, 0, "k", "ok"), RuntimeError);
}

TEST(Results, SweepFileSurvivesAbandonAndResumes) {
  const auto path = tmp("sweep.h5");
  const results::FileMeta meta{"sweep", "capscale sweep x.yaml", "0.1.0", "abc"};
  {
    results::SweepFile f(path, meta, "name: x\n", false, false);
    f.append(row("h200", 1), 0, "a", "ok");
    f.append(row("h20", 2), 1, "b", "ok");
    // No finish(): as if the process died between points.
  }
  const auto partial = results::read_result(path + ".partial");
  EXPECT_EQ(partial.rows.size(), 2u);
  EXPECT_THROW(results::SweepFile(path, meta, "", false, false), InputError);  // needs --resume or --force
  {
    results::SweepFile f(path, meta, "", true, false);
    EXPECT_TRUE(f.done("a"));
    EXPECT_TRUE(f.done("b"));
    EXPECT_FALSE(f.done("c"));
    f.append(row("h800", 3), 2, "c", "ok");
    f.finish();
  }
  const auto done = results::read_result(path);
  ASSERT_EQ(done.rows.size(), 3u);
  EXPECT_EQ(done.keys[2], "c");
  EXPECT_FALSE(fs::exists(path + ".partial"));
}

TEST(Results, ForeignFilesAreInputErrors) {
  const auto txt = tmp("not.h5");
  std::ofstream(txt) << "hello";
  EXPECT_THROW(results::read_result(txt), InputError);
  EXPECT_THROW(results::read_result(tmp("missing.h5")), InputError);
}

TEST(Results, FilesBeforeSchemaSixModelledTheTpBackwardInSeries) {
  // Schema 6 added async_tp_comm (default on). A file without the column was written by a model that
  // ran a column-parallel backward's TP communication in series, so it reads back off (as what it
  // ran, not the new default); a file with the column reads what it stored.
  auto full = results::summary_table();
  const auto r = row("h100", 1e4);
  ASSERT_TRUE(r.parallel.async_tp_comm);
  results::add_summary_row(full, r, 0, "k", "ok");
  // The same row in a table of schema 5's columns, copied column by column.
  std::vector<results::h5::Column> old_columns;
  for (const auto& c : full.columns())
    if (c.name != "async_tp_comm") old_columns.push_back(c);
  ASSERT_EQ(old_columns.size() + 1, full.columns().size());
  results::h5::Table older(old_columns);
  older.add_row();
  for (const auto& c : old_columns) {
    if (c.type == results::h5::ColType::kI64) older.set(c.name, full.get_i64(0, c.name));
    else if (c.type == results::h5::ColType::kF64) older.set(c.name, full.get_f64(0, c.name));
    else older.set(c.name, full.get_str(0, c.name));
  }
  for (const bool old : {true, false}) {
    const auto path = tmp(old ? "schema5_summary.h5" : "schema6_summary.h5");
    {
      results::h5::quiet();
      results::h5::Handle f = results::h5::create_file(path);
      results::h5::write_table(f.id(), "summary", old ? older : full);
    }
    results::h5::Handle f = results::h5::open_file(path, false);
    const auto s = results::read_summary(f.id());
    ASSERT_EQ(s.rows.size(), 1u);
    EXPECT_EQ(s.rows[0].parallel.async_tp_comm, !old);
    EXPECT_EQ(s.rows[0].parallel.tp, 2);
  }
  // A run file's plan (parallel_json, which `report --trace` rebuilds) the same way, by its schema.
  const auto m = config::load_model("tiny-demo");
  config::ParallelConfig p;
  p.tp = 2, p.pp = 2, p.global_batch_size = 4;
  p = config::resolve(p, m, 4, "test");
  const auto plan = plan::build_plan(m, p);
  auto stored = config::record_to_json(p, config::parallel_fields());
  stored.erase("async_tp_comm");  // as a schema 5 file holds it
  results::RunData d;
  d.meta = {"run", "capscale run --test", "0.1.0", "abc123"};
  d.model_json = R"({"name":"tiny-demo"})";
  d.parallel_json = stored.dump();
  d.plan = &plan;
  d.ranks.push_back({0, "host0", "cpu", "cpu", "fp32", 0, 0, 0, 0});
  d.steps.push_back({0, 0, 2.0});
  d.summary = {r};
  for (const int64_t version : {results::kSchemaVersion, int64_t(5)}) {
    const auto path = tmp("run_schema" + std::to_string(version) + ".h5");
    results::write_run(path, d, false);
    if (version != results::kSchemaVersion) {
      results::h5::Handle f = results::h5::open_file(path, true);
      ASSERT_GE(H5Adelete(f.id(), "schema_version"), 0);
      results::h5::write_attr(f.id(), "schema_version", version);
    }
    const auto j = nlohmann::json::parse(results::read_result(path).parallel_json);
    EXPECT_EQ(j.contains("async_tp_comm"), version < 6) << version;  // a schema 6 file is read as written
    if (version < 6) {
      EXPECT_FALSE(j.at("async_tp_comm").get<bool>());
    }
  }
}
