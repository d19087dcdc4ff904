// libFuzzer harness: target specs `CHIP[@key=value,...]` (one, and comma lists as in --emulate)
// parsed and applied to an in-memory H100-like profile (no file system access). capscale::Error is
// expected for bad input; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "config/chip.hpp"

namespace {

capscale::config::ChipProfile base_chip() {
  capscale::config::ChipProfile c;
  c.name = "h100";
  c.arch = "hopper";
  c.peak_tflops = {{"bf16", 989.4}, {"fp16", 989.4}, {"fp8", 1978.9}, {"fp32", 66.9}};
  c.hbm_gb = 80;
  c.hbm_tbps = 3.35;
  c.nvlink_gbyte_s = 900;
  c.nvlink_domain = 8;
  c.nic_gbit_s = 400;
  c.reserved_gb = 4;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace capscale;
  static const config::ChipProfile chip = base_chip();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)config::apply_caps(chip, config::parse_target(text, "fuzz"));
  } catch (const Error&) {
  }
  try {
    for (const auto& t : config::parse_target_list(text, "fuzz")) (void)config::apply_caps(chip, t);
  } catch (const Error&) {
  }
  return 0;
}
