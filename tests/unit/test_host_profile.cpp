// Device name → chip profile matching (cli/host_profile.hpp): full names only, variants that
// differ from a profile's part are not guessed.
#include <gtest/gtest.h>

#include "cli/host_profile.hpp"

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

TEST(HostProfile, UnknownDeviceIsAnInputErrorNamingIt) {
  try {
    cli::gpu_host_profile("NVIDIA H100 PCIe (sm_90, pci 0000:1b:00.0)");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("H100 PCIe"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace capscale
