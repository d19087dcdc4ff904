// All-to-all: every rank sends S/n to each of the n ranks of its group (itself included, a local
// copy). nccl-tests' alltoall: busbw factor (n−1)/n. α–β over a group spanning D scale-up domains
// of L ranks each: the S·(L−1)/n bound for the domain's peers moves over NVLink while the
// S·(n−L)/n bound for other domains moves over the chip's NIC, concurrently, so the slower of the
// two sets the time; each peer costs one latency on its link (NCCL issues the n−1 transfers as
// grouped send/recv). The flex dispatcher (DeepEP, HybridEP; DeepSeek-V3 §3.2.2) sends a token
// once to every remote domain holding one of its experts and forwards it there over NVLink: only
// that share of the cross-domain copies crosses the NIC, and the receiving domain's NVLink carries
// the forwarded copies as well.
#include <algorithm>
#include <cmath>

#include "collectives/collectives.hpp"

namespace capscale::collectives {

namespace all_to_all {
double time_s(double S, const GroupSpan& span, const LinkParams& link, double cross_share) {
  const double n = double(span.size), L = double(std::min(span.per_domain, span.size));
  const double intra_bytes = S * (L - 1.0) / n;
  if (span.domains <= 1) return intra_bytes / link.intra_Bps + (L - 1.0) * link.intra_alpha_s;
  const double remote = S * (n - L) / n;
  const double forwarded = cross_share < 1.0 ? remote : 0.0;
  const double intra = (intra_bytes + forwarded) / link.intra_Bps + (L - 1.0) * link.intra_alpha_s;
  const double inter = remote * cross_share / link.inter_Bps + double(span.domains - 1) * link.inter_alpha_s;
  return std::max(intra, inter);
}
double flex_cross_share(const Routing& r, int64_t domains) {
  // k copies routed uniformly over D domains reach (D−1)·(1 − (1 − 1/D)^k) remote domains on
  // average, against k·(D−1)/D remote copies; node-limited routing (at most M domains, DeepSeek-V3
  // §2.1.2, a group per node) caps the remote domains near M·(D−1)/D, a share of M/k.
  if (r.topk <= 0 || domains <= 1) return 1.0;
  const double k = double(r.topk), D = double(domains);
  double share = D * (1.0 - std::pow(1.0 - 1.0 / D, k)) / k;
  if (r.node_limit > 0) share = std::min(share, double(r.node_limit) / k);
  return std::min(1.0, share);
}
}  // namespace all_to_all

const Collective kAllToAll{
    CollKind::kAllToAll, "alltoall", "S = one rank's send buffer; S/n goes to each rank of the group",
    [](int64_t n) { return ring::phase_factor(n); },
    [](double S, const GroupSpan& span, const LinkParams& link, const Routing& routing) {
      return all_to_all::time_s(S, span, link, all_to_all::flex_cross_share(routing, span.domains));
    }};

}  // namespace capscale::collectives
