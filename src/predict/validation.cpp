// Validation against published runs; see validation.hpp.
#include "predict/validation.hpp"

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "config/fields.hpp"

namespace capscale::predict {

std::vector<PublishedRun> load_published_runs(const std::string& path) {
  const config::Fields top(config::load_yaml_file(path), path);
  YAML::Node runs = top.get_node("runs");
  top.finish({"runs"});
  if (!runs || !runs.IsSequence()) throw InputError(path, "runs", "must be a list of published runs");
  std::vector<PublishedRun> out;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string where = path + ": runs[" + std::to_string(i) + "]";
    const config::Fields f(runs[i], where);
    PublishedRun r;
    r.id = f.get_string("id");
    r.source = f.get_string("source");
    r.chip = f.get_string("chip");
    r.gpus = f.get_int("gpus", 1, int64_t(1) << 24);
    YAML::Node m = f.get_node("model");
    if (m && m.IsScalar()) r.model = config::load_model(m.Scalar());
    else if (m && m.IsMap()) r.model = config::parse_model_node(m, where + ": model");
    else throw InputError(where, "model", "must be a model name or an inline model map");
    auto& p = r.parallel;
    p.seq_length = f.get_int("seq_length", 1, 1 << 24);
    p.global_batch_size = f.get_int("global_batch_size", 1, int64_t(1) << 30);
    p.micro_batch_size = f.get_int("micro_batch_size", 1, 1 << 20);
    p.tp = f.get_int("tp", 1, 1 << 20), p.pp = f.get_int("pp", 1, 1 << 20);
    p.cp = f.get_int("cp", 1, 1 << 20, 1), p.vpp = f.get_int("vpp", 1, 1 << 10, 1);
    p.sequence_parallel = f.get_bool("sequence_parallel", false);
    p.recompute = config::parse_recompute(f.get_enum("recompute", {"none", "selective", "full"}), where);
    p.zero = int(f.get_int("zero", 0, 1, 0));
    p.flash_attention = f.get_bool("flash_attention", true);
    p.tp_comm_overlap = f.get_bool("tp_comm_overlap", false);
    p.grad_reduce_in_bf16 = f.get_bool("grad_reduce_in_bf16", false);
    p.precision = config::parse_precision(f.get_enum("precision", {"bf16", "fp16", "fp8"}), where);
    r.metric = f.get_enum("metric", {"tflops_per_gpu", "mfu", "tokens_per_s", "step_time_s"});
    r.value = f.get_double("value", 1e-12, 1e15);
    r.flop_convention = f.get_enum("flop_convention", {"sc21_eq3", "model"});
    r.in_budget = f.get_bool("in_budget", true);
    r.fit = f.get_bool("fit", false);
    if (r.fit && !r.in_budget) throw InputError(where, "fit", "a fit row must be in budget (in_budget: true)");
    r.notes = f.get_string("notes", "");
    f.finish({"id", "source", "chip", "gpus", "model", "seq_length", "global_batch_size", "micro_batch_size", "tp", "pp",
              "cp", "vpp", "sequence_parallel", "recompute", "zero", "flash_attention", "tp_comm_overlap", "grad_reduce_in_bf16", "precision", "metric", "value", "flop_convention",
              "in_budget", "fit", "notes"});
    p = config::resolve(p, r.model, r.gpus, where);
    out.push_back(std::move(r));
  }
  return out;
}

namespace {

ErrorStats stats(std::vector<double> errs) {
  ErrorStats e;
  e.rows = int64_t(errs.size());
  if (errs.empty()) return e;
  std::sort(errs.begin(), errs.end());
  const size_t n = errs.size();
  e.median_abs = n % 2 ? errs[n / 2] : 0.5 * (errs[n / 2 - 1] + errs[n / 2]);
  e.max_abs = errs.back();
  return e;
}

ValidationRow predict_row(const PublishedRun& run, const SustainedByArch& sustained) {
  auto chip = config::load_chip(run.chip);
  if (auto it = sustained.find(chip.arch); it != sustained.end()) chip.efficiency.sustained = it->second;
  ValidationRow v;
  v.run = run;
  v.predicted = predict(run.model, chip, run.parallel).row;
  const auto& p = run.parallel;
  if (run.metric == "tflops_per_gpu") {
    const double flops = run.flop_convention == "sc21_eq3"
                             ? model::sc21_eq3_flops(run.model, p.global_batch_size, p.seq_length)
                             : model::model_flops_per_token(run.model, p.seq_length) * double(p.global_batch_size * p.seq_length);
    v.predicted_value = flops / v.predicted.step_time_s / double(run.gpus) / 1e12;
  } else if (run.metric == "mfu") {
    v.predicted_value = v.predicted.mfu;
  } else if (run.metric == "tokens_per_s") {
    v.predicted_value = v.predicted.tokens_per_s;
  } else {
    v.predicted_value = v.predicted.step_time_s;
  }
  v.error = (v.predicted_value - run.value) / run.value;
  return v;
}

// Every metric but step time grows with throughput; log(pred/pub) makes over- and
// under-prediction by the same factor count the same.
double log_error(const ValidationRow& v) {
  const double r = std::log(v.predicted_value / v.run.value);
  return v.run.metric == "step_time_s" ? -r : r;
}

}  // namespace

ValidationSummary validate(const std::vector<PublishedRun>& runs, const SustainedByArch& sustained) {
  ValidationSummary s;
  std::vector<double> all, holdout;
  for (const auto& run : runs) {
    s.rows.push_back(predict_row(run, sustained));
    const double e = std::abs(s.rows.back().error);
    if (!run.in_budget) continue;
    all.push_back(e);
    if (!run.fit) holdout.push_back(e);
  }
  const ErrorStats a = stats(all);
  s.in_budget = a.rows, s.median_abs_error = a.median_abs, s.max_abs_error = a.max_abs;
  s.holdout = stats(holdout);
  return s;
}

namespace {
std::map<std::string, std::vector<const PublishedRun*>> fit_rows_by_arch(const std::vector<PublishedRun>& runs) {
  std::map<std::string, std::vector<const PublishedRun*>> by_arch;
  for (const auto& r : runs)
    if (r.fit) by_arch[config::load_chip(r.chip).arch].push_back(&r);
  return by_arch;
}

double rms_log_error(const std::vector<const PublishedRun*>& rows, const std::string& arch, double value) {
  double sum = 0;
  for (const auto* r : rows) {
    const double e = log_error(predict_row(*r, {{arch, value}}));
    sum += e * e;
  }
  return rows.empty() ? 0.0 : std::sqrt(sum / double(rows.size()));
}
}  // namespace

double fit_rms_log_error(const std::vector<PublishedRun>& runs, const std::string& arch, double value) {
  const auto by_arch = fit_rows_by_arch(runs);
  const auto it = by_arch.find(arch);
  return it == by_arch.end() ? 0.0 : rms_log_error(it->second, arch, value);
}

std::vector<SustainedFit> fit_sustained(const std::vector<PublishedRun>& runs) {
  std::vector<SustainedFit> out;
  for (const auto& [arch, rows] : fit_rows_by_arch(runs)) {
    auto rms = [&rows, &arch = arch](double value) { return rms_log_error(rows, arch, value); };
    // Golden-section search; 22 steps shrink [0.5, 1] to ~1e-5.
    const double g = 0.5 * (std::sqrt(5.0) - 1.0);
    double a = 0.5, b = 1.0, x1 = b - g * (b - a), x2 = a + g * (b - a), f1 = rms(x1), f2 = rms(x2);
    for (int i = 0; i < 22; ++i) {
      if (f1 < f2) b = x2, x2 = x1, f2 = f1, x1 = b - g * (b - a), f1 = rms(x1);
      else a = x1, x1 = x2, f1 = f2, x2 = a + g * (b - a), f2 = rms(x2);
    }
    SustainedFit f;
    f.arch = arch;
    f.rows = int64_t(rows.size());
    f.value = 0.5 * (a + b);
    f.shipped = config::load_chip(rows.front()->chip).efficiency.sustained;
    f.rms_log_error_shipped = rms(f.shipped);
    f.rms_log_error_fit = rms(f.value);
    out.push_back(f);
  }
  return out;
}

}  // namespace capscale::predict
