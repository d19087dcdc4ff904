// Prediction of one configuration; see predictor.hpp.
#include "predict/predictor.hpp"

#include "common/error.hpp"

namespace capscale::predict {

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
  const auto& p = plan.parallel;
  const double peak = chip.peak_flops(p.precision);
  const double tokens = double(p.global_batch_size) * double(p.seq_length);
  row.gpus = p.world();
  row.parallel = p;
  row.step_time_s = step_time_s;
  row.breakdown = breakdown;
  row.tokens_per_s = tokens / step_time_s;
  row.tokens_per_s_per_chip = row.tokens_per_s / double(row.gpus);
  const double model_flops_per_s = model::model_flops_per_token(plan.model, p.seq_length) * row.tokens_per_s;
  row.tflops_per_chip = model_flops_per_s / double(row.gpus) / 1e12;
  row.mfu = model_flops_per_s / (double(row.gpus) * peak);
  row.hfu = executed_flops(plan) / step_time_s / (double(row.gpus) * peak);
}

std::vector<std::vector<double>> model_durations(const plan::Plan& plan, const CostModel& cost) {
  std::vector<std::vector<double>> d(plan.stages.size());
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    d[s].reserve(plan.stages[s].ops.size());
    for (const auto& op : plan.stages[s].ops) d[s].push_back(cost.duration(op));
  }
  return d;
}

bool fits_memory(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                 double* need_gb) {
  const double need = model::memory_per_rank(model, p).total();
  if (need_gb) *need_gb = need / 1e9;
  return need <= chip.usable_memory_bytes();
}

Prediction predict(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                   const PredictOptions& options) {
  Prediction out;
  SummaryRow& row = out.row;
  row.model = model.name;
  row.target = chip.name;
  row.source = "roofline";
  double need_gb = 0;
  row.fits = fits_memory(model, chip, p, &need_gb);
  row.memory_gb_per_chip = need_gb;
  row.memory_capacity_gb = chip.usable_memory_bytes() / 1e9;
  const plan::Plan plan = plan::build_plan(model, p);
  const parallel::Layout layout(p.tp, p.cp, p.dp, p.pp);
  const CostModel cost(chip, p.precision, layout);
  TimelineOptions topt;
  topt.keep_timings = options.keep_timings;
  out.timeline = simulate(plan, model_durations(plan, cost), topt);
  fill_throughput(row, plan, chip, out.timeline.step_time_s, out.timeline.breakdown);
  return out;
}

}  // namespace capscale::predict
