// libFuzzer harness: a model YAML (configs/models/*.yaml schema) through the strict Fields reader.
// capscale::Error is the expected outcome for bad input; any other exception, a sanitizer report, a
// leak or a timeout is a bug. Both the file path (binary / size checks) and the text path are fed.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.hpp"
#include "config/fields.hpp"
#include "config/model_config.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace capscale;
  try {
    (void)config::load_model_yaml(fuzz::write_temp(data, size, ".yaml"));
  } catch (const Error&) {
  }
  // load_yaml_text skips the file checks (NUL bytes, 16 MiB), so it sees inputs the file path rejects.
  try {
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)config::parse_model_node(config::load_yaml_text(text, "fuzz"), "fuzz");
  } catch (const Error&) {
  }
  return 0;
}
