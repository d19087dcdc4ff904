// The analysis of a sweep; see sweep_analysis.hpp.
#include "analysis/sweep_analysis.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>

#include "common/error.hpp"
#include "config/parallel_config.hpp"

namespace capscale::analysis {
namespace {

template <class T>
void add_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}

using PointKey = std::tuple<std::string, std::string, int64_t>;

/// Grid axes in grid order (rows sorted by point first) and the best ok row per point.
std::map<PointKey, const SweepRow*> best_rows(const std::vector<SweepRow>& rows, SweepAnalysis& a) {
  std::vector<const SweepRow*> by_point;
  for (const auto& r : rows) by_point.push_back(&r);
  std::stable_sort(by_point.begin(), by_point.end(), [](const SweepRow* x, const SweepRow* y) { return x->point < y->point; });
  std::map<PointKey, const SweepRow*> best;
  for (const SweepRow* r : by_point) {
    const auto& s = *r->row;
    add_unique(a.models, s.model), add_unique(a.targets, s.target), add_unique(a.gpus, s.gpus);
    if (r->status != "ok") {
      ++a.not_ok;
      continue;
    }
    const SweepRow*& slot = best[{s.model, s.target, s.gpus}];
    if (!slot || s.tokens_per_s_per_chip > slot->row->tokens_per_s_per_chip) slot = r;
  }
  std::sort(a.gpus.begin(), a.gpus.end());
  return best;
}

ScalingRow scaling_row(const std::string& m, const std::string& t, int64_t g, const SweepRow* best) {
  ScalingRow s{m, t, g};
  if (!best) return s;
  const auto& r = *best->row;
  const auto& p = r.parallel;
  s.ok = 1, s.point = best->point;
  s.tokens_per_s = r.tokens_per_s, s.tokens_per_s_per_chip = r.tokens_per_s_per_chip;
  s.step_time_s = r.step_time_s, s.mfu = r.mfu;
  s.tp = p.tp, s.pp = p.pp, s.dp = p.dp, s.cp = p.cp, s.vpp = p.vpp, s.ep = p.ep;
  s.micro_batch_size = p.micro_batch_size, s.global_batch_size = p.global_batch_size;
  s.recompute = config::to_string(p.recompute);
  return s;
}

std::vector<CliffRow> find_cliffs(const SweepAnalysis& a) {
  std::vector<CliffRow> out;
  if (a.targets.size() < kCliffMinTargets) return out;
  const std::string& first = a.targets.front();
  for (const auto& m : a.models) {
    for (int64_t g : a.gpus) {
      const ScalingRow* base = a.at(m, first, g);
      if (!base || !base->ok) continue;
      for (const auto& t : a.targets) {
        const ScalingRow* r = a.at(m, t, g);
        if (r && r->ok && r->tokens_per_s_per_chip < kCliffFraction * base->tokens_per_s_per_chip) {
          out.push_back({m, g, first, t, r->tokens_per_s_per_chip / base->tokens_per_s_per_chip});
          break;
        }
      }
    }
  }
  return out;
}

/// Walks one target's curve (ascending gpus, valid points only) to the first point that reaches
/// `need` whole-cluster tokens/s.
EquivalenceRow chips_to_match(const SweepAnalysis& a, const std::string& m, const std::string& t, const Reference& ref,
                              double need) {
  EquivalenceRow e{m, t, ref.target, ref.gpus, need};
  const ScalingRow* prev = nullptr;
  for (int64_t g : a.gpus) {
    const ScalingRow* r = a.at(m, t, g);
    if (!r || !r->ok) continue;
    if (r->tokens_per_s >= need) {
      e.grid_gpus = g;
      if (r->tokens_per_s == need) e.chips = double(g), e.how = "exact";
      else if (!prev) e.chips = double(g), e.how = "at most";
      else e.chips = interpolate_log_log(double(prev->gpus), prev->tokens_per_s, double(g), r->tokens_per_s, need), e.how = "interp";
      break;
    }
    prev = r;
  }
  if (e.grid_gpus == 0) e.chips = prev ? double(prev->gpus) : 0.0, e.how = "more than";
  e.ratio = e.chips / double(ref.gpus);
  return e;
}

std::vector<EquivalenceRow> equivalence(const SweepAnalysis& a, const Reference& ref) {
  std::vector<EquivalenceRow> out;
  for (const auto& m : a.models) {
    const ScalingRow* r = a.at(m, ref.target, ref.gpus);
    if (!r || !r->ok) continue;  // the reference itself has no valid plan: no question to answer
    for (const auto& t : a.targets) out.push_back(chips_to_match(a, m, t, ref, r->tokens_per_s));
  }
  return out;
}

}  // namespace

const ScalingRow* SweepAnalysis::at(const std::string& model, const std::string& target, int64_t g) const {
  // scaling holds models × targets × gpus in order: index arithmetic, no search.
  const auto mi = std::find(models.begin(), models.end(), model) - models.begin();
  const auto ti = std::find(targets.begin(), targets.end(), target) - targets.begin();
  const auto gi = std::find(gpus.begin(), gpus.end(), g) - gpus.begin();
  if (mi == std::ssize(models) || ti == std::ssize(targets) || gi == std::ssize(gpus)) return nullptr;
  const size_t i = (size_t(mi) * targets.size() + size_t(ti)) * gpus.size() + size_t(gi);
  return i < scaling.size() ? &scaling[i] : nullptr;
}

double interpolate_log_log(double g0, double t0, double g1, double t1, double need) {
  if (!(g0 > 0 && g1 > g0 && t0 > 0 && t0 < need && need <= t1)) {
    throw RuntimeError("interpolate_log_log: needs 0 < g0 < g1 and 0 < t0 < need <= t1 (a bug: please report)");
  }
  // t = a·g^b through both points ⇒ ln g = ln g0 + (ln need − ln t0)/(ln t1 − ln t0) · (ln g1 − ln g0).
  const double f = (std::log(need) - std::log(t0)) / (std::log(t1) - std::log(t0));
  return std::exp(std::log(g0) + f * (std::log(g1) - std::log(g0)));
}

std::vector<SweepRow> sweep_rows(const std::vector<predict::SummaryRow>& rows, const std::vector<std::string>& statuses,
                                 const std::vector<int64_t>& points) {
  if (statuses.size() != rows.size() || points.size() != rows.size()) throw RuntimeError("sweep_rows: columns differ in length");
  std::vector<SweepRow> out;
  for (size_t i = 0; i < rows.size(); ++i) out.push_back({&rows[i], statuses[i], points[i]});
  return out;
}

SweepAnalysis analyze(const std::vector<SweepRow>& rows, const std::optional<Reference>& reference) {
  SweepAnalysis a;
  a.reference = reference;
  a.rows = int64_t(rows.size());
  const auto best = best_rows(rows, a);
  for (const auto& m : a.models)
    for (const auto& t : a.targets)
      for (int64_t g : a.gpus) {
        const auto it = best.find({m, t, g});
        a.scaling.push_back(scaling_row(m, t, g, it == best.end() ? nullptr : it->second));
      }
  a.cliffs = find_cliffs(a);
  if (reference) a.equivalence = equivalence(a, *reference);
  return a;
}

void fill_axes(SweepAnalysis& a) {
  a.models.clear(), a.targets.clear(), a.gpus.clear();
  for (const auto& s : a.scaling) add_unique(a.models, s.model), add_unique(a.targets, s.target), add_unique(a.gpus, s.gpus);
  std::sort(a.gpus.begin(), a.gpus.end());
  // at() relies on grid order; a table in any other order is refused rather than misread.
  bool grid = a.scaling.size() == a.models.size() * a.targets.size() * a.gpus.size();
  for (size_t i = 0; grid && i < a.scaling.size(); ++i) {
    const auto& s = a.scaling[i];
    grid = a.at(s.model, s.target, s.gpus) == &s;
  }
  if (!grid) throw RuntimeError("analysis scaling table is not a models x targets x gpus grid in grid order");
}

}  // namespace capscale::analysis
