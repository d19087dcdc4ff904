// A sweep computed in this process, without MPI or a result file: the rows `capscale sweep` would
// write to /summary, in grid order. The Python module's sweep() returns them as a DataFrame.
#pragma once
#include <string>
#include <vector>

#include "predict/predictor.hpp"

namespace capscale::cli {

/// One point of a sweep: its row and the /summary columns point, key and status.
struct SweepRow {
  predict::SummaryRow row;
  int64_t point = 0;
  std::string key;
  std::string status;  ///< "ok", "does not fit", "no plan fits (...)" or "invalid: ..."
};

/// Every point of the sweep file `path`, validated as `capscale sweep` validates it (InputError).
std::vector<SweepRow> sweep_rows(const std::string& path);

}  // namespace capscale::cli
