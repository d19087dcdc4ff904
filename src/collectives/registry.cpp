// The registry's index and the group-span arithmetic; see collectives.hpp.
#include <algorithm>

#include "collectives/collectives.hpp"
#include "common/error.hpp"

namespace capscale::collectives {

const std::array<const Collective*, kNumKinds>& all() {
  static const std::array<const Collective*, kNumKinds> entries = {&kAllReduce, &kReduceScatter, &kAllGather, &kAllToAll};
  return entries;
}

const Collective& get(CollKind kind) {
  const int i = index(kind);
  if (i < 0 || i >= kNumKinds) throw RuntimeError("collective of kind none has no registry entry (a plan bug)");
  return *all()[i];
}

double bus_factor(CollKind kind, int64_t n) { return get(kind).bus_factor(n); }

double time_s(CollKind kind, int64_t bytes, const GroupSpan& span, const LinkParams& link, const Routing& routing) {
  if (span.size <= 1 || bytes <= 0) return 0;
  return get(kind).time_s(double(bytes), span, link, routing);
}

GroupSpan group_span(const parallel::Layout& layout, parallel::Group g, int64_t domain) {
  // Closed form, O(1) in the group size (dp can be 10^9). In rank order tp-cp-dp-pp (layout.hpp)
  // rank 0's group of every kind is an arithmetic progression 0, s, 2s, …, (n−1)s:
  //   tp: s = 1; cp: s = tp; dp: s = tp·cp; pp: s = tp·cp·dp; dp_cp (cp fastest): s = tp, n = cp·dp;
  //   tp_cp_dp (a whole stage): s = 1, n = tp·cp·dp;
  //   embedding: {0, tp·cp·dp·(pp−1)}; the expert groups: see below.
  // Member i sits in domain ⌊i·s/D⌋. With s ≥ D consecutive members never share a domain, so the
  // group spans n domains; with s < D consecutive domain indices differ by 0 or 1, so every
  // domain from 0 to ⌊(n−1)·s/D⌋ is hit. tests/unit/test_cost_model.cpp holds this to the
  // enumeration of layout.members().
  using parallel::Group;
  const int64_t tp = layout.size(Group::kTp), cp = layout.size(Group::kCp);
  const int64_t dp = layout.size(Group::kDp), pp = layout.size(Group::kPp);
  const int64_t n = layout.size(g);
  int64_t stride = 1;
  switch (g) {
    case Group::kTp: stride = 1; break;
    case Group::kCp: stride = tp; break;
    case Group::kDp: stride = tp * cp; break;
    case Group::kPp: stride = tp * cp * dp; break;
    case Group::kDpCp: stride = tp; break;
    case Group::kTpCpDp: stride = 1; break;
    case Group::kEmbedding: stride = tp * cp * dp * std::max<int64_t>(1, pp - 1); break;
    // Expert groups (etp-ep-edp inside a stage): etp s = 1, ep s = etp, edp s = etp·ep.
    case Group::kEtp: stride = 1; break;
    case Group::kEp: stride = layout.size(Group::kEtp); break;
    case Group::kEdp: stride = layout.size(Group::kEtp) * layout.size(Group::kEp); break;
  }
  const int64_t D = std::max<int64_t>(1, domain);
  GroupSpan s;
  s.size = n;
  s.domains = (n <= 1) ? 1 : stride >= D ? n : (n - 1) * stride / D + 1;
  s.per_domain = std::max<int64_t>(1, s.size / s.domains);
  return s;
}

}  // namespace capscale::collectives
