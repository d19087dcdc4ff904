// All-reduce: a reduce-scatter then an all-gather around the ring, 2(n−1)/n·S/B + 2(n−1)α
// (nccl-tests doc/PERFORMANCE.md: busbw factor 2(n−1)/n).
#include "collectives/collectives.hpp"

namespace capscale::collectives {

const Collective kAllReduce{
    CollKind::kAllReduce, "all_reduce", "S = the buffer every rank holds and receives reduced",
    [](int64_t n) { return 2 * ring::phase_factor(n); },
    [](double S, const GroupSpan& span, const LinkParams& link, const Routing&) { return ring::time_s(2, S, span, link); }};

}  // namespace capscale::collectives
