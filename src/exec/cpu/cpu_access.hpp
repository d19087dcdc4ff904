// What `capscale bench` needs from inside the CPU executor: its collective buffer, so that the
// direct MPI loop reduces the same memory as the executor path and the ratio measures the path's
// overhead rather than where two buffers happened to land.
#pragma once
#include <vector>

namespace capscale::exec::cpu {

class CpuExecutorAccess {
 public:
  virtual ~CpuExecutorAccess() = default;
  /// The buffer the executor's collectives run in place on (sized by prepare()).
  virtual std::vector<float>& comm_buffer() = 0;
};

}  // namespace capscale::exec::cpu
