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
// NCCL's LL protocol (src/graph/tuning.cc, hwLat and the protocol bandwidths): per hop it costs
// 0.6 µs on NVLink against Simple's 3.4, 2.7 µs through a NIC in a ring and 5.0 in a tree against
// Simple's 14, and it moves data at a third of Simple's bus bandwidth inside a node and a quarter
// across nodes (8-byte lines carrying 4 bytes of data and a flag each). NCCL takes the cheaper
// protocol per message, so a few-kilobyte collective (an FP8 amax reduction, a cross-entropy
// max) runs as LL. The hop latencies are taken as these fractions of the chip's own.
constexpr double kLlNvlinkHop = 0.6 / 3.4, kLlRingNicHop = 2.7 / 14.0, kLlTreeNicHop = 5.0 / 14.0;
constexpr double kLlRateInside = 1.0 / 3.0, kLlRateAcross = 1.0 / 4.0;

/// One protocol's hop latencies, as multiples of the chip's (Simple) ones.
struct Hops {
  double nvlink = 1, ring_nic = 1, tree_nic = 1;
};
}  // namespace

double time_s(int phases, double S, const GroupSpan& span, const LinkParams& link, Latency latency) {
  const Hops simple{}, ll{kLlNvlinkHop, kLlRingNicHop, kLlTreeNicHop};
  if (span.domains == 1) {
    const double at_simple = phase(S, span.size, link.intra_Bps, link.intra_alpha_s);
    const double at_ll = phase(S, span.size, link.intra_Bps * kLlRateInside, link.intra_alpha_s * ll.nvlink);
    return phases * std::min(at_simple, at_ll);
  }
  // NCCL's ring across domains (src/graph/tuning.cc: busBw = nChannels · speed, one speed per
  // channel, the slowest link of that channel's ring): inside a domain a channel's ring chains the
  // L members over NVLink and leaves through one NIC, and the channels leave through different
  // NICs, so of the (n−1)/n·S each rank forwards per phase (L−1)/L rides its NVLink and 1/L its
  // own NIC. The legs are pipelined chunk by chunk, not run one after the other: the slower sets
  // the time. Bus bandwidth min(B_nvlink·L/(L−1), L·B_nic): a DGX A100 (8 × 200 Gb/s HDR) measures
  // 192 GB/s all-reduce busbw across nodes (AddyLaddy, github.com/NVIDIA/nccl issue #812), the
  // node's eight NICs, not one. One member per domain (L = 1): a flat ring over the NICs.
  const double n = double(span.size), L = double(span.per_domain), D = double(span.domains);
  const double wire = (n - 1.0) / n * S;
  const double transfer = std::max(wire * (L - 1.0) / L / link.intra_Bps, wire / L / link.inter_Bps);
  // Latency (NCCL src/graph/tuning.cc, ring: nsteps = n−1 per phase, nInterSteps = D−1 of them
  // through a NIC): the ring's n−D NVLink steps and D−1 NIC steps. NCCL has no tree for
  // reduce-scatter and all-gather (tuning.cc skips every non-ring algorithm for them but NVLS and
  // CollNet), so with 2 ranks on each of 168 nodes a reduce-scatter pays 167 NIC steps. Two
  // exceptions take the cheaper of the ring and a logarithmic schedule: an all-reduce, which NCCL
  // may run as a tree (L−1 NVLink steps and ~log₂D NIC steps per phase), and a group with one rank
  // per domain, where NCCL ≥ 2.23 runs reduce-scatter and all-gather as PAT (Parallel Aggregated
  // Trees, one GPU per node only: ⌈log₂D⌉ NIC steps).
  auto alpha = [&](const Hops& h) {
    const double a_intra = link.intra_alpha_s * h.nvlink;
    double a = (n - D) * a_intra + (D - 1.0) * link.inter_alpha_s * h.ring_nic;
    if (latency == Latency::kRingOrTree) {
      const double tree_steps = std::min(D - 1.0, 2.0 * std::ceil(std::log2(D)));
      a = std::min(a, (L - 1.0) * a_intra + tree_steps * link.inter_alpha_s * h.tree_nic);
    } else if (span.per_domain == 1) {
      a = std::min(a, std::ceil(std::log2(D)) * link.inter_alpha_s * h.ring_nic);
    }
    return a;
  };
  return phases * std::min(transfer + alpha(simple), transfer / kLlRateAcross + alpha(ll));
}

}  // namespace capscale::collectives::ring
