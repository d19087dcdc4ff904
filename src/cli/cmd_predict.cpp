// `capscale predict`: no execution. The plan for N chips of one target (caps allowed) timed by
// the cost model and the timeline engine. With no plan flags the best plan that fits is searched;
// with some, the rest is; --search ranks the plans; --no-search takes the flags as the whole plan.
// When nothing fits, the answer says which rule ruled the plans out and the nearest sizes that work.
#include <chrono>
#include <iostream>
#include <memory>

#include "cli/output.hpp"
#include "cli/predict_api.hpp"
#include "common/error.hpp"
#include "config/paths.hpp"
#include "predict/validation.hpp"
#include "results/calibration_io.hpp"

namespace capscale::cli {
namespace {

/// "--tp 8 --recompute full": the plan flags given, as typed.
std::string given_text(const PredictOptions& o) {
  std::string out;
  for (const auto& f : config::parallel_fields()) {
    const auto& g = o.par.given;
    if (std::find(g.begin(), g.end(), f.name) == g.end()) continue;
    if (std::find(predict::kPlanFields.begin(), predict::kPlanFields.end(), f.name) == predict::kPlanFields.end()) continue;
    const auto v = f.get(o.par.config);
    std::string value;
    if (f.type == config::FieldType::kBool) {
      value = (std::get<bool>(v) != f.flag_negates) ? "" : "=false";
    } else if (f.type == config::FieldType::kInt) {
      value = " " + std::to_string(std::get<int64_t>(v));
    } else if (f.type == config::FieldType::kEnum || f.type == config::FieldType::kText) {
      value = " " + std::get<std::string>(v);
    }
    out += (out.empty() ? "--" : " --") + f.flag + value;
  }
  return out;
}

/// Why the search found nothing, with counts, and the nearest chip counts / batch sizes that work.
std::string explain_no_plan(const config::ModelConfig& model, const config::ChipProfile& chip,
                            const predict::SearchOptions& so, const predict::SearchResult& r, int64_t seq) {
  const auto s = [](int64_t x) { return std::to_string(x); };
  const auto gbs = so.global_batch_size;
  std::string why = "no plan of " + model.name + " fits " + s(so.gpus) + " x " + chip.name + " with global batch " + s(gbs) +
                    " and seq " + s(seq);
  if (!so.fixed.empty()) why += " (" + config::join(so.fixed) + " fixed)";
  why += ": of " + s(r.shapes) + " plan shapes (tp, cp, pp, vpp, micro-batch)";
  const predict::Rejections& x = r.rejected;
  std::vector<std::string> reasons;
  auto add = [&](int64_t n, const std::string& what) {
    if (n) reasons.push_back(s(n) + " " + what);
  };
  add(x.heads, "have a tp that does not divide the heads (" + s(model.num_attention_heads) + "/" + s(model.num_query_groups) +
                   " kv) or the FFN (" + s(model.ffn_hidden_size) + ")");
  add(x.layers, "have pp x vpp above the " + s(model.num_layers) + " layers");
  add(x.chips, "have tp x cp x pp not dividing " + s(so.gpus) + (so.gpus == 1 ? " chip" : " chips"));
  add(x.batch, "leave a global batch of " + s(gbs) + " not divisible by micro-batch x dp (x pp when interleaved)");
  add(x.sequence, "need seq " + s(seq) + " divisible by 2·cp or by tp");
  add(x.other, "break another rule (config::violations)");
  add(x.memory, "divide evenly but need more than the " + fmt(chip.usable_memory_bytes() / 1e9, 1) +
                    " GB usable at every recompute level");
  why += reasons.empty() ? ", none qualifies" : ", " + config::join(reasons);
  const predict::Nearest n = predict::nearest_fitting(model, chip, so);
  auto pair = [&](int64_t lo, int64_t hi) {
    std::vector<std::string> v;
    if (lo) v.push_back(s(lo));
    if (hi) v.push_back(s(hi));
    return v.empty() ? std::string("none nearby") : config::join(v);
  };
  why += "; nearest chip counts with a plan (global batch " + s(gbs) + "): " + pair(n.gpus_below, n.gpus_above) +
         "; nearest global batch sizes on " + s(so.gpus) + (so.gpus == 1 ? " chip: " : " chips: ") + pair(n.batch_below, n.batch_above);
  return why;
}

int predict_cmd(const PredictOptions& o) {
  const PredictOutcome r = run_predict(o);
  print_predict(o, r, o.json ? std::cerr : std::cout, std::cout);
  return 0;
}

}  // namespace

PredictOutcome run_predict(const PredictOptions& o) {
  PredictOutcome out;
  const auto t0 = std::chrono::steady_clock::now();
  out.model = o.par.load_model(o.model);
  const auto& model = out.model;
  const auto target = config::parse_target(o.chip, "--chip");
  out.target = target.spec;
  out.chip = [&] {
    try {
      return config::resolve_target(target);
    } catch (const InputError& e) {
      throw InputError("--chip", "", e.what());  // name the flag: "chip: 'x' is neither a file nor a known chip"
    }
  }();
  const auto& chip = out.chip;
  // Bounded so that every int64 product stays exact (predictor.hpp, kMaxChips): the default global
  // batch, micro-batch (≤ 2^20, its flag's range) × dp (≤ 2^40), stays below 2^61.
  predict::check_chip_count(o.gpus, "--gpus");
  if (o.search && o.no_search) throw InputError("--no-search", "", "contradicts --search; give one of them");
  if (!o.calibration.empty()) {
    out.calibration = results::read_calibration(o.calibration);
    out.calibrated = true;
  }
  const predict::Calibration* cal = out.calibrated ? &out.calibration : nullptr;
  const config::ParallelConfig& given = o.par.config;
  std::vector<std::string> fixed;
  for (const auto& name : o.par.given)
    if (std::find(predict::kPlanFields.begin(), predict::kPlanFields.end(), name) != predict::kPlanFields.end()) fixed.push_back(name);
  // A dense model has no expert layout to choose: ep is a plan knob of MoE models only.
  const size_t plan_knobs = predict::kPlanFields.size() - (model.is_moe() ? 0 : 1);
  out.searched = o.search || (!o.no_search && fixed.size() < plan_knobs);
  out.listed = o.search;
  if (!out.searched) {
    const auto p = config::resolve(o.par.to_config(), model, o.gpus, "predict");
    predict::PredictOptions po;
    po.calibration = cal;
    out.rows.push_back(predict::predict(model, chip, p, po).row);
    out.how = fixed.size() >= plan_knobs ? "as given (every plan flag set)"
                                                           : "as given (--no-search: defaults for the plan flags not set)";
  }
  predict::SearchOptions so;
  if (out.searched) {
    so.gpus = o.gpus;
    so.seq_length = given.seq_length;
    so.global_batch_size = given.global_batch_size;
    so.precision = given.precision;
    so.flash_attention = given.flash_attention;
    so.grad_reduce_in_bf16 = given.grad_reduce_in_bf16;
    so.overlap_grad_reduce = given.overlap_grad_reduce;
    so.fixed = fixed;
    so.given = given;
    so.top = o.search ? o.top : 1;
    so.calibration = cal;
    if (so.global_batch_size < 1) {
      // One sequence per chip (times a fixed micro-batch): every dp divides it, so the batch never
      // rules a plan out by itself; per-chip throughput then compares like with like across sizes.
      const int64_t mbs = std::find(fixed.begin(), fixed.end(), "micro_batch_size") != fixed.end() ? given.micro_batch_size : 1;
      so.global_batch_size = o.gpus * mbs;
      out.default_batch = "global batch " + std::to_string(so.global_batch_size) + " sequences (default: " +
                          (mbs > 1 ? "micro-batch x " : "") + "one per chip; set --global-batch-size)";
    }
    const std::string flags = given_text(o);
    const std::string knobs = "--tp --pp --cp --vpp --micro-batch-size --recompute --zero --sequence-parallel --tp-comm-overlap";
    if (o.search) out.how = "searched, ranked by tokens/s per chip" + (flags.empty() ? "" : " (fixed: " + flags + ")");
    else if (flags.empty()) out.how = "searched: no plan flags given, so the best plan that fits (fix any with " + knobs + "; --no-search for the defaults)";
    else out.how = "searched the plan flags not given (fixed: " + flags + "; --no-search for the defaults)";
    out.stats = predict::search(model, chip, so);
    out.rows = std::move(out.stats.ranked);
    out.stats.ranked.clear();
    if (out.rows.empty()) {
      out.no_plan = explain_no_plan(model, chip, so, out.stats, so.seq_length ? so.seq_length : model.seq_length);
      if (!o.search) {
        // Show the plan the flags give (defaults for the rest) and what it would need, when it is
        // valid; when it is not, nothing can be shown: bad input, with the reason and the way out.
        config::ParallelConfig p = o.par.to_config();
        p.global_batch_size = so.global_batch_size;
        const auto v = config::violations(p, model, o.gpus);
        if (!v.empty()) {
          // With plan flags given, what is wrong with them as a whole plan follows (as --no-search says it).
          throw InputError("predict", "", fixed.empty() ? out.no_plan : out.no_plan + "; as given: " + config::join(v));
        }
        predict::PredictOptions po;
        po.calibration = cal;
        out.rows.push_back(predict::predict(model, chip, config::resolve(p, model, o.gpus, "predict"), po).row);
      }
    }
  }
  for (auto& row : out.rows) row.target = target.spec;
  if (!o.vs.empty() && !out.rows.empty()) {
    const auto vs_target = config::parse_target(o.vs, "--vs");
    config::ChipProfile vs_chip;
    try {
      vs_chip = config::resolve_target(vs_target);
    } catch (const InputError& e) {
      throw InputError("--vs", "", e.what());
    }
    PredictOutcome::Versus v;
    v.target = vs_target.spec;
    v.arch = vs_chip.arch;
    config::ParallelConfig pb = out.rows[0].parallel;
    v.fits = true;
    if (out.searched) {
      const auto r = predict::search(model, vs_chip, so);
      v.fits = !r.ranked.empty();
      if (v.fits) pb = r.ranked[0].parallel;
    }
    if (v.fits) {
      predict::PredictOptions po;
      po.calibration = cal;
      const auto ranges = predict::load_sustained_ranges(config::config_dir() + "/validation/sustained_ranges.yaml");
      const auto band = predict::ratio_band(model, chip, out.rows[0].parallel, vs_chip, pb, ranges, po);
      v.ratio = band.ratio, v.low = band.low, v.high = band.high;
      v.plan = config::parallel_text(pb);
    }
    out.vs = v;
  }
  out.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

void print_predict(const PredictOptions& o, const PredictOutcome& r, std::ostream& log, std::ostream& out) {
  log << "# plan: " << r.how << "\n";
  if (!r.default_batch.empty()) log << "# batch: " << r.default_batch << "\n";
  if (!r.rows.empty() && !r.listed) print_config(log, r.model, r.rows[0].parallel, "");
  if (!r.rows.empty()) print_summary_table(log, r.rows);
  if (r.searched) {
    log << "# search: " << r.stats.candidates << " candidates, " << r.stats.fitting << " fit, " << r.stats.evaluated
        << " timed (branch and bound) in " << fmt(r.chip.usable_memory_bytes() / 1e9, 1) << " GB usable\n";
  }
  if (r.calibrated) {
    const auto& cal = r.calibration;
    log << "# calibration: " << o.calibration << " (" << cal.arch << ", " << cal.device << ", driver " << cal.driver << ", "
        << cal.created_utc << ") "
        << (cal.arch == r.chip.arch ? "used" : "NOT used: it is for arch " + cal.arch + ", " + r.chip.name + " is " + r.chip.arch)
        << "\n";
  }
  if (!r.no_plan.empty()) log << "# " << r.no_plan << "\n";
  log << "# predicted in " << fmt(r.ms, 1) << " ms; verdict: ";
  if (r.rows.empty()) log << "no plan fits\n";
  else if (!r.no_plan.empty()) log << "DOES NOT FIT: no plan fits; the plan shown (defaults) needs " << fmt(r.rows[0].memory_gb_per_chip, 1) << " GB, " << fmt(r.rows[0].memory_capacity_gb, 1) << " GB usable\n";
  else log << (r.rows[0].fits ? "fits" : "DOES NOT FIT (" + fmt(r.rows[0].memory_gb_per_chip, 1) + " GB needed, " +
                                             fmt(r.rows[0].memory_capacity_gb, 1) + " GB usable)") << "\n";
  nlohmann::json vs_json;
  if (r.vs) {
    const auto& v = *r.vs;
    if (!v.fits) {
      log << "# vs " << v.target << ": no configuration fits, no ratio\n";
    } else {
      log << "# vs " << v.target << ": tokens/s per chip ratio " << fmt(v.ratio, 3) << " (band " << fmt(v.low, 3) << " - "
          << fmt(v.high, 3) << ": efficiency.sustained over its validate --cv spread and the chips' efficiency_ranges, "
          << r.chip.arch << " vs " << v.arch << ")\n";
      vs_json = {{"target", v.target}, {"ratio_tokens_per_s_per_chip", v.ratio}, {"band", {v.low, v.high}}, {"plan", v.plan}};
    }
  }
  if (o.json) {
    if (r.listed) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& row : r.rows) arr.push_back(to_json(row));
      if (!vs_json.is_null() && !arr.empty()) arr[0]["vs"] = vs_json;
      out << arr.dump(2) << std::endl;
    } else {
      nlohmann::json j = to_json(r.rows.at(0));
      if (!vs_json.is_null()) j["vs"] = vs_json;
      out << j.dump(2) << std::endl;
    }
  }
}

void add_predict_flags(CLI::App* cmd, PredictOptions& o) {
  cmd->add_option("--model", o.model, "model name, YAML or HuggingFace config.json")->required();
  cmd->add_option("--chip", o.chip, "target CHIP[@key=value,...], e.g. h100@nic=200")->required();
  // The range at parse time too, so that an overflowing value is named as typed, not as the int64 it saturates to.
  cmd->add_option("--gpus", o.gpus, "number of chips")->required()->check(CLI::Range(int64_t(1), predict::kMaxChips));
  add_parallel_flags(cmd, o.par);
  cmd->add_flag("--search", o.search, "rank the plans that fit memory by tokens/s per chip (plan flags given stay fixed)");
  cmd->add_flag("--no-search", o.no_search, "evaluate the plan flags as given, with defaults for the others (no search)");
  cmd->add_option("--top", o.top, "rows to show with --search")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--calibration", o.calibration, "calibration file (capscale calibrate); used when its arch is the chip's");
  cmd->add_option("--vs", o.vs,
                  "another target CHIP[@key=value,...]: print the tokens/s-per-chip ratio to it with its band (CV spread of sustained, chip efficiency_ranges)");
  cmd->add_flag("--json", o.json, "print JSON on stdout");
}

Action add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Predict a training step on N chips of a target (no execution); "
                                            "searches the plan flags not given");
  auto o = std::make_shared<PredictOptions>();
  add_predict_flags(cmd, *o);
  return [o](const Invocation&) { return predict_cmd(*o); };
}

}  // namespace capscale::cli
