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

double time_s(int phases, double S, const GroupSpan& span, const LinkParams& link, Latency latency) {
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
  // Latency (NCCL src/graph/tuning.cc, ring: nsteps = n−1 per phase, nInterSteps = D−1 of them
  // through a NIC): the ring's n−D NVLink steps and D−1 NIC steps. NCCL has no tree for
  // reduce-scatter and all-gather (tuning.cc skips every non-ring algorithm for them but NVLS and
  // CollNet), so with 2 ranks on each of 168 nodes a reduce-scatter pays 167 NIC steps. Two
  // exceptions take the cheaper of the ring and a logarithmic schedule: an all-reduce, which NCCL
  // may run as a tree (L−1 NVLink steps and ~log₂D NIC steps per phase), and a group with one rank
  // per domain, where NCCL ≥ 2.23 runs reduce-scatter and all-gather as PAT (Parallel Aggregated
  // Trees, one GPU per node only: ⌈log₂D⌉ NIC steps).
  const double D = double(span.domains);
  double alpha = (n - D) * link.intra_alpha_s + (D - 1.0) * link.inter_alpha_s;
  if (latency == Latency::kRingOrTree) {
    const double tree_steps = std::min(D - 1.0, 2.0 * std::ceil(std::log2(D)));
    alpha = std::min(alpha, double(span.per_domain - 1) * link.intra_alpha_s + tree_steps * link.inter_alpha_s);
  } else if (span.per_domain == 1) {
    alpha = std::min(alpha, std::ceil(std::log2(D)) * link.inter_alpha_s);
  }
  return phases * (std::max(nvlink_s, nic_s) + alpha);
}

}  // namespace capscale::collectives::ring
