// All-reduce: a reduce-scatter then an all-gather around the ring, 2(n−1)/n·S/B + 2(n−1)α
// (nccl-tests doc/PERFORMANCE.md: busbw factor 2(n−1)/n). Inside one NVSwitch domain with NVLink
// SHARP (NCCL ≥ 2.17 on Hopper/Blackwell HGX), the cheaper of the ring and NVLS, as NCCL picks.
#include <algorithm>

#include "collectives/collectives.hpp"

namespace capscale::collectives {

namespace all_reduce {
double nvls_time_s(double S, int64_t n, const LinkParams& link) {
  // NVLS: the switch reduces. Each rank pulls its 1/n shard reduced out of the switch
  // (multimem.ld_reduce: the switch reads that shard from all n ranks, so a rank's NVLink sends
  // n·S/n = S and receives S/n), then stores it back as a multicast (sends S/n, receives S from
  // the n shards): (n+1)/n·S each way, against the ring's 2(n−1)/n·S. nccl-tests keeps busbw =
  // algbw·2(n−1)/n for NVLS too (AddyLaddy, github.com/NVIDIA/nccl-tests issue #366), so its
  // busbw exceeds the link's. Achieved rate nvls_Bps = the ring's achieved NVLink rate × the
  // chip's efficiency.nvls (0.83 on Hopper, configs/chips/h100.yaml): with it this model gives an
  // 8-GPU H100 busbw of 476 GB/s (measured ~480, algbw ~275: sjeaugey, nccl-tests issue #212;
  // 5–8 GPUs 420/440/460/480 with algbw 258–273: NVIDIA/nccl issue #1455), an 8-GPU H800 212
  // (measured 215: NVIDIA/nccl issue #1374). At n ≤ 4 the ring is as fast or faster (#1455
  // measures the same ~370 GB/s for both), and the min below keeps it. Latency: one reduce and
  // one multicast step.
  if (n <= 1) return 0;
  return double(n + 1) / double(n) * S / link.nvls_Bps + 2.0 * link.intra_alpha_s;
}
}  // namespace all_reduce

const Collective kAllReduce{
    CollKind::kAllReduce, "all_reduce", "S = the buffer every rank holds and receives reduced",
    [](int64_t n) { return 2 * ring::phase_factor(n); },
    [](double S, const GroupSpan& span, const LinkParams& link, const Routing&) {
      const double ring = ring::time_s(2, S, span, link, ring::Latency::kRingOrTree);
      // NVLS inside one domain only; a group across domains takes NCCL's ring (NVLS-Tree,
      // NVLS inside and a tree across, is not modelled).
      if (span.domains > 1 || link.nvls_Bps <= 0) return ring;
      return std::min(ring, all_reduce::nvls_time_s(S, span.size, link));
    }};

}  // namespace capscale::collectives
