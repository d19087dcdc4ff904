// Device name → chip profile matching (cli/host_profile.hpp): full names only, variants that
// differ from a profile's part are not guessed; an unknown device says so, borrows no figure of
// another chip, and its run's targets fall back to the model (no dilation, no host MFU).
#include <gtest/gtest.h>

#include <cmath>

#include "cli/commands.hpp"
#include "cli/host_profile.hpp"
#include "common/error.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "emulate/emulate.hpp"
#include "plan/plan.hpp"
#include "predict/cost_model.hpp"
#include "predict/predictor.hpp"

namespace capscale {
namespace {

using cli::chip_for_device;

TEST(HostProfile, MatchesTheProfiledPartsByFullName) {
  EXPECT_EQ(chip_for_device("NVIDIA H100 80GB HBM3"), "h100");
  EXPECT_EQ(chip_for_device("NVIDIA H100 80GB HBM3 (sm_90, pci 0000:1b:00.0)"), "h100");
  EXPECT_EQ(chip_for_device("NVIDIA H200"), "h200");
  EXPECT_EQ(chip_for_device("NVIDIA H200 (sm_90, pci 0000:1b:00.0)"), "h200");
  EXPECT_EQ(chip_for_device("NVIDIA H20"), "h20");
  EXPECT_EQ(chip_for_device("NVIDIA H800"), "h800");
  EXPECT_EQ(chip_for_device("NVIDIA A100-SXM4-80GB"), "a100");
  EXPECT_EQ(chip_for_device("NVIDIA A800-SXM4-80GB"), "a800");
  EXPECT_EQ(chip_for_device("NVIDIA B200"), "b200");
  EXPECT_EQ(chip_for_device("nvidia  h100_80gb-hbm3"), "h100");  // case and separators do not matter
}

TEST(HostProfile, VariantsOfAProfiledPartAreNotGuessed) {
  // Other form factors of the same die: different clocks, power, HBM or NVLink.
  for (const char* name : {"NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H100 80GB HBM2e", "NVIDIA H200 NVL", "NVIDIA H800 PCIe",
                           "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A800 80GB PCIe",
                           "NVIDIA GH200 480GB", "NVIDIA H20 141GB", "NVIDIA L40S", "NVIDIA RTX 6000 Ada Generation", ""}) {
    EXPECT_EQ(chip_for_device(name), std::nullopt) << name;
  }
}

TEST(HostProfile, KnownDeviceGetsItsProfile) {
  const cli::HostProfile h = cli::gpu_host_profile("NVIDIA H200 (sm_90, pci 0000:1b:00.0)", 150e9);
  EXPECT_TRUE(h.known);
  EXPECT_TRUE(h.note.empty());
  EXPECT_EQ(h.chip.name, "h200");
  EXPECT_EQ(h.chip.hbm_gb, config::load_chip("h200").hbm_gb);  // the profile's, not the device's report
}

// An unknown device says so and gets nothing of any other chip: no peaks, no bandwidths, an arch
// no target has; only its own reported memory (for the memory check).
TEST(HostProfile, UnknownDeviceSaysSoAndBorrowsNoFigures) {
  const cli::HostProfile h = cli::gpu_host_profile("NVIDIA H100 PCIe (sm_90, pci 0000:1b:00.0)", 85.0e9);
  EXPECT_FALSE(h.known);
  EXPECT_NE(h.note.find("'NVIDIA H100 PCIe (sm_90"), std::string::npos) << h.note;
  EXPECT_NE(h.note.find("no chip profile"), std::string::npos) << h.note;
  EXPECT_NE(h.note.find("modelled"), std::string::npos) << h.note;
  EXPECT_EQ(h.chip.arch, "unknown");
  EXPECT_EQ(h.chip.description, "NVIDIA H100 PCIe");
  EXPECT_TRUE(h.chip.peak_tflops.empty());
  for (auto p : {config::Precision::kBf16, config::Precision::kFp16, config::Precision::kFp8, config::Precision::kFp32})
    EXPECT_FALSE(h.chip.supports(p));
  EXPECT_EQ(h.chip.hbm_tbps, 0.0);
  EXPECT_EQ(h.chip.nvlink_gbyte_s, 0.0);
  EXPECT_EQ(h.chip.nic_gbit_s, 0.0);
  EXPECT_DOUBLE_EQ(h.chip.hbm_gb, 85.0);
  EXPECT_NE(h.chip.hbm_gb, config::load_chip("h100").hbm_gb);
}

TEST(HostProfile, CommandsNeedingPeaksRefuseAnUnknownDeviceNamingIt) {
  EXPECT_EQ(cli::known_gpu_host_profile("NVIDIA H100 80GB HBM3").name, "h100");
  try {
    cli::known_gpu_host_profile("NVIDIA H100 PCIe (sm_90, pci 0000:1b:00.0)");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("H100 PCIe"), std::string::npos) << e.what();
  }
}

plan::Plan tiny_plan() {
  const config::ModelConfig m = config::load_model("tiny-demo");
  config::ParallelConfig p;
  p = config::resolve(p, m, 1, "test");
  return plan::build_plan(m, p);
}

// What `run` does with an unknown device's measurements: every target's op durations are the
// target's own model (source roofline), exactly as predict computes them, whatever the host
// measured; a host with a profile of the same arch dilates instead.
TEST(HostProfile, UnknownDeviceTargetsFallBackToTheModel) {
  const plan::Plan plan = tiny_plan();
  const config::ChipProfile unknown = cli::gpu_host_profile("NVIDIA H100 PCIe", 80e9).chip;
  const config::ChipProfile h100 = config::load_chip("h100"), h200 = config::load_chip("h200");
  std::vector<std::vector<double>> host_s;
  for (const auto& st : plan.stages) host_s.emplace_back(st.ops.size(), 1e-3);  // any measured times
  const auto t = emulate::emulate_target(plan, host_s, unknown, h200);
  EXPECT_EQ(t.row.source, "roofline");
  const auto& pp = plan.parallel;
  const parallel::Layout layout(pp.tp, pp.cp, pp.dp, pp.pp, pp.ep, pp.etp);
  const predict::CostModel model(h200, plan.parallel.precision, layout);
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    ASSERT_EQ(t.sources[s].size(), plan.stages[s].ops.size());
    for (size_t i = 0; i < plan.stages[s].ops.size(); ++i) {
      EXPECT_EQ(t.sources[s][i], "roofline") << plan.stages[s].ops[i].label();
      EXPECT_DOUBLE_EQ(t.durations[s][i], model.duration(plan.stages[s].ops[i])) << plan.stages[s].ops[i].label();
    }
  }
  EXPECT_TRUE(std::isfinite(t.row.mfu));  // the target has its peak
  // The same measurements from a profiled Hopper host are dilated.
  EXPECT_EQ(emulate::emulate_target(plan, host_s, h100, h200).row.source, "dilated");
}

// A host whose attention kernel is not production speed (the CUDA executor's own; exec::Executor::
// dilatable) dilates everything else and models fused attention: those ops take the target's own
// model, the rest the host time moved by emulate::dilate, and the row is still `dilated`. Across
// architectures nothing is dilated, whatever the predicate says.
TEST(HostProfile, OpsTheHostMayNotDilateAreModelledOnSameArchTargets) {
  const plan::Plan plan = tiny_plan();
  const config::ChipProfile h100 = config::load_chip("h100"), h20 = config::load_chip("h20");
  std::vector<std::vector<double>> host_s;
  for (const auto& st : plan.stages) host_s.emplace_back(st.ops.size(), 1e-3);
  const auto attention = [](const plan::Op& op) { return op.kind == plan::OpKind::kAttention; };
  const auto t = emulate::emulate_target(plan, host_s, h100, h20, nullptr, [&](const plan::Op& op) { return !attention(op); });
  EXPECT_EQ(t.row.source, "dilated");
  const auto& pp = plan.parallel;
  const parallel::Layout layout(pp.tp, pp.cp, pp.dp, pp.pp, pp.ep, pp.etp);
  const predict::CostModel on_h20(h20, pp.precision, layout), on_h100(h100, pp.precision, layout);
  int modelled = 0;
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    for (size_t i = 0; i < plan.stages[s].ops.size(); ++i) {
      const plan::Op& op = plan.stages[s].ops[i];
      if (attention(op)) {
        ++modelled;
        EXPECT_EQ(t.sources[s][i], "roofline") << op.label();
        EXPECT_DOUBLE_EQ(t.durations[s][i], on_h20.duration(op)) << op.label();
      } else {
        EXPECT_EQ(t.sources[s][i], "dilated") << op.label();
        EXPECT_DOUBLE_EQ(t.durations[s][i], emulate::dilate(1e-3, on_h100.duration(op), on_h20.duration(op))) << op.label();
      }
    }
  }
  EXPECT_GT(modelled, 0) << "tiny-demo has attention ops";
  const config::ChipProfile cpu = config::load_chip("cpu-host");
  EXPECT_EQ(emulate::emulate_target(plan, host_s, cpu, h20, nullptr, [](const plan::Op&) { return true; }).row.source, "roofline");
}

TEST(HostProfile, UnknownDeviceHostRowHasNoMfu) {
  const plan::Plan plan = tiny_plan();
  const config::ChipProfile unknown = cli::gpu_host_profile("NVIDIA L40S", 48e9).chip;
  predict::SummaryRow row = predict::identity_row(plan.model, unknown, plan.parallel, "measured");
  predict::fill_throughput(row, plan, unknown, 0.5, {});
  EXPECT_GT(row.tokens_per_s, 0.0);
  EXPECT_GT(row.tflops_per_chip, 0.0);
  EXPECT_TRUE(std::isnan(row.mfu));
  EXPECT_TRUE(std::isnan(row.hfu));
  predict::SummaryRow known = predict::identity_row(plan.model, config::load_chip("h100"), plan.parallel, "measured");
  predict::fill_throughput(known, plan, config::load_chip("h100"), 0.5, {});
  EXPECT_TRUE(std::isfinite(known.mfu));
}

}  // namespace
}  // namespace capscale

// The driver version recorded in calibration files, from both module flavours' /proc line (the
// open module's line, seen on an H200 node with driver 580.159.04, was first read as "nvidia for").
TEST(HostProfile, NvidiaDriverVersionFromProc) {
  EXPECT_EQ(capscale::cli::nvidia_driver_from_proc("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:08 UTC 2024"),
            "nvidia 550.54.15");
  EXPECT_EQ(capscale::cli::nvidia_driver_from_proc(
                "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)  Thu Oct 30"),
            "nvidia 580.159.04");
  EXPECT_EQ(capscale::cli::nvidia_driver_from_proc("something else"), "nvidia (something else)");
}
