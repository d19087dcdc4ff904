// Reading result files; see reader.hpp.
#include "results/reader.hpp"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "config/chip.hpp"
#include "results/analysis_io.hpp"
#include "results/h5.hpp"
#include "results/writer.hpp"

namespace capscale::results {

Summary read_summary(hid_t file) {
  // Older schema versions lack some columns: read those the file has; the rest keep defaults, but
  // for async_tp_comm (schema 6): a file without it modelled the TP communication of a
  // column-parallel backward in series.
  const auto columns = h5::table_columns(file, "summary");
  const bool serial_tp = std::find(columns.begin(), columns.end(), "async_tp_comm") == columns.end();
  h5::Table t = summary_table(columns);
  h5::read_table(file, "summary", t);
  Summary s;
  for (size_t i = 0; i < t.rows(); ++i) {
    s.rows.push_back(summary_row_from(t, i));
    if (serial_tp) s.rows.back().parallel.async_tp_comm = false;
    s.keys.push_back(t.get_str(i, "key"));
    s.statuses.push_back(t.get_str(i, "status"));
    s.points.push_back(t.get_i64(i, "point"));
  }
  return s;
}

ResultFile read_result(const std::string& path) {
  h5::quiet();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw InputError(path, "", "does not exist or is not a file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(path, "", "is not an HDF5 file (or is truncated)");
  ResultFile r;
  r.path = path;
  try {
    h5::Handle f = h5::open_file(path, false);
    if (!h5::has_attr(f.id(), "schema_version")) {
      throw InputError(path, "schema_version", "is missing: not a capscale result file");
    }
    r.schema_version = h5::read_attr_int(f.id(), "schema_version");
    if (r.schema_version < kOldestReadableSchemaVersion || r.schema_version > kSchemaVersion) {
      throw InputError(path, "schema_version", "is " + std::to_string(r.schema_version) + "; this capscale reads versions " +
                                                   std::to_string(kOldestReadableSchemaVersion) + " to " +
                                                   std::to_string(kSchemaVersion));
    }
    r.kind = h5::read_attr_string(f.id(), "kind");
    if (r.kind == "calibration") {
      throw InputError(path, "kind", "is 'calibration': a calibration file, not a run or sweep result (use it with --calibration)");
    }
    r.command_line = h5::read_attr_string(f.id(), "command_line");
    r.created_utc = h5::read_attr_string(f.id(), "created_utc");
    r.git_sha = h5::read_attr_string(f.id(), "git_sha");
    if (!h5::exists(f.id(), "summary")) throw InputError(path, "summary", "table is missing (truncated file?)");
    Summary sum = read_summary(f.id());
    r.rows = std::move(sum.rows), r.keys = std::move(sum.keys), r.statuses = std::move(sum.statuses);
    r.points = std::move(sum.points);
    if (r.kind == "sweep") r.analysis = read_analysis(f.id());
    if (r.kind == "sweep" && h5::exists(f.id(), "config")) {
      h5::Handle cfg = h5::open_group(f.id(), "config");
      if (h5::has_attr(cfg.id(), "sweep_yaml")) r.sweep_yaml = h5::read_attr_string(cfg.id(), "sweep_yaml");
    }
    if (r.kind == "run") {
      h5::Handle cfg = h5::open_group(f.id(), "config");
      r.model_json = h5::read_attr_string(cfg.id(), "model_json");
      r.parallel_json = h5::read_attr_string(cfg.id(), "parallel_json");
      if (r.schema_version < 6) {  // before async_tp_comm: the plan ran it in series (read_summary)
        if (auto j = nlohmann::json::parse(r.parallel_json, nullptr, false); j.is_object() && !j.contains("async_tp_comm")) {
          j["async_tp_comm"] = false;
          r.parallel_json = j.dump();
        }
      }
      const h5::Handle ds = h5::open_dataset(f.id(), "summary");
      r.engine_step_s = h5::read_attr_double(ds.id(), "engine_step_s");
      r.measured_step_s = h5::read_attr_double(ds.id(), "measured_step_s");
      r.engine_error = r.measured_step_s > 0 ? (r.engine_step_s - r.measured_step_s) / r.measured_step_s : 0;
      h5::Table ranks({{"rank", h5::ColType::kI64}});
      h5::read_table(f.id(), "ranks", ranks);
      r.ranks = int64_t(ranks.rows());
      h5::Handle tg = h5::open_group(f.id(), "targets");
      for (size_t i = 0; i < r.rows.size(); ++i) {
        const std::string g = group_name(r.rows[i].target);
        if (!h5::exists(tg.id(), g)) continue;
        h5::Handle grp = h5::open_group(tg.id(), g);
        h5::Table ops({{"stage", h5::ColType::kI64}, {"op_index", h5::ColType::kI64}, {"duration_s", h5::ColType::kF64}});
        h5::read_table(grp.id(), "ops", ops);
        TargetDurations td;
        td.spec = r.rows[i].target;
        if (h5::has_attr(grp.id(), "chip_json")) {
          const auto chip = nlohmann::json::parse(h5::read_attr_string(grp.id(), "chip_json"), nullptr, false);
          if (chip.is_object()) {
            config::ChipProfile stored;
            stored.sm_count = chip.value("sm_count", int64_t(0)), stored.comm_ctas = chip.value("comm_ctas", int64_t(0));
            td.comm_contention = stored.comm_contention();
          }
        }
        for (size_t k = 0; k < ops.rows(); ++k) {
          const auto s = size_t(ops.get_i64(k, "stage"));
          if (td.durations.size() <= s) td.durations.resize(s + 1);
          td.durations[s].push_back(ops.get_f64(k, "duration_s"));
        }
        r.targets.push_back(std::move(td));
      }
    }
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(path, "", std::string("is not a readable capscale result (truncated or corrupt?): ") + e.what());
  }
  return r;
}

}  // namespace capscale::results
