// Sweep file parsing and expansion; see sweep_config.hpp.
#include "sweep/sweep_config.hpp"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "config/fields.hpp"
#include "config/model_config.hpp"

namespace capscale::sweep {

using config::Fields;

std::string PlanSpec::text() const {
  if (search) return "search";
  const auto& p = parallel;
  return "tp" + std::to_string(p.tp) + "-pp" + std::to_string(p.pp) + "-cp" + std::to_string(p.cp) + "-vpp" +
         std::to_string(p.vpp) + "-mbs" + std::to_string(p.micro_batch_size) + "-" + config::to_string(p.recompute) +
         "-z" + std::to_string(p.zero) + (p.sequence_parallel ? "-sp" : "") +
         // Suffixes only where a plan departs from the defaults, so existing keys stay valid.
         (p.tp_comm_overlap != p.sequence_parallel ? (p.tp_comm_overlap ? "-tpo" : "-notpo") : "") +
         (p.grad_reduce_in_bf16 ? "-gbf16" : "");
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
  q.tp = f.get_int("tp", 1, 1 << 20, 1);
  q.pp = f.get_int("pp", 1, 1 << 20, 1);
  q.cp = f.get_int("cp", 1, 1 << 20, 1);
  q.vpp = f.get_int("vpp", 1, 1 << 10, 1);
  q.micro_batch_size = f.get_int("micro_batch_size", 1, 1 << 20, 1);
  q.recompute = config::parse_recompute(f.get_enum("recompute", {"none", "selective", "full"}, "none"), where);
  q.zero = int(f.get_int("zero", 0, 1, 1));
  q.sequence_parallel = f.get_bool("sequence_parallel", q.tp > 1);
  q.tp_comm_overlap = f.get_bool("tp_comm_overlap", q.sequence_parallel);
  q.grad_reduce_in_bf16 = f.get_bool("grad_reduce_in_bf16", false);
  f.finish({"tp", "pp", "cp", "vpp", "micro_batch_size", "recompute", "zero", "sequence_parallel", "tp_comm_overlap",
            "grad_reduce_in_bf16"});
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
  s.precision = config::parse_precision(f.get_enum("precision", {"bf16", "fp16", "fp8"}, "bf16"), path);
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
          p.key = model + "|" + target.spec + "|" + std::to_string(gpus) + "|" + std::to_string(p.global_batch_size) + "|" + plan.text();
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
