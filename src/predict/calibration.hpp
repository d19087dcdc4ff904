// Measured GEMM efficiencies and collective bus bandwidths of one device (`capscale calibrate`),
// used by the cost model in place of the chip profile's roofline fractions for targets of the same
// architecture (source `calibrated`). Pure data and lookup: the HDF5 file format lives in
// results/calibration_io.hpp.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "plan/plan.hpp"

namespace capscale::predict {

struct Calibration {
  std::string arch;         ///< chip architecture the numbers apply to ("hopper", "cpu", ...)
  std::string device;       ///< device the numbers were measured on (executor's device())
  std::string driver;       ///< driver / kernel version, or "unknown"
  std::string created_utc;  ///< when it was measured, ISO 8601 UTC
  std::string backend;      ///< "cpu" or "cuda"
  std::string chip;         ///< chip profile whose peak the efficiencies are relative to (e.g. "h100")
  std::string gemm_dtype;   ///< the GEMM data type actually run (executor's gemm_dtype())
  double peak_tflops = 0;   ///< that profile's dense peak for that dtype (TFLOP/s)
  /// That profile's NVLink (GB/s, datasheet convention: bidirectional total); 0 when unknown. The
  /// cost model moves the measured bus bandwidth to a target's own (or capped) NVLink with it.
  double nvlink_gbyte_s = 0;
  int64_t world = 1;        ///< ranks the calibration ran on
  /// Provenance (optional).
  std::string command_line, capscale_version, git_sha;

  struct Gemm {
    int64_t m = 0, n = 0, k = 0;
    double seconds = 0;
    double efficiency = 0;  ///< 2mnk / seconds / peak of the device measured on
  };
  std::vector<Gemm> gemm;

  struct Comm {
    std::string kind;  ///< all_reduce | reduce_scatter | all_gather (plan::to_string(CollKind))
    int64_t bytes = 0; ///< nccl-tests buffer size S (plan::Op::bytes convention)
    int64_t ranks = 0;
    double seconds = 0;
    double busbw_Bps = 0;  ///< nccl-tests bus bandwidth: S / seconds · bus_factor(kind, ranks)
  };
  std::vector<Comm> comm;

  /// Efficiency of the calibrated shape nearest to (m, n, k) in log space
  /// (distance² = Σ ln²(x/x_i) over m, n, k); < 0 when there are no GEMM entries.
  double gemm_efficiency(int64_t m, int64_t n, int64_t k) const;
  /// Largest calibrated GEMM efficiency (< 0 when none); a bound for the plan search.
  double max_gemm_efficiency() const;
  /// Bus bandwidth (bytes/s) for a collective of `bytes`: log-linear interpolation over the sizes
  /// of that kind (linear in ln bytes), clamped to the end points; < 0 when the kind is absent.
  /// With entries for several rank counts, those of `ranks` when present, else of the largest.
  double busbw(const std::string& kind, int64_t bytes, int64_t ranks = 0) const;
  double busbw(plan::CollKind kind, int64_t bytes, int64_t ranks = 0) const {
    return busbw(plan::to_string(kind), bytes, ranks);
  }
};

}  // namespace capscale::predict
