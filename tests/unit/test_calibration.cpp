// Calibration (capscale calibrate): nearest-shape GEMM lookup and log-linear bus-bandwidth
// interpolation, the cost model's use of them (only for the calibrated architecture), predict and
// emulate sources, and the HDF5 round trip with its refusals.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/paths.hpp"
#include "emulate/emulate.hpp"
#include "predict/calibration.hpp"
#include "predict/cost_model.hpp"
#include "predict/predictor.hpp"
#include "results/calibration_io.hpp"
#include "results/h5.hpp"
#include "results/writer.hpp"
#include "unit/temp_path.hpp"

using namespace capscale;
namespace fs = std::filesystem;

namespace {

predict::Calibration hand_made() {
  predict::Calibration c;
  c.arch = "hopper", c.device = "NVIDIA H100 80GB HBM3 (sm_90, pci 0000:18:00.0)", c.driver = "nvidia 550.54.15";
  c.created_utc = "2026-11-23T00:00:00Z", c.backend = "cuda", c.chip = "h100", c.gemm_dtype = "bf16 (cublasLt)";
  c.peak_tflops = 989.4, c.world = 8;
  c.gemm = {{1024, 1024, 1024, 3e-6, 0.72}, {128, 4096, 4096, 2e-5, 0.41}, {8192, 8192, 8192, 1.4e-3, 0.79}};
  c.comm = {{"all_reduce", 1 << 10, 8, 2e-5, 1e9},
            {"all_reduce", 1 << 20, 8, 3e-5, 11e9},
            {"all_reduce", 1 << 30, 8, 5e-3, 300e9},
            {"all_gather", 1 << 20, 8, 3e-5, 20e9}};
  return c;
}

std::string tmp(const std::string& name) { return capscale::test_util::fresh_temp_path(name); }

plan::Op gemm(int64_t m, int64_t n, int64_t k) { return plan::gemm_op(m, n, k); }

}  // namespace

TEST(Calibration, NearestShapeInLogSpace) {
  const auto c = hand_made();
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(1024, 1024, 1024), 0.72);
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(1000, 1100, 900), 0.72);
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(100, 4000, 5000), 0.41);  // thin m wins over absolute distance
  EXPECT_DOUBLE_EQ(c.gemm_efficiency(16384, 16384, 8192), 0.79);
  EXPECT_DOUBLE_EQ(c.max_gemm_efficiency(), 0.79);
  EXPECT_LT(predict::Calibration{}.gemm_efficiency(1, 1, 1), 0);
  EXPECT_LT(predict::Calibration{}.max_gemm_efficiency(), 0);
}

TEST(Calibration, BusBandwidthIsLogLinearAndClamped) {
  const auto c = hand_made();
  EXPECT_DOUBLE_EQ(c.busbw("all_reduce", 1 << 10), 1e9);
  EXPECT_DOUBLE_EQ(c.busbw("all_reduce", 1 << 20), 11e9);
  // 32 KiB lies halfway between 1 KiB and 1 MiB in ln(bytes).
  EXPECT_NEAR(c.busbw("all_reduce", 1 << 15), 6e9, 1e-3);
  EXPECT_NEAR(c.busbw(plan::CollKind::kAllReduce, int64_t(1) << 25), (11e9 + 300e9) / 2, 1);
  EXPECT_DOUBLE_EQ(c.busbw("all_reduce", 16), 1e9);                        // clamped below
  EXPECT_DOUBLE_EQ(c.busbw("all_reduce", int64_t(1) << 40), 300e9);        // clamped above
  EXPECT_DOUBLE_EQ(c.busbw("all_gather", 12345), 20e9);                    // one point: constant
  EXPECT_LT(c.busbw("reduce_scatter", 1 << 20), 0);                        // not calibrated
  // Several rank counts: the requested one when present, else the largest.
  auto two = c;
  two.comm.push_back({"all_gather", 1 << 20, 2, 1e-4, 5e9});
  EXPECT_DOUBLE_EQ(two.busbw("all_gather", 1 << 20, 2), 5e9);
  EXPECT_DOUBLE_EQ(two.busbw("all_gather", 1 << 20, 4), 20e9);
}

TEST(Calibration, CostModelUsesMeasuredEfficiencyForItsArchOnly) {
  const auto h100 = config::load_chip("h100");
  const parallel::Layout layout(8, 1, 1, 1);
  const int64_t m = 8192, n = 8192, k = 8192;
  const predict::CostModel roofline(h100, config::Precision::kBf16, layout);
  // The profile's efficiency at this shape (gemm fraction × tile fill), halved.
  auto fill = [](int64_t x) { return double(x) / (double(x) + 64.0); };
  predict::Calibration half;
  half.arch = "hopper";
  half.gemm = {{m, n, k, 1e-3, 0.5 * h100.efficiency.gemm * fill(m) * fill(n) * fill(k)}};
  const predict::CostModel calibrated(h100, config::Precision::kBf16, layout, &half);
  ASSERT_TRUE(calibrated.calibrated());
  const auto op = gemm(m, n, k);
  EXPECT_TRUE(calibrated.calibrated(op));
  const double t_roof = roofline.duration(op) - predict::CostModel::kKernelOverheadS;  // launch cost is in a measurement
  EXPECT_NEAR(calibrated.duration(op), 2.0 * t_roof, 1e-12 * t_roof);

  // Another architecture's calibration changes nothing.
  auto ampere = half;
  ampere.arch = "ampere";
  const predict::CostModel other(h100, config::Precision::kBf16, layout, &ampere);
  EXPECT_FALSE(other.calibrated());
  EXPECT_DOUBLE_EQ(other.duration(op), roofline.duration(op));

  // Collectives inside one NVLink domain: t = S · bus_factor / busbw.
  auto c = hand_made();
  const predict::CostModel with_comm(h100, config::Precision::kBf16, layout, &c);
  plan::Op ar;
  ar.kind = plan::OpKind::kCollective, ar.coll = plan::CollKind::kAllReduce, ar.group = parallel::Group::kTp;
  ar.bytes = int64_t(1) << 30;
  EXPECT_TRUE(with_comm.calibrated(ar));
  EXPECT_NEAR(with_comm.duration(ar), double(ar.bytes) * 2 * 7 / 8 / 300e9, 1e-12);
  // A kind without calibration points keeps the α–β model.
  plan::Op rs = ar;
  rs.coll = plan::CollKind::kReduceScatter;
  EXPECT_FALSE(with_comm.calibrated(rs));
  EXPECT_DOUBLE_EQ(with_comm.duration(rs), roofline.duration(rs));
  // Groups spanning domains keep the α–β ring model.
  const parallel::Layout dp16(1, 1, 16, 1);
  const predict::CostModel wide_cal(h100, config::Precision::kBf16, dp16, &c);
  plan::Op dp = ar;
  dp.group = parallel::Group::kDp;
  EXPECT_FALSE(wide_cal.calibrated(dp));
}

TEST(Calibration, PredictAndEmulateReportCalibratedSource) {
  const auto m = config::load_model("tiny-demo");
  config::ParallelConfig p;
  p.tp = 2, p.global_batch_size = 4;
  p = config::resolve(p, m, 4, "test");
  const auto h100 = config::load_chip("h100");
  const auto c = hand_made();
  predict::PredictOptions po;
  const auto plain = predict::predict(m, h100, p, po).row;
  po.calibration = &c;
  const auto cal = predict::predict(m, h100, p, po).row;
  EXPECT_EQ(plain.source, "roofline");
  EXPECT_EQ(cal.source, "calibrated");
  EXPECT_NE(plain.step_time_s, cal.step_time_s);
  // Folded micro-batches too.
  config::ParallelConfig q = p;
  q.global_batch_size = 64;
  EXPECT_EQ(predict::predict(m, h100, q, po).row.source, "calibrated");
  // Not the chip's architecture: roofline, identical numbers.
  const auto a100 = config::load_chip("a100");
  EXPECT_EQ(predict::predict(m, a100, p, po).row.source, "roofline");
  EXPECT_DOUBLE_EQ(predict::predict(m, a100, p, po).row.step_time_s, predict::predict(m, a100, p).row.step_time_s);

  // A CPU host emulating an H100 with a Hopper calibration.
  const auto plan = plan::build_plan(m, p);
  const parallel::Layout layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp);
  const auto cpu = config::load_chip("cpu-host");
  const auto host = predict::model_durations(plan, predict::CostModel(cpu, p.precision, layout));
  const auto e_plain = emulate::emulate_target(plan, host, cpu, h100);
  const auto e_cal = emulate::emulate_target(plan, host, cpu, h100, &c);
  EXPECT_EQ(e_plain.row.source, "roofline");
  EXPECT_EQ(e_cal.row.source, "calibrated");
  bool gemm_calibrated = false;
  for (size_t i = 0; i < plan.stages[0].ops.size(); ++i)
    if (plan.stages[0].ops[i].kind == plan::OpKind::kGemm) gemm_calibrated = e_cal.sources[0][i] == "calibrated";
  EXPECT_TRUE(gemm_calibrated);
  // Same architecture as the host: dilation wins, the calibration is not used.
  const auto h200 = config::load_chip("h200");
  const auto h_host = predict::model_durations(plan, predict::CostModel(h100, p.precision, layout));
  EXPECT_EQ(emulate::emulate_target(plan, h_host, h100, h200, &c).row.source, "dilated");
}

TEST(Calibration, FileRoundTripAndRefusals) {
  const auto path = tmp("cal.h5");
  auto c = hand_made();
  c.command_line = "capscale calibrate --test";
  results::write_calibration(path, c, false);
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
  const auto r = results::read_calibration(path);
  EXPECT_EQ(r.arch, c.arch);
  EXPECT_EQ(r.device, c.device);
  EXPECT_EQ(r.driver, c.driver);
  EXPECT_EQ(r.created_utc, c.created_utc);
  EXPECT_EQ(r.backend, c.backend);
  EXPECT_EQ(r.chip, c.chip);
  EXPECT_EQ(r.gemm_dtype, c.gemm_dtype);
  EXPECT_DOUBLE_EQ(r.peak_tflops, c.peak_tflops);
  EXPECT_EQ(r.world, c.world);
  EXPECT_EQ(r.command_line, c.command_line);
  ASSERT_EQ(r.gemm.size(), c.gemm.size());
  for (size_t i = 0; i < c.gemm.size(); ++i) {
    EXPECT_EQ(r.gemm[i].m, c.gemm[i].m);
    EXPECT_EQ(r.gemm[i].n, c.gemm[i].n);
    EXPECT_EQ(r.gemm[i].k, c.gemm[i].k);
    EXPECT_DOUBLE_EQ(r.gemm[i].seconds, c.gemm[i].seconds);
    EXPECT_DOUBLE_EQ(r.gemm[i].efficiency, c.gemm[i].efficiency);
  }
  ASSERT_EQ(r.comm.size(), c.comm.size());
  for (size_t i = 0; i < c.comm.size(); ++i) {
    EXPECT_EQ(r.comm[i].kind, c.comm[i].kind);
    EXPECT_EQ(r.comm[i].bytes, c.comm[i].bytes);
    EXPECT_EQ(r.comm[i].ranks, c.comm[i].ranks);
    EXPECT_DOUBLE_EQ(r.comm[i].seconds, c.comm[i].seconds);
    EXPECT_NEAR(r.comm[i].busbw_Bps, c.comm[i].busbw_Bps, 1e-6 * c.comm[i].busbw_Bps);
  }
  EXPECT_DOUBLE_EQ(r.busbw("all_reduce", 1 << 15), c.busbw("all_reduce", 1 << 15));

  // Existing file without force; then with force.
  EXPECT_THROW(results::write_calibration(path, c, false), InputError);
  EXPECT_NO_THROW(results::write_calibration(path, c, true));

  // Not a calibration: missing file, not HDF5, another capscale kind, another schema version.
  EXPECT_THROW(results::read_calibration(tmp("missing.h5")), InputError);
  const auto text = tmp("text.h5");
  std::ofstream(text) << "not hdf5\n";
  EXPECT_THROW(results::read_calibration(text), InputError);
  auto make = [](const std::string& p, const std::string& kind, int64_t version) {
    results::h5::quiet();
    results::h5::Handle f = results::h5::create_file(p);
    results::h5::write_attr(f.id(), "schema_version", version);
    results::h5::write_attr(f.id(), "kind", kind);
  };
  const auto run = tmp("run.h5");
  make(run, "run", results::kSchemaVersion);
  try {
    results::read_calibration(run);
    FAIL() << "a run file was read as a calibration";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(run), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("calibration"), std::string::npos) << e.what();
  }
  const auto v2 = tmp("v2.h5");
  make(v2, "calibration", results::kCalibrationSchemaVersion + 1);
  EXPECT_THROW(results::read_calibration(v2), InputError);
  const auto truncated = tmp("notables.h5");
  make(truncated, "calibration", results::kCalibrationSchemaVersion);
  EXPECT_THROW(results::read_calibration(truncated), InputError);
  for (const auto& p : {path, text, run, v2, truncated}) fs::remove(p);
}

// The Hopper GEMM model against a real H200. configs/calibration/h200-2026-11-30.h5 holds cuBLASLt
// bf16 times for the 24 GEMM shapes of Llama 3.1 8B and 70B (tp 1, seq 4096), measured by
// `capscale calibrate --backend cuda` on an H200 (driver 580.159.04), each GEMM alone. The model's
// isolated GEMM is efficiency.gemm (0.78, from published cuBLAS figures) derated for thin dimensions;
// efficiency.sustained (fit to published training runs) is what a training step loses on top of that
// and is left out here (set to 1). Neither was fit to this file, so this is an independent check of
// the mechanism. Over all shapes (the sum of times, what a step adds up) the model is within 10 % of
// the hardware (it reads 8 % fast); per shape within 30 %, since the H200's own rate varied from 557
// to 807 TFLOP/s across shapes of one size class (clocks under sustained load), which no shape term
// of the model represents.
TEST(Calibration, HopperGemmModelAgreesWithMeasuredH200) {
  const auto cal = results::read_calibration(config::config_dir() + "/calibration/h200-2026-11-30.h5");
  ASSERT_EQ(cal.arch, "hopper");
  ASSERT_EQ(cal.gemm.size(), 24u);
  config::ChipProfile h200 = config::load_chip("h200");
  h200.efficiency.sustained = 1.0;
  const parallel::Layout one(1, 1, 1, 1);
  const predict::CostModel model(h200, config::Precision::kBf16, one);
  double sum_model = 0, sum_measured = 0;
  for (const auto& g : cal.gemm) {
    const double t = model.duration(plan::gemm_op(g.m, g.n, g.k));
    EXPECT_NEAR(t / g.seconds, 1.0, 0.30) << g.m << "x" << g.n << "x" << g.k << ": model " << t << " s, H200 " << g.seconds << " s";
    sum_model += t, sum_measured += g.seconds;
  }
  EXPECT_NEAR(sum_model / sum_measured, 1.0, 0.10) << "model " << sum_model << " s, H200 " << sum_measured << " s";
}
