// Search for the best parallel configuration that fits memory, ranked by tokens/s per chip.
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

}  // namespace

SearchResult search(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o) {
  check_chip_count(o.gpus, "gpus");
  SearchResult result;
  const int64_t seq = o.seq_length ? o.seq_length : model.seq_length;
  const int64_t max_tp = o.max_tp ? o.max_tp : std::min<int64_t>(chip.nvlink_domain, 8 * chip.chips_per_package);
  std::vector<int64_t> cps = {1};
  if (seq >= 8192) cps.push_back(2);     // context parallelism pays only for long sequences
  if (seq >= 32768) cps.push_back(4), cps.push_back(8);
  // The best GEMM fraction any candidate can get: the profile's, or with a calibration of this
  // architecture the best calibrated one (keeps the bound a bound).
  double best_gemm = chip.efficiency.gemm;
  const bool calibrated = o.calibration && !o.calibration->arch.empty() && o.calibration->arch == chip.arch;
  if (calibrated) best_gemm = std::max(best_gemm, o.calibration->max_gemm_efficiency());
  PredictOptions popt;
  popt.calibration = o.calibration;
  std::vector<Candidate> cands;
  for (int64_t tp = 1; tp <= max_tp && tp <= o.gpus; tp *= 2) {
    for (int64_t cp : cps) {
      for (int64_t pp = 1; pp <= 128 && tp * cp * pp <= o.gpus; ++pp) {
        if (o.gpus % (tp * cp * pp) != 0) continue;
        for (int64_t vpp : {1, 2, 4}) {
          if (vpp > 1 && pp == 1) break;
          for (int64_t mbs : {1, 2, 4}) {
            config::ParallelConfig p;
            p.tp = tp, p.cp = cp, p.pp = pp, p.vpp = vpp;
            p.micro_batch_size = mbs;
            p.global_batch_size = o.global_batch_size;
            p.seq_length = seq;
            p.precision = o.precision;
            p.sequence_parallel = tp > 1;
            p.tp_comm_overlap = tp > 1;
            p.zero = 1;
            p.flash_attention = o.flash_attention;
            p.grad_reduce_in_bf16 = o.grad_reduce_in_bf16;
            if (!config::violations(p, model, o.gpus).empty()) continue;
            p = config::resolve(p, model, o.gpus, "search");
            for (auto rc : {config::Recompute::kNone, config::Recompute::kSelective, config::Recompute::kFull}) {
              p.recompute = rc;
              ++result.candidates;
              if (!fits_memory(model, chip, p)) continue;
              ++result.fitting;
              cands.push_back({p, lower_bound_s(model, chip, p, best_gemm)});
              break;
            }
          }
        }
      }
    }
  }
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

}  // namespace capscale::predict
