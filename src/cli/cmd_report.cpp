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
#include <optional>

#include "analysis/sweep_analysis.hpp"
#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "config/chip.hpp"
#include "config/fields.hpp"
#include "config/model_config.hpp"
#include "config/paths.hpp"
#include "predict/validation.hpp"
#include "timeline/timeline.hpp"
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
    // As emulate timed it: with the target's contention share (node_jitter's wait for the slowest
    // node and the host's step-boundary gap are step-level, not an op's time, so the trace shows
    // the ops without them).
    timeline::TimelineOptions opt;
    opt.keep_timings = true;
    opt.comm_contention = t.comm_contention;
    const auto tl = timeline::simulate(plan, t.durations, opt);
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

/// `reference:` of an old sweep file's YAML (files with /analysis carry it there).
std::optional<analysis::Reference> reference_of(const std::string& sweep_yaml) {
  if (sweep_yaml.empty()) return std::nullopt;
  const YAML::Node y = config::load_yaml_text(sweep_yaml, "the file's sweep_yaml");
  if (!y["reference"]) return std::nullopt;
  return analysis::Reference{y["reference"]["target"].as<std::string>(), y["reference"]["gpus"].as<int64_t>()};
}

/// The file's stored /analysis, or (an older file, a running sweep's .partial) the same module run
/// on its rows.
analysis::SweepAnalysis sweep_analysis(const results::ResultFile& f, std::ostream& os) {
  if (f.analysis) {
    os << "# analysis: /analysis as written by the sweep\n";
    return *f.analysis;
  }
  os << "# analysis: computed from /summary (the file has no /analysis: an older file or an unfinished sweep)\n";
  return analysis::analyze(analysis::sweep_rows(f.rows, f.statuses, f.points), reference_of(f.sweep_yaml));
}

/// One line per target, one cell per chip count; `cell` renders a point's best row.
template <class Cell>
void print_grid(std::ostream& os, const analysis::SweepAnalysis& a, const std::string& m, Cell cell) {
  char buf[64];
  for (const auto& t : a.targets) {
    std::snprintf(buf, sizeof buf, " %-21.21s", t.c_str());
    os << buf;
    for (int64_t g : a.gpus) {
      const analysis::ScalingRow* r = a.at(m, t, g);
      std::snprintf(buf, sizeof buf, " %9s", r && r->ok ? cell(*r).c_str() : "-");
      os << buf;
    }
    os << "\n";
  }
}

void print_model(std::ostream& os, const analysis::SweepAnalysis& a, const std::string& m) {
  char buf[64];
  os << "\n# " << m << ": tokens/s per chip (best plan per point; '-' = nothing fits or invalid)\n#" << std::string(21, ' ');
  for (int64_t g : a.gpus) std::snprintf(buf, sizeof buf, " %9lld", (long long)g), os << buf;
  os << "  [chips]\n";
  print_grid(os, a, m, [](const analysis::ScalingRow& r) { return fmt(r.tokens_per_s_per_chip, 0); });
  // The plan behind each cell, so a cap sweep shows where tensor parallelism stops paying.
  bool experts = false;
  for (const auto& r : a.scaling) experts |= r.model == m && r.ep > 1;
  os << "# " << m << ": best plan per point as tp/pp/cp" << (experts ? "/ep" : "") << "\n";
  print_grid(os, a, m, [experts](const analysis::ScalingRow& r) {
    return std::to_string(r.tp) + "/" + std::to_string(r.pp) + "/" + std::to_string(r.cp) + (experts ? "/" + std::to_string(r.ep) : "");
  });
  for (const auto& c : a.cliffs) {
    if (c.model != m) continue;
    os << "# cliff at " << c.gpus << " chips: " << c.target << " is the first target below " << fmt(100 * analysis::kCliffFraction, 0)
       << " % of " << c.baseline_target << " (" << fmt(100 * c.fraction, 0) << " %)\n";
  }
}

/// The /summary row behind a scaling point (nullptr when the point has no ok row).
const predict::SummaryRow* row_of(const results::ResultFile& f, const analysis::ScalingRow* s) {
  if (!s || !s->ok) return nullptr;
  for (size_t i = 0; i < f.rows.size(); ++i) {
    if (f.points[i] == s->point && f.statuses[i] == "ok" && f.rows[i].tokens_per_s_per_chip == s->tokens_per_s_per_chip) return &f.rows[i];
  }
  return nullptr;
}

/// Ratio bands of one model's rows (predict::ratio_band, as `predict --vs` prints them): both stored
/// plans re-predicted with this build's least-certain constants at the ends of their ranges.
class Bands {
 public:
  /// Empty when the model is not among this build's configs (a sweep over a file since moved).
  static std::optional<Bands> of(const std::string& model) {
    try {
      return Bands(config::load_model(model));
    } catch (const InputError&) {
      return std::nullopt;
    }
  }
  predict::RatioBand operator()(const predict::SummaryRow& a, const predict::SummaryRow& b) const {
    return predict::ratio_band(model_, chip(a.target), a.parallel, chip(b.target), b.parallel, ranges_);
  }

 private:
  explicit Bands(config::ModelConfig m)
      : model_(std::move(m)), ranges_(predict::load_sustained_ranges(config::config_dir() + "/validation/sustained_ranges.yaml")) {}
  static config::ChipProfile chip(const std::string& spec) { return config::resolve_target(config::parse_target(spec, "target")); }
  config::ModelConfig model_;
  predict::SustainedRanges ranges_;
};

/// Each target's tokens/s-per-chip ratio to the sweep's first target at the largest chip count the
/// first target has a plan for, with its band. A re-predicted ratio that differs from the file's
/// says the constants moved since the sweep.
void print_bands(std::ostream& os, const results::ResultFile& f, const analysis::SweepAnalysis& a, const std::string& m,
                 const std::optional<Bands>& bands) {
  if (a.targets.size() < 2) return;
  const std::string& base = a.targets.front();
  int64_t g = 0;
  for (int64_t x : a.gpus) {
    if (const auto* r = a.at(m, base, x); r && r->ok) g = x;
  }
  const predict::SummaryRow* rb = g ? row_of(f, a.at(m, base, g)) : nullptr;
  if (!rb) return;
  if (!bands) {
    os << "# " << m << ": no ratio bands (the model is not among this build's configs)\n";
    return;
  }
  os << "# " << m << " at " << g << " chips, tokens/s per chip vs " << base
     << " with its band (sustained's CV spread, the chips' efficiency_ranges; predict --vs):\n";
  for (const auto& t : a.targets) {
    if (t == base) continue;
    const predict::SummaryRow* rt = row_of(f, a.at(m, t, g));
    char line[200];
    if (!rt) {
      std::snprintf(line, sizeof line, "#  %-21.21s -\n", t.c_str());
      os << line;
      continue;
    }
    const auto band = (*bands)(*rt, *rb);
    const double ratio = rt->tokens_per_s_per_chip / rb->tokens_per_s_per_chip;
    std::snprintf(line, sizeof line, "#  %-21.21s %.3f (%.3f - %.3f)", t.c_str(), ratio, band.low, band.high);
    os << line;
    if (std::abs(band.ratio / ratio - 1) > 1e-3) os << " [re-predicted " << fmt(band.ratio, 3) << ": the constants changed since the sweep]";
    os << "\n";
  }
}

/// The equivalence table. Its band is first order: the chips needed scale as 1 / (the target's
/// tokens/s per chip), so each end of the per-chip ratio band (the target at the grid point that
/// reaches, against the reference) moves the estimate by the same factor.
void print_equivalence(std::ostream& os, const results::ResultFile& f, const analysis::SweepAnalysis& a,
                       const std::map<std::string, std::optional<Bands>>& bands_by_model) {
  std::string model;
  const std::optional<Bands>* bands = nullptr;
  char line[200];
  for (const auto& e : a.equivalence) {
    if (e.model != model) {
      model = e.model;
      bands = &bands_by_model.at(model);
      os << "\n# equivalence for " << e.model << ": chips needed to match " << e.reference_gpus << " x " << e.reference_target << " ("
         << fmt(e.reference_tokens_per_s, 0) << " tokens/s) at equal time-to-train, each with its own best plan\n"
         << "# target                chips [grid]  chips [interp]  ratio vs " << e.reference_target
         << "   band (interp: log-log between grid points; band: the ratio bands, first order)\n";
    }
    if (e.how == "more than") {
      std::snprintf(line, sizeof line, " %-21.21s %13s %15s %s\n", e.target.c_str(), "> grid", "-", "-");
      os << line;
      continue;
    }
    const char* mark = e.how == "at most" ? "<= " : "";
    std::snprintf(line, sizeof line, " %-21.21s %13lld %15s %6.2fx", e.target.c_str(), (long long)e.grid_gpus,
                  (mark + fmt(e.chips, 0)).c_str(), e.ratio);
    os << line;
    const predict::SummaryRow* rt = row_of(f, a.at(e.model, e.target, e.grid_gpus));
    const predict::SummaryRow* rr = row_of(f, a.at(e.model, e.reference_target, e.reference_gpus));
    if (*bands && rt && rr && e.how != "at most") {
      const auto b = (**bands)(*rt, *rr);
      std::snprintf(line, sizeof line, "   %.2f - %.2fx", e.ratio * b.ratio / b.high, e.ratio * b.ratio / b.low);
      os << line;
    }
    os << "\n";
  }
}

void report_sweep(const results::ResultFile& f, std::ostream& os) {
  const analysis::SweepAnalysis a = sweep_analysis(f, os);
  std::map<std::string, std::optional<Bands>> bands;  // one model and ranges file read per model
  for (const auto& m : a.models) {
    bands.emplace(m, Bands::of(m));
    print_model(os, a, m);
    print_bands(os, f, a, m, bands.at(m));
  }
  print_equivalence(os, f, a, bands);
  os << "# " << a.rows << " points, " << a.not_ok << " not ok (invalid, not fitting or no plan)\n";
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
