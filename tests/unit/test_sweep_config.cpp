// Sweep files: grid expansion, cap sweeps, weak-scaling batch, unknown fields.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "common/error.hpp"
#include "config/paths.hpp"
#include "sweep/sweep_config.hpp"
#include "unit/temp_path.hpp"

using namespace capscale;

namespace {
std::string write(const std::string& name, const std::string& text) {
  const std::string path = capscale::test_util::temp_path(name);
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST(SweepConfig, ExpandsTheGrid) {
  const auto s = sweep::load_sweep(write("s.yaml", R"(name: s
models: [llama3.1-70b, llama3.1-8b]
targets: [h200, h20@nvlink=400]
gpus: {from: 8, to: 64, factor: 2}
global_batch_size_per_gpu: 0.5
min_global_batch_size: 16
plans:
  - search
  - {tp: 8, pp: 1, recompute: selective}
)"));
  const auto pts = sweep::expand(s);
  ASSERT_EQ(pts.size(), 2u * 2 * 4 * 2);
  EXPECT_EQ(pts[0].global_batch_size, 16);  // max(16, 0.5·8)
  EXPECT_EQ(pts[6].gpus, 64);
  EXPECT_EQ(pts[6].global_batch_size, 32);
  std::set<std::string> keys;
  for (const auto& p : pts) keys.insert(p.key);
  EXPECT_EQ(keys.size(), pts.size());  // keys identify points across resumes
}

TEST(SweepConfig, PlansThatDifferOnlyInAFlagHaveTheirOwnKeys) {
  const auto s = sweep::load_sweep(write("flags.yaml", R"(name: flags
models: [llama3.1-70b]
targets: [h200]
gpus: [64]
global_batch_size: 64
plans:
  - {tp: 8, pp: 1}
  - {tp: 8, pp: 1, grad_reduce_in_bf16: true}
  - {tp: 8, pp: 1, tp_comm_overlap: false}
)"));
  const auto pts = sweep::expand(s);
  ASSERT_EQ(pts.size(), 3u);
  EXPECT_NE(pts[0].key, pts[1].key);
  EXPECT_NE(pts[0].key, pts[2].key);
  // Keys name every plan field (schema 2), generated from the field tables: sweep::point_fields()
  // and config::parallel_fields().
  EXPECT_EQ(pts[0].key, "llama3.1-70b|h200|gpus64|gbs64|tp8-pp1-cp1-vpp1-mbs1-none-z1-sp-tpo");
}

TEST(SweepConfig, TheSamePointTwiceIsRejected) {
  const auto s = sweep::load_sweep(write("twice.yaml", R"(name: twice
models: [llama3.1-70b]
targets: [h200, h200]
gpus: [64]
global_batch_size: 64
plans: [search]
)"));
  try {
    sweep::expand(s);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("same point twice"), std::string::npos) << e.what();
  }
}

TEST(SweepConfig, CapSweepAndErrors) {
  const auto s = sweep::load_sweep(write("c.yaml", R"(name: c
models: [llama3.1-70b]
cap_sweep: {chip: h200, key: nvlink, values: [900, 400, 50]}
gpus: [64]
global_batch_size: 128
)"));
  ASSERT_EQ(s.targets.size(), 3u);
  EXPECT_EQ(s.targets[1].spec, "h200@nvlink=400");
  EXPECT_THROW(sweep::load_sweep(write("u.yaml", "name: u\nmodels: [x]\ntargets: [h200]\ngpus: [8]\nglobal_batch_size: 8\nbogus: 1\n")),
               InputError);
  EXPECT_THROW(sweep::load_sweep(write("k.yaml", "name: k\nmodels: [x]\ncap_sweep: {chip: h200, key: watts, values: [1]}\ngpus: [8]\nglobal_batch_size: 8\n")),
               InputError);
  EXPECT_THROW(sweep::load_sweep(write("b.yaml", "name: b\nmodels: [x]\ntargets: [h200]\ngpus: [8]\n")), InputError);
}

TEST(SweepConfig, ShippedSweepsLoad) {
  for (const auto& n : config::list_configs("sweeps")) {
    EXPECT_NO_THROW(sweep::expand(sweep::load_sweep(config::config_dir() + "/sweeps/" + n + ".yaml"))) << n;
  }
}
