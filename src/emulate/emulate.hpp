// Turning one real run into target numbers. Measured per-op times from the host are aggregated per
// stage, then each op gets a duration on each target: the host's measurement dilated to the target
// when both share an architecture (dilate()), else the modelled duration (source `roofline`, or
// `calibrated` with a calibration file). The same timeline engine then gives each target's step.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "plan/plan.hpp"
#include "predict/cost_model.hpp"
#include "predict/predictor.hpp"

namespace capscale::emulate {

/// Every rank's measured op times for every timed step: ranks × steps × ops(of the rank's stage).
struct Measurements {
  std::vector<int64_t> rank_stage;                       ///< pipeline stage of each rank
  std::vector<std::vector<std::vector<double>>> op_s;    ///< [rank][step][op]
  std::vector<std::vector<double>> wall_s;               ///< [rank][step]
};

/// One rank's timed steps as the flat array the ranks gather: every step's op times (step-major),
/// then the steps' wall times.
std::vector<double> pack_rank(const std::vector<std::vector<double>>& op_s, const std::vector<double>& wall_s);

/// Rebuilds Measurements from the gathered packs: rank r's pack starts at offsets[r] and covers
/// `steps` steps of the ops of its stage, rank_stage[r]. Throws RuntimeError when a pack's length
/// does not match its stage's op count (ranks that ran different plans).
Measurements unpack_gathered(const plan::Plan& plan, const std::vector<int64_t>& rank_stage, const std::vector<double>& all,
                             const std::vector<int>& offsets, const std::vector<int>& counts, int steps);

/// What a collective's host duration stands for.
enum class CollectiveTime {
  /// Its own cost, without waiting: the minimum over the stage's ranks (the last rank to arrive
  /// waits for nobody). What the targets are emulated from: their imbalance is the engine's.
  kOwn,
  /// The mean over the stage's ranks, waiting included. The timeline engine follows one
  /// representative rank per stage, arriving at the ranks' mean time; a collective ends when the
  /// last member arrives, at max(t) + c = mean(t) + mean(max(t) − t + c). So this reproduces the
  /// host's own schedule exactly for a synchronous group: used for the engine-vs-wall check.
  kReplay,
};

/// Host durations per stage and op: compute ops take the median over steps of the mean over the
/// stage's ranks; collectives the median over steps of the minimum (kOwn) or mean (kReplay) over
/// ranks; receives the minimum over all of the stage's receives (one whose data had already
/// arrived: the transfer alone), since the engine models pipeline waiting itself.
std::vector<std::vector<double>> aggregate(const plan::Plan& plan, const Measurements& m,
                                           CollectiveTime collectives = CollectiveTime::kOwn);

/// Median over steps of the slowest rank's wall time: the measured step time.
double measured_step_s(const Measurements& m);

struct TargetResult {
  predict::SummaryRow row;
  std::vector<std::vector<double>> durations;  ///< per stage, per op
  std::vector<std::vector<std::string>> sources;
};

/// One measured op moved from the host to a target of its architecture, from the op's modelled
/// durations on both (t_h^m, t_t^m). The time the host spent beyond its model is a time no cap
/// changes, as the cap model treats a capped chip (config::apply_caps: a compute cap shrinks only
/// F/P, so e' = 1/(1 + r(1/e − 1)); a calibrated GEMM or bus bandwidth keeps its measured
/// peak-independent part): t_t = t_t^m + (t_h − t_h^m). An H20 dilated from an H100 that ran 10 %
/// over its model is its own model plus that 10 % of the H100's time, not 10 % more of its own
/// (six times longer) compute. A host faster than its model (the model's fraction too low) moves by
/// the ratio, t_t^m · t_h / t_h^m, which meets the first form at t_h = t_h^m and stays positive.
/// Ops the model gives no time (t_h^m = 0) take the target's model.
double dilate(double host_s, double host_model_s, double target_model_s);

/// Durations of the plan on `target`, from the host's measured durations where dilation is valid
/// (same architecture, and the host's profile has a peak for the run's precision; a device with no
/// profile has none, so its targets are always modelled).
/// Otherwise modelled: with `calibration` of the target's architecture (e.g. a Hopper calibration
/// for a CPU host emulating H100/H20/H800), GEMMs and intra-domain collectives take the measured
/// efficiencies (op and row source `calibrated`), the rest the roofline.
/// `dilatable` (default: every op) names the ops whose host time may be dilated; the others are
/// modelled on every target (exec::Executor::dilatable). The row's source stays `dilated` when every
/// dilatable op was.
TargetResult emulate_target(const plan::Plan& plan, const std::vector<std::vector<double>>& host_s,
                            const config::ChipProfile& host, const config::ChipProfile& target,
                            const predict::Calibration* calibration = nullptr,
                            const std::function<bool(const plan::Op&)>& dilatable = {});

}  // namespace capscale::emulate
