// The subcommands. Each registers its flags on a CLI11 subcommand and returns the action main
// runs after parsing; actions return the process exit code and throw capscale errors.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"

namespace capscale::cli {

/// argc/argv as given, for MPI_Init and the command_line attribute.
struct Invocation {
  int* argc = nullptr;
  char*** argv = nullptr;
  std::string command_line;
};

using Action = std::function<int(const Invocation&)>;

/// The parallel/batch flags shared by run, predict and bench clock (DESIGN.md CLI contract),
/// generated from config::parallel_fields(): each field with a flag binds straight into `config`.
struct ParallelFlags {
  config::ParallelConfig config;  ///< as given on the command line (dp still unresolved)
  int64_t num_layers = 0;         ///< 0: the model's; else a proxy with this many of its layers
  std::vector<std::string> given;  ///< field names of the flags given, in order (parallel_fields() names)
  const config::ParallelConfig& to_config() const { return config; }
  /// The model named by `spec` (name, YAML or config.json), cut to --num-layers when given.
  config::ModelConfig load_model(const std::string& spec) const;
};
void add_parallel_flags(CLI::App* cmd, ParallelFlags& f);
/// Every flag add_parallel_flags adds ("--tp", ..., "--num-layers").
std::vector<std::string> parallel_flag_names();

/// `run --out`: the model name and every --emulate target spec fit the run file's /summary columns
/// whole (InputError naming --model / --emulate and the limit otherwise); run and `check --gpus`
/// call it before any work.
void check_run_names_fit(const config::ModelConfig& model, const std::vector<config::TargetSpec>& targets);

/// One error, one line: control characters quoted from user input (a newline inside a YAML value)
/// escaped, so that logs, tests and the Python module's ValueError rely on a single line (output.cpp).
std::string one_line(const std::string& s);

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
