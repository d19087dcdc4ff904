// capscale's HDF5 files (schema in docs/hdf5_schema.md, version kSchemaVersion). A run file is
// written whole to a temporary name and renamed when complete; a sweep file grows one flushed row
// per point under NAME.partial and is renamed when the sweep finishes, so an interrupted sweep keeps
// every finished point readable and can resume.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "predict/predictor.hpp"
#include "results/h5.hpp"

namespace capscale::results {

/// Version 2: /summary states the whole plan (every ParallelConfig field, the plan text), columns
/// generated from the field tables; sweep keys name every plan field. Version 1 files still read
/// (missing columns take their defaults).
constexpr int64_t kSchemaVersion = 11;
constexpr int64_t kOldestReadableSchemaVersion = 1;

struct FileMeta {
  std::string kind;          ///< "run", "sweep" or "predict"
  std::string command_line;
  std::string capscale_version;
  std::string git_sha;
};

/// The /summary table's columns (the --json fields, flattened) plus point, key and status.
h5::Table summary_table();
/// The same restricted to the columns a stored table has (older schema versions lack some).
h5::Table summary_table(const std::vector<std::string>& stored_columns);
void add_summary_row(h5::Table& t, const predict::SummaryRow& row, int64_t point, const std::string& key,
                     const std::string& status);
predict::SummaryRow summary_row_from(const h5::Table& t, size_t i);

struct RankRow {
  int64_t rank = 0;
  std::string host, device, backend, gemm_dtype;
  int64_t tp = 0, pp = 0, dp = 0, cp = 0;
};

struct OpRow {
  int64_t rank = 0, step = 0, op_index = 0;
  const plan::Op* op = nullptr;
  double measured_s = 0;
};

struct TargetOps {
  std::string spec;
  std::string chip_json;
  std::vector<std::vector<double>> durations;     ///< per stage, per op
  std::vector<std::vector<std::string>> sources;  ///< per stage, per op
};

struct RunData {
  FileMeta meta;
  std::string model_json, parallel_json, host_json;
  const plan::Plan* plan = nullptr;
  std::vector<RankRow> ranks;
  std::vector<OpRow> ops;
  std::vector<std::array<double, 3>> steps;  ///< rank, step, wall_s
  std::vector<TargetOps> targets;
  std::vector<predict::SummaryRow> summary;
  double engine_step_s = 0, measured_step_s = 0;
  /// How the host ran its streams, which the engine check replayed: "concurrent" (GPU, or CPU with
  /// --streams concurrent) or "serial" (CPU, one queue).
  std::string engine_streams = "concurrent";
};

/// Throws InputError if `path` exists and !force, or if its directory is not writable.
void check_output_path(const std::string& path, bool force);
/// Creates PATH.tmp.<pid>, lets `fill` write into it and renames it to PATH when `fill` returns; on
/// any exception the temporary file is removed and the exception propagates, so no reader ever sees
/// a half-written result.
void write_atomically(const std::string& path, const std::function<void(hid_t file)>& fill);

/// Writes a complete run file (temporary name, then rename).
void write_run(const std::string& path, const RunData& data, bool force);

/// A sweep's growing result file.
class SweepFile {
 public:
  /// Creates PATH.partial, or with `resume` reopens it and remembers the keys already done.
  SweepFile(const std::string& path, const FileMeta& meta, const std::string& sweep_yaml, bool resume, bool force);
  ~SweepFile();
  bool done(const std::string& key) const { return done_.count(key) > 0; }
  size_t done_count() const { return done_.size(); }
  /// Appends one point and flushes it to disk.
  void append(const predict::SummaryRow& row, int64_t point, const std::string& key, const std::string& status);
  /// Appends rows packed elsewhere (other ranks) and flushes; keys are read from the rows.
  void append_rows(const h5::Table& rows);
  /// The open PATH.partial, for what is written once every point is in (the /analysis tables).
  hid_t id() const { return file_.id(); }
  /// Closes and renames PATH.partial → PATH.
  void finish();

 private:
  std::string path_, partial_;
  h5::Handle file_;
  std::set<std::string> done_;
};

/// Rejects any non-finite number before it reaches a file.
void check_finite(const predict::SummaryRow& row);

/// Replaces characters HDF5 paths do not like ('/' in specs) for group names.
std::string group_name(const std::string& spec);

}  // namespace capscale::results
