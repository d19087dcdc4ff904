// What a finished sweep means: the best plan per (model, target, gpus) point, the cap cliff, and the
// equivalence question "how many chips of each target match reference_gpus × reference_target at
// equal time-to-train". Pure C++ over summary rows (no HDF5, no MPI): `capscale sweep` stores the
// result under /analysis, `capscale report` prints it and launch/plot.py only draws it, so the
// three can never disagree.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "predict/predictor.hpp"

namespace capscale::analysis {

/// A target on the equivalence question's reference side (the sweep YAML's `reference:` map).
struct Reference {
  std::string target;
  int64_t gpus = 0;
};

/// One sweep row as the analysis sees it: the row, its status ("ok" or why not) and its index in the
/// expanded grid (rows arrive in completion order under MPI; grid order comes from `point`).
struct SweepRow {
  const predict::SummaryRow* row = nullptr;
  std::string status;
  int64_t point = 0;
};

/// The best plan at one (model, target, gpus) grid point: the ok row with the highest tokens/s per
/// chip. `ok` = 0 when no row of the point is ok (nothing fits, invalid, no plan); its numbers are 0.
/// One row per grid point, in grid order (model, then target, then gpus ascending).
struct ScalingRow {
  std::string model, target;
  int64_t gpus = 0, ok = 0;
  int64_t point = -1;  ///< the /summary `point` of the chosen row (-1 when !ok)
  double tokens_per_s = 0, tokens_per_s_per_chip = 0, step_time_s = 0, mfu = 0;
  // The plan behind the number (so a cap sweep shows where tensor parallelism stops paying).
  int64_t tp = 0, pp = 0, dp = 0, cp = 0, vpp = 0, micro_batch_size = 0, global_batch_size = 0;
  int64_t ep = 1;  ///< expert parallelism (1 for dense models; files before schema 3 have none)
  std::string recompute;
};

/// Cap cliff at one (model, gpus): the first target in sweep order whose best tokens/s per chip
/// falls below kCliffFraction of the first target's. Only looked for with at least
/// kCliffMinTargets targets (two points are a comparison, not a sweep).
struct CliffRow {
  std::string model;
  int64_t gpus = 0;
  std::string baseline_target, target;
  double fraction = 0;  ///< target's tokens/s per chip ÷ baseline's
};
constexpr double kCliffFraction = 0.9;
constexpr size_t kCliffMinTargets = 3;

/// How many chips of `target` deliver the reference cluster's whole-cluster tokens/s.
struct EquivalenceRow {
  std::string model, target, reference_target;
  int64_t reference_gpus = 0;
  double reference_tokens_per_s = 0;
  /// Smallest grid chip count whose tokens/s reaches the reference (0: none in the grid does).
  int64_t grid_gpus = 0;
  /// The estimate: log-log interpolation between the grid points around the crossing (see
  /// interpolate_log_log); the smallest grid point when it already reaches ("at most"); the largest
  /// grid point with a valid plan when none reaches ("more than").
  double chips = 0;
  double ratio = 0;  ///< chips ÷ reference_gpus
  std::string how;   ///< "exact", "interp", "at most" or "more than"
};

struct SweepAnalysis {
  std::vector<std::string> models, targets;  ///< in sweep (grid) order
  std::vector<int64_t> gpus;                 ///< ascending
  std::vector<ScalingRow> scaling;           ///< models × targets × gpus, in that order
  std::vector<CliffRow> cliffs;
  std::vector<EquivalenceRow> equivalence;   ///< empty without a reference
  std::optional<Reference> reference;
  int64_t rows = 0, not_ok = 0;              ///< /summary rows, and those whose status is not ok

  /// The scaling row of a grid point, or nullptr when the point is not in the grid.
  const ScalingRow* at(const std::string& model, const std::string& target, int64_t gpus) const;
};

/// Chip count g at which a throughput curve through (g0, t0) and (g1, t1) reaches `need`, assuming
/// a power law t = a·g^b between the two points (straight in log-log): exact for a power law, and
/// the natural reading of a log-scaled scaling plot. Requires 0 < g0 < g1, 0 < t0 < need ≤ t1.
double interpolate_log_log(double g0, double t0, double g1, double t1, double need);

/// Zips a /summary table's columns into SweepRows (pointing into `rows`, which must outlive them).
std::vector<SweepRow> sweep_rows(const std::vector<predict::SummaryRow>& rows, const std::vector<std::string>& statuses,
                                 const std::vector<int64_t>& points);

/// The whole analysis of a sweep's rows.
SweepAnalysis analyze(const std::vector<SweepRow>& rows, const std::optional<Reference>& reference);

/// Rebuilds the grid axes (models, targets in first-seen order; gpus ascending) from stored
/// scaling rows, e.g. after reading /analysis back from a file.
void fill_axes(SweepAnalysis& a);

}  // namespace capscale::analysis
