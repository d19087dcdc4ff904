// MPI session, communicators and job abort; see mpi_context.hpp.
#include "mpi/mpi_context.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>

#include "common/error.hpp"

namespace capscale::mpi {

void check(int code, const char* call, const char* file, int line) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  int rank = -1, inited = 0;
  MPI_Initialized(&inited);
  if (inited) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw RuntimeError(std::string("MPI error in ") + call + " at " + file + ":" + std::to_string(line) + " on rank " +
                     std::to_string(rank) + " (host " + host_name() + "): " + text);
}

Session::Session(int* argc, char*** argv) {
  int provided = 0;
  CAPSCALE_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  CAPSCALE_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  CAPSCALE_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node;
  CAPSCALE_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
}

Session::~Session() {
  // While an exception unwinds, leave MPI up: main() must abort the job (MPI_Finalize could block
  // forever waiting for ranks stuck in a collective with this one).
  if (std::uncaught_exceptions() > 0) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void abort_job(const std::string& message, int code) {
  int rank = -1, inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "capscale: rank %d on host %s: %s\n", rank, host_name().c_str(), message.c_str());
  std::fflush(stderr);
  if (inited && !finalized) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  }
  std::exit(code);
}

Communicators::Communicators(const parallel::Layout& layout, int rank) {
  for (auto g : parallel::kAllGroups) {
    const auto members = layout.members(g, rank);
    bool in = false;
    for (auto m : members) in = in || m == rank;
    const int color = in ? static_cast<int>(layout.group_id(g, rank)) : MPI_UNDEFINED;
    const int key = in ? static_cast<int>(layout.group_rank(g, rank)) : 0;
    CAPSCALE_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &comms_[static_cast<int>(g)]));
    if (comms_[static_cast<int>(g)] != MPI_COMM_NULL) MPI_Comm_set_errhandler(comms_[static_cast<int>(g)], MPI_ERRORS_RETURN);
  }
}

Communicators::~Communicators() {
  for (auto& c : comms_)
    if (c != MPI_COMM_NULL) MPI_Comm_free(&c);
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "SLURM_STEP_NUM_TASKS"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace capscale::mpi
