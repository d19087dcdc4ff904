// libFuzzer harness: a sweep file (configs/sweeps/*.yaml schema) loaded and expanded to its points, as
// `capscale check` does. capscale::Error is expected for bad input; anything else is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.hpp"
#include "fuzz_util.hpp"
#include "sweep/sweep_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace capscale;
  try {
    const sweep::SweepConfig s = sweep::load_sweep(fuzz::write_temp(data, size, ".yaml"));
    // expand() is linear in the point count (capped at 1e7 by load_sweep, ~0.5 KB per point); keep a
    // fuzz run's memory bounded by expanding only grids the fuzzer can check quickly.
    const double points = double(s.models.size()) * double(s.targets.size()) * double(s.gpus.size()) * double(s.plans.size());
    if (points <= 1e5) (void)sweep::expand(s);
  } catch (const Error&) {
  }
  return 0;
}
