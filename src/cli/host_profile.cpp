// Device name → chip profile; see host_profile.hpp.
#include "cli/host_profile.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace capscale::cli {

config::ChipProfile gpu_host_profile(const std::string& device) {
  for (const char* key : {"H200", "H100", "H800", "H20", "A800", "A100", "B200"}) {
    if (device.find(key) != std::string::npos) {
      std::string name = key;
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      return config::load_chip(name);
    }
  }
  throw InputError("--backend", "cuda", "device '" + device + "' has no chip profile in configs/chips; add one (docs/configs.md)");
}

}  // namespace capscale::cli
