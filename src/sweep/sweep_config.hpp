// Sweep files (configs/sweeps/*.yaml): a grid of models × targets (with caps) × chip counts ×
// plans (explicit parallel configs, or `search` for the best plan that fits). Expanded into a
// deterministic list of points, each with a key that identifies it across resumes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "config/parallel_config.hpp"

namespace capscale::sweep {

/// Longest sweep key a result file stores (its /summary "key" column holds kKeyChars − 1).
constexpr size_t kKeyChars = 320;

struct PlanSpec {
  bool search = false;
  config::ParallelConfig parallel;  ///< tp, pp, cp, vpp, mbs, recompute, zero, sp (dp from gpus)
  std::string text() const;         ///< "search" or the plan's key, e.g. "tp8-pp4-cp1-mbs1-selective-z1-sp-tpo"
};

struct SweepConfig {
  std::string name;
  std::string description;
  std::vector<std::string> models;
  std::vector<config::TargetSpec> targets;
  std::vector<int64_t> gpus;
  int64_t global_batch_size = 0;           ///< fixed, or
  double global_batch_size_per_gpu = 0;    ///< weak scaling: round(per_gpu · gpus), at least `min_global_batch_size`
  int64_t min_global_batch_size = 1;
  int64_t seq_length = 0;
  config::Precision precision = config::Precision::kBf16;
  std::vector<PlanSpec> plans;
  /// Equivalence question: how many chips of each target match `reference_gpus` of `reference_target`.
  std::string reference_target;
  int64_t reference_gpus = 0;
  std::string text;  ///< the file's text, stored in the result
};

struct Point {
  int64_t index = 0;
  std::string model;
  config::TargetSpec target;
  int64_t gpus = 0;
  int64_t global_batch_size = 0;
  PlanSpec plan;
  std::string key;
};

/// The field table of a sweep point: its key ("model|target|gpus…|gbs…|plan") is generated from it.
const config::FieldTable<Point>& point_fields();

SweepConfig load_sweep(const std::string& path);
std::vector<Point> expand(const SweepConfig& s);

}  // namespace capscale::sweep
