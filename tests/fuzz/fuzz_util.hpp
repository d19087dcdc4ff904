// Shared helpers for the libFuzzer harnesses: the parsers that only take a path get the input through
// one temp file per process (rewritten each run).
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace capscale::fuzz {

/// Writes `data` to this process's temp file (`/tmp/capscale-fuzz-PID<suffix>`) and returns its path.
inline const std::string& write_temp(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = "/tmp/capscale-fuzz-" + std::to_string(getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();  // the harness itself is broken, not the parser
  if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace capscale::fuzz
