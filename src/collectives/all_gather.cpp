// All-gather: one ring phase, (n−1)/n·S/B + (n−1)α (nccl-tests: busbw factor (n−1)/n).
#include "collectives/collectives.hpp"

namespace capscale::collectives {

const Collective kAllGather{
    CollKind::kAllGather, "all_gather", "S = the gathered total; each rank contributes S/n",
    [](int64_t n) { return ring::phase_factor(n); },
    [](double S, const GroupSpan& span, const LinkParams& link, const Routing&) { return ring::time_s(1, S, span, link); }};

}  // namespace capscale::collectives
