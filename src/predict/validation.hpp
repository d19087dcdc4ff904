// Predictor validation against published training runs (configs/validation/published_runs.yaml,
// from shared/reference/published_runs.md). Each prediction is converted into the source's own
// metric and FLOP convention before it is compared.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "predict/predictor.hpp"

namespace capscale::predict {

struct PublishedRun {
  std::string id, source, chip, metric, flop_convention, notes;
  config::ModelConfig model;
  config::ParallelConfig parallel;
  int64_t gpus = 0;
  double value = 0;
  bool in_budget = true;
  /// Used to fit its architecture's efficiency.sustained (rows whose whole configuration is
  /// published); the other in-budget rows are holdouts.
  bool fit = false;
};

/// The chip a published run ran on: its `chip` field, a chip name with optional caps as on the
/// command line (`a100@nic=50`: BLOOM's 50 Gb/s per GPU on Jean Zay).
config::ChipProfile run_chip(const PublishedRun& run);

/// The field table of a published run (the rows of configs/validation/*.yaml; the parallel fields
/// are flat keys there and a "parallel" object in JSON). `model` is read separately: a name or an
/// inline model map.
const config::FieldTable<PublishedRun>& published_run_fields();

struct ValidationRow {
  PublishedRun run;
  SummaryRow predicted;
  double predicted_value = 0;  ///< in the run's metric and convention
  double error = 0;            ///< (predicted − published) / published
};

struct ErrorStats {
  int64_t rows = 0;
  double median_abs = 0, max_abs = 0;
};

struct ValidationSummary {
  std::vector<ValidationRow> rows;
  double median_abs_error = 0, max_abs_error = 0;  ///< over in_budget rows
  int64_t in_budget = 0;
  ErrorStats holdout;  ///< in_budget rows not used by the fit
};

/// The constants fitted per chip architecture (`capscale validate --fit`), replacing the chip
/// YAMLs' values: efficiency.sustained and node_jitter (σ, the node-to-node speed spread that makes
/// every synchronous step wait for the slowest node; predict::apply_node_jitter). A chip takes its
/// ChipProfile::sustained_arch()'s entry (a B200 Hopper's).
struct FittedConstants {
  double sustained = 0;
  double node_jitter = 0;
  /// ChipProfile::host_step_gap_s: one value for every chip, fitted on every in-budget row (the
  /// fit rows' multi-second steps cannot resolve a gap of tens of milliseconds; the short steps of
  /// the holdout sources can), with sustained and σ refitted on the fit rows at each trial gap
  /// (fit_constants).
  double host_step_gap_s = 0;
};
using ConstantsByArch = std::map<std::string, FittedConstants>;

std::vector<PublishedRun> load_published_runs(const std::string& path);
ValidationSummary validate(const std::vector<PublishedRun>& runs, const ConstantsByArch& constants = {});

struct ConstantsFit {
  std::string arch;
  int64_t rows = 0;
  FittedConstants value;             ///< the fitted constants
  FittedConstants shipped;           ///< the values in the chip YAML of the first fit row
  double rms_log_error_shipped = 0;  ///< over the fit rows, with the shipped values
  double rms_log_error_fit = 0;      ///< with the fitted values
};

/// The largest host_step_gap_s the fit considers: 0.5 s, several times any per-step remainder the
/// public rows show (docs/validation.md, "The host's gap at each step").
inline constexpr double kMaxFittedHostStepGapS = 0.5;
/// The largest σ the fit considers: 0.1, five times the spread NVIDIA's own weak-scaling series
/// resolve (docs/validation.md, "Scale effects").
inline constexpr double kMaxFittedNodeJitter = 0.1;
/// The range the fit searches efficiency.sustained in (the grid every fit row is predicted on):
/// below 0.7 the chip's kernel fractions would be a third too high, above 1 too low.
inline constexpr double kFittedSustainedMin = 0.7, kFittedSustainedMax = 1.0;

/// True when a fitted constant sits on an edge of its search range that is not a physical limit
/// (efficiency.sustained at either end, σ at kMaxFittedNodeJitter, the host gap at
/// kMaxFittedHostStepGapS; σ = 0 and a gap of 0 are real lower bounds):
/// least squares would have gone further, so the rows want a value the fit does not consider. That
/// is a finding about the model to report, not a constant to ship.
bool at_fit_bound(const FittedConstants& c);

/// Least squares on log(predicted / published): efficiency.sustained per architecture and one
/// node_jitter σ shared by all (a straggler spread belongs to a cluster and its software, not to a
/// chip) over every `fit` row at a given host_step_gap_s, and the one gap that minimises the error
/// over every in-budget row with sustained and σ so refitted (a bilevel fit: the fit rows decide
/// sustained and σ, every in-budget row the gap). Each row is
/// predicted once per point of a sustained grid without jitter or gap; the wait is linear in σ
/// (node_jitter_wait) and the gap adds to the step, so every (sustained, σ, gap) is evaluated from
/// those predictions alone. One entry per architecture (each with the shared σ and gap).
std::vector<ConstantsFit> fit_constants(const std::vector<PublishedRun>& runs);

/// The rms of log(predicted / published) over the `fit` rows of `arch` with its constants set to
/// `value` (predicted directly, not from the fit's grid).
double fit_rms_log_error(const std::vector<PublishedRun>& runs, const std::string& arch, FittedConstants value);
/// The fit's objective: the same over every `fit` row, each architecture with its entry of
/// `constants` (an architecture missing from it keeps its chip YAML's).
double fit_rms_log_error(const std::vector<PublishedRun>& runs, const ConstantsByArch& constants);
/// The host gap's objective at each of `gaps`: efficiency.sustained and σ refitted on the `fit`
/// rows at that gap (as fit_constants does), then the rms of log(predicted / published) over every
/// in-budget row with those constants (predicted directly). fit_constants' gap minimises it.
std::vector<double> gap_rms_log_errors(const std::vector<PublishedRun>& runs, const std::vector<double>& gaps);

/// One held-out source of a leave-one-source-out cross-validation.
struct SourceFold {
  std::string source;         ///< the PublishedRun::source left out
  ErrorStats errors;          ///< its in-budget rows, predicted with constants fitted without them
  ConstantsByArch constants;  ///< the constants per architecture fitted on the other sources
  /// Architectures of this source with no fit row left in the other sources; their constant is the
  /// one pooled fit over all the other sources' fit rows (how an architecture nobody has published
  /// a run for is predicted: with the constant the others share).
  std::vector<std::string> pooled_archs;
};

struct CrossValidation {
  /// Every row predicted out of fold (with its source's fold constants), in file order.
  std::vector<ValidationRow> rows;
  std::vector<SourceFold> folds;  ///< one per source with an in-budget row, in first-seen order
  ErrorStats overall;             ///< over the in-budget rows, out of fold
  ValidationSummary in_sample;    ///< the shipped constants (validate(runs))
};

/// Leave-one-source-out cross-validation: for each source, refit the fitted constants
/// (efficiency.sustained and node_jitter per architecture, as fit_constants) on the `fit` rows of every other
/// source and predict that source's rows. The number to improve is `overall`; in-sample fits hide
/// a missing mechanism behind a constant, a held-out source does not.
CrossValidation cross_validate(const std::vector<PublishedRun>& runs);

/// A weak-scaling series of published runs: one source, model, chip and plan (all but dp), the same
/// micro-batches per pipeline and so the same work per GPU, at two or more node counts. Its
/// throughput per GPU would not change with size but for scale effects; what the largest run loses
/// against the smallest beyond what capscale predicts measures them (mechanism 2 of issue 13).
struct ScalingSeries {
  std::string source, model, chip;
  std::vector<std::string> ids;  ///< by node count, smallest first
  int64_t nodes_first = 0, nodes_last = 0;
  double published_change = 0;  ///< throughput per GPU of the largest run over the smallest's, minus 1
  double predicted_change = 0;  ///< the same predicted with the shipped constants (the chip's node_jitter)
  /// The node_jitter σ that makes the predicted change the published one: the wait
  /// apply_node_jitter adds is linear in σ, so σ solves one linear equation in the two runs' steps.
  /// 0 when capscale already predicts at least the published loss; −1 when no σ in the cap's range
  /// (0, 0.5] does (node counts too close for the wait to tell them apart, or a predicted step that
  /// shrinks faster than the wait grows).
  double sigma = 0;
  /// How much σ 1 % of throughput per GPU is worth in this series (1 % over the difference between
  /// the two runs' relative jitter waits per unit σ): the measurement's resolution. Series whose
  /// node counts are close (P6, P7) give large values, and their σ means little. Infinite if the
  /// larger run's wait grows no faster.
  double sigma_per_percent = 0;
};
/// Every weak-scaling series in `runs` (in-budget rows only), in the order of their first row.
std::vector<ScalingSeries> scaling_series(const std::vector<PublishedRun>& runs);
/// The spread of efficiency.sustained under cross-validation, per architecture
/// (configs/validation/sustained_ranges.yaml): the shipped value and every fold's refit of it.
/// Architectures nobody has fit (Ascend, Blackwell) take `unfitted`: the whole spread across
/// architectures, since their constant is borrowed from another one.
struct SustainedRanges {
  std::map<std::string, std::pair<double, double>> by_arch;
  std::pair<double, double> unfitted{0, 0};
  std::pair<double, double> of(const std::string& arch) const {
    const auto it = by_arch.find(arch);
    return it == by_arch.end() ? unfitted : it->second;
  }
};
SustainedRanges load_sustained_ranges(const std::string& path);
/// The ranges that cross_validate's folds give (what the shipped file must hold, to 3 decimals).
SustainedRanges sustained_ranges(const CrossValidation& cv, const std::vector<PublishedRun>& runs);

/// A ratio of per-chip throughputs (a / b) and its band: both plans re-predicted with each chip's
/// efficiency.sustained at the ends of its CV range and its least-certain kernel fractions at the
/// ends of their ranges (ChipProfile::efficiency_ranges). A constant both chips share (one
/// architecture's sustained; an equal fraction with an equal range on one architecture) moves both
/// together. The headline ratios (H20/H200, H800/H100, 910C/H100) are read with it.
struct RatioBand {
  double ratio = 0, low = 0, high = 0;
};
RatioBand ratio_band(const config::ModelConfig& model, const config::ChipProfile& a, const config::ParallelConfig& pa,
                     const config::ChipProfile& b, const config::ParallelConfig& pb, const SustainedRanges& ranges,
                     const PredictOptions& options = {});

}  // namespace capscale::predict
