// Search for the best parallel configuration that fits memory, ranked by tokens/s per chip, and,
// when nothing fits, why (each plan shape counted under the first rule it breaks) and the nearest
// chip counts and batch sizes at which something does. Knobs the user fixed are not varied.
// Pruning that cannot lose the optimum:
// - for fixed (tp, cp, pp, vpp, mbs) less recompute is never slower, so recompute levels are tried
//   none → selective → full and the first that fits is kept;
// - ZeRO-1 moves the same bytes as a plain all-reduce and only saves memory: always on when dp > 1;
// - branch and bound: every candidate gets a lower bound on its step time (its matmul FLOPs per chip
//   at the chip's best sustained GEMM rate, times the pipeline fill 1 + (pp−1)/(vpp·m) of an ideal
//   1F1B schedule, Narayanan et al. SC21 §2.2); candidates are timed in order of that bound and
//   the search stops once the bound exceeds the k-th best step found (the global batch is fixed,
//   so a shorter step is more tokens/s per chip).
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>

#include "common/error.hpp"
#include "predict/predictor.hpp"

namespace capscale::predict {
namespace {

struct Candidate {
  config::ParallelConfig p;
  double lower_bound_s = 0;
};

double lower_bound_s(const config::ModelConfig& m, const config::ChipProfile& chip, const config::ParallelConfig& p,
                     double gemm_efficiency) {
  // Matmul FLOPs per token (6 per weight; full recompute re-runs the layers' forward: +2).
  const double h = double(m.hidden_size);
  double weights = 0;  // per token, over the layers (MoE: the active experts)
  for (int64_t l = 0; l < m.num_layers; ++l) weights += model::matmul_weights_per_layer(m, l);
  const double per_weight = p.recompute == config::Recompute::kFull ? 8.0 : 6.0;
  const double flops_per_token = weights * per_weight + 6.0 * double(m.vocab_size) * h;
  const double tokens = double(p.global_batch_size) * double(p.seq_length);
  const double rate = chip.peak_flops(p.precision) * gemm_efficiency * chip.efficiency.sustained;
  const double compute = flops_per_token * tokens / double(p.world()) / rate;
  const double fill = 1.0 + double(p.pp - 1) / double(p.vpp * p.num_microbatches());
  return compute * fill;
}

bool is_fixed(const SearchOptions& o, const char* name) {
  return std::find(o.fixed.begin(), o.fixed.end(), name) != o.fixed.end();
}

/// The knob values the search tries: the fixed one, or its list.
std::vector<int64_t> choices(const SearchOptions& o, const char* name, int64_t given, std::vector<int64_t> free) {
  return is_fixed(o, name) ? std::vector<int64_t>{given} : free;
}

/// The shapes (tp, cp, pp, vpp, micro-batch, ep) the search enumerates, whatever the chip count:
/// the same list for search() and for nearest_fitting(), so a suggested size is one search accepts.
/// MoE models also try ep over the powers of two up to the expert count (etp stays as given, 1 by
/// default, as the published MoE recipes run) with one sequence per micro-batch (their size).
template <typename Fn>
void for_each_shape(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o, int64_t seq,
                    Fn&& fn) {
  const int64_t max_tp = o.max_tp ? o.max_tp : std::min<int64_t>(chip.nvlink_domain, 8 * chip.chips_per_package);
  std::vector<int64_t> tps;
  for (int64_t tp = 1; tp <= max_tp; tp *= 2) tps.push_back(tp);
  std::vector<int64_t> cps = {1};
  if (seq >= 8192) cps.push_back(2);  // context parallelism pays only for long sequences
  if (seq >= 32768) cps.push_back(4), cps.push_back(8);
  std::vector<int64_t> pps;
  for (int64_t pp = 1; pp <= std::min<int64_t>(128, model.num_layers); ++pp) pps.push_back(pp);
  const config::ParallelConfig& g = o.given;
  std::vector<int64_t> eps = {1};
  for (int64_t ep = 2; model.is_moe() && ep <= model.num_moe_experts; ep *= 2) eps.push_back(ep);
  const std::vector<int64_t> mbss = model.is_moe() ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 2, 4};
  for (int64_t tp : choices(o, "tp", g.tp, tps))
    for (int64_t cp : choices(o, "cp", g.cp, cps))
      for (int64_t pp : choices(o, "pp", g.pp, pps))
        for (int64_t vpp : choices(o, "vpp", g.vpp, {1, 2, 4})) {
          if (vpp > 1 && pp == 1 && !is_fixed(o, "vpp")) continue;  // no interleaving without a pipeline
          // More model chunks than layers is no shape at all, unless the user asked for it.
          if (pp * vpp > model.num_layers && !is_fixed(o, "pp") && !is_fixed(o, "vpp")) continue;
          for (int64_t mbs : choices(o, "micro_batch_size", g.micro_batch_size, mbss))
            for (int64_t ep : choices(o, "ep", g.ep, eps)) fn(tp, cp, pp, vpp, mbs, ep);
        }
}

/// The candidate of one shape on `gpus` chips with global batch `gbs`, before recompute is chosen,
/// or the reason it is ruled out (a pointer into Rejections).
struct Shaped {
  config::ParallelConfig p;
  int64_t Rejections::*rejected = nullptr;
};

Shaped shape(const config::ModelConfig& m, const SearchOptions& o, int64_t seq, int64_t gpus, int64_t gbs, int64_t tp,
             int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
  Shaped s;
  // From the user's config, so that a field the search does not choose (a knob added later
  // included) keeps the value given; then the shape and the workload settings.
  s.p = o.given;
  config::ParallelConfig& p = s.p;
  p.tp = tp, p.cp = cp, p.pp = pp, p.vpp = vpp, p.micro_batch_size = mbs, p.ep = ep;
  p.global_batch_size = gbs, p.seq_length = seq;
  p.precision = o.precision;
  p.flash_attention = o.flash_attention;
  p.grad_reduce_in_bf16 = o.grad_reduce_in_bf16;
  p.overlap_grad_reduce = o.overlap_grad_reduce;
  // Sequence parallelism and TP overlap cost nothing and save memory and time when tp > 1;
  // ZeRO-1 moves the same bytes as a plain all-reduce and only saves memory (see above).
  p.sequence_parallel = is_fixed(o, "sequence_parallel") ? o.given.sequence_parallel : tp > 1;
  p.tp_comm_overlap = is_fixed(o, "tp_comm_overlap") ? o.given.tp_comm_overlap : p.sequence_parallel;
  p.zero = is_fixed(o, "zero") ? o.given.zero : 1;
  const auto mp = tp * cp * pp;
  if (m.num_attention_heads % tp || m.num_query_groups % tp || m.ffn_hidden_size % tp) s.rejected = &Rejections::heads;
  else if (pp * vpp > m.num_layers) s.rejected = &Rejections::layers;
  else if (gpus % mp) s.rejected = &Rejections::chips;
  else if (gbs % (mbs * (gpus / mp)) || (vpp > 1 && (gbs / (mbs * (gpus / mp))) % pp)) s.rejected = &Rejections::batch;
  else if ((cp > 1 && seq % (2 * cp)) || (p.sequence_parallel && (seq / cp) % tp)) s.rejected = &Rejections::sequence;
  else if (!config::violations(p, m, gpus).empty()) s.rejected = &Rejections::other;
  return s;
}

/// Recompute levels to try, least first (less recompute is never slower for a fixed shape).
std::vector<config::Recompute> recompute_levels(const SearchOptions& o) {
  if (is_fixed(o, "recompute")) return {o.given.recompute};
  return {config::Recompute::kNone, config::Recompute::kSelective, config::Recompute::kFull};
}

/// Whether some recompute level of this valid shape fits (the search's memory rule).
bool fits_some_level(const config::ModelConfig& m, const config::ChipProfile& chip, const SearchOptions& o,
                     config::ParallelConfig p, int64_t gpus) {
  p = config::resolve(p, m, gpus, "search");
  for (auto rc : recompute_levels(o)) {
    p.recompute = rc;
    if (fits_memory(m, chip, p)) return true;
  }
  return false;
}

int64_t sequence_of(const config::ModelConfig& model, const SearchOptions& o) {
  return o.seq_length ? o.seq_length : model.seq_length;
}

}  // namespace

SearchResult search(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o) {
  check_chip_count(o.gpus, "gpus");
  SearchResult result;
  const int64_t seq = sequence_of(model, o);
  // The best GEMM fraction any candidate can get: the profile's, or with a calibration of this
  // architecture the best calibrated one (keeps the bound a bound).
  double best_gemm = chip.efficiency.gemm;
  const bool calibrated = o.calibration && !o.calibration->arch.empty() && o.calibration->arch == chip.arch;
  if (calibrated) best_gemm = std::max(best_gemm, o.calibration->max_gemm_efficiency());
  PredictOptions popt;
  popt.calibration = o.calibration;
  std::vector<Candidate> cands;
  const bool mp_fixed = is_fixed(o, "tp") || is_fixed(o, "cp") || is_fixed(o, "pp");
  for_each_shape(model, chip, o, seq, [&](int64_t tp, int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
    // More model-parallel ranks than chips is no candidate (not counted as one) unless asked for.
    if (tp * cp * pp > o.gpus && !mp_fixed) return;
    ++result.shapes;
    Shaped s = shape(model, o, seq, o.gpus, o.global_batch_size, tp, cp, pp, vpp, mbs, ep);
    if (s.rejected) {
      ++(result.rejected.*s.rejected);
      return;
    }
    config::ParallelConfig p = config::resolve(s.p, model, o.gpus, "search");
    for (auto rc : recompute_levels(o)) {
      p.recompute = rc;
      ++result.candidates;
      if (!fits_memory(model, chip, p)) continue;
      ++result.fitting;
      cands.push_back({p, lower_bound_s(model, chip, p, best_gemm)});
      return;
    }
    ++result.rejected.memory;
  });
  std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.lower_bound_s < b.lower_bound_s; });
  std::vector<SummaryRow> rows;  // kept sorted, best (shortest step) first, at most o.top
  const size_t top = size_t(std::max(1, o.top));
  for (const auto& c : cands) {
    if (rows.size() == top && c.lower_bound_s >= rows.back().step_time_s) break;  // nothing left can enter
    ++result.evaluated;
    SummaryRow r = predict(model, chip, c.p, popt).row;
    auto pos = std::upper_bound(rows.begin(), rows.end(), r,
                                [](const SummaryRow& a, const SummaryRow& b) { return a.step_time_s < b.step_time_s; });
    rows.insert(pos, r);
    if (rows.size() > top) rows.pop_back();
  }
  result.ranked = std::move(rows);
  return result;
}

Nearest nearest_fitting(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o) {
  // Only sizes that would improve on the nearest found so far are checked, so this stays a few
  // memory checks per shape. Chip counts: tp·cp·pp × every dp that divides the batch (as the search
  // needs); batch sizes: the multiples of micro-batch × dp (× pp when interleaved) next to the asked one.
  Nearest n;
  const int64_t seq = sequence_of(model, o), gbs = o.global_batch_size, gpus = o.gpus;
  auto admits = [&](int64_t g, int64_t b, int64_t tp, int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
    if (g < 1 || g > kMaxChips || b < 1 || b > (int64_t(1) << 40)) return false;
    const Shaped s = shape(model, o, seq, g, b, tp, cp, pp, vpp, mbs, ep);
    return !s.rejected && fits_some_level(model, chip, o, s.p, g);
  };
  auto closer = [](int64_t have, int64_t want, int64_t x) { return have == 0 || std::llabs(x - want) < std::llabs(have - want); };
  // dp must divide the step's micro-batches, gbs / mbs: their divisors, once per micro-batch size
  // (at most ~2^20 trial divisions for the largest batch the flags accept).
  std::map<int64_t, std::vector<int64_t>> divisors;
  auto divisors_of = [&](int64_t x) -> const std::vector<int64_t>& {
    auto [it, added] = divisors.try_emplace(x);
    if (added)
      for (int64_t d = 1; d * d <= x; ++d)
        if (x % d == 0) it->second.push_back(d), it->second.push_back(x / d);
    return it->second;
  };
  for_each_shape(model, chip, o, seq, [&](int64_t tp, int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
    const int64_t mp = tp * cp * pp;
    if (gbs % mbs == 0) {
      for (int64_t dp : divisors_of(gbs / mbs)) {
        if (dp > kMaxChips / mp) continue;
        const int64_t g = mp * dp;
        if (g == gpus) continue;
        int64_t& slot = g < gpus ? n.gpus_below : n.gpus_above;
        if (closer(slot, gpus, g) && admits(g, gbs, tp, cp, pp, vpp, mbs, ep)) slot = g;
      }
    }
    if (gpus % mp == 0) {
      const int64_t q = mbs * (gpus / mp) * (vpp > 1 ? pp : 1);
      const int64_t lo = gbs / q * q, hi = lo == gbs ? gbs + q : lo + q;
      const int64_t below = lo == gbs ? gbs - q : lo;
      if (below > 0 && closer(n.batch_below, gbs, below) && admits(gpus, below, tp, cp, pp, vpp, mbs, ep)) n.batch_below = below;
      if (closer(n.batch_above, gbs, hi) && admits(gpus, hi, tp, cp, pp, vpp, mbs, ep)) n.batch_above = hi;
    }
  });
  return n;
}

}  // namespace capscale::predict
