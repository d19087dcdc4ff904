// libFuzzer harness: a chip profile YAML (configs/chips/*.yaml schema), then every cap key applied to
// the parsed profile. capscale::Error is expected for bad input; anything else is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.hpp"
#include "config/chip.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace capscale;
  try {
    const config::ChipProfile chip = config::load_chip_yaml(fuzz::write_temp(data, size, ".yaml"));
    (void)chip.usable_memory_bytes();
    for (const char* spec : {"x@nvlink=50%,nic=1,tflops=10%,hbm_tbps=2,nvlink_domain=4", "x@hbm_gb=50%", "x@hbm_gb=1e9"}) {
      try {
        (void)config::apply_caps(chip, config::parse_target(spec, "fuzz"));
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
