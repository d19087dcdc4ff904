// Ring and two-level α–β building blocks shared by the ring-based collectives; see collectives.hpp.
#include <algorithm>
#include <cmath>

#include "collectives/collectives.hpp"

namespace capscale::collectives::ring {

double phase(double S, int64_t n, double B, double alpha) {
  if (n <= 1) return 0;
  return double(n - 1) / double(n) * S / B + double(n - 1) * alpha;
}

double phase_factor(int64_t n) { return n <= 1 ? 0 : double(n - 1) / double(n); }

namespace {
// Inter-domain latency: NCCL switches to trees at scale; take the cheaper of ring and tree steps.
double inter_steps(int64_t n) { return std::min(double(n - 1), 2.0 * std::ceil(std::log2(double(n)))); }
}  // namespace

double time_s(int phases, double S, const GroupSpan& span, const LinkParams& link) {
  if (span.domains == 1) return phases * phase(S, span.size, link.intra_Bps, link.intra_alpha_s);
  const double flat = phases * (double(span.size - 1) / double(span.size) * S / link.inter_Bps +
                                double(span.size - 1) * link.inter_alpha_s);
  const int64_t L = span.per_domain, D = span.domains;
  const double intra = phases * phase(S, L, link.intra_Bps, link.intra_alpha_s);
  const double inter = phases * (double(D - 1) / double(D) * (S / double(L)) / link.inter_Bps +
                                 inter_steps(D) * link.inter_alpha_s);
  return std::min(flat, intra + inter);
}

}  // namespace capscale::collectives::ring
