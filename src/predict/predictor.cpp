// Prediction of one configuration; see predictor.hpp.
#include "predict/predictor.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/error.hpp"

namespace capscale::predict {

const config::FieldTable<SummaryRow>& summary_fields() {
  using config::Field;
  using config::FieldType;
  using config::FieldValue;
  using config::member;
  using R = SummaryRow;
  static const config::FieldTable<R> table = [] {
    config::FieldTable<R> t;
    // header, width and printf format of a `#` table column ("" header: not in the table).
    auto add = [&](Field<R> f, std::string unit, std::string header = "", int width = 0, std::string format = "") -> Field<R>& {
      f.unit = std::move(unit), f.header = std::move(header), f.width = width, f.format = std::move(format);
      t.push_back(std::move(f));
      return t.back();
    };
    add(member("model", &R::model, "model name"), "").max_chars = 96;
    add(member("model_params_b", &R::model_params_b, "total parameters of the model (MTP modules excluded)"), "1e9 params");
    add(member("model_active_params_b", &R::model_active_params_b,
               "parameters active per token (MoE: top-k of the routed experts; dense: the total)"),
        "1e9 params");
    add(member("target", &R::target, "target chip spec as given, caps included (e.g. h200@nvlink=400)"), "", "target", 22, "%s")
        .max_chars = 128;
    add(member("gpus", &R::gpus, "chips"), "chips", "gpus", 6, "%lld");
    add(config::derived<R>("plan", FieldType::kText, "the parallel plan in one line",
                           [](const R& r) { return FieldValue(config::parallel_text(r.parallel)); }),
        "", "parallel", 42, "%s")
        .max_chars = 128;
    config::append_nested(t, &R::parallel, config::parallel_fields(), "parallel");
    add(member("step_time_s", &R::step_time_s, "time of one training step"), "s", "step [s]", 10, "%.4g");
    add(member("tokens_per_s", &R::tokens_per_s, "tokens per second, whole cluster"), "tokens/s");
    add(member("tokens_per_s_per_chip", &R::tokens_per_s_per_chip, "tokens per second per chip"), "tokens/s", "tok/s/chip", 12,
        "%.4g");
    add(member("tflops_per_chip", &R::tflops_per_chip, "model FLOPs (no recompute) per second per chip"), "TFLOP/s", "TFLOP/s", 8,
        "%.2f");
    add(member("mfu", &R::mfu, "model FLOPs utilisation (PaLM App. B)"), "", "MFU", 6, "%.3f");
    add(member("hfu", &R::hfu, "hardware FLOPs utilisation (recompute counted)"), "", "HFU", 6, "%.3f");
    config::FieldTable<Breakdown> b;
    auto part = [&](const char* name, double Breakdown::*m, const char* key, const char* help, const char* header) {
      auto f = member(name, m, help);
      f.json_key = key, f.unit = "s", f.header = header, f.width = 9, f.format = "%.4g";
      b.push_back(std::move(f));
    };
    part("compute_s", &Breakdown::compute_s, "compute", "GEMMs and attention on the critical stage", "comp [s]");
    part("exposed_comm_s", &Breakdown::exposed_comm_s, "exposed_comm", "communication not hidden behind compute", "comm [s]");
    part("bubble_s", &Breakdown::bubble_s, "bubble", "pipeline bubble", "bubble[s]");
    part("other_s", &Breakdown::other_s, "other", "elementwise kernels, the optimizer step and the host's step-boundary gap", "other[s]");
    config::append_nested(t, &R::breakdown, b, "breakdown_s");
    add(member("memory_gb_per_chip", &R::memory_gb_per_chip, "memory needed per chip"), "GB", "mem [GB]", 8, "%.1f");
    add(member("memory_capacity_gb", &R::memory_capacity_gb, "usable HBM of the target (after reserved)"), "GB");
    add(member("fits", &R::fits, "whether the plan fits the target's memory"), "", "fits", 4, "");
    auto& src = add(member("source", &R::source, "where the durations came from"), "", "source", 10, "%s");
    src.allowed = {"measured", "dilated", "calibrated", "roofline"};
    src.max_chars = 16;
    return t;
  }();
  return table;
}

double executed_flops(const plan::Plan& plan) {
  double per_pipeline = 0;
  for (const auto& st : plan.stages)
    for (const auto& op : st.ops)
      if (op.kind == plan::OpKind::kGemm || op.kind == plan::OpKind::kAttention) per_pipeline += op.flops;
  const auto& p = plan.parallel;
  return per_pipeline * double(p.tp * p.cp * p.dp);
}

void fill_throughput(SummaryRow& row, const plan::Plan& plan, const config::ChipProfile& chip, double step_time_s,
                     const Breakdown& breakdown) {
  fill_throughput(row, plan.model, plan.parallel, chip, step_time_s, breakdown, executed_flops(plan));
}

void fill_throughput(SummaryRow& row, const config::ModelConfig& model, const config::ParallelConfig& p,
                     const config::ChipProfile& chip, double step_time_s, const Breakdown& breakdown, double executed) {
  // A host whose peak is unknown (a GPU no profile describes, cli/host_profile.hpp) reports MFU and
  // HFU as NaN, never against another chip's peak. Targets cannot get here without one: their cost
  // model already refused a precision the chip lacks.
  const double peak = chip.supports(p.precision) ? chip.peak_flops(p.precision) : std::nan("");
  const double tokens = double(p.global_batch_size) * double(p.seq_length);
  row.gpus = p.world();
  row.parallel = p;
  row.step_time_s = step_time_s;
  row.breakdown = breakdown;
  row.tokens_per_s = tokens / step_time_s;
  row.tokens_per_s_per_chip = row.tokens_per_s / double(row.gpus);
  const double model_flops_per_s = model::model_flops_per_token(model, p.seq_length) * row.tokens_per_s;
  row.tflops_per_chip = model_flops_per_s / double(row.gpus) / 1e12;
  row.mfu = model_flops_per_s / (double(row.gpus) * peak);
  row.hfu = executed / step_time_s / (double(row.gpus) * peak);
}

namespace {
// Every field CostModel::duration reads. Two ops equal in these have equal durations.
struct DurationKey {
  int64_t m, n, k, batch, bytes;
  double flops;
  plan::OpKind kind;
  plan::Phase phase;
  plan::CollKind coll;
  parallel::Group group;
  bool causal, is_send, fused, dropout, fa1;
  uint8_t route_topk, route_node_limit;
  explicit DurationKey(const plan::Op& op)
      : m(op.m), n(op.n), k(op.k), batch(op.batch), bytes(op.bytes), flops(op.flops), kind(op.kind), phase(op.phase),
        coll(op.coll), group(op.group), causal(op.causal), is_send(op.is_send), fused(op.fused), dropout(op.dropout),
        fa1(op.fa1), route_topk(op.route_topk), route_node_limit(op.route_node_limit) {}
  bool operator==(const DurationKey&) const = default;
};

// model_durations, returning the FLOPs of one pipeline's ranks as executed_flops sums them: one
// pass over a plan larger than the caches instead of two.
double durations_and_flops(const plan::Plan& plan, const CostModel& cost, std::vector<std::vector<double>>& d) {
  double per_pipeline = 0;
  // A stage repeats the same op per layer and micro-batch. Ops the builder copied from an earlier
  // layer (plan::CopyRange) have that layer's durations and FLOPs. Of the rest, most equal the
  // last op with the same (name, phase, wgrad): keep that op's inputs and duration per slot and
  // reuse the duration when all inputs match exactly (the result is the same as calling duration).
  constexpr size_t kSlots = 64 * 4 * 2;  // OpName × Phase × wgrad
  struct Slot {
    DurationKey key;
    double duration_s;
  };
  d.resize(plan.stages.size());
  std::vector<Slot> slots;
  slots.reserve(kSlots);
  std::vector<int16_t> slot_of(kSlots, -1);
  auto derive = [&](const plan::Op& op) {
    if (op.kind == plan::OpKind::kGemm || op.kind == plan::OpKind::kAttention) per_pipeline += op.flops;
    const size_t at = (size_t(op.name) * 4 + size_t(op.phase)) * 2 + size_t(op.wgrad);
    const DurationKey key(op);
    if (at < kSlots && slot_of[at] >= 0 && slots[slot_of[at]].key == key) return slots[slot_of[at]].duration_s;
    const double t = cost.duration(op);
    if (at < kSlots) {
      if (slot_of[at] < 0) slot_of[at] = int16_t(slots.size()), slots.push_back({key, t});
      else slots[slot_of[at]] = {key, t};
    }
    return t;
  };
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const plan::StagePlan& stage = plan.stages[s];
    d[s].resize(size_t(stage.size()));
    double* out = d[s].data();
    size_t i = 0, stored = 0;  // a compact stage does not store the copies
    for (const plan::CopyRange& c : stage.copies) {
      for (; i < size_t(c.begin); ++i) out[i] = derive(stage.ops[stored++]);
      std::copy(out + (c.begin - c.shift), out + (c.end - c.shift), out + c.begin);
      per_pipeline += c.flops;
      i = size_t(c.end);
      if (!stage.compact) stored = i;
    }
    for (; i < size_t(stage.size()); ++i) out[i] = derive(stage.ops[stored++]);
  }
  return per_pipeline;
}
}  // namespace

void model_durations(const plan::Plan& plan, const CostModel& cost, std::vector<std::vector<double>>& d) {
  durations_and_flops(plan, cost, d);
}

std::vector<std::vector<double>> model_durations(const plan::Plan& plan, const CostModel& cost) {
  std::vector<std::vector<double>> d;
  model_durations(plan, cost, d);
  return d;
}

void check_chip_count(int64_t gpus, const std::string& flag) {
  if (gpus < 1 || gpus > kMaxChips)
    throw InputError(flag, "", "must be between 1 and 2^40 = " + std::to_string(kMaxChips) + " chips, got " + std::to_string(gpus));
}

std::vector<std::string> target_violations(const config::ParallelConfig& p, const config::ChipProfile& chip) {
  std::vector<std::string> v;
  if (p.flash_attention && p.flash_attention_v1 && !chip.times_flash_attention_v1())
    v.push_back("flash-attention-v1: " + chip.name + " gives no efficiency.attention_fa1 (FlashAttention-1's fraction of its peak)");
  return v;
}

bool fits_memory(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                 double* need_gb) {
  const double need = model::memory_per_rank(model, p).total();
  if (need_gb) *need_gb = need / 1e9;
  return need <= chip.usable_memory_bytes();
}

SummaryRow identity_row(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                        const std::string& source) {
  SummaryRow row;
  row.model = model.name;
  row.model_params_b = double(model::total_params(model)) / 1e9;
  row.model_active_params_b = double(model::active_params(model)) / 1e9;
  row.target = chip.name;
  row.source = source;
  double need_gb = 0;
  row.fits = fits_memory(model, chip, p, &need_gb);
  row.memory_gb_per_chip = need_gb;
  row.memory_capacity_gb = chip.usable_memory_bytes() / 1e9;
  return row;
}

double expected_max_of_normals(int64_t n) {
  if (n <= 1) return 0;
  // Every prediction of one chip count asks for the same n (twice when micro-batches are folded,
  // and once per candidate in a search): the integral below costs ~6,000 erfc/exp evaluations, a
  // tenth of a 1,024-chip prediction, so the last answer is kept per thread.
  thread_local int64_t last_n = 0;
  thread_local double last_value = 0;
  if (n == last_n) return last_value;
  // The density of the maximum, n φ(x) Φ(x)^(n−1), peaks near √(2 ln n) (< 7.5 for n ≤ 2^40) with
  // a width below 1; [−10, 14] in steps of 1/256 holds it to ~1e-9 (midpoint rule on a smooth
  // integrand; the tests hold n = 2, 3 to their closed forms).
  constexpr double kLo = -10, kHi = 14, kStep = 1.0 / 256;
  const double nm1 = double(n - 1);
  double sum = 0;
  for (double x = kLo + kStep / 2; x < kHi; x += kStep) {
    const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
    if (cdf <= 0) continue;
    const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    sum += x * double(n) * pdf * std::exp(nm1 * std::log(cdf));
  }
  last_n = n, last_value = sum * kStep;
  return last_value;
}

int64_t node_count(const config::ChipProfile& chip, int64_t world) {
  const int64_t domain = std::max<int64_t>(1, chip.nvlink_domain);
  return (world + domain - 1) / domain;
}

double node_jitter_wait(const Breakdown& b, double sigma, int64_t nodes) {
  return nodes > 1 ? (b.compute_s + b.other_s + b.bubble_s) * sigma * expected_max_of_normals(nodes) : 0.0;
}

void apply_node_jitter(TimelineResult& timeline, const config::ChipProfile& chip, int64_t world) {
  const int64_t nodes = node_count(chip, world);
  if (chip.node_jitter <= 0 || nodes <= 1) return;
  Breakdown& b = timeline.breakdown;
  const double wait = node_jitter_wait(b, chip.node_jitter, nodes);
  b.exposed_comm_s += wait;
  timeline.step_time_s += wait;
}

double host_step_gap(const config::ChipProfile& chip, const config::ParallelConfig& p) {
  return p.full_iteration_cuda_graph ? 0.0 : chip.host_step_gap_s;
}

void apply_host_step_gap(TimelineResult& timeline, const config::ChipProfile& chip, const config::ParallelConfig& p) {
  const double gap = host_step_gap(chip, p);
  timeline.breakdown.other_s += gap;
  timeline.step_time_s += gap;
}

TimelineResult simulate_on(const plan::Plan& plan, const std::vector<std::vector<double>>& durations,
                           const config::ChipProfile& chip, TimelineOptions options) {
  options.comm_contention = chip.comm_contention();
  TimelineResult tl = simulate(plan, durations, options);
  apply_node_jitter(tl, chip, plan.parallel.world());
  apply_host_step_gap(tl, chip, plan.parallel);
  return tl;
}

namespace {

struct Simulated {
  TimelineResult timeline;
  double executed_flops = 0;
};

/// The plan and durations of the last prediction on this thread, kept for their memory: a plan
/// of 10^5 ops is ~10 MB, and faulting in fresh pages for it on every prediction took more time
/// than building and simulating it. Only capacity carries over; every call rebuilds the contents.
struct Workspace {
  plan::Plan plan;
  std::vector<std::vector<double>> durations;
};

Simulated simulate_config(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                          const TimelineOptions& topt, const Calibration* calibration, bool compact) {
  thread_local Workspace w;
  plan::BuildOptions build;
  build.compact = compact;  // only the engine reads the plan
  plan::build_plan(model, p, w.plan, build);
  const parallel::Layout layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp);
  const CostModel cost(chip, p.precision, layout, calibration, p.grad_bytes(), CommCtas::of(p));
  // As executed_flops(w.plan): one pipeline's FLOPs times its tp·cp·dp ranks.
  const double executed = durations_and_flops(w.plan, cost, w.durations) * double(p.tp * p.cp * p.dp);
  return {simulate_on(w.plan, w.durations, chip, topt), executed};
}

}  // namespace

Prediction predict(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                   const PredictOptions& options) {
  // Micro-batch folding. In 1F1B and interleaved 1F1B every further round of pp micro-batches adds
  // the same work to every stage once the pipeline is in its steady state (Narayanan et al. SC21
  // §2.2: step = (m + p − 1)·(t_f + t_b) for uniform stages), and the DP tail after the last
  // micro-batch does not depend on m. So the step is affine in m beyond a few rounds: simulate
  // m0 = 2·pp and m1 = 3·pp micro-batches (4·pp and 5·pp when the model chunks are uneven, below)
  // and extend the line to m. (From pp to 2·pp the step does not always grow by a steady round:
  // with uneven chunks the first rounds of backward units settle late.) A unit test holds the
  // folded result to the full simulation. FLOPs are per
  // micro-batch, so they scale exactly. The slowest node's wait (apply_node_jitter) is linear in
  // the breakdown, so it extends with it.
  const bool calibrated = options.calibration && !options.calibration->arch.empty() && options.calibration->arch == chip.arch;
  const std::string source = calibrated ? "calibrated" : "roofline";
  check_chip_count(p.world(), "gpus");
  const int64_t m = p.num_microbatches();
  // Uneven model chunks (Megatron's uneven split, the account-for flags, a pipeline layout) settle
  // into their steady round later: 70B on pp 2 × vpp 6 with the loss counted in the split grows by
  // 0.856, 0.873, 0.875, 0.875 s per round from 2·pp micro-batches on, so rounds from 4·pp are
  // measured there (folded from 2·pp the step read 1.3 % short).
  const auto chunks = model::chunk_layers(model, p);
  const bool uneven = std::adjacent_find(chunks.begin(), chunks.end(), std::not_equal_to<>()) != chunks.end();
  const int64_t first_round = uneven ? 4 : 2;
  const int64_t m0 = first_round * p.pp, m1 = (first_round + 1) * p.pp;
  if (options.fold_microbatches && !options.keep_timings && m > m1) {
    auto with_microbatches = [&](int64_t n) {
      config::ParallelConfig q = p;
      q.global_batch_size = n * p.micro_batch_size * p.dp;
      return q;
    };
    const Simulated s0 = simulate_config(model, chip, with_microbatches(m0), {}, options.calibration, options.compact_plans);
    Simulated s1 = simulate_config(model, chip, with_microbatches(m1), {}, options.calibration, options.compact_plans);
    const double k = double(m - m1) / double(m1 - m0);
    auto extend = [k](double a0, double a1) { return a1 + k * (a1 - a0); };
    Prediction out;
    out.timeline = std::move(s1.timeline);
    out.timeline.step_time_s = extend(s0.timeline.step_time_s, out.timeline.step_time_s);
    Breakdown& b = out.timeline.breakdown;
    const Breakdown& b0 = s0.timeline.breakdown;
    b.compute_s = extend(b0.compute_s, b.compute_s);
    b.exposed_comm_s = extend(b0.exposed_comm_s, b.exposed_comm_s);
    b.bubble_s = extend(b0.bubble_s, b.bubble_s);
    b.other_s = extend(b0.other_s, b.other_s);
    for (size_t s = 0; s < out.timeline.stage_end_s.size(); ++s)
      out.timeline.stage_end_s[s] = extend(s0.timeline.stage_end_s[s], out.timeline.stage_end_s[s]);
    out.row = identity_row(model, chip, p, source);
    fill_throughput(out.row, model, p, chip, out.timeline.step_time_s, b, s1.executed_flops * double(m) / double(m1));
    return out;
  }
  Prediction out;
  out.row = identity_row(model, chip, p, source);
  TimelineOptions topt;
  topt.keep_timings = options.keep_timings;
  Simulated sim = simulate_config(model, chip, p, topt, options.calibration, options.compact_plans && !options.keep_timings);
  out.timeline = std::move(sim.timeline);
  fill_throughput(out.row, model, p, chip, out.timeline.step_time_s, out.timeline.breakdown, sim.executed_flops);
  return out;
}

}  // namespace capscale::predict
