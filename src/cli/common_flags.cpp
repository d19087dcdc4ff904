// Flags shared by run, predict and bench clock, generated from the ParallelConfig field table.
#include <algorithm>

#include "cli/commands.hpp"
#include "common/error.hpp"

namespace capscale::cli {

namespace {

// "--tp 4 (tensor_model_parallel_size; 1..1048576)": help text with the range or the allowed names.
std::string help_of(const config::Field<config::ParallelConfig>& f) {
  std::string h = f.help;
  if (f.type == config::FieldType::kInt) h += " [" + std::to_string(f.min) + ".." + std::to_string(f.max) + "]";
  if (f.type == config::FieldType::kEnum) h += ": " + config::join(f.allowed);
  if (!f.unit.empty()) h += " (" + f.unit + ")";
  return h;
}

}  // namespace

void add_parallel_flags(CLI::App* cmd, ParallelFlags& flags) {
  config::ParallelConfig* rec = &flags.config;
  for (const auto& f : config::parallel_fields()) {
    if (f.flag.empty() || !f.set) continue;
    const std::string name = "--" + f.flag;
    // Every generated flag records its field as given (predict searches the plan fields not given).
    auto* given = &flags.given;
    const auto set = [given, field = f.name, set_field = f.set](config::ParallelConfig& r, const config::FieldValue& v) {
      set_field(r, v);
      if (std::find(given->begin(), given->end(), field) == given->end()) given->push_back(field);
    };
    switch (f.type) {
      case config::FieldType::kInt:
        cmd->add_option_function<int64_t>(name, [rec, set](int64_t v) { set(*rec, v); }, help_of(f))
            ->check(CLI::Range(f.min, f.max));
        break;
      case config::FieldType::kBool:
        // CLI11 passes the count: 1 for --flag (or =true), −1 for --flag=false.
        cmd->add_flag_function(name, [rec, set, negates = f.flag_negates](int64_t n) { set(*rec, (n > 0) != negates); },
                               help_of(f));
        break;
      case config::FieldType::kEnum:
      case config::FieldType::kText: {
        auto* opt = cmd->add_option_function<std::string>(name, [rec, set](const std::string& v) { set(*rec, v); }, help_of(f));
        // Free text (a pipeline layout) is checked with the plan (config::violations); names are checked here.
        if (f.type == config::FieldType::kEnum || !f.allowed.empty()) opt->check(CLI::IsMember(f.allowed));
        break;
      }
      case config::FieldType::kReal:
        cmd->add_option_function<double>(name, [rec, set](double v) { set(*rec, v); }, help_of(f))
            ->check(CLI::Range(double(f.min), double(f.max)));
        break;
    }
  }
  cmd->add_option("--num-layers", flags.num_layers,
                  "run a proxy of the model with this many of its layers (e.g. Llama 3.1 8B layers on one GPU)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
}

std::vector<std::string> parallel_flag_names() {
  std::vector<std::string> out;
  for (const auto& f : config::parallel_fields())
    if (!f.flag.empty()) out.push_back("--" + f.flag);
  out.push_back("--num-layers");
  return out;
}

config::ModelConfig ParallelFlags::load_model(const std::string& spec) const {
  config::ModelConfig m = config::load_model(spec);
  if (num_layers == 0) return m;
  if (num_layers < 1 || num_layers > m.num_layers) {
    throw InputError("--num-layers", "", "must be in [1, " + std::to_string(m.num_layers) + "] (the layers of " + m.name +
                                             "), got " + std::to_string(num_layers));
  }
  // A proxy keeps every per-layer shape, the embedding and the head; only the depth changes
  // (as NVIDIA's DGXC "proxy" configurations do), so its per-layer timings are the full model's.
  m.name += "-" + std::to_string(num_layers) + "L";
  m.description += " (proxy: " + std::to_string(num_layers) + " of " + std::to_string(m.num_layers) + " layers)";
  m.num_layers = num_layers;
  return m;
}

}  // namespace capscale::cli
