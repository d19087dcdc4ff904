// The subcommands. Each registers its flags on a CLI11 subcommand and returns the action main
// runs after parsing; actions return the process exit code and throw capscale errors.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "config/parallel_config.hpp"

namespace capscale::cli {

/// argc/argv as given, for MPI_Init and the command_line attribute.
struct Invocation {
  int* argc = nullptr;
  char*** argv = nullptr;
  std::string command_line;
};

using Action = std::function<int(const Invocation&)>;

/// The parallel/batch flags shared by run and predict (DESIGN.md CLI contract).
struct ParallelFlags {
  int64_t tp = 1, pp = 1, vpp = 1, cp = 1;
  bool sequence_parallel = false;
  int64_t micro_batch_size = 1, global_batch_size = 0, seq_length = 0;
  std::string recompute = "none", precision = "bf16";
  int zero = 0;
  bool tp_comm_overlap = false, no_flash_attention = false, grad_reduce_in_bf16 = false;
  int64_t num_layers = 0;  ///< 0: the model's; else a proxy with this many of its layers
  config::ParallelConfig to_config() const;
  /// The model named by `spec` (name, YAML or config.json), cut to --num-layers when given.
  config::ModelConfig load_model(const std::string& spec) const;
};
void add_parallel_flags(CLI::App* cmd, ParallelFlags& f);

Action add_run(CLI::App& app);
Action add_predict(CLI::App& app);
Action add_sweep(CLI::App& app);
Action add_report(CLI::App& app);
Action add_bench(CLI::App& app);
Action add_list(CLI::App& app);
Action add_check(CLI::App& app);
Action add_validate(CLI::App& app);
Action add_calibrate(CLI::App& app);

}  // namespace capscale::cli
