// libFuzzer harness: a HuggingFace config.json through load_model_hf_json. capscale::Error is expected
// for bad input; any other exception (e.g. an nlohmann::json type_error escaping), a sanitizer report
// or a timeout is a bug.
#include <cstddef>
#include <cstdint>

#include "common/error.hpp"
#include "config/model_config.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace capscale;
  try {
    (void)config::load_model_hf_json(fuzz::write_temp(data, size, ".json"));
  } catch (const Error&) {
  }
  return 0;
}
