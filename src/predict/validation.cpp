// Validation against published runs; see validation.hpp.
#include "predict/validation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "common/error.hpp"
#include "config/fields.hpp"
#include "config/record_yaml.hpp"

namespace capscale::predict {

const config::FieldTable<PublishedRun>& published_run_fields() {
  using config::member;
  using R = PublishedRun;
  static const config::FieldTable<R> table = [] {
    config::FieldTable<R> t;
    t.push_back(member("id", &R::id, "row id (shared/reference/published_runs.md)"));
    t.push_back(member("source", &R::source, "publication, with section or table"));
    t.push_back(member("chip", &R::chip, "chip profile name, with optional caps (CHIP@key=value,...)"));
    t.push_back(member("gpus", &R::gpus, "chips"));
    t.back().min = 1, t.back().max = int64_t(1) << 24;
    config::append_nested(t, &R::parallel, config::select(config::parallel_fields(), {"dp"}, false), "parallel");
    t.push_back(member("metric", &R::metric, "what the source reports"));
    t.back().allowed = {"tflops_per_gpu", "mfu", "tokens_per_s", "step_time_s"};
    t.push_back(member("value", &R::value, "the published figure, in the metric's unit"));
    t.push_back(member("flop_convention", &R::flop_convention, "how the source counts FLOPs"));
    t.back().allowed = {"sc21_eq3", "model"};
    t.push_back(member("in_budget", &R::in_budget, "counted in the error budget"));
    t.push_back(member("fit", &R::fit, "used to fit its architecture's efficiency.sustained"));
    t.push_back(member("notes", &R::notes, "readings taken where the source is ambiguous"));
    return t;
  }();
  return table;
}

config::ChipProfile run_chip(const PublishedRun& run) {
  return config::resolve_target(config::parse_target(run.chip, "chip"));
}

std::vector<PublishedRun> load_published_runs(const std::string& path) {
  const config::Fields top(config::load_yaml_file(path), path);
  YAML::Node runs = top.get_node("runs");
  top.finish({"runs"});
  if (!runs || !runs.IsSequence()) throw InputError(path, "runs", "must be a list of published runs");
  const auto& fields = published_run_fields();
  std::vector<PublishedRun> out;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string where = path + ": runs[" + std::to_string(i) + "]";
    const config::Fields f(runs[i], where);
    PublishedRun r;
    YAML::Node m = f.get_node("model");
    if (m && m.IsScalar()) r.model = config::load_model(m.Scalar());
    else if (m && m.IsMap()) r.model = config::parse_model_node(m, where + ": model");
    else throw InputError(where, "model", "must be a model name or an inline model map");
    config::read_yaml(f, r, fields,
                      {"id", "source", "chip", "gpus", "seq_length", "global_batch_size", "micro_batch_size", "tp", "pp",
                       "recompute", "precision", "metric", "value", "flop_convention"});
    if (!(r.value > 0)) throw InputError(where, "value", "must be > 0");
    // A published run states its sequence and batch (0 would mean "the model's" / "micro x dp").
    if (r.parallel.seq_length < 1) throw InputError(where, "seq_length", "must be >= 1");
    if (r.parallel.global_batch_size < 1) throw InputError(where, "global_batch_size", "must be >= 1");
    if (r.fit && !r.in_budget) throw InputError(where, "fit", "a fit row must be in budget (in_budget: true)");
    config::resolve_target(config::parse_target(r.chip, where + ": chip"));  // a bad chip or cap names the row
    auto allowed = config::input_names(fields);
    allowed.push_back("model");
    f.finish(allowed);
    r.parallel = config::resolve(r.parallel, r.model, r.gpus, where);
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

/// The runs' chips, each resolved once per top-level call (validate, a fit, the cross-validation,
/// the scaling series) and passed down: a fit predicts every row some thirty times, and resolving a
/// target reads and parses its YAML (a sixth of `validate --cv`'s time when done per prediction).
using Chips = std::map<std::string, config::ChipProfile>;

const config::ChipProfile& chip_of(Chips& chips, const PublishedRun& run) {
  auto it = chips.find(run.chip);
  if (it == chips.end()) it = chips.emplace(run.chip, run_chip(run)).first;
  return it->second;
}

ValidationRow predict_row(const PublishedRun& run, const ConstantsByArch& constants, Chips& chips) {
  config::ChipProfile chip = chip_of(chips, run);
  if (auto it = constants.find(chip.sustained_arch()); it != constants.end()) {
    chip.efficiency.sustained = it->second.sustained;
    chip.node_jitter = it->second.node_jitter;
    chip.host_step_gap_s = it->second.host_step_gap_s;
  }
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

ValidationSummary validate(const std::vector<PublishedRun>& runs, const ConstantsByArch& constants, Chips& chips) {
  ValidationSummary s;
  std::vector<double> all, holdout;
  for (const auto& run : runs) {
    s.rows.push_back(predict_row(run, constants, chips));
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
}  // namespace

ValidationSummary validate(const std::vector<PublishedRun>& runs, const ConstantsByArch& constants) {
  Chips chips;
  return validate(runs, constants, chips);
}

namespace {
std::map<std::string, std::vector<const PublishedRun*>> fit_rows_by_arch(const std::vector<PublishedRun>& runs, Chips& chips) {
  std::map<std::string, std::vector<const PublishedRun*>> by_arch;
  for (const auto& r : runs)
    if (r.fit) by_arch[chip_of(chips, r).sustained_arch()].push_back(&r);
  return by_arch;
}

double rms_log_error(const std::vector<const PublishedRun*>& rows, const ConstantsByArch& constants, Chips& chips) {
  double sum = 0;
  for (const auto* r : rows) {
    const double e = log_error(predict_row(*r, constants, chips));
    sum += e * e;
  }
  return rows.empty() ? 0.0 : std::sqrt(sum / double(rows.size()));
}

/// Golden-section search of a unimodal f on [a, b]; 22 steps shrink it to ~1e-5 of its width.
template <typename F>
double golden_section(F f, double a, double b) {
  const double g = 0.5 * (std::sqrt(5.0) - 1.0);
  double x1 = b - g * (b - a), x2 = a + g * (b - a), f1 = f(x1), f2 = f(x2);
  for (int i = 0; i < 22; ++i) {
    if (f1 < f2) b = x2, x2 = x1, f2 = f1, x1 = b - g * (b - a), f1 = f(x1);
    else a = x1, x1 = x2, f1 = f2, x2 = a + g * (b - a), f2 = f(x2);
  }
  return 0.5 * (a + b);
}

/// Each row's log error e0 at σ = 0 and no host gap, its relative wait per unit σ, w (the jitter
/// wait at σ = 1 over the step; node_jitter_wait; 0 on one node), and its relative gap per second
/// of host_step_gap_s, g (1 / the step; 0 under a full-iteration CUDA graph), on a grid of
/// efficiency.sustained. A step at (σ, gap) is the step at 0 times (1 + σ w + gap g) in every
/// metric's terms (throughput metrics are inverse in the step), so the log error at (sustained, σ,
/// gap) is e0(sustained) − log(1 + σ w(sustained) + gap g(sustained)): one prediction per row and
/// grid point serves every σ, every gap and every fold. Between grid points both are
/// interpolated linearly (the step is close to affine in 1 / sustained; on a 0.01 grid the
/// interpolation moves a log error by ~1e-5; the fit moves by ~1e-4 against a 0.004 grid).
class FitCurves {
 public:
  static constexpr double kLo = kFittedSustainedMin, kHi = kFittedSustainedMax;
  static constexpr int kPoints = 31;

  FitCurves(const std::vector<const PublishedRun*>& rows, Chips& chips) {
    for (const auto* r : rows) {
      Curve& c = curves_[r];
      c.arch = chip_of(chips, *r).sustained_arch();
      c.shipped_sustained = chip_of(chips, *r).efficiency.sustained;
      const int64_t nodes = node_count(chip_of(chips, *r), r->gpus);
      const bool gap = !r->parallel.full_iteration_cuda_graph;
      for (int i = 0; i < kPoints; ++i) {
        const ValidationRow v = predict_row(*r, {{c.arch, {at(i), 0.0, 0.0}}}, chips);
        c.e0.push_back(log_error(v));
        c.w.push_back(node_jitter_wait(v.predicted.breakdown, 1.0, nodes) / v.predicted.step_time_s);
        c.g.push_back(gap ? 1.0 / v.predicted.step_time_s : 0.0);
      }
    }
  }
  double log_error_at(const PublishedRun* r, double sustained, double sigma, double gap) const {
    const Curve& c = curves_.at(r);
    const double x = std::clamp((sustained - kLo) / (kHi - kLo) * (kPoints - 1), 0.0, double(kPoints - 1));
    const int i = std::min(int(x), kPoints - 2);
    const double f = x - i;
    return (1 - f) * c.e0[i] + f * c.e0[i + 1] -
           std::log1p(sigma * ((1 - f) * c.w[i] + f * c.w[i + 1]) + gap * ((1 - f) * c.g[i] + f * c.g[i + 1]));
  }
  const std::string& arch(const PublishedRun* r) const { return curves_.at(r).arch; }
  double shipped_sustained(const PublishedRun* r) const { return curves_.at(r).shipped_sustained; }

 private:
  struct Curve {
    std::string arch;
    double shipped_sustained = 0;
    std::vector<double> e0, w, g;
  };
  static double at(int i) { return kLo + (kHi - kLo) * i / (kPoints - 1); }
  std::map<const PublishedRun*, Curve> curves_;
};

/// The joint least-squares fit: one efficiency.sustained per architecture and one node_jitter σ for
/// all over `rows` (the fit rows; a straggler spread is the cluster's and its software's, not a
/// chip's; the Hopper rows resolve it and the Ampere ones barely do), and one host_step_gap_s for
/// all over `gap_rows` (every in-budget row). At any trial gap, σ is a golden-section search on [0,
/// kMaxFittedNodeJitter] in which each architecture's sustained is its own least squares (a
/// golden-section search on the curves' range). The gap minimises the squared error over
/// `gap_rows` with sustained and σ so refitted at it (a scan of [0, kMaxFittedHostStepGapS] in 25
/// steps, then golden-section around the best): a bilevel fit, in which the fit rows alone decide
/// sustained and σ at any gap and the gap is what every in-budget row then prefers. (Alternating the
/// two instead can stop where neither moves but neither is right: fit rows that cannot tell
/// sustained from the gap put both elsewhere.) With `pooled`, every row shares one sustained (an
/// architecture with no fit row of its own is predicted with the others' one). `fixed_gap` holds the
/// gap (σ and sustained are fitted at it); `fixed_sigma` holds σ as well (only sustained is fitted). A gap row of an architecture the fit does not
/// cover keeps its chip's sustained.
ConstantsByArch fit_rows(const std::vector<const PublishedRun*>& rows, const std::vector<const PublishedRun*>& gap_rows,
                         const FitCurves& curves, bool pooled = false, std::optional<double> fixed_gap = std::nullopt,
                         std::optional<double> fixed_sigma = std::nullopt) {
  std::map<std::string, std::vector<const PublishedRun*>> groups;
  for (const auto* r : rows) groups[pooled ? std::string() : curves.arch(r)].push_back(r);
  // The fit rows' least squares at a given gap: σ, and each architecture's sustained at that σ.
  auto fit_at = [&](double gap) {
    auto sse = [&](const std::vector<const PublishedRun*>& g, double sustained, double sigma) {
      double sum = 0;
      for (const auto* r : g) sum += std::pow(curves.log_error_at(r, sustained, sigma, gap), 2);
      return sum;
    };
    auto best_sustained = [&](const std::vector<const PublishedRun*>& g, double sigma) {
      return golden_section([&](double v) { return sse(g, v, sigma); }, FitCurves::kLo, FitCurves::kHi);
    };
    auto total = [&](double sigma) {
      double sum = 0;
      for (const auto& [arch, g] : groups) sum += sse(g, best_sustained(g, sigma), sigma);
      return sum;
    };
    double sigma = fixed_sigma ? *fixed_sigma : golden_section(total, 0.0, kMaxFittedNodeJitter);
    if (!fixed_sigma && total(0.0) <= total(sigma)) sigma = 0;  // the boundary: best without any wait
    ConstantsByArch out;
    for (const auto& [arch, g] : groups) {
      const FittedConstants c{best_sustained(g, sigma), sigma, gap};
      if (pooled) {
        for (const auto* r : g) out[curves.arch(r)] = c;
      } else {
        out[arch] = c;
      }
    }
    // A gap row of an architecture the fit does not cover keeps its chip's sustained, with the
    // shared σ and gap (and is predicted so).
    for (const auto* r : gap_rows)
      if (!out.count(curves.arch(r))) out[curves.arch(r)] = {curves.shipped_sustained(r), sigma, gap};
    return out;
  };
  if (fixed_gap) return fit_at(*fixed_gap);
  if (gap_rows.empty()) return fit_at(0.0);
  // The gap's objective: the in-budget rows at that gap, with sustained and σ refitted to it.
  auto gap_sse = [&](double gap) {
    const ConstantsByArch c = fit_at(gap);
    double sum = 0;
    for (const auto* r : gap_rows) {
      const FittedConstants& k = c.at(curves.arch(r));
      sum += std::pow(curves.log_error_at(r, k.sustained, k.node_jitter, gap), 2);
    }
    return sum;
  };
  // A coarse scan (the objective need not be unimodal over the whole range), then golden-section
  // around its best point.
  constexpr int kScan = 25;
  const double step = kMaxFittedHostStepGapS / kScan;
  int best = 0;
  double best_sse = gap_sse(0.0);
  for (int i = 1; i <= kScan; ++i)
    if (const double v = gap_sse(step * i); v < best_sse) best = i, best_sse = v;
  double gap = golden_section(gap_sse, std::max(0.0, step * (best - 1)), std::min(kMaxFittedHostStepGapS, step * (best + 1)));
  if (best_sse <= gap_sse(gap)) gap = step * best;
  return fit_at(gap);
}

std::vector<const PublishedRun*> all_fit_rows(const std::vector<PublishedRun>& runs) {
  std::vector<const PublishedRun*> rows;
  for (const auto& r : runs)
    if (r.fit) rows.push_back(&r);
  return rows;
}

std::vector<const PublishedRun*> all_budget_rows(const std::vector<PublishedRun>& runs) {
  std::vector<const PublishedRun*> rows;
  for (const auto& r : runs)
    if (r.in_budget) rows.push_back(&r);
  return rows;
}
}  // namespace

bool at_fit_bound(const FittedConstants& c) {
  // The golden-section search ends within ~1e-5 of its range's width of an edge it runs into.
  constexpr double kTol = 1e-4;
  return c.sustained <= kFittedSustainedMin + kTol || c.sustained >= kFittedSustainedMax - kTol ||
         c.node_jitter >= kMaxFittedNodeJitter - kTol || c.host_step_gap_s >= kMaxFittedHostStepGapS - kTol;
}

double fit_rms_log_error(const std::vector<PublishedRun>& runs, const std::string& arch, FittedConstants value) {
  Chips chips;
  const auto by_arch = fit_rows_by_arch(runs, chips);
  const auto it = by_arch.find(arch);
  return it == by_arch.end() ? 0.0 : rms_log_error(it->second, {{arch, value}}, chips);
}

double fit_rms_log_error(const std::vector<PublishedRun>& runs, const ConstantsByArch& constants) {
  Chips chips;
  return rms_log_error(all_fit_rows(runs), constants, chips);
}

std::vector<double> gap_rms_log_errors(const std::vector<PublishedRun>& runs, const std::vector<double>& gaps) {
  Chips chips;
  const auto rows = all_fit_rows(runs), budget = all_budget_rows(runs);
  const FitCurves curves(rows, chips);
  std::vector<double> out;
  for (const double gap : gaps) {
    ConstantsByArch constants = fit_rows(rows, {}, curves, false, gap);
    const FittedConstants shared = constants.begin()->second;
    for (const auto* r : budget) {  // an architecture no fit row covers: its chip's sustained, the shared σ and gap
      const config::ChipProfile& chip = chip_of(chips, *r);
      constants.emplace(chip.sustained_arch(), FittedConstants{chip.efficiency.sustained, shared.node_jitter, gap});
    }
    out.push_back(rms_log_error(budget, constants, chips));
  }
  return out;
}

std::vector<ConstantsFit> fit_constants(const std::vector<PublishedRun>& runs) {
  Chips chips;
  const auto rows = all_fit_rows(runs), gap_rows = all_budget_rows(runs);
  const FitCurves curves(gap_rows, chips);
  const ConstantsByArch fitted = fit_rows(rows, gap_rows, curves);
  std::vector<ConstantsFit> out;
  for (const auto& [arch, group] : fit_rows_by_arch(runs, chips)) {
    ConstantsFit f;
    f.arch = arch;
    f.rows = int64_t(group.size());
    f.value = fitted.at(arch);
    f.rms_log_error_fit = rms_log_error(group, {{arch, f.value}}, chips);
    const config::ChipProfile& chip = chip_of(chips, *group.front());
    f.shipped = {chip.efficiency.sustained, chip.node_jitter, chip.host_step_gap_s};
    f.rms_log_error_shipped = rms_log_error(group, {{arch, f.shipped}}, chips);
    out.push_back(f);
  }
  return out;
}

CrossValidation cross_validate(const std::vector<PublishedRun>& runs) {
  Chips chips;
  CrossValidation cv;
  cv.in_sample = validate(runs, {}, chips);
  // Sources in first-seen order, and the architecture whose constant each row takes (loaded once;
  // ChipProfile::sustained_arch: a B200 row takes Hopper's, as the shipped b200 profile does).
  std::vector<std::string> sources;
  std::vector<std::string> arch(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    arch[i] = chip_of(chips, runs[i]).sustained_arch();
    if (runs[i].in_budget && std::find(sources.begin(), sources.end(), runs[i].source) == sources.end())
      sources.push_back(runs[i].source);
  }
  // Every fold refits every constant without the source: sustained and σ on the other sources' fit
  // rows, the host gap on their in-budget rows (σ and the gap are shared, so leaving out a Hopper
  // source moves the Ampere fit too; a source that fits no sustained still moves the gap).
  const FitCurves curves(all_budget_rows(runs), chips);
  cv.rows.resize(runs.size());
  std::vector<bool> predicted(runs.size(), false);
  std::vector<double> all;
  for (const auto& source : sources) {
    SourceFold fold;
    fold.source = source;
    std::vector<const PublishedRun*> train, train_gap;  // fit rows and in-budget rows of the other sources
    std::set<std::string> train_archs;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs[i].source == source || !runs[i].in_budget) continue;
      train_gap.push_back(&runs[i]);
      if (runs[i].fit) train.push_back(&runs[i]), train_archs.insert(arch[i]);
    }
    if (train.empty()) {
      // No fit row anywhere else: the chip YAMLs' constants stand (fitted with this source's rows).
      for (size_t i = 0; i < runs.size(); ++i) {
        const config::ChipProfile& chip = chip_of(chips, runs[i]);
        fold.constants.emplace(arch[i], FittedConstants{chip.efficiency.sustained, chip.node_jitter, chip.host_step_gap_s});
      }
    } else {
      fold.constants = fit_rows(train, train_gap, curves);
      const FittedConstants shared = fold.constants.begin()->second;  // σ and the gap are every architecture's
      // An architecture of this source with no fit row left elsewhere takes the pooled fit.
      std::optional<FittedConstants> pooled;
      for (size_t i = 0; i < runs.size(); ++i) {
        const std::string& a = arch[i];
        if (runs[i].source != source || train_archs.count(a) ||
            std::find(fold.pooled_archs.begin(), fold.pooled_archs.end(), a) != fold.pooled_archs.end())
          continue;
        // The pooled sustained, fitted at the fold's own σ and gap (which it is predicted with).
        if (!pooled) pooled = fit_rows(train, {}, curves, true, shared.host_step_gap_s, shared.node_jitter).begin()->second;
        fold.constants[a] = *pooled;
        fold.pooled_archs.push_back(a);
      }
    }
    std::vector<double> errs;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs[i].source != source) continue;
      cv.rows[i] = predict_row(runs[i], fold.constants, chips);
      predicted[i] = true;
      if (!runs[i].in_budget) continue;
      errs.push_back(std::abs(cv.rows[i].error));
      all.push_back(errs.back());
    }
    fold.errors = stats(errs);
    cv.folds.push_back(std::move(fold));
  }
  // Rows of sources with no in-budget row were never held out: they keep the shipped constants.
  for (size_t i = 0; i < runs.size(); ++i)
    if (!predicted[i]) cv.rows[i] = cv.in_sample.rows[i];
  cv.overall = stats(all);
  return cv;
}

SustainedRanges load_sustained_ranges(const std::string& path) {
  const config::Fields top(config::load_yaml_file(path), path);
  auto pair = [&](const YAML::Node& n, const std::string& where) {
    if (!n || !n.IsSequence() || n.size() != 2) throw InputError(path, where, "must be [low, high]");
    const double lo = n[0].as<double>(), hi = n[1].as<double>();
    if (!(lo > 0 && lo <= hi && hi <= 1)) throw InputError(path, where, "needs 0 < low <= high <= 1");
    return std::make_pair(lo, hi);
  };
  SustainedRanges r;
  const YAML::Node archs = top.get_node("archs");
  if (!archs || !archs.IsMap()) throw InputError(path, "archs", "must map architecture -> [low, high]");
  for (const auto& kv : archs) r.by_arch[kv.first.as<std::string>()] = pair(kv.second, "archs." + kv.first.as<std::string>());
  r.unfitted = pair(top.get_node("unfitted"), "unfitted");
  top.finish({"archs", "unfitted"});
  return r;
}

std::vector<ScalingSeries> scaling_series(const std::vector<PublishedRun>& runs) {
  Chips chips;
  // What fixes the work per GPU and how it runs, all but the data-parallel size: a series' runs
  // share it.
  auto key = [](const PublishedRun& r) {
    config::ParallelConfig p = r.parallel;
    p.dp = 1;
    return r.source + '|' + r.model.name + '|' + r.chip + '|' + r.metric + '|' + r.flop_convention + '|' + config::parallel_text(p) +
           '|' + std::to_string(r.parallel.seq_length) + '|' + std::to_string(r.parallel.num_microbatches());
  };
  // Throughput per GPU in a run's metric: at equal work per GPU, MFU and TFLOP/s per GPU are
  // proportional to it, a step time inversely, tokens/s over the run's GPUs.
  auto per_gpu = [](const PublishedRun& r, double value) {
    if (r.metric == "step_time_s") return 1.0 / value;
    if (r.metric == "tokens_per_s") return value / double(r.gpus);
    return value;
  };
  std::vector<std::string> order;
  std::map<std::string, std::vector<const PublishedRun*>> groups;
  for (const auto& r : runs) {
    if (!r.in_budget) continue;
    const std::string k = key(r);
    if (!groups.count(k)) order.push_back(k);
    groups[k].push_back(&r);
  }
  std::vector<ScalingSeries> out;
  for (const auto& k : order) {
    auto rows = groups[k];
    const config::ChipProfile& chip = chip_of(chips, *rows.front());
    std::stable_sort(rows.begin(), rows.end(), [&](const PublishedRun* a, const PublishedRun* b) {
      return node_count(chip, a->gpus) < node_count(chip, b->gpus);
    });
    const PublishedRun &first = *rows.front(), &last = *rows.back();
    if (node_count(chip, first.gpus) == node_count(chip, last.gpus)) continue;
    ScalingSeries s;
    s.source = first.source, s.model = first.model.name, s.chip = first.chip;
    for (const auto* r : rows) s.ids.push_back(r->id);
    s.nodes_first = node_count(chip, first.gpus), s.nodes_last = node_count(chip, last.gpus);
    const double published = per_gpu(last, last.value) / per_gpu(first, first.value);
    s.published_change = published - 1;
    const ValidationRow f = predict_row(first, {}, chips), l = predict_row(last, {}, chips);
    s.predicted_change = per_gpu(last, l.predicted_value) / per_gpu(first, f.predicted_value) - 1;
    // Each step is a jitter-free part plus the wait apply_node_jitter adds, linear in σ
    // (node_jitter_wait); per-GPU throughput is 1/step, so σ solves
    // base_f + σ·slope_f = R·(base_l + σ·slope_l) for the published ratio R.
    auto parts = [&](const ValidationRow& v, int64_t nodes, double* base, double* slope) {
      Breakdown b = v.predicted.breakdown;  // the jitter stretches no host gap
      b.other_s -= host_step_gap(chip, v.run.parallel);
      *slope = node_jitter_wait(b, 1.0, nodes);
      *base = v.predicted.step_time_s - chip.node_jitter * *slope;
    };
    double base_f, slope_f, base_l, slope_l;
    parts(f, s.nodes_first, &base_f, &slope_f);
    parts(l, s.nodes_last, &base_l, &slope_l);
    const double spread = slope_l / base_l - slope_f / base_f;
    s.sigma_per_percent = spread > 0 ? 0.01 / spread : std::numeric_limits<double>::infinity();
    if (base_f / base_l <= published) {
      s.sigma = 0;  // capscale already predicts at least the published loss
    } else {
      const double sigma = (published * base_l - base_f) / (slope_f - published * slope_l);
      s.sigma = std::isfinite(sigma) && sigma > 0 && sigma <= config::ChipProfile::kMaxNodeJitter ? sigma : -1;
    }
    out.push_back(std::move(s));
  }
  return out;
}

SustainedRanges sustained_ranges(const CrossValidation& cv, const std::vector<PublishedRun>& runs) {
  Chips chips;
  SustainedRanges r;
  auto widen = [](std::pair<double, double>& p, double v) {
    if (p.first == 0 || v < p.first) p.first = v;
    if (v > p.second) p.second = v;
  };
  for (const auto& run : runs) {
    if (!run.fit) continue;
    const config::ChipProfile& chip = chip_of(chips, run);
    widen(r.by_arch[chip.sustained_arch()], chip.efficiency.sustained);
  }
  for (const auto& f : cv.folds)
    for (const auto& [arch, v] : f.constants) widen(r.by_arch[arch], v.sustained);
  for (const auto& [arch, p] : r.by_arch) widen(r.unfitted, p.first), widen(r.unfitted, p.second);
  return r;
}

RatioBand ratio_band(const config::ModelConfig& model, const config::ChipProfile& a, const config::ParallelConfig& pa,
                     const config::ChipProfile& b, const config::ParallelConfig& pb, const SustainedRanges& ranges,
                     const PredictOptions& options) {
  // The uncertain constants ("knobs"): efficiency.sustained over its CV range per architecture, and
  // each kernel fraction a chip gives a range for. A knob both chips share (same architecture and,
  // for a kernel fraction, one source: the same chip file, or the same value and range) moves both
  // chips together; any other knob moves one chip. Throughput only grows with each fraction, so a
  // one-chip knob sits at the end that lowers (band.low) or raises (band.high) the ratio; the
  // shared knobs are enumerated at both ends.
  struct Knob {
    std::string field;
    bool on_a = false, on_b = false;
    std::pair<double, double> ra{0, 0}, rb{0, 0};
  };
  std::vector<Knob> shared, own;
  if (a.arch == b.arch) shared.push_back({"sustained", true, true, ranges.of(a.arch), ranges.of(b.arch)});
  else own.push_back({"sustained", true, false, ranges.of(a.arch), {}}), own.push_back({"sustained", false, true, {}, ranges.of(b.arch)});
  std::set<std::string> fields;
  for (const auto* c : {&a, &b})
    for (const auto& kv : c->efficiency_ranges) fields.insert(kv.first);
  for (const auto& f : fields) {
    const auto ia = a.efficiency_ranges.find(f), ib = b.efficiency_ranges.find(f);
    const bool in_a = ia != a.efficiency_ranges.end(), in_b = ib != b.efficiency_ranges.end();
    auto value = [&](const config::ChipProfile& c) { return config::efficiency_value(c.efficiency, f); };
    // One source: the same chip file (a capped variant moves its ends by the cap rule, so values
    // differ but the unknown is the same), or chips of one architecture with equal value and range.
    const bool one_source = in_a && in_b &&
                            ((!a.origin.empty() && a.origin == b.origin) ||
                             (a.arch == b.arch && ia->second == ib->second && value(a) == value(b)));
    if (one_source) {
      shared.push_back({f, true, true, ia->second, ib->second});
      continue;
    }
    if (in_a) own.push_back({f, true, false, ia->second, {}});
    if (in_b) own.push_back({f, false, true, {}, ib->second});
  }
  auto per_chip = [&](config::ChipProfile chip, const config::ParallelConfig& p, const std::map<std::string, double>& set) {
    for (const auto& [f, v] : set) config::efficiency_field(chip.efficiency, f) = v;
    return predict(model, chip, p, options).row.tokens_per_s_per_chip;
  };
  RatioBand band;
  band.ratio = per_chip(a, pa, {}) / per_chip(b, pb, {});
  band.low = band.high = band.ratio;
  const size_t corners = size_t(1) << shared.size();
  for (size_t mask = 0; mask < corners; ++mask) {
    for (const bool raise : {false, true}) {
      std::map<std::string, double> sa, sb;
      for (size_t i = 0; i < shared.size(); ++i) {
        const bool hi = (mask >> i) & 1;
        sa[shared[i].field] = hi ? shared[i].ra.second : shared[i].ra.first;
        sb[shared[i].field] = hi ? shared[i].rb.second : shared[i].rb.first;
      }
      for (const auto& k : own) {
        if (k.on_a) sa[k.field] = raise ? k.ra.second : k.ra.first;
        if (k.on_b) sb[k.field] = raise ? k.rb.first : k.rb.second;
      }
      const double r = per_chip(a, pa, sa) / per_chip(b, pb, sb);
      band.low = std::min(band.low, r), band.high = std::max(band.high, r);
    }
  }
  return band;
}

}  // namespace capscale::predict
