// `capscale predict`: no execution. The plan for N chips of one target (caps allowed) timed by
// the cost model and the timeline engine; with --search, the best plan that fits.
#include <chrono>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "config/paths.hpp"
#include "predict/validation.hpp"
#include "results/calibration_io.hpp"

namespace capscale::cli {
namespace {

struct PredictOptions {
  std::string model, chip, calibration, vs;
  int64_t gpus = 0;
  ParallelFlags par;
  bool search = false, json = false;
  int top = 5;
};

int predict_cmd(const PredictOptions& o) {
  const auto model = o.par.load_model(o.model);
  const auto target = config::parse_target(o.chip, "--chip");
  const auto chip = [&] {
    try {
      return config::resolve_target(target);
    } catch (const InputError& e) {
      throw InputError("--chip", "", e.what());  // name the flag: "chip: 'x' is neither a file nor a known chip"
    }
  }();
  // Bounded so that every int64 product stays exact (predictor.hpp, kMaxChips): the default global
  // batch, micro-batch (≤ 2^20, its flag's range) × dp (≤ 2^40), stays below 2^61.
  predict::check_chip_count(o.gpus, "--gpus");
  predict::Calibration calibration;
  if (!o.calibration.empty()) calibration = results::read_calibration(o.calibration);
  const predict::Calibration* cal = o.calibration.empty() ? nullptr : &calibration;
  std::ostream& log = o.json ? std::cerr : std::cout;
  std::vector<predict::SummaryRow> rows;
  const auto t0 = std::chrono::steady_clock::now();
  std::string footer;
  predict::SearchOptions so;
  if (o.search) {
    so.gpus = o.gpus;
    const config::ParallelConfig& given = o.par.config;
    so.seq_length = given.seq_length;
    so.global_batch_size = given.global_batch_size;
    so.precision = given.precision;
    so.flash_attention = given.flash_attention;
    so.grad_reduce_in_bf16 = given.grad_reduce_in_bf16;
    so.top = o.top;
    so.calibration = cal;
    if (so.global_batch_size < 1) throw InputError("--global-batch-size", "", "is required with --search");
    const auto r = predict::search(model, chip, so);
    rows = r.ranked;
    footer = "# search: " + std::to_string(r.candidates) + " candidates, " + std::to_string(r.fitting) + " fit, " + std::to_string(r.evaluated) + " timed (branch and bound) in " +
             fmt(chip.usable_memory_bytes() / 1e9, 1) + " GB usable";
    if (rows.empty()) {
      log << footer << "\n# verdict: no configuration of " << model.name << " fits " << o.gpus << " x " << chip.name << "\n";
      if (o.json) std::cout << "[]" << std::endl;
      return 0;
    }
  } else {
    const auto p = config::resolve(o.par.to_config(), model, o.gpus, "predict");
    predict::PredictOptions po;
    po.calibration = cal;
    rows.push_back(predict::predict(model, chip, p, po).row);
  }
  // --vs: the per-chip throughput ratio to another target (its own best plan under --search, else
  // the same plan) with the band from efficiency.sustained's cross-validation spread.
  nlohmann::json vs_json;
  std::string vs_line;
  if (!o.vs.empty()) {
    const auto vs_target = config::parse_target(o.vs, "--vs");
    config::ChipProfile vs_chip;
    try {
      vs_chip = config::resolve_target(vs_target);
    } catch (const InputError& e) {
      throw InputError("--vs", "", e.what());
    }
    config::ParallelConfig pb = rows[0].parallel;
    bool vs_fits = true;
    if (o.search) {
      const auto r = predict::search(model, vs_chip, so);
      vs_fits = !r.ranked.empty();
      if (vs_fits) pb = r.ranked[0].parallel;
    }
    if (!vs_fits) {
      vs_line = "# vs " + vs_target.spec + ": no configuration fits, no ratio";
    } else {
      predict::PredictOptions po;
      po.calibration = cal;
      const auto ranges = predict::load_sustained_ranges(config::config_dir() + "/validation/sustained_ranges.yaml");
      const auto band = predict::ratio_band(model, chip, rows[0].parallel, vs_chip, pb, ranges, po);
      vs_line = "# vs " + vs_target.spec + ": tokens/s per chip ratio " + fmt(band.ratio, 3) + " (band " + fmt(band.low, 3) + " - " +
                fmt(band.high, 3) + ": efficiency.sustained over its validate --cv spread, " + chip.arch + " vs " + vs_chip.arch + ")";
      vs_json = {{"target", vs_target.spec}, {"ratio_tokens_per_s_per_chip", band.ratio}, {"band", {band.low, band.high}},
                 {"plan", config::parallel_text(pb)}};
    }
  }
  for (auto& r : rows) r.target = target.spec;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!o.search) print_config(log, model, rows[0].parallel, "");
  print_summary_table(log, rows);
  if (!footer.empty()) log << footer << "\n";
  if (cal) {
    log << "# calibration: " << o.calibration << " (" << cal->arch << ", " << cal->device << ", driver " << cal->driver << ", "
        << cal->created_utc << ") "
        << (cal->arch == chip.arch ? "used" : "NOT used: it is for arch " + cal->arch + ", " + chip.name + " is " + chip.arch) << "\n";
  }
  log << "# predicted in " << fmt(ms, 1) << " ms; verdict: "
      << (rows[0].fits ? "fits" : "DOES NOT FIT (" + fmt(rows[0].memory_gb_per_chip, 1) + " GB needed, " +
                                      fmt(rows[0].memory_capacity_gb, 1) + " GB usable)")
      << "\n";
  if (!vs_line.empty()) log << vs_line << "\n";
  if (o.json) {
    if (o.search) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& r : rows) arr.push_back(to_json(r));
      if (!vs_json.is_null()) arr[0]["vs"] = vs_json;
      std::cout << arr.dump(2) << std::endl;
    } else {
      nlohmann::json j = to_json(rows[0]);
      if (!vs_json.is_null()) j["vs"] = vs_json;
      std::cout << j.dump(2) << std::endl;
    }
  }
  return 0;
}

}  // namespace

Action add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "Predict a training step on N chips of a target (no execution)");
  auto o = std::make_shared<PredictOptions>();
  cmd->add_option("--model", o->model, "model name, YAML or HuggingFace config.json")->required();
  cmd->add_option("--chip", o->chip, "target CHIP[@key=value,...], e.g. h100@nic=200")->required();
  // The range at parse time too, so that an overflowing value is named as typed, not as the int64 it saturates to.
  cmd->add_option("--gpus", o->gpus, "number of chips")->required()->check(CLI::Range(int64_t(1), predict::kMaxChips));
  add_parallel_flags(cmd, o->par);
  cmd->add_flag("--search", o->search, "search the best plan that fits memory (ranked by tokens/s per chip)");
  cmd->add_option("--top", o->top, "rows to show with --search")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--calibration", o->calibration, "calibration file (capscale calibrate); used when its arch is the chip's");
  cmd->add_option("--vs", o->vs,
                  "another target CHIP[@caps]: print the tokens/s-per-chip ratio to it with its cross-validation band (its own best plan under --search)");
  cmd->add_flag("--json", o->json, "print JSON on stdout");
  return [o](const Invocation&) { return predict_cmd(*o); };
}

}  // namespace capscale::cli
