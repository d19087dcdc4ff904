// Reduce-scatter: one ring phase, (n−1)/n·S/B + (n−1)α (nccl-tests: busbw factor (n−1)/n).
#include "collectives/collectives.hpp"

namespace capscale::collectives {

const Collective kReduceScatter{
    CollKind::kReduceScatter, "reduce_scatter", "S = the whole input; each rank keeps S/n reduced",
    [](int64_t n) { return ring::phase_factor(n); },
    [](double S, const GroupSpan& span, const LinkParams& link, const Routing&) { return ring::time_s(1, S, span, link); }};

}  // namespace capscale::collectives
