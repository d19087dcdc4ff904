// Search for the best parallel configuration that fits memory, ranked by tokens/s per chip.
// Pruning that cannot lose the optimum: for fixed (tp, cp, pp, vpp, mbs) less recompute is never
// slower, so recompute levels are tried none → selective → full and the first that fits is kept;
// ZeRO-1 moves the same bytes as a plain all-reduce and only saves memory, so it is always on when dp > 1.
#include <algorithm>

#include "common/error.hpp"
#include "predict/predictor.hpp"

namespace capscale::predict {

SearchResult search(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o) {
  SearchResult result;
  const int64_t seq = o.seq_length ? o.seq_length : model.seq_length;
  const int64_t max_tp = o.max_tp ? o.max_tp : std::min<int64_t>(chip.nvlink_domain, 8 * chip.chips_per_package);
  std::vector<SummaryRow> rows;
  for (int64_t tp = 1; tp <= max_tp && tp <= o.gpus; tp *= 2) {
    for (int64_t cp : {1, 2, 4, 8}) {
      if (cp > 1 && seq < 8192) continue;  // context parallelism pays only for long sequences
      for (int64_t pp = 1; pp <= 128 && tp * cp * pp <= o.gpus; ++pp) {
        if (o.gpus % (tp * cp * pp) != 0) continue;
        for (int64_t vpp : {1, 2, 3, 4, 6, 8}) {
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
            if (!config::violations(p, model, o.gpus).empty()) continue;
            p = config::resolve(p, model, o.gpus, "search");
            for (auto rc : {config::Recompute::kNone, config::Recompute::kSelective, config::Recompute::kFull}) {
              p.recompute = rc;
              ++result.candidates;
              if (!fits_memory(model, chip, p)) continue;
              ++result.fitting;
              rows.push_back(predict(model, chip, p).row);
              break;
            }
          }
        }
      }
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const SummaryRow& a, const SummaryRow& b) { return a.tokens_per_s_per_chip > b.tokens_per_s_per_chip; });
  if (int64_t(rows.size()) > o.top) rows.resize(o.top);
  result.ranked = std::move(rows);
  return result;
}

}  // namespace capscale::predict
