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
    p.precision = config::parse_precision(f.get_enum("precision", {"bf16", "fp16", "fp8"}), where);
    r.metric = f.get_enum("metric", {"tflops_per_gpu", "mfu", "tokens_per_s", "step_time_s"});
    r.value = f.get_double("value", 1e-12, 1e15);
    r.flop_convention = f.get_enum("flop_convention", {"sc21_eq3", "model"});
    r.in_budget = f.get_bool("in_budget", true);
    r.notes = f.get_string("notes", "");
    f.finish({"id", "source", "chip", "gpus", "model", "seq_length", "global_batch_size", "micro_batch_size", "tp", "pp",
              "cp", "vpp", "sequence_parallel", "recompute", "zero", "flash_attention", "tp_comm_overlap", "precision", "metric", "value", "flop_convention",
              "in_budget", "notes"});
    p = config::resolve(p, r.model, r.gpus, where);
    out.push_back(std::move(r));
  }
  return out;
}

ValidationSummary validate(const std::vector<PublishedRun>& runs) {
  ValidationSummary s;
  std::vector<double> errs;
  for (const auto& run : runs) {
    const auto chip = config::load_chip(run.chip);
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
    if (run.in_budget) errs.push_back(std::abs(v.error));
    s.rows.push_back(std::move(v));
  }
  s.in_budget = int64_t(errs.size());
  if (!errs.empty()) {
    std::sort(errs.begin(), errs.end());
    const size_t n = errs.size();
    s.median_abs_error = n % 2 ? errs[n / 2] : 0.5 * (errs[n / 2 - 1] + errs[n / 2]);
    s.max_abs_error = errs.back();
  }
  return s;
}

}  // namespace capscale::predict
