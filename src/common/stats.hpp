// Small statistics shared by the executors' benchmarks, calibration and emulation.
#pragma once
#include <algorithm>
#include <vector>

namespace capscale {

/// Median of `v` (taken by value: it is partially reordered); 0 for an empty vector. For an even
/// count this is the upper middle element, not the mean of the two: a measured time, never a
/// value no run produced.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace capscale
