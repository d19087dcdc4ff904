// Writing run and sweep files; see writer.hpp and docs/hdf5_schema.md.
#include "results/writer.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include "common/error.hpp"
#include "results/record_io.hpp"
#include "sweep/sweep_config.hpp"
#include "common/time.hpp"

namespace capscale::results {
namespace fs = std::filesystem;
using h5::ColType;

namespace {

void write_meta(hid_t file, const FileMeta& meta) {
  h5::write_attr(file, "schema_version", kSchemaVersion);
  h5::write_attr(file, "capscale_version", meta.capscale_version);
  h5::write_attr(file, "git_sha", meta.git_sha);
  h5::write_attr(file, "command_line", meta.command_line);
  h5::write_attr(file, "created_utc", utc_now());
  h5::write_attr(file, "kind", meta.kind);
  h5::write_attr(file, "nvlink_convention", std::string("NVLink/scale-up GB/s figures are datasheet bidirectional totals per chip"));
}

}  // namespace

std::string group_name(const std::string& spec) {
  std::string s = spec;
  for (char& c : s)
    if (c == '/' || c == '.') c = '_';
  return s.empty() ? "_" : s;
}

namespace {
// The columns a summary row adds in front of the record: its point index, its sweep key and status.
using sweep::kKeyChars;
constexpr size_t kStatusChars = 512;
}  // namespace

h5::Table summary_table() {
  std::vector<h5::Column> c = {{"point", ColType::kI64}, {"key", ColType::kStr, kKeyChars}, {"status", ColType::kStr, kStatusChars}};
  for (auto& col : columns(predict::summary_fields())) c.push_back(col);
  return h5::Table(c);
}

h5::Table summary_table(const std::vector<std::string>& stored) {
  std::vector<h5::Column> keep;
  const h5::Table all = summary_table();
  for (const auto& c : all.columns())
    if (std::find(stored.begin(), stored.end(), c.name) != stored.end()) keep.push_back(c);
  return h5::Table(keep);
}

// One exception: a measured host row's MFU and HFU are NaN on a GPU no chip profile describes (no
// peak to divide by, cli/host_profile.hpp); NaN is "unknown" to h5py/pandas. Any other non-finite
// number, and NaN MFU in any modelled row, is a bug.
void check_finite(const predict::SummaryRow& r) {
  for (const auto& f : predict::summary_fields()) {
    const config::FieldValue v = f.get(r);
    if (const auto* d = std::get_if<double>(&v); d && std::isnan(*d) && r.source == "measured" && (f.name == "mfu" || f.name == "hfu")) {
      continue;
    }
    if (const auto* d = std::get_if<double>(&v); d && !std::isfinite(*d)) {
      throw RuntimeError("refusing to write a non-finite " + f.name + " for " + r.model + " on " + r.target +
                         " (a bug: please report the command line)");
    }
  }
}

void add_summary_row(h5::Table& t, const predict::SummaryRow& r, int64_t point, const std::string& key,
                     const std::string& status) {
  check_finite(r);
  t.add_row();
  t.set("point", point), t.set("key", key), t.set("status", status);
  set_row(t, r, predict::summary_fields());
}

predict::SummaryRow summary_row_from(const h5::Table& t, size_t i) {
  return get_row(t, i, predict::summary_fields(), "summary row " + std::to_string(i));
}

void check_output_path(const std::string& path, bool force) {
  if (path.empty()) throw InputError("--out", "", "is empty");
  std::error_code ec;
  if (fs::exists(path, ec) && !force) {
    throw InputError("--out", "", "'" + path + "' exists; pass --force to overwrite it");
  }
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (!fs::is_directory(dir, ec)) throw InputError("--out", "", "directory '" + dir.string() + "' does not exist");
  if (::access(dir.c_str(), W_OK) != 0) throw InputError("--out", "", "directory '" + dir.string() + "' is not writable");
  const auto space = fs::space(dir, ec);
  if (!ec && space.available < (1u << 20)) {
    throw InputError("--out", "", "directory '" + dir.string() + "' has less than 1 MiB free");
  }
}

void write_atomically(const std::string& path, const std::function<void(hid_t file)>& fill) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    h5::Handle f = h5::create_file(tmp);
    fill(f.id());
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw RuntimeError("cannot rename " + tmp + " to " + path + ": " + ec.message());
}

void write_run(const std::string& path, const RunData& d, bool force) {
  h5::quiet();
  check_output_path(path, force);
  write_atomically(path, [&](hid_t file) {
    write_meta(file, d.meta);
    {
      h5::Handle g = h5::create_group(file, "config");
      h5::write_attr(g.id(), "model_json", d.model_json);
      h5::write_attr(g.id(), "parallel_json", d.parallel_json);
      h5::write_attr(g.id(), "host_json", d.host_json);
    }
    h5::Table ranks({{"rank", ColType::kI64}, {"host", ColType::kStr, 256}, {"device", ColType::kStr, 256},
                     {"backend", ColType::kStr, 8}, {"gemm_dtype", ColType::kStr, 32}, {"tp", ColType::kI64},
                     {"pp", ColType::kI64}, {"dp", ColType::kI64}, {"cp", ColType::kI64}});
    for (const auto& r : d.ranks) {
      ranks.add_row();
      ranks.set("rank", r.rank), ranks.set("host", r.host), ranks.set("device", r.device), ranks.set("backend", r.backend);
      ranks.set("gemm_dtype", r.gemm_dtype), ranks.set("tp", r.tp), ranks.set("pp", r.pp), ranks.set("dp", r.dp);
      ranks.set("cp", r.cp);
    }
    h5::write_table(file, "ranks", ranks);
    h5::Table ops({{"rank", ColType::kI64}, {"step", ColType::kI64}, {"op_index", ColType::kI64}, {"kind", ColType::kStr, 16},
                   {"name", ColType::kStr, 64}, {"stream", ColType::kStr, 8}, {"m", ColType::kI64}, {"n", ColType::kI64},
                   {"k", ColType::kI64}, {"batch", ColType::kI64}, {"bytes", ColType::kI64}, {"flops", ColType::kF64},
                   {"group", ColType::kStr, 8}, {"measured_s", ColType::kF64}});
    for (const auto& o : d.ops) {
      ops.add_row();
      ops.set("rank", o.rank), ops.set("step", o.step), ops.set("op_index", o.op_index);
      ops.set("kind", plan::to_string(o.op->kind)), ops.set("name", o.op->label()), ops.set("stream", plan::to_string(o.op->stream));
      ops.set("m", o.op->m), ops.set("n", o.op->n), ops.set("k", o.op->k), ops.set("batch", o.op->batch);
      ops.set("bytes", o.op->bytes), ops.set("flops", o.op->flops);
      ops.set("group", o.op->kind == plan::OpKind::kCollective || o.op->kind == plan::OpKind::kSendRecv
                           ? parallel::to_string(o.op->group) : std::string());
      ops.set("measured_s", o.measured_s);
    }
    h5::write_table(file, "ops", ops);
    h5::Table steps({{"rank", ColType::kI64}, {"step", ColType::kI64}, {"wall_s", ColType::kF64}});
    for (const auto& s : d.steps) {
      steps.add_row();
      steps.set("rank", int64_t(s[0])), steps.set("step", int64_t(s[1])), steps.set("wall_s", s[2]);
    }
    h5::write_table(file, "steps", steps);
    {
      h5::Handle tg = h5::create_group(file, "targets");
      for (const auto& t : d.targets) {
        h5::Handle g = h5::create_group(tg.id(), group_name(t.spec));
        h5::write_attr(g.id(), "spec", t.spec);
        h5::write_attr(g.id(), "chip_json", t.chip_json);
        h5::Table tt({{"stage", ColType::kI64}, {"op_index", ColType::kI64}, {"name", ColType::kStr, 64},
                      {"duration_s", ColType::kF64}, {"source", ColType::kStr, 16}});
        for (size_t s = 0; s < t.durations.size(); ++s) {
          for (size_t i = 0; i < t.durations[s].size(); ++i) {
            tt.add_row();
            tt.set("stage", int64_t(s)), tt.set("op_index", int64_t(i));
            tt.set("name", d.plan->stages[s].ops[i].label()), tt.set("duration_s", t.durations[s][i]);
            tt.set("source", t.sources[s][i]);
          }
        }
        h5::write_table(g.id(), "ops", tt);
      }
    }
    h5::Table summary = summary_table();
    for (size_t i = 0; i < d.summary.size(); ++i) add_summary_row(summary, d.summary[i], int64_t(i), d.summary[i].target, "ok");
    h5::write_table(file, "summary", summary);
    {
      h5::Handle ds(h5::check(H5Dopen2(file, "summary", H5P_DEFAULT), "opening summary"), h5::Handle::Kind::kDataset);
      h5::write_attr(ds.id(), "engine_step_s", d.engine_step_s);
      h5::write_attr(ds.id(), "measured_step_s", d.measured_step_s);
      const double err = d.measured_step_s > 0 ? (d.engine_step_s - d.measured_step_s) / d.measured_step_s : 0.0;
      h5::write_attr(ds.id(), "engine_error", err);
      h5::write_attr(ds.id(), "engine_streams", d.engine_streams);
    }
  });
}

SweepFile::SweepFile(const std::string& path, const FileMeta& meta, const std::string& sweep_yaml, bool resume, bool force)
    : path_(path), partial_(path + ".partial") {
  h5::quiet();
  std::error_code ec;
  if (resume && fs::exists(partial_, ec)) {
    file_ = h5::open_file(partial_, true);
    if (!h5::exists(file_.id(), "summary")) throw InputError(partial_, "summary", "is missing: not a capscale sweep file");
    // Keys and columns changed with the schema: only the version that started a sweep resumes it.
    const int64_t version = h5::has_attr(file_.id(), "schema_version") ? h5::read_attr_int(file_.id(), "schema_version") : 0;
    if (version != kSchemaVersion) {
      throw InputError(partial_, "schema_version", "is " + std::to_string(version) + "; only a sweep started with schema " +
                                                       std::to_string(kSchemaVersion) + " resumes here: rerun it with --force");
    }
    h5::Table t = summary_table();
    h5::read_table(file_.id(), "summary", t);
    for (size_t i = 0; i < t.rows(); ++i) done_.insert(t.get_str(i, "key"));
    return;
  }
  if (resume && fs::exists(path_, ec)) {
    throw InputError("sweep", "", "'" + path_ + "' is already complete; nothing to resume (use --force to redo it)");
  }
  check_output_path(path_, force);
  if (fs::exists(partial_, ec) && !force) {
    throw InputError("sweep", "", "'" + partial_ + "' exists from an interrupted sweep; pass --resume to continue it or --force to restart");
  }
  file_ = h5::create_file(partial_);
  write_meta(file_.id(), meta);
  h5::Handle g = h5::create_group(file_.id(), "config");
  h5::write_attr(g.id(), "sweep_yaml", sweep_yaml);
  h5::write_table(file_.id(), "summary", summary_table(), true);
  h5::check(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL), "flushing " + partial_);
}

SweepFile::~SweepFile() = default;

void SweepFile::append(const predict::SummaryRow& row, int64_t point, const std::string& key, const std::string& status) {
  h5::Table t = summary_table();
  add_summary_row(t, row, point, key, status);
  h5::append_table(file_.id(), "summary", t);
  h5::check(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL), "flushing " + partial_);
  done_.insert(key);
}

void SweepFile::append_rows(const h5::Table& rows) {
  if (rows.rows() == 0) return;
  h5::append_table(file_.id(), "summary", rows);
  h5::check(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL), "flushing " + partial_);
  for (size_t i = 0; i < rows.rows(); ++i) done_.insert(rows.get_str(i, "key"));
}

void SweepFile::finish() {
  file_.reset();
  std::error_code ec;
  fs::rename(partial_, path_, ec);
  if (ec) throw RuntimeError("cannot rename " + partial_ + " to " + path_ + ": " + ec.message());
}

}  // namespace capscale::results
