// The /analysis group of a sweep file (docs/hdf5_schema.md): the tables of analysis::SweepAnalysis,
// each described once by a field table that both writes and reads it. A string that does not fit
// its column is refused (RuntimeError), never cut.
#pragma once
#include <hdf5.h>

#include <optional>

#include "analysis/sweep_analysis.hpp"

namespace capscale::results {

/// Writes /analysis (attrs, scaling, plans, cliffs, equivalence) into an open file.
void write_analysis(hid_t file, const analysis::SweepAnalysis& a);

/// Reads /analysis back; std::nullopt when the file has none (written before it existed, or a
/// sweep's .partial that has not finished).
std::optional<analysis::SweepAnalysis> read_analysis(hid_t file);

}  // namespace capscale::results
