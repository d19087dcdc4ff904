// One prediction: model + target chip + chip count + parallel config → the summary row that
// `predict --json`, `run --emulate` and sweeps share (DESIGN.md, CLI contract).
#pragma once
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "model/accounting.hpp"
#include "plan/plan.hpp"
#include "predict/calibration.hpp"
#include "predict/cost_model.hpp"
#include "timeline/timeline.hpp"

namespace capscale::predict {

// The timeline engine's results, as predictions report them.
using timeline::Breakdown;
using timeline::TimelineOptions;
using timeline::TimelineResult;
using timeline::simulate;

/// The --json row (DESIGN.md): one per target / sweep point.
struct SummaryRow {
  std::string model;
  double model_params_b = 0;         ///< total parameters, 1e9 (MTP modules excluded)
  double model_active_params_b = 0;  ///< parameters active per token, 1e9 (= total for dense models)
  std::string target;  ///< spec as given, e.g. "h200@nvlink=400"
  int64_t gpus = 0;
  config::ParallelConfig parallel;
  double step_time_s = 0;
  double tokens_per_s = 0;
  double tokens_per_s_per_chip = 0;
  double tflops_per_chip = 0;  ///< model FLOPs (no recompute) per second per chip, in TFLOP/s
  double mfu = 0;              ///< model FLOPs / (chips × dense peak) (PaLM App. B)
  double hfu = 0;              ///< executed FLOPs incl. recompute / (chips × dense peak)
  double memory_gb_per_chip = 0;
  double memory_capacity_gb = 0;  ///< usable HBM of the target (after reserved)
  bool fits = false;
  Breakdown breakdown;
  std::string source;  ///< measured | dilated | calibrated | roofline
};

/// The field table of SummaryRow (config/record.hpp): the --json row, the /summary columns and the
/// `#` table are generated from it; the parallel config is nested ("parallel" in JSON, flat columns).
const config::FieldTable<SummaryRow>& summary_fields();

/// A row's identity (model, target = the chip's name, source) and memory verdict on `chip`;
/// fill_throughput adds the timing. Every producer of rows (predict, emulate, run) starts here.
SummaryRow identity_row(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                        const std::string& source);

/// FLOPs executed per step by all ranks together (GEMMs and attention, recompute included).
double executed_flops(const plan::Plan& plan);

/// Fills the throughput fields of `row` from a simulated step. MFU and HFU are NaN when `chip` has no
/// peak for the precision (a host GPU without a profile, cli/host_profile.hpp).
void fill_throughput(SummaryRow& row, const plan::Plan& plan, const config::ChipProfile& chip,
                     double step_time_s, const Breakdown& breakdown);

/// The same from the model, parallel config and the step's executed FLOPs (no plan at hand).
void fill_throughput(SummaryRow& row, const config::ModelConfig& model, const config::ParallelConfig& p,
                     const config::ChipProfile& chip, double step_time_s, const Breakdown& breakdown, double executed);

/// Modelled durations of every op of the plan on `chip`.
std::vector<std::vector<double>> model_durations(const plan::Plan& plan, const CostModel& cost);
/// The same into `out`, reusing its capacity.
void model_durations(const plan::Plan& plan, const CostModel& cost, std::vector<std::vector<double>>& out);

/// Largest chip count predict and search accept: 2^40 (≈ 1.1·10^12). Up to it the predictor's
/// int64 products (tp·cp·dp·pp, micro-batch·dp, group strides) stay far from overflow; the cost of
/// one prediction does not depend on the count (O(pp × micro-batches × layers)).
constexpr int64_t kMaxChips = int64_t(1) << 40;

/// Throws InputError naming `flag` unless 1 ≤ gpus ≤ kMaxChips.
void check_chip_count(int64_t gpus, const std::string& flag);

struct PredictOptions {
  bool keep_timings = false;
  /// Fold long micro-batch loops: simulate 2·pp and 3·pp micro-batches and extrapolate (exact in
  /// the pipeline's steady state; see predict()). Off when timings are kept or for tests.
  bool fold_microbatches = true;
  /// Build compact plans (plan::BuildOptions::compact: copied layers kept as ranges, their
  /// timings shifted from their source's); off for tests, which hold both forms equal.
  bool compact_plans = true;
  /// Measured GEMM efficiencies / bus bandwidths (`capscale calibrate`); used when its arch equals
  /// the chip's, and then the row's source is "calibrated". Must outlive the call.
  const Calibration* calibration = nullptr;
};

/// Expected maximum of n independent standard normal variables (0 for n ≤ 1): E[max] =
/// ∫ x · n φ(x) Φ(x)^(n−1) dx, integrated numerically (1/√π for n = 2, 3/(2√π) for n = 3).
double expected_max_of_normals(int64_t n);

/// Nodes of a job on `chip`: world ÷ the scale-up domain, rounded up (a node = one NVLink domain).
int64_t node_count(const config::ChipProfile& chip, int64_t world);

/// Scale effect of node-to-node speed spread (ChipProfile::node_jitter = σ, MegaScale §4 and the
/// Llama 3 paper §3.3.4 describe such stragglers): if each node's speed is off by a persistent
/// factor 1 + σ·X, X ~ N(0, 1), every synchronising collective waits for the slowest of the N
/// nodes, which is σ·E[max of N] slower. So the step's compute-bound time (compute, other and the
/// pipeline bubble, which is other stages' compute) grows by that factor; the average rank spends
/// the difference waiting in collectives (exposed communication). No change for σ = 0 or N = 1.
void apply_node_jitter(TimelineResult& timeline, const config::ChipProfile& chip, int64_t world);

/// The wait apply_node_jitter adds at jitter σ over `nodes` nodes to a step whose breakdown (before
/// the wait) is `b`: (compute + other + bubble)·σ·E[max of nodes]; 0 on one node.
double node_jitter_wait(const Breakdown& b, double sigma, int64_t nodes);

/// The host's step-boundary gap (ChipProfile::host_step_gap_s): in eager PyTorch the optimizer
/// reads the gradient norm back to the host (Megatron's clip_grad_norm: a device synchronisation),
/// so the GPU's queue is empty while the host finishes the step (scheduler, logging, the loss
/// reduction) and fetches and starts the next one; its first kernel arrives that much later. Added
/// once per step as host time (`other`), after the straggler wait (the gap is idle time, which node
/// speed does not stretch). None when the plan replays whole iterations as a CUDA graph
/// (ParallelConfig::full_iteration_cuda_graph).
void apply_host_step_gap(TimelineResult& timeline, const config::ChipProfile& chip, const config::ParallelConfig& p);
/// The gap apply_host_step_gap adds to a step of plan `p` on `chip` (0 under a full-iteration CUDA graph).
double host_step_gap(const config::ChipProfile& chip, const config::ParallelConfig& p);

/// The step of `plan` on `chip` from its op durations, as every prediction times it: collectives
/// beside the compute stream take the chip's SM share (ChipProfile::comm_contention), then the
/// slowest node paces the step (apply_node_jitter), then the host's step-boundary gap
/// (apply_host_step_gap). `predict` and `run --emulate` both use it.
TimelineResult simulate_on(const plan::Plan& plan, const std::vector<std::vector<double>>& durations,
                           const config::ChipProfile& chip, TimelineOptions options = {});

struct Prediction {
  SummaryRow row;
  TimelineResult timeline;
};

/// Predicts one configuration. The parallel config must already be resolved (dp set). A plan that
/// does not fit is still timed (the row says fits=false) so users can see what it would cost.
Prediction predict(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                   const PredictOptions& options = {});

/// Plan settings `chip` cannot time, as "field: problem" (empty when it can time them all):
/// FlashAttention-1 (flash_attention_v1) on a chip with no efficiency.attention_fa1. predict()
/// throws InputError for them; a sweep records them as the point's status, as config::violations.
std::vector<std::string> target_violations(const config::ParallelConfig& p, const config::ChipProfile& chip);

/// Memory check only (cheap): bytes per chip and whether they fit the chip.
bool fits_memory(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                 double* need_gb = nullptr);

struct SearchOptions {
  int64_t gpus = 0;
  int64_t global_batch_size = 0;
  int64_t seq_length = 0;
  config::Precision precision = config::Precision::kBf16;
  bool flash_attention = true;       ///< as ParallelConfig, for every candidate
  bool grad_reduce_in_bf16 = false;  ///< as ParallelConfig, for every candidate
  int64_t max_tp = 0;  ///< 0 → the chip's NVLink domain (capped at 8·chips_per_package)
  int top = 5;         ///< how many ranked candidates to return
  const Calibration* calibration = nullptr;  ///< as PredictOptions::calibration
  bool overlap_grad_reduce = true;           ///< as ParallelConfig, for every candidate
  /// Branch and bound (search.cpp, top): stop timing candidates once their lower bound passes the
  /// top-th best step. false times every fitting candidate (tests hold the bound to that).
  bool branch_and_bound = true;
  /// Plan knobs the user fixed, by field name (a subset of kPlanFields); their values come from
  /// `given`, and the search varies only the others ("with some plan flags, search the rest").
  /// Every candidate starts from `given`: fields outside kPlanFields keep its values.
  std::vector<std::string> fixed;
  config::ParallelConfig given;
};

/// The ParallelConfig fields that make a plan, i.e. what the search chooses when not fixed. The
/// other fields (batch, sequence, precision, flash attention, gradient dtype) describe the workload.
inline const std::vector<std::string> kPlanFields = {"tp", "pp", "cp", "vpp", "micro_batch_size", "recompute",
                                                     "zero", "sequence_parallel", "tp_comm_overlap", "ep"};

/// Why plan shapes were ruled out. Each shape (tp, cp, pp, vpp, micro-batch) counts once, under the
/// first constraint it breaks, in this order.
struct Rejections {
  int64_t heads = 0;     ///< tp does not divide the attention heads, query groups or FFN width
  int64_t layers = 0;    ///< pp × vpp exceeds the layers
  int64_t chips = 0;     ///< tp × cp × pp does not divide the chip count
  int64_t batch = 0;     ///< global batch not divisible by micro-batch × dp (interleaved: micro-batches by pp)
  int64_t sequence = 0;  ///< sequence length not divisible by 2·cp (or by tp under sequence parallelism)
  int64_t other = 0;     ///< another rule of config::violations() (e.g. a fixed flag that needs another)
  int64_t memory = 0;    ///< valid, but no recompute level fits the chip's memory
};

struct SearchResult {
  std::vector<SummaryRow> ranked;  ///< best first; empty when nothing fits
  int64_t candidates = 0;          ///< configurations considered
  int64_t fitting = 0;             ///< of which fit in memory
  int64_t evaluated = 0;           ///< of which were timed (the rest were bounded out)
  int64_t shapes = 0;              ///< plan shapes (tp, cp, pp, vpp, micro-batch) enumerated
  Rejections rejected;             ///< of which ruled out, by reason
};

/// The lower bound on a resolved plan's step time that search() orders and prunes its candidates
/// by (search.cpp, lower_bound_s), as it computes it for `p` among p.world() chips: predict()'s
/// step for the same plan is never shorter.
double search_lower_bound_s(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                            const Calibration* calibration = nullptr);

/// The best (tp, pp, vpp, cp, micro-batch, ep, sequence parallelism, TP overlap, ZeRO, recompute)
/// that fits, ranked by tokens/s per chip (search.cpp: the ranges, and which variants are pruned why).
SearchResult search(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& options);

/// When nothing fits: the nearest chip counts (same global batch) and global batch sizes (same chip
/// count) below and above the asked ones at which the same search finds a plan; 0 where none does.
struct Nearest {
  int64_t gpus_below = 0, gpus_above = 0;
  int64_t batch_below = 0, batch_above = 0;
};
Nearest nearest_fitting(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& options);

}  // namespace capscale::predict
