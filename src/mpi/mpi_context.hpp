// The MPI layer: the only code that calls MPI_Init. An RAII session, one communicator per process
// group of the layout, and a check macro that names rank and host (nccl-tests' MPICHECK idea).
#pragma once
#include <mpi.h>

#include <array>
#include <string>

#include "parallel/layout.hpp"

namespace capscale::mpi {

/// Throws RuntimeError "MPI error in <call> at file:line on rank R (host H): <MPI's text>".
void check(int code, const char* call, const char* file, int line);
#define CAPSCALE_MPI_CHECK(call) ::capscale::mpi::check((call), #call, __FILE__, __LINE__)

/// MPI_Init_thread/MPI_Finalize for the process; errors return codes (MPI_ERRORS_RETURN) so the
/// check macro can report them.
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Ranks on this node and this rank's index among them (MPI_COMM_TYPE_SHARED split).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

/// Prints "capscale: rank R on host H: message" to stderr and aborts every rank with `code`.
[[noreturn]] void abort_job(const std::string& message, int code);

/// One communicator per group kind of the layout, built with MPI_Comm_split from the world.
class Communicators {
 public:
  Communicators(const parallel::Layout& layout, int world_rank);
  ~Communicators();
  Communicators(const Communicators&) = delete;
  Communicators& operator=(const Communicators&) = delete;
  /// MPI_COMM_NULL for the embedding group on middle pipeline stages.
  MPI_Comm get(parallel::Group g) const { return comms_[static_cast<int>(g)]; }

 private:
  std::array<MPI_Comm, parallel::kNumGroups> comms_{};
};

/// True when this process was started by a launcher with more than one rank, or by any launcher.
bool launched_by_mpi();

}  // namespace capscale::mpi
