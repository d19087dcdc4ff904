// Calibration files (`capscale calibrate`; schema in docs/hdf5_schema.md): HDF5, root attributes
// schema_version, kind = "calibration", arch, device, driver, created_utc, backend (+ chip,
// gemm_dtype, peak_tflops, world and provenance), tables /gemm (m, n, k, seconds, tflops,
// efficiency) and /comm (kind, bytes, ranks, seconds, busbw_gbps). h5py and pandas read them.
#pragma once
#include <cstdint>
#include <string>

#include "predict/calibration.hpp"

namespace capscale::results {

/// Calibration files have their own schema version (their layout did not change with results v2).
constexpr int64_t kCalibrationSchemaVersion = 1;

/// Writes `cal` to `path` (temporary name, then rename); an existing file needs `force`.
/// An empty created_utc is filled with the current time. Non-finite or non-positive figures are
/// refused (RuntimeError).
void write_calibration(const std::string& path, const predict::Calibration& cal, bool force);

/// Reads a calibration file; InputError naming the file for anything that is not a capscale
/// calibration of this schema version (another HDF5 file, a run or sweep result, bad values).
predict::Calibration read_calibration(const std::string& path);

}  // namespace capscale::results
