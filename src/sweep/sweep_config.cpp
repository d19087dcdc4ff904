// Sweep file parsing and expansion; see sweep_config.hpp.
#include "sweep/sweep_config.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "config/fields.hpp"
#include "config/record_yaml.hpp"
#include "config/model_config.hpp"

namespace capscale::sweep {

using config::Fields;

std::string PlanSpec::text() const { return search ? "search" : config::key_text(parallel, config::parallel_fields()); }

const config::FieldTable<Point>& point_fields() {
  static const config::FieldTable<Point> table = [] {
    config::FieldTable<Point> t;
    auto key = [&](config::Field<Point> f, std::string text) {
      f.in_key = true, f.text = std::move(text);
      t.push_back(std::move(f));
    };
    key(config::member("model", &Point::model, "model name or file"), "");
    t.back().max_chars = 96;
    key(config::derived<Point>("target", config::FieldType::kText, "target spec with caps",
                               [](const Point& p) { return config::FieldValue(p.target.spec); }),
        "");
    t.back().max_chars = 128;
    key(config::member("gpus", &Point::gpus, "chips"), "gpus");
    key(config::member("global_batch_size", &Point::global_batch_size, "sequences per step"), "gbs");
    key(config::derived<Point>("plan", config::FieldType::kText, "'search' or the plan's own key",
                               [](const Point& p) { return config::FieldValue(p.plan.text()); }),
        "");
    return t;
  }();
  return table;
}

namespace {

std::vector<int64_t> read_gpus(const Fields& f, const std::string& where) {
  YAML::Node n = f.get_node("gpus");
  if (!n) throw InputError(where, "gpus", "is required (a list, or {from, to, factor})");
  std::vector<int64_t> out;
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) {
      YAML::Node wrap;
      wrap["v"] = n[i];
      out.push_back(Fields(wrap, where + ": gpus[" + std::to_string(i) + "]").get_int("v", 1, int64_t(1) << 24));
    }
  } else if (n.IsMap()) {
    const Fields g(n, where + ": gpus");
    const int64_t from = g.get_int("from", 1, int64_t(1) << 24), to = g.get_int("to", from, int64_t(1) << 24);
    const int64_t factor = g.get_int("factor", 2, 1024, 2);
    g.finish({"from", "to", "factor"});
    for (int64_t v = from; v <= to; v *= factor) out.push_back(v);
  } else {
    throw InputError(where, "gpus", "must be a list of chip counts or {from, to, factor}");
  }
  if (out.empty()) throw InputError(where, "gpus", "must not be empty");
  if (out.size() > 100000) throw InputError(where, "gpus", "has more than 100000 values");
  return out;
}

std::vector<config::TargetSpec> read_targets(const Fields& f, const std::string& where) {
  std::vector<config::TargetSpec> out;
  if (f.has("targets")) {
    for (const auto& t : f.get_string_list("targets")) out.push_back(config::parse_target(t, where + ": targets"));
  }
  if (f.has("cap_sweep")) {
    // {chip: h200, key: nvlink, values: [900, 800, ...]} → h200@nvlink=900, h200@nvlink=800, ...
    const Fields c = f.get_map("cap_sweep");
    const std::string chip = c.get_string("chip");
    const std::string key = c.get_enum("key", config::cap_keys());
    const std::string extra = c.get_string("with", "");
    for (const auto& v : c.get_string_list("values")) {
      std::string spec = chip + "@" + key + "=" + v + (extra.empty() ? "" : "," + extra);
      out.push_back(config::parse_target(spec, where + ": cap_sweep"));
    }
    c.finish({"chip", "key", "values", "with"});
  }
  if (out.empty()) throw InputError(where, "targets", "is required (a list of CHIP[@caps], or a cap_sweep map)");
  return out;
}

PlanSpec read_plan(const YAML::Node& n, const std::string& where) {
  PlanSpec p;
  if (n.IsScalar()) {
    if (n.Scalar() != "search") throw InputError(where, "plans", "entries must be 'search' or a map of tp, pp, ...; got '" + n.Scalar() + "'");
    p.search = true;
    return p;
  }
  const Fields f(n, where);
  auto& q = p.parallel;
  // A plan names the parallel layout; the batch, sequence and precision are the sweep's.
  const auto fields = config::select(config::parallel_fields(), {"global_batch_size", "seq_length", "precision"}, false);
  q.zero = 1;  // sweeps default to the distributed optimizer, as the search does
  const auto read = config::read_yaml(f, q, fields);
  auto given = [&](const char* k) { return std::find(read.begin(), read.end(), k) != read.end(); };
  if (!given("sequence_parallel")) q.sequence_parallel = q.tp > 1;
  if (!given("tp_comm_overlap")) q.tp_comm_overlap = q.sequence_parallel;
  f.finish(config::input_names(fields));
  return p;
}

}  // namespace

SweepConfig load_sweep(const std::string& path) {
  const Fields f(config::load_yaml_file(path), path);
  SweepConfig s;
  {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    s.text = ss.str();
  }
  s.name = f.get_string("name");
  s.description = f.get_string("description", "");
  s.models = f.get_string_list("models");
  s.targets = read_targets(f, path);
  s.gpus = read_gpus(f, path);
  if (f.has("global_batch_size") == f.has("global_batch_size_per_gpu")) {
    throw InputError(path, "global_batch_size", "give exactly one of global_batch_size, global_batch_size_per_gpu");
  }
  s.global_batch_size = f.get_int("global_batch_size", 1, int64_t(1) << 30, 0);
  s.global_batch_size_per_gpu = f.get_double("global_batch_size_per_gpu", 1e-6, 1e6, 0);
  s.min_global_batch_size = f.get_int("min_global_batch_size", 1, int64_t(1) << 30, 1);
  s.seq_length = f.get_int("seq_length", 1, int64_t(1) << 24, 0);
  s.precision = config::parse_enum<config::Precision>(f.get_enum("precision", {"bf16", "fp16", "fp8"}, "bf16"), path, "precision");
  YAML::Node plans = f.get_node("plans");
  if (!plans) {
    s.plans.push_back(PlanSpec{true, {}});
  } else if (plans.IsScalar()) {
    s.plans.push_back(read_plan(plans, path + ": plans"));
  } else if (plans.IsSequence()) {
    for (size_t i = 0; i < plans.size(); ++i) s.plans.push_back(read_plan(plans[i], path + ": plans[" + std::to_string(i) + "]"));
  } else {
    throw InputError(path, "plans", "must be 'search' or a list of plans");
  }
  if (f.has("reference")) {
    const Fields r = f.get_map("reference");
    s.reference_target = r.get_string("target");
    config::parse_target(s.reference_target, path + ": reference.target");
    s.reference_gpus = r.get_int("gpus", 1, int64_t(1) << 24);
    r.finish({"target", "gpus"});
  }
  f.finish({"name", "description", "models", "targets", "cap_sweep", "gpus", "global_batch_size", "global_batch_size_per_gpu",
            "min_global_batch_size", "seq_length", "precision", "plans", "reference"});
  const double points = double(s.models.size()) * double(s.targets.size()) * double(s.gpus.size()) * double(s.plans.size());
  if (points > 1e6) throw InputError(path, "", "expands to " + std::to_string(int64_t(points)) + " points; the limit is 1,000,000 (split it)");
  // Every model and target must exist before any point runs (a sweep must not fail half-way).
  for (const auto& m : s.models) {
    try {
      config::load_model(m);
    } catch (const InputError& e) {
      throw InputError(path, "models", std::string("names a model that cannot be loaded: ") + e.what());
    }
  }
  for (const auto& t : s.targets) {
    try {
      config::resolve_target(t);
    } catch (const InputError& e) {
      throw InputError(path, "targets", std::string("names a target that cannot be resolved: ") + e.what());
    }
  }
  return s;
}

std::vector<Point> expand(const SweepConfig& s) {
  std::vector<Point> out;
  std::set<std::string> keys;
  for (const auto& model : s.models)
    for (const auto& target : s.targets)
      for (int64_t gpus : s.gpus)
        for (const auto& plan : s.plans) {
          Point p;
          p.index = int64_t(out.size());
          p.model = model;
          p.target = target;
          p.gpus = gpus;
          p.global_batch_size = s.global_batch_size
                                    ? s.global_batch_size
                                    : std::max<int64_t>(s.min_global_batch_size, std::llround(s.global_batch_size_per_gpu * double(gpus)));
          p.plan = plan;
          p.key = config::key_text(p, point_fields(), "|");
          // Names and keys must fit the result file's columns whole: refuse now, not half-way.
          config::check_text_lengths(p, point_fields(), "sweep " + s.name);
          if (p.key.size() + 1 > kKeyChars) {
            throw InputError("sweep " + s.name, "models/targets", "give a point key of " + std::to_string(p.key.size()) +
                                                                   " characters (" + p.key + "); at most " +
                                                                   std::to_string(kKeyChars - 1) + " fit a result file");
          }
          // The key names a point in the file and on resume; two equal keys would never both finish.
          if (!keys.insert(p.key).second) {
            throw InputError("sweep " + s.name, "models/targets/gpus/plans",
                             "list the same point twice (" + p.key + "); every combination must differ");
          }
          out.push_back(std::move(p));
        }
  return out;
}

}  // namespace capscale::sweep
