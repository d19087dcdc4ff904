// The chip profile of the device a rank runs on (shared by run and calibrate): the GPU's full name
// (as cudaGetDeviceProperties reports it) matched exactly against the parts configs/chips profiles.
#pragma once
#include <optional>
#include <string>

#include "config/chip.hpp"

namespace capscale::cli {

/// The configs/chips profile name for a CUDA device name ("NVIDIA H100 80GB HBM3" → "h100"), or
/// nullopt for a device no profile describes. Full names, never substrings: the H100 SXM, PCIe and
/// NVL differ in clocks, power and HBM, as do the H200 SXM and NVL and the A100 SXM4 80/40 GB and
/// PCIe cards, so only the part a profile was written for matches. A " (sm_..., pci ...)" suffix
/// (Executor::device()) and the "NVIDIA " prefix are ignored; case and '-'/'_'/' ' are not significant.
std::optional<std::string> chip_for_device(const std::string& device);

/// The host's chip profile, and whether configs/chips has one for it.
struct HostProfile {
  config::ChipProfile chip;
  /// False for a device no profile describes: `chip` is then unknown_device_profile().
  bool known = true;
  /// For an unknown device: one line saying so and what capscale does instead (empty otherwise).
  std::string note;
};

/// The profile of a device without one: its name, its memory (`memory_bytes` as the device reports
/// it, for the memory check) and nothing else. No peak rate, bandwidth or link speed, so that no
/// figure of another chip is ever used for it: arch "unknown" matches no target, so emulate_target
/// models every target instead of dilating the host's times (source `roofline` or `calibrated`),
/// and the host row's MFU and HFU are NaN (no peak to divide by). The 4 GB reserve is the one every
/// GPU profile assumes for the CUDA context and NCCL/cuBLAS (configs/chips/h100.yaml reserved_gb).
config::ChipProfile unknown_device_profile(const std::string& device, double memory_bytes);

/// The profile of a GPU from its device name: the configs/chips profile of that exact part, or for
/// any other device unknown_device_profile() with known = false and a note naming the device.
/// Never the profile of a similar part (an H100 PCIe is not an H100 SXM).
HostProfile gpu_host_profile(const std::string& device, double memory_bytes);

/// The profile a command that needs the host's peak rates (calibrate) runs with: InputError naming
/// --backend and the device when no profile matches it (capscale never guesses a host's peaks).
config::ChipProfile known_gpu_host_profile(const std::string& device);

/// The driver version in the first line of /proc/driver/nvidia/version, "nvidia 580.159.04" (the
/// first dotted number after "Kernel Module", proprietary or open), else "nvidia (<the line>)".
std::string nvidia_driver_from_proc(const std::string& first_line);

}  // namespace capscale::cli
