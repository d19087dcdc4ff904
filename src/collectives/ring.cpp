// Ring α–β building blocks shared by the ring-based collectives; see collectives.hpp.
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
  // NCCL's ring across domains (src/graph/tuning.cc: busBw = nChannels · speed, one speed per
  // channel, the slowest link of that channel's ring): inside a domain a channel's ring chains the
  // L members over NVLink and leaves through one NIC, and the channels leave through different
  // NICs, so of the (n−1)/n·S each rank forwards per phase (L−1)/L rides its NVLink and 1/L its
  // own NIC. The legs are pipelined chunk by chunk, not run one after the other: the slower sets
  // the time. Bus bandwidth min(B_nvlink·L/(L−1), L·B_nic): a DGX A100 (8 × 200 Gb/s HDR) measures
  // 192 GB/s all-reduce busbw across nodes (AddyLaddy, github.com/NVIDIA/nccl issue #812), the
  // node's eight NICs, not one. One member per domain (L = 1): a flat ring over the NICs.
  const double n = double(span.size), L = double(span.per_domain);
  const double wire = (n - 1.0) / n * S;
  const double nvlink_s = wire * (L - 1.0) / L / link.intra_Bps;
  const double nic_s = wire / L / link.inter_Bps;
  // Latency: L−1 NVLink steps inside the domain and NCCL's tree steps across domains.
  const double latency = double(span.per_domain - 1) * link.intra_alpha_s + inter_steps(span.domains) * link.inter_alpha_s;
  return phases * (std::max(nvlink_s, nic_s) + latency);
}

}  // namespace capscale::collectives::ring
