// Reading capscale HDF5 files back (report, resume, tests). Anything that is not a complete
// capscale file of a known schema version is an InputError naming the file and the problem.
#pragma once
#include <hdf5.h>

#include <optional>
#include <string>
#include <vector>

#include "analysis/sweep_analysis.hpp"
#include "predict/predictor.hpp"

namespace capscale::results {

struct TargetDurations {
  std::string spec;
  std::vector<std::vector<double>> durations;  ///< per stage, per op
  /// The target's ChipProfile::comm_contention() from its stored chip_json (0 when the file's
  /// chip has no sm_count / comm_ctas): the timeline option the emulated step was timed with.
  double comm_contention = 0;
};

struct ResultFile {
  std::string path;
  std::string kind;  ///< run | sweep | predict
  int64_t schema_version = 0;
  std::string command_line, created_utc, git_sha;
  std::vector<predict::SummaryRow> rows;
  std::vector<std::string> keys, statuses;
  std::vector<int64_t> points;            ///< each row's `point` (its index in the sweep's grid)
  std::string model_json, parallel_json;  ///< run files
  std::string sweep_yaml;                 ///< sweep files
  std::optional<analysis::SweepAnalysis> analysis;  ///< sweep files' /analysis, when written
  std::vector<TargetDurations> targets;   ///< run files
  double engine_step_s = 0, measured_step_s = 0, engine_error = 0;
  int64_t ranks = 0, op_rows = 0;
};

/// The /summary table of an open file, column by column.
struct Summary {
  std::vector<predict::SummaryRow> rows;
  std::vector<std::string> keys, statuses;
  std::vector<int64_t> points;
};
Summary read_summary(hid_t file);

/// Opens and validates a result file (a finished one, or a sweep's .partial).
ResultFile read_result(const std::string& path);

}  // namespace capscale::results
