// The chip profile of the device a rank runs on (shared by run and calibrate).
#pragma once
#include <string>

#include "config/chip.hpp"

namespace capscale::cli {

/// The chip profile of a GPU from its device name (H200 before H20: the longer name must win);
/// InputError naming --backend when configs/chips has none.
config::ChipProfile gpu_host_profile(const std::string& device);

}  // namespace capscale::cli
