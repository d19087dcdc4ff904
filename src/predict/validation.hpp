// Predictor validation against published training runs (configs/validation/published_runs.yaml,
// from shared/reference/published_runs.md). Each prediction is converted into the source's own
// metric and FLOP convention before it is compared.
#pragma once
#include <string>
#include <vector>

#include "predict/predictor.hpp"

namespace capscale::predict {

struct PublishedRun {
  std::string id, source, chip, metric, flop_convention, notes;
  config::ModelConfig model;
  config::ParallelConfig parallel;
  int64_t gpus = 0;
  double value = 0;
  bool in_budget = true;
};

struct ValidationRow {
  PublishedRun run;
  SummaryRow predicted;
  double predicted_value = 0;  ///< in the run's metric and convention
  double error = 0;            ///< (predicted − published) / published
};

struct ValidationSummary {
  std::vector<ValidationRow> rows;
  double median_abs_error = 0, max_abs_error = 0;  ///< over in_budget rows
  int64_t in_budget = 0;
};

std::vector<PublishedRun> load_published_runs(const std::string& path);
ValidationSummary validate(const std::vector<PublishedRun>& runs);

}  // namespace capscale::predict
