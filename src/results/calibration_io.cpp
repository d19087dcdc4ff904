// Calibration files; see calibration_io.hpp.
#include "results/calibration_io.hpp"

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "common/error.hpp"
#include "common/time.hpp"
#include "config/chip.hpp"
#include "results/h5.hpp"
#include "results/writer.hpp"

namespace capscale::results {
namespace fs = std::filesystem;
using h5::ColType;

namespace {

constexpr size_t kKindLen = 16;

h5::Table gemm_table() {
  return h5::Table({{"m", ColType::kI64}, {"n", ColType::kI64}, {"k", ColType::kI64}, {"seconds", ColType::kF64},
                    {"tflops", ColType::kF64}, {"efficiency", ColType::kF64}});
}

h5::Table comm_table() {
  return h5::Table({{"kind", ColType::kStr, kKindLen}, {"bytes", ColType::kI64}, {"ranks", ColType::kI64},
                    {"seconds", ColType::kF64}, {"busbw_gbps", ColType::kF64}});
}

bool known_kind(const std::string& k) { return k == "all_reduce" || k == "reduce_scatter" || k == "all_gather"; }

bool positive(double v) { return std::isfinite(v) && v > 0; }

std::string attr_or(hid_t f, const char* name, const std::string& fallback) {
  return h5::has_attr(f, name) ? h5::read_attr_string(f, name) : fallback;
}

}  // namespace

void write_calibration(const std::string& path, const predict::Calibration& cal, bool force) {
  h5::quiet();
  check_output_path(path, force);
  if (cal.arch.empty()) throw RuntimeError("refusing to write a calibration without an architecture to " + path);
  for (const auto& g : cal.gemm) {
    if (g.m < 1 || g.n < 1 || g.k < 1 || !positive(g.seconds) || !positive(g.efficiency)) {
      throw RuntimeError("refusing to write a bad GEMM calibration entry (" + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" +
                         std::to_string(g.k) + ", " + std::to_string(g.seconds) + " s) to " + path);
    }
  }
  for (const auto& c : cal.comm) {
    if (!known_kind(c.kind) || c.bytes < 1 || c.ranks < 2 || !positive(c.seconds) || !positive(c.busbw_Bps)) {
      throw RuntimeError("refusing to write a bad collective calibration entry (" + c.kind + ", " + std::to_string(c.bytes) +
                         " B) to " + path);
    }
  }
  write_atomically(path, [&](hid_t id) {
    h5::write_attr(id, "schema_version", kCalibrationSchemaVersion);
    h5::write_attr(id, "kind", std::string("calibration"));
    h5::write_attr(id, "arch", cal.arch);
    h5::write_attr(id, "device", cal.device);
    h5::write_attr(id, "driver", cal.driver.empty() ? std::string("unknown") : cal.driver);
    h5::write_attr(id, "created_utc", cal.created_utc.empty() ? utc_now() : cal.created_utc);
    h5::write_attr(id, "backend", cal.backend);
    h5::write_attr(id, "chip", cal.chip);
    h5::write_attr(id, "gemm_dtype", cal.gemm_dtype);
    h5::write_attr(id, "peak_tflops", cal.peak_tflops);
    h5::write_attr(id, "nvlink_gbyte_s", cal.nvlink_gbyte_s);
    h5::write_attr(id, "world", cal.world);
    h5::write_attr(id, "command_line", cal.command_line);
    h5::write_attr(id, "capscale_version", cal.capscale_version);
    h5::write_attr(id, "git_sha", cal.git_sha);
    h5::write_attr(id, "efficiency_convention",
                   std::string("efficiency = 2mnk / seconds / peak_tflops of chip for gemm_dtype; busbw as nccl-tests "
                               "(all_reduce S/t*2(n-1)/n, others S/t*(n-1)/n, S = bytes)"));
    h5::Table g = gemm_table();
    for (const auto& e : cal.gemm) {
      g.add_row();
      g.set("m", e.m), g.set("n", e.n), g.set("k", e.k), g.set("seconds", e.seconds);
      g.set("tflops", 2.0 * double(e.m) * double(e.n) * double(e.k) / e.seconds / 1e12);
      g.set("efficiency", e.efficiency);
    }
    h5::write_table(id, "gemm", g);
    h5::Table c = comm_table();
    for (const auto& e : cal.comm) {
      c.add_row();
      c.set("kind", e.kind), c.set("bytes", e.bytes), c.set("ranks", e.ranks), c.set("seconds", e.seconds);
      c.set("busbw_gbps", e.busbw_Bps / 1e9);
    }
    h5::write_table(id, "comm", c);
  });
}

predict::Calibration read_calibration(const std::string& path) {
  h5::quiet();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError(path, "", "does not exist or is not a file");
  if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(path, "", "is not an HDF5 file (or is truncated)");
  predict::Calibration cal;
  try {
    h5::Handle f = h5::open_file(path, false);
    const hid_t id = f.id();
    if (!h5::has_attr(id, "schema_version") || !h5::has_attr(id, "kind")) {
      throw InputError(path, "kind", "is missing: not a capscale calibration file (make one with `capscale calibrate`)");
    }
    const std::string kind = h5::read_attr_string(id, "kind");
    if (kind != "calibration") {
      throw InputError(path, "kind", "is '" + kind + "', not 'calibration': a capscale " + kind +
                                         " result, not a calibration file (make one with `capscale calibrate`)");
    }
    const int64_t version = h5::read_attr_int(id, "schema_version");
    if (version != kCalibrationSchemaVersion) {
      throw InputError(path, "schema_version", "is " + std::to_string(version) + "; this capscale reads version " +
                                                   std::to_string(kCalibrationSchemaVersion));
    }
    cal.arch = h5::read_attr_string(id, "arch");
    if (cal.arch.empty()) throw InputError(path, "arch", "is empty");
    cal.device = attr_or(id, "device", "");
    cal.driver = attr_or(id, "driver", "unknown");
    cal.created_utc = attr_or(id, "created_utc", "");
    cal.backend = attr_or(id, "backend", "");
    cal.chip = attr_or(id, "chip", "");
    cal.gemm_dtype = attr_or(id, "gemm_dtype", "");
    cal.command_line = attr_or(id, "command_line", "");
    cal.capscale_version = attr_or(id, "capscale_version", "");
    cal.git_sha = attr_or(id, "git_sha", "");
    if (h5::has_attr(id, "peak_tflops")) cal.peak_tflops = h5::read_attr_double(id, "peak_tflops");
    if (h5::has_attr(id, "world")) cal.world = h5::read_attr_int(id, "world");
    // The calibrating chip's NVLink moves measured bus bandwidths to a target's (capped) link.
    // Files written before it was stored take it from the chip profile they name, when known.
    if (h5::has_attr(id, "nvlink_gbyte_s")) {
      cal.nvlink_gbyte_s = h5::read_attr_double(id, "nvlink_gbyte_s");
    } else if (!cal.chip.empty()) {
      try {
        cal.nvlink_gbyte_s = config::load_chip(cal.chip).nvlink_gbyte_s;
      } catch (const InputError&) {
        cal.nvlink_gbyte_s = 0;  // unknown chip: bus bandwidths are used as measured
      }
    }
    if (!h5::exists(id, "gemm") || !h5::exists(id, "comm")) throw InputError(path, "gemm", "or 'comm' table is missing (truncated file?)");
    h5::Table g = gemm_table();
    h5::read_table(id, "gemm", g);
    for (size_t i = 0; i < g.rows(); ++i) {
      predict::Calibration::Gemm e;
      e.m = g.get_i64(i, "m"), e.n = g.get_i64(i, "n"), e.k = g.get_i64(i, "k");
      e.seconds = g.get_f64(i, "seconds"), e.efficiency = g.get_f64(i, "efficiency");
      if (e.m < 1 || e.n < 1 || e.k < 1 || !positive(e.seconds) || !positive(e.efficiency)) {
        throw InputError(path, "gemm", "row " + std::to_string(i) + " needs m, n, k >= 1 and finite seconds, efficiency > 0");
      }
      cal.gemm.push_back(e);
    }
    h5::Table c = comm_table();
    h5::read_table(id, "comm", c);
    for (size_t i = 0; i < c.rows(); ++i) {
      predict::Calibration::Comm e;
      e.kind = c.get_str(i, "kind"), e.bytes = c.get_i64(i, "bytes"), e.ranks = c.get_i64(i, "ranks");
      e.seconds = c.get_f64(i, "seconds"), e.busbw_Bps = c.get_f64(i, "busbw_gbps") * 1e9;
      if (!known_kind(e.kind)) {
        throw InputError(path, "comm", "row " + std::to_string(i) + " has kind '" + e.kind +
                                           "'; allowed: all_reduce, reduce_scatter, all_gather");
      }
      if (e.bytes < 1 || e.ranks < 2 || !positive(e.seconds) || !positive(e.busbw_Bps)) {
        throw InputError(path, "comm", "row " + std::to_string(i) + " needs bytes >= 1, ranks >= 2 and finite seconds, busbw > 0");
      }
      cal.comm.push_back(e);
    }
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(path, "", std::string("is not a readable capscale calibration file (truncated or corrupt?): ") + e.what());
  }
  return cal;
}

}  // namespace capscale::results
