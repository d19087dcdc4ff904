// `capscale report FILE.h5`: tables for a run (one row per target, engine check) or a sweep
// (per-chip throughput by chip count and target, the cap at which throughput falls off, and the
// equivalence table: how many chips of each target match the reference at equal time-to-train).
// --trace writes the emulated timeline of a run as Chrome/Perfetto trace JSON.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "config/fields.hpp"
#include "predict/timeline.hpp"
#include "results/reader.hpp"

namespace capscale::cli {
namespace {

struct ReportOptions {
  std::string file, trace;
  bool json = false;
};

void write_trace(const results::ResultFile& f, const std::string& path) {
  const auto model = model_from_json(nlohmann::json::parse(f.model_json));
  const auto p = parallel_from_json(nlohmann::json::parse(f.parallel_json));
  const plan::Plan plan = plan::build_plan(model, p);
  // Chrome trace event format (also read by ui.perfetto.dev): one process per target, one thread
  // per (pipeline stage, stream), complete events ("ph":"X") in microseconds.
  nlohmann::json events = nlohmann::json::array();
  int pid = 0;
  for (const auto& t : f.targets) {
    ++pid;
    if (t.durations.size() != plan.stages.size()) continue;
    bool ok = true;
    for (size_t s = 0; s < plan.stages.size(); ++s) ok = ok && t.durations[s].size() == plan.stages[s].ops.size();
    if (!ok) continue;
    predict::TimelineOptions opt;
    opt.keep_timings = true;
    const auto tl = predict::simulate(plan, t.durations, opt);
    events.push_back({{"ph", "M"}, {"pid", pid}, {"name", "process_name"}, {"args", {{"name", t.spec}}}});
    for (size_t s = 0; s < plan.stages.size(); ++s) {
      for (int st = 0; st < plan::kNumStreams; ++st) {
        const int tid = int(s) * 10 + st;
        events.push_back({{"ph", "M"}, {"pid", pid}, {"tid", tid}, {"name", "thread_name"},
                          {"args", {{"name", "stage " + std::to_string(s) + " " + plan::to_string(plan::Stream(st))}}}});
      }
      for (size_t i = 0; i < plan.stages[s].ops.size(); ++i) {
        const auto& op = plan.stages[s].ops[i];
        const auto& tm = tl.timings[s][i];
        events.push_back({{"ph", "X"}, {"pid", pid}, {"tid", int(s) * 10 + int(op.stream)}, {"name", op.label()},
                          {"cat", plan::to_string(op.kind)}, {"ts", tm.start_s * 1e6},
                          {"dur", std::max(0.0, tm.end_s - tm.start_s) * 1e6},
                          {"args", {{"bytes", op.bytes}, {"flops", op.flops}}}});
      }
    }
  }
  std::ofstream out(path);
  if (!out) throw InputError("--trace", "", "cannot write '" + path + "'");
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump();
  std::cout << "# wrote trace " << path << " (" << events.size() << " events; open in ui.perfetto.dev)\n";
}

void report_sweep(const results::ResultFile& f, std::ostream& os) {
  // Collect ok rows per model: target × gpus → tokens/s/chip.
  std::vector<std::string> models, targets;
  std::vector<int64_t> gpus;
  std::map<std::tuple<std::string, std::string, int64_t>, const predict::SummaryRow*> best;
  size_t bad = 0;
  for (size_t i = 0; i < f.rows.size(); ++i) {
    const auto& r = f.rows[i];
    if (std::find(models.begin(), models.end(), r.model) == models.end()) models.push_back(r.model);
    if (std::find(targets.begin(), targets.end(), r.target) == targets.end()) targets.push_back(r.target);
    if (std::find(gpus.begin(), gpus.end(), r.gpus) == gpus.end()) gpus.push_back(r.gpus);
    if (f.statuses[i] != "ok") {
      ++bad;
      continue;
    }
    auto& slot = best[{r.model, r.target, r.gpus}];
    if (!slot || r.tokens_per_s_per_chip > slot->tokens_per_s_per_chip) slot = &r;
  }
  std::sort(gpus.begin(), gpus.end());
  char cell[64];
  for (const auto& m : models) {
    os << "\n# " << m << ": tokens/s per chip (best plan per point; '-' = nothing fits or invalid)\n#" << std::string(21, ' ');
    for (int64_t g : gpus) std::snprintf(cell, sizeof cell, " %9lld", (long long)g), os << cell;
    os << "  [chips]\n";
    for (const auto& t : targets) {
      std::snprintf(cell, sizeof cell, " %-21.21s", t.c_str());
      os << cell;
      for (int64_t g : gpus) {
        auto it = best.find({m, t, g});
        if (it == best.end()) std::snprintf(cell, sizeof cell, " %9s", "-");
        else std::snprintf(cell, sizeof cell, " %9.0f", it->second->tokens_per_s_per_chip);
        os << cell;
      }
      os << "\n";
    }
    // The plan behind each cell (tp/pp/cp), so a cap sweep shows where tensor parallelism stops paying.
    os << "# " << m << ": best plan per point as tp/pp/cp\n";
    for (const auto& t : targets) {
      std::snprintf(cell, sizeof cell, " %-21.21s", t.c_str());
      os << cell;
      for (int64_t g : gpus) {
        auto it = best.find({m, t, g});
        if (it == best.end()) {
          std::snprintf(cell, sizeof cell, " %9s", "-");
        } else {
          const auto& p = it->second->parallel;
          std::snprintf(cell, sizeof cell, " %9s",
                        (std::to_string(p.tp) + "/" + std::to_string(p.pp) + "/" + std::to_string(p.cp)).c_str());
        }
        os << cell;
      }
      os << "\n";
    }
    // Cliff: the first target (in sweep order) whose throughput falls below 90 % of the first's.
    for (int64_t g : gpus) {
      auto first = best.find({m, targets.front(), g});
      if (first == best.end() || targets.size() < 3) continue;
      for (const auto& t : targets) {
        auto it = best.find({m, t, g});
        if (it != best.end() && it->second->tokens_per_s_per_chip < 0.9 * first->second->tokens_per_s_per_chip) {
          os << "# cliff at " << g << " chips: " << t << " is the first target below 90 % of " << targets.front() << " ("
             << fmt(100 * it->second->tokens_per_s_per_chip / first->second->tokens_per_s_per_chip, 0) << " %)\n";
          break;
        }
      }
    }
  }
  // Equivalence: smallest chip count of each target whose tokens/s (whole cluster) reaches the
  // reference's; interpolated log-linearly between grid points for the fractional estimate.
  if (!f.sweep_yaml.empty()) {
    const YAML::Node y = YAML::Load(f.sweep_yaml);
    if (y["reference"]) {
      const std::string ref_t = y["reference"]["target"].as<std::string>();
      const int64_t ref_g = y["reference"]["gpus"].as<int64_t>();
      for (const auto& m : models) {
        auto ref = best.find({m, ref_t, ref_g});
        if (ref == best.end()) continue;
        const double need = ref->second->tokens_per_s;
        os << "\n# equivalence for " << m << ": chips needed to match " << ref_g << " x " << ref_t << " ("
           << fmt(need, 0) << " tokens/s) at equal time-to-train, each with its own best plan\n";
        os << "# target                chips [grid]  chips [interp]  ratio vs " << ref_t << "\n";
        for (const auto& t : targets) {
          double prev_g = 0, prev_v = 0, interp = 0;
          int64_t grid = 0;
          for (int64_t g : gpus) {
            auto it = best.find({m, t, g});
            if (it == best.end()) continue;
            const double v = it->second->tokens_per_s;
            if (v >= need) {
              grid = g;
              interp = prev_v > 0 ? std::exp(std::log(prev_g) + (std::log(need) - std::log(prev_v)) /
                                                                     (std::log(v) - std::log(prev_v)) * (std::log(double(g)) - std::log(prev_g)))
                                  : double(g);
              break;
            }
            prev_g = double(g), prev_v = v;
          }
          if (grid == 0) std::snprintf(cell, sizeof cell, " %-21.21s %13s %15s %s\n", t.c_str(), "> grid", "-", "-");
          else std::snprintf(cell, sizeof cell, " %-21.21s %13lld %15.0f %6.2fx\n", t.c_str(), (long long)grid, interp, interp / double(ref_g));
          os << cell;
        }
      }
    }
  }
  os << "# " << f.rows.size() << " points, " << bad << " not ok (invalid, not fitting or no plan)\n";
}

int report(const ReportOptions& o) {
  const auto f = results::read_result(o.file);
  std::ostream& os = o.json ? std::cerr : std::cout;
  os << "# " << o.file << ": capscale " << f.kind << " file, schema " << f.schema_version << ", created " << f.created_utc
     << " (git " << f.git_sha << ")\n# command: " << f.command_line << "\n";
  if (f.kind == "run") {
    print_summary_table(os, f.rows);
    char line[256];
    std::snprintf(line, sizeof line, "# engine check: timeline %.4g s vs measured %.4g s: %+.1f %% (budget 5 %%) %s; %lld ranks\n",
                  f.engine_step_s, f.measured_step_s, 100 * f.engine_error, std::abs(f.engine_error) <= 0.05 ? "PASS" : "OVER BUDGET",
                  (long long)f.ranks);
    os << line;
  } else {
    report_sweep(f, os);
  }
  if (!o.trace.empty()) {
    if (f.kind != "run") throw InputError("--trace", "", "needs a run file (capscale run --emulate ... --out FILE.h5); " + o.file + " is a " + f.kind + " file");
    write_trace(f, o.trace);
  }
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (size_t i = 0; i < f.rows.size(); ++i) {
      auto j = to_json(f.rows[i]);
      j["status"] = f.statuses[i];
      arr.push_back(j);
    }
    std::cout << arr.dump(2) << std::endl;
  }
  return 0;
}

}  // namespace

Action add_report(CLI::App& app) {
  auto* cmd = app.add_subcommand("report", "Tables (and a Perfetto trace) from a run or sweep HDF5 file");
  auto o = std::make_shared<ReportOptions>();
  cmd->add_option("file", o->file, "capscale HDF5 file")->required();
  cmd->add_option("--trace", o->trace, "write the emulated timeline as Chrome/Perfetto trace JSON");
  cmd->add_flag("--json", o->json, "print rows as JSON on stdout");
  return [o](const Invocation&) { return report(*o); };
}

}  // namespace capscale::cli
