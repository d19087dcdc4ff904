// NCCL communicators and the one watchdog that waits on them (nccl-tests' testStreamSynchronize):
// every wait polls ncclCommGetAsyncError on each communicator, gives up after a timeout, and on an
// error, a timeout or an interrupt aborts every communicator (ncclCommAbort) so no rank is left
// blocked inside NCCL. The executor and the benches share it. Host-only header.
#pragma once
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>

#include <array>
#include <csignal>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "exec/executor.hpp"
#include "parallel/layout.hpp"
#include "plan/plan.hpp"

namespace capscale::exec::cuda {

/// CAPSCALE_NCCL_TIMEOUT_S (seconds, default 300); InputError when set to something else than a
/// positive number.
double nccl_timeout_s();

/// One communicator. Owned by NcclComms, which finalizes or aborts it.
struct Comm {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 1;
  std::string name;  ///< "tp", "dp", "pp 1->2", ...
};

/// The communicators of one process and the watchdog over them. RAII: the destructor finalizes
/// and destroys them when healthy (every rank in creation order, as ncclCommFinalize waits for
/// peers), and aborts them otherwise.
class NcclComms {
 public:
  /// `interrupted` (may be null) is polled while waiting: set, a wait older than a grace period
  /// aborts (a SIGINT normally ends a run between steps).
  NcclComms(double timeout_s, const volatile std::sig_atomic_t* interrupted);
  ~NcclComms();
  NcclComms(const NcclComms&) = delete;
  NcclComms& operator=(const NcclComms&) = delete;

  /// A non-blocking communicator (NCCL ≥ 2.14) of `size` ranks from `id`, polled to completion
  /// under the watchdog instead of blocking forever when a peer never arrives.
  /// `max_ctas` > 0 limits the communicator's thread blocks (ncclConfig_t.maxCTAs, NCCL >= 2.17).
  Comm& create(const ncclUniqueId& id, int size, int rank, const std::string& name, int64_t max_ctas = 0);

  /// Checks what an NCCL call on `c` returned: ncclInProgress (non-blocking communicators) is
  /// waited out; any error aborts every communicator and throws RuntimeError naming `call`.
  void check(ncclResult_t r, Comm& c, const char* call);

  /// Polls done() until true; in between checks every communicator's asynchronous error, the
  /// timeout and the interrupt flag. On failure aborts all and throws RuntimeError (Interrupted on
  /// an interrupt) naming what() and, on a timeout, busy() (may be empty).
  void wait_until(const std::function<bool()>& done, const std::function<std::string()>& what,
                  const std::function<std::string()>& busy = {});
  /// wait_until the stream is idle (a CUDA error on it is rethrown after aborting).
  void wait_stream(cudaStream_t s, const std::string& what);

  /// Aborts every communicator (never throws); afterwards the destructor does not finalize.
  void abort_all() noexcept;
  bool healthy() const { return healthy_; }
  double timeout_s() const { return timeout_s_; }

 private:
  void check_async_errors(const std::function<std::string()>& what);

  double timeout_s_;
  const volatile std::sig_atomic_t* interrupted_;
  bool healthy_ = true;
  std::vector<std::unique_ptr<Comm>> comms_;  // creation order: teardown follows it
};

/// The communicators a stage plan needs, made over MPI: one per process group the plan
/// communicates in (walking parallel::kAllGroups), and for pipeline send/recv one per direction
/// between neighbouring stages. Why per direction: NCCL runs one communicator's operations in
/// enqueue order whatever their stream, so a stage's send to s+1 and its receive from s+1 on one
/// communicator would wait for each other; one per direction lets sends and receives proceed on
/// the pp_send and pp_recv streams independently, as Megatron's batched isend/irecv do.
class GroupComms {
 public:
  /// Creates what `stage` needs and this object lacks (a group used by no plan so far is asked
  /// again by the next call, so every member must call connect() equally often). Collective over the world: every rank calls
  /// it with its own stage. Whether a group is used is agreed over the group's MPI communicator
  /// (MAX of "my plan uses it"), and groups are visited in one global order, so creation cannot
  /// deadlock. Each new communicator is warmed with a tiny operation on `s` over `scratch` (at
  /// least 2·world bytes): NCCL connects its channels lazily at the first operation, which would
  /// otherwise be timed as the first collective.
  void connect(const ExecContext& ctx, const plan::StagePlan& stage, NcclComms& nccl, void* scratch, cudaStream_t s);
  /// The communicator of group g; null when g has one member or the plan does not use it.
  Comm* group(parallel::Group g) const { return group_[static_cast<size_t>(g)]; }
  /// The communicator carrying messages from stage `from` to stage `to` (its rank 0 sends); null
  /// when none was made (not neighbours, or not this rank's).
  Comm* edge(int64_t from, int64_t to) const;
  int64_t my_pp() const { return my_pp_; }

 private:
  void connect_edges(const ExecContext& ctx, MPI_Comm ppc, NcclComms& nccl, void* scratch, cudaStream_t s);

  std::array<Comm*, parallel::kNumGroups> group_{};
  std::map<std::pair<int64_t, int64_t>, Comm*> edge_;
  int64_t my_pp_ = 0;
};

}  // namespace capscale::exec::cuda
