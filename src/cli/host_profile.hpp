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

/// The chip profile of a GPU from its device name; InputError naming --backend and the device when
/// no profile matches it (capscale never guesses a host's peak rates).
config::ChipProfile gpu_host_profile(const std::string& device);

}  // namespace capscale::cli
