// `capscale predict` as a function: its options (bound to the same CLI11 flags the command has),
// and the outcome (rows, how the plan was chosen, why nothing fits) before any printing. The
// command prints it; the Python module (python/) returns it, so both validate and answer alike.
#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "predict/predictor.hpp"

namespace capscale::cli {

struct PredictOptions {
  std::string model, chip, calibration;
  std::string vs;  ///< --vs: another target for the per-chip throughput ratio and its band
  int64_t gpus = 0;
  ParallelFlags par;
  bool search = false;     ///< --search: rank the plans (a list), plan flags given stay fixed
  bool no_search = false;  ///< --no-search: the plan as given, defaults for every plan flag not given
  bool json = false;
  int top = 5;
};

/// Registers predict's flags (the parallel ones generated from the field table) on `cmd`, bound to `o`.
void add_predict_flags(CLI::App* cmd, PredictOptions& o);

struct PredictOutcome {
  config::ModelConfig model;
  config::ChipProfile chip;
  std::string target;                    ///< the --chip spec as given
  std::vector<predict::SummaryRow> rows;  ///< best first (search), or the one plan; empty when nothing fits
  bool searched = false;                 ///< rows come from the plan search
  bool listed = false;                   ///< --search: the answer is the ranked list (JSON array)
  std::string how;                       ///< one line: how the plan was chosen (header)
  std::string default_batch;             ///< one line when the global batch was defaulted, else ""
  predict::SearchResult stats;           ///< the search's counts (ranked moved into rows)
  std::string no_plan;                   ///< when the search found nothing: why, and the nearest sizes that work
  bool calibrated = false;
  predict::Calibration calibration;
  /// --vs: the tokens/s-per-chip ratio to another target (its own best plan when searched, else the
  /// same plan) with the band from efficiency.sustained's cross-validation spread.
  struct Versus {
    std::string target, plan, arch;
    bool fits = false;
    double ratio = 0, low = 0, high = 0;
  };
  std::optional<Versus> vs;
  double ms = 0;
};

/// Runs predict without printing. Throws InputError for bad input, including a search that finds
/// nothing when the plan as given is itself invalid (the message then says why nothing fits).
PredictOutcome run_predict(const PredictOptions& o);

/// Prints the outcome as the command does (tables on `log`, JSON on `out` with --json).
void print_predict(const PredictOptions& o, const PredictOutcome& r, std::ostream& log, std::ostream& out);

}  // namespace capscale::cli
