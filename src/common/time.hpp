// Wall-clock time as result files record it.
#pragma once
#include <ctime>
#include <string>

namespace capscale {

/// Now as ISO 8601 UTC, e.g. "2026-11-23T02:33:06Z" (the `created_utc` attribute of every file).
inline std::string utc_now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);  // gmtime's static buffer is not thread-safe
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace capscale
