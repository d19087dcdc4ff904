// Device name → chip profile; see host_profile.hpp.
#include "cli/host_profile.hpp"

#include <array>
#include <cctype>
#include <regex>
#include <string_view>
#include <utility>

#include "common/error.hpp"

namespace capscale::cli {
namespace {

// Uppercase, separators folded to one space, "NVIDIA " prefix and "(sm_..." suffix dropped.
std::string normalise(const std::string& device) {
  std::string name = device.substr(0, device.find(" (sm_"));
  std::string out;
  for (char c : name) {
    const char u = (c == '-' || c == '_') ? ' ' : char(std::toupper(static_cast<unsigned char>(c)));
    if (u == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(u);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.rfind("NVIDIA ", 0) == 0) out = out.substr(7);
  return out;
}

// The names NVIDIA's driver gives the parts that have profiles (normalised), each checked against
// the profile's description in configs/chips. Everything else (H100 PCIe / NVL, H200 NVL, H800 PCIe,
// A100 40GB and PCIe, A800 PCIe, GH200, ...) has no profile yet.
constexpr std::array<std::pair<std::string_view, std::string_view>, 9> kDeviceChips{{
    {"H100 80GB HBM3", "h100"},  // H100 SXM5 80GB
    {"H100 SXM5 80GB", "h100"},
    {"H200", "h200"},            // H200 SXM 141GB
    {"H20", "h20"},              // H20 96GB
    {"H800", "h800"},            // H800 SXM5 80GB
    {"A100 SXM4 80GB", "a100"},
    {"A800 SXM4 80GB", "a800"},
    {"B200", "b200"},
    {"H200 SXM 141GB", "h200"},
}};

}  // namespace

std::optional<std::string> chip_for_device(const std::string& device) {
  const std::string n = normalise(device);
  for (const auto& [name, chip] : kDeviceChips)
    if (n == name) return std::string(chip);
  return std::nullopt;
}

namespace {
std::string no_profile(const std::string& device) {
  return "device '" + device + "' has no chip profile in configs/chips (only the exact parts h100 = H100 SXM5 80GB, " +
         "h200 = H200 SXM, h20, h800 = H800 SXM5, a100 = A100 SXM4 80GB, a800 = A800 SXM4 80GB and b200 are known; " +
         "other variants differ in clocks, power or HBM and are not guessed)";
}
}  // namespace

config::ChipProfile unknown_device_profile(const std::string& device, double memory_bytes) {
  config::ChipProfile c;
  c.name = "unknown-gpu";
  c.description = device.substr(0, device.find(" (sm_"));
  c.arch = "unknown";
  c.hbm_gb = memory_bytes / 1e9;
  c.reserved_gb = 4;
  c.sources["hbm_gb"] = "reported by the device (cudaDeviceProp::totalGlobalMem)";
  c.sources["reserved_gb"] = "the reserve every GPU profile assumes (configs/chips/h100.yaml)";
  c.sources["peak_tflops"] = "unknown: no profile in configs/chips describes this device";
  c.origin = "device " + c.description;
  return c;
}

HostProfile gpu_host_profile(const std::string& device, double memory_bytes) {
  if (const auto chip = chip_for_device(device)) return {config::load_chip(*chip), true, ""};
  return {unknown_device_profile(device, memory_bytes), false,
          no_profile(device) + ": the host row reports measured times without MFU/HFU, and every --emulate target is modelled " +
              "(source roofline, or calibrated with --calibration), not dilated from this device; add a profile (docs/configs.md)"};
}

config::ChipProfile known_gpu_host_profile(const std::string& device) {
  if (const auto chip = chip_for_device(device)) return config::load_chip(*chip);
  throw InputError("--backend", "cuda", no_profile(device) + "; add one (docs/configs.md)");
}

// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..." (proprietary) or
// "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ..." (open).
std::string nvidia_driver_from_proc(const std::string& first_line) {
  static const std::regex version(R"((\d+\.\d+(\.\d+)?))");
  const auto at = first_line.find("Kernel Module");
  std::smatch m;
  if (at != std::string::npos) {
    const std::string rest = first_line.substr(at);
    if (std::regex_search(rest, m, version)) return "nvidia " + m.str(1);
  }
  return "nvidia (" + first_line.substr(0, 80) + ")";
}

}  // namespace capscale::cli
