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
  cmd->add_option("--runs", *file, "published runs YAML");
  cmd->add_flag("--json", *json, "print JSON on stdout");
  return [file, json](const Invocation&) {
    const auto s = predict::validate(predict::load_published_runs(*file));
    std::ostream& log = *json ? std::cerr : std::cout;
    char line[400];
    std::snprintf(line, sizeof line, "#%-10s %-7s %6s %-15s %-28s %-15s %11s %11s %8s %s\n", " id", "chip", "gpus", "model",
                  "parallel", "metric", "published", "predicted", "error", "budget");
    log << line;
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& v : s.rows) {
      std::snprintf(line, sizeof line, " %-10s %-7s %6lld %-15.15s %-28.28s %-15s %11.4g %11.4g %+7.1f%% %s\n", v.run.id.c_str(),
                    v.run.chip.c_str(), (long long)v.run.gpus, v.run.model.name.c_str(), parallel_text(v.run.parallel).c_str(),
                    (v.run.metric + (v.run.flop_convention == "sc21_eq3" ? "(eq3)" : "")).c_str(), v.run.value,
                    v.predicted_value, 100 * v.error, v.run.in_budget ? "yes" : "no");
      log << line;
      nlohmann::json j = to_json(v.predicted);
      j["id"] = v.run.id, j["metric"] = v.run.metric, j["published"] = v.run.value;
      j["predicted"] = v.predicted_value, j["error"] = v.error, j["in_budget"] = v.run.in_budget;
      arr.push_back(j);
    }
    const bool ok = s.median_abs_error <= 0.10 && s.max_abs_error <= 0.20;
    std::snprintf(line, sizeof line, "# %lld rows in budget: median |error| %.1f %% (budget 10 %%), max |error| %.1f %% (budget 20 %%): %s\n",
                  (long long)s.in_budget, 100 * s.median_abs_error, 100 * s.max_abs_error, ok ? "PASS" : "OVER BUDGET");
    log << line;
    if (*json) std::cout << arr.dump(2) << std::endl;
    return 0;
  };
}

}  // namespace capscale::cli
