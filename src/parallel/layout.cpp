// Rank arithmetic; see layout.hpp. rank = tp + TP·(cp + CP·(dp + DP·pp)).
#include "parallel/layout.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace capscale::parallel {

std::string to_string(Group g) {
  switch (g) {
    case Group::kTp: return "tp";
    case Group::kCp: return "cp";
    case Group::kDp: return "dp";
    case Group::kPp: return "pp";
    case Group::kDpCp: return "dp_cp";
    case Group::kEmbedding: return "embd";
    case Group::kEp: return "ep";
    case Group::kEtp: return "etp";
    case Group::kEdp: return "edp";
    case Group::kTpCpDp: return "stage";
  }
  return "?";
}

Layout::Layout(int64_t tp, int64_t cp, int64_t dp, int64_t pp, int64_t ep, int64_t etp)
    : tp_(tp), cp_(cp), dp_(dp), pp_(pp), ep_(ep), etp_(etp), edp_(1) {
  if (tp < 1 || cp < 1 || dp < 1 || pp < 1 || ep < 1 || etp < 1) {
    throw InputError("layout", "", "all of tp, cp, dp, pp, ep, etp must be >= 1");
  }
  if ((tp * cp * dp) % (ep * etp) != 0) {
    throw InputError("layout", "ep", "x etp (" + std::to_string(ep * etp) + ") must divide tp x cp x dp (" +
                                         std::to_string(tp * cp * dp) + ")");
  }
  edp_ = tp * cp * dp / (ep * etp);
}

ExpertCoords Layout::expert_coords(int64_t rank) const {
  const int64_t stage = tp_ * cp_ * dp_;
  int64_t i = rank % stage;
  ExpertCoords c;
  c.pp = rank / stage;
  c.etp = i % etp_;
  i /= etp_;
  c.ep = i % ep_;
  c.edp = i / ep_;
  return c;
}

int64_t Layout::rank_of(const ExpertCoords& c) const {
  return c.etp + etp_ * (c.ep + ep_ * c.edp) + tp_ * cp_ * dp_ * c.pp;
}

int64_t Layout::size(Group g) const {
  switch (g) {
    case Group::kTp: return tp_;
    case Group::kCp: return cp_;
    case Group::kDp: return dp_;
    case Group::kPp: return pp_;
    case Group::kDpCp: return dp_ * cp_;
    case Group::kEmbedding: return pp_ > 1 ? 2 : 1;
    case Group::kEp: return ep_;
    case Group::kEtp: return etp_;
    case Group::kEdp: return edp_;
    case Group::kTpCpDp: return tp_ * cp_ * dp_;
  }
  return 1;
}

Coords Layout::coords(int64_t rank) const {
  Coords c;
  c.tp = rank % tp_;
  rank /= tp_;
  c.cp = rank % cp_;
  rank /= cp_;
  c.dp = rank % dp_;
  c.pp = rank / dp_;
  return c;
}

int64_t Layout::rank_of(const Coords& c) const { return c.tp + tp_ * (c.cp + cp_ * (c.dp + dp_ * c.pp)); }

std::vector<int64_t> Layout::members(Group g, int64_t rank) const {
  const Coords me = coords(rank);
  std::vector<int64_t> out;
  Coords c = me;
  ExpertCoords e = expert_coords(rank);
  switch (g) {
    case Group::kEp:
      for (e.ep = 0; e.ep < ep_; ++e.ep) out.push_back(rank_of(e));
      break;
    case Group::kEtp:
      for (e.etp = 0; e.etp < etp_; ++e.etp) out.push_back(rank_of(e));
      break;
    case Group::kEdp:
      for (e.edp = 0; e.edp < edp_; ++e.edp) out.push_back(rank_of(e));
      break;
    case Group::kTp:
      for (c.tp = 0; c.tp < tp_; ++c.tp) out.push_back(rank_of(c));
      break;
    case Group::kCp:
      for (c.cp = 0; c.cp < cp_; ++c.cp) out.push_back(rank_of(c));
      break;
    case Group::kDp:
      for (c.dp = 0; c.dp < dp_; ++c.dp) out.push_back(rank_of(c));
      break;
    case Group::kPp:
      for (c.pp = 0; c.pp < pp_; ++c.pp) out.push_back(rank_of(c));
      break;
    case Group::kDpCp:  // Megatron's data-parallel group with context parallelism: cp varies fastest
      for (c.dp = 0; c.dp < dp_; ++c.dp)
        for (c.cp = 0; c.cp < cp_; ++c.cp) out.push_back(rank_of(c));
      break;
    case Group::kTpCpDp:  // the whole stage, in rank order (tp fastest)
      for (c.dp = 0; c.dp < dp_; ++c.dp)
        for (c.cp = 0; c.cp < cp_; ++c.cp)
          for (c.tp = 0; c.tp < tp_; ++c.tp) out.push_back(rank_of(c));
      break;
    case Group::kEmbedding:  // first and last pipeline stage share the tied embedding
      c.pp = 0;
      out.push_back(rank_of(c));
      if (pp_ > 1) {
        c.pp = pp_ - 1;
        out.push_back(rank_of(c));
      }
      break;
  }
  return out;
}

std::vector<std::vector<int64_t>> Layout::all_groups(Group g) const {
  std::vector<std::vector<int64_t>> groups;
  std::vector<int64_t> seen;
  for (int64_t r = 0; r < world(); ++r) {
    auto m = members(g, r);
    if (std::find(seen.begin(), seen.end(), m.front()) != seen.end()) continue;
    if (g == Group::kEmbedding && coords(r).pp != 0) continue;
    seen.push_back(m.front());
    groups.push_back(std::move(m));
  }
  return groups;
}

int64_t Layout::group_id(Group g, int64_t rank) const { return members(g, rank).front(); }

int64_t Layout::group_rank(Group g, int64_t rank) const {
  const auto m = members(g, rank);
  return std::find(m.begin(), m.end(), rank) - m.begin();
}

}  // namespace capscale::parallel
