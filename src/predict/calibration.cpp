// Calibration lookups; see calibration.hpp.
#include "predict/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace capscale::predict {

double Calibration::gemm_efficiency(int64_t m, int64_t n, int64_t k) const {
  double best_d = std::numeric_limits<double>::infinity(), best = -1;
  auto l = [](int64_t x) { return std::log(double(std::max<int64_t>(x, 1))); };
  const double lm = l(m), ln = l(n), lk = l(k);
  for (const auto& g : gemm) {
    const double dm = lm - l(g.m), dn = ln - l(g.n), dk = lk - l(g.k);
    const double d = dm * dm + dn * dn + dk * dk;
    if (d < best_d) best_d = d, best = g.efficiency;
  }
  return best;
}

double Calibration::max_gemm_efficiency() const {
  double best = -1;
  for (const auto& g : gemm) best = std::max(best, g.efficiency);
  return best;
}

double Calibration::busbw(const std::string& kind, int64_t bytes, int64_t ranks) const {
  // Which rank count to use: the requested one when calibrated, else the largest calibrated.
  int64_t use = -1;
  bool exact = false;
  for (const auto& c : comm) {
    if (c.kind != kind) continue;
    if (ranks > 0 && c.ranks == ranks) exact = true;
    use = std::max(use, c.ranks);
  }
  if (use < 0) return -1;
  if (exact) use = ranks;
  std::vector<std::pair<double, double>> pts;  // (ln bytes, busbw)
  for (const auto& c : comm)
    if (c.kind == kind && c.ranks == use && c.bytes > 0) pts.emplace_back(std::log(double(c.bytes)), c.busbw_Bps);
  if (pts.empty()) return -1;
  std::sort(pts.begin(), pts.end());
  const double x = std::log(double(std::max<int64_t>(bytes, 1)));
  if (x <= pts.front().first) return pts.front().second;
  if (x >= pts.back().first) return pts.back().second;
  const auto hi = std::upper_bound(pts.begin(), pts.end(), x, [](double v, const auto& p) { return v < p.first; });
  const auto lo = hi - 1;
  if (hi->first == lo->first) return hi->second;
  const double t = (x - lo->first) / (hi->first - lo->first);
  return lo->second + t * (hi->second - lo->second);
}

}  // namespace capscale::predict
