// `capscale validate`: predicts every published run and prints predicted vs published, each in
// its source's own metric and FLOP convention, with the median / max error against the budget
// (DESIGN.md: median |error| ≤ 10 %, max ≤ 20 %).
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "config/paths.hpp"
#include "predict/validation.hpp"

namespace capscale::cli {

Action add_validate(CLI::App& app) {
  auto* cmd = app.add_subcommand("validate", "Predict the published training runs and report the error");
  auto file = std::make_shared<std::string>(config::config_dir() + "/validation/published_runs.yaml");
  auto json = std::make_shared<bool>(false);
  auto fit = std::make_shared<bool>(false);
  cmd->add_option("--runs", *file, "published runs YAML");
  cmd->add_flag("--json", *json, "print JSON on stdout");
  cmd->add_flag("--fit", *fit, "refit efficiency.sustained per architecture on the rows marked fit, and print it");
  return [file, json, fit](const Invocation&) {
    const auto runs = predict::load_published_runs(*file);
    std::ostream& log = *json ? std::cerr : std::cout;
    char line[400];
    if (*fit) {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& f : predict::fit_sustained(runs)) {
        std::snprintf(line, sizeof line,
                      "# fit %-8s efficiency.sustained = %.4f over %lld rows (rms log error %.4f; shipped %.3f gives %.4f)\n",
                      f.arch.c_str(), f.value, (long long)f.rows, f.rms_log_error_fit, f.shipped, f.rms_log_error_shipped);
        log << line;
        arr.push_back({{"arch", f.arch}, {"rows", f.rows}, {"sustained", f.value}, {"rms_log_error", f.rms_log_error_fit},
                       {"shipped", f.shipped}, {"rms_log_error_shipped", f.rms_log_error_shipped}});
      }
      if (*json) std::cout << arr.dump(2) << std::endl;
      return 0;
    }
    const auto s = predict::validate(runs);
    std::snprintf(line, sizeof line, "#%-10s %-7s %6s %-15s %-28s %-15s %11s %11s %8s %s\n", " id", "chip", "gpus", "model",
                  "parallel", "metric", "published", "predicted", "error", "budget");
    log << line;
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& v : s.rows) {
      std::snprintf(line, sizeof line, " %-10s %-7s %6lld %-15.15s %-28.28s %-15s %11.4g %11.4g %+7.1f%% %s\n", v.run.id.c_str(),
                    v.run.chip.c_str(), (long long)v.run.gpus, v.run.model.name.c_str(), parallel_text(v.run.parallel).c_str(),
                    (v.run.metric + (v.run.flop_convention == "sc21_eq3" ? "(eq3)" : "")).c_str(), v.run.value,
                    v.predicted_value, 100 * v.error, v.run.in_budget ? (v.run.fit ? "yes fit" : "yes") : "no");
      log << line;
      nlohmann::json j = to_json(v.predicted);
      j["id"] = v.run.id, j["metric"] = v.run.metric, j["published"] = v.run.value;
      j["predicted"] = v.predicted_value, j["error"] = v.error, j["in_budget"] = v.run.in_budget, j["fit"] = v.run.fit;
      arr.push_back(j);
    }
    const bool ok = s.median_abs_error <= 0.10 && s.max_abs_error <= 0.20;
    std::snprintf(line, sizeof line, "# %lld rows in budget: median |error| %.1f %% (budget 10 %%), max |error| %.1f %% (budget 20 %%): %s\n",
                  (long long)s.in_budget, 100 * s.median_abs_error, 100 * s.max_abs_error, ok ? "PASS" : "OVER BUDGET");
    log << line;
    std::snprintf(line, sizeof line, "# %lld holdout rows (in budget, not used by the fit): median |error| %.1f %%, max |error| %.1f %%\n",
                  (long long)s.holdout.rows, 100 * s.holdout.median_abs, 100 * s.holdout.max_abs);
    log << line;
    if (*json) std::cout << arr.dump(2) << std::endl;
    return 0;
  };
}

}  // namespace capscale::cli
