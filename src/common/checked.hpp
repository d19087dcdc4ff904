// Overflow-checked 64-bit arithmetic for byte and FLOP counts: a 10^6-chip cluster of 10^12-parameter
// models must never wrap silently. Throws InputError naming the quantity when a product overflows.
#pragma once
#include <cstdint>
#include <string>

#include "common/error.hpp"

namespace capscale {

inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw InputError("arithmetic", what, "overflows 64 bits; reduce the model or cluster size");
  }
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    throw InputError("arithmetic", what, "overflows 64 bits; reduce the model or cluster size");
  }
  return r;
}

}  // namespace capscale
