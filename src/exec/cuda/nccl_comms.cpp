// NCCL communicators, their watchdog and the per-plan set of group and pipeline communicators
// (nccl_comms.hpp). Only here does the CUDA backend wait on NCCL.
#include "exec/cuda/nccl_comms.hpp"

#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "exec/cuda/cuda_check.hpp"

namespace capscale::exec::cuda {
namespace {

// A SIGINT normally ends the job between steps (cli/cmd_run.cpp); a wait that has already lasted
// this long when one arrives is treated as hung and aborted.
constexpr double kInterruptGraceS = 5.0;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double nccl_timeout_s() {
  const char* v = std::getenv("CAPSCALE_NCCL_TIMEOUT_S");
  if (!v || !*v) return 300.0;
  char* end = nullptr;
  const double t = std::strtod(v, &end);
  if (end == v || *end != '\0' || !(t > 0) || !std::isfinite(t)) {
    throw InputError("CAPSCALE_NCCL_TIMEOUT_S", "", "must be a positive number of seconds, got '" + std::string(v) + "'");
  }
  return t;
}

// ---- NcclComms ------------------------------------------------------------------------------------

NcclComms::NcclComms(double timeout_s, const volatile std::sig_atomic_t* interrupted)
    : timeout_s_(timeout_s), interrupted_(interrupted) {}

NcclComms::~NcclComms() {
  for (auto& c : comms_) {
    if (!c->comm) continue;
    bool ok = healthy_;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
    if (ok) {
      const ncclResult_t fr = ncclCommFinalize(c->comm);
      ok = fr == ncclSuccess || fr == ncclInProgress;
      const auto t0 = std::chrono::steady_clock::now();
      ncclResult_t state = ncclInProgress;
      while (ok && state == ncclInProgress) {
        if (ncclCommGetAsyncError(c->comm, &state) != ncclSuccess) ok = false;
        if (seconds_since(t0) > timeout_s_) ok = false;
        std::this_thread::yield();
      }
      ok = ok && state == ncclSuccess;
    }
#endif
    if (ok) ncclCommDestroy(c->comm);
    else ncclCommAbort(c->comm);
    c->comm = nullptr;
  }
}

Comm& NcclComms::create(const ncclUniqueId& id, int size, int rank, const std::string& name, int64_t max_ctas) {
  comms_.push_back(std::make_unique<Comm>());
  Comm& c = *comms_.back();
  c.size = size, c.rank = rank, c.name = name;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 19, 0)
  cfg.commName = c.name.c_str();
#endif
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 17, 0)
  if (max_ctas > 0) cfg.maxCTAs = static_cast<int>(max_ctas);
#else
  if (max_ctas > 0)
    throw InputError("plan", "dp_max_ctas / cp_max_ctas / pp_max_ctas",
                     "limit a communicator's thread blocks through ncclConfig_t.maxCTAs, which needs NCCL >= 2.17; this build has "
                     "NCCL_VERSION_CODE " + std::to_string(NCCL_VERSION_CODE) + ". Leave them 0");
#endif
  check(ncclCommInitRankConfig(&c.comm, size, id, rank, &cfg), c, "ncclCommInitRankConfig");
#else
  CAPSCALE_NCCL_CHECK(ncclCommInitRank(&c.comm, size, id, rank));
#endif
  return c;
}

void NcclComms::abort_all() noexcept {
  for (auto& c : comms_)
    if (c->comm) ncclCommAbort(c->comm), c->comm = nullptr;
  healthy_ = false;
}

// Any communicator in an error state aborts them all (nccl-tests' testStreamSynchronize).
void NcclComms::check_async_errors(const std::function<std::string()>& what) {
  for (auto& c : comms_) {
    if (!c->comm) continue;
    ncclResult_t r = ncclSuccess;
    CAPSCALE_NCCL_CHECK(ncclCommGetAsyncError(c->comm, &r));
    if (r == ncclSuccess || r == ncclInProgress) continue;
    const std::string text = ncclGetLastError(c->comm);
    const std::string name = c->name;
    abort_all();
    throw RuntimeError("NCCL asynchronous error on the " + name + " communicator while waiting for " + what() + " on " +
                       where_am_i() + ": " + ncclGetErrorString(r) + " (" + text + "); all communicators aborted");
  }
}

void NcclComms::wait_until(const std::function<bool()>& done, const std::function<std::string()>& what,
                           const std::function<std::string()>& busy) {
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    if (done()) return;
    check_async_errors(what);
    const double waited = seconds_since(t0);
    if (waited > timeout_s_) {
      const std::string b = busy ? busy() : std::string();
      abort_all();
      throw RuntimeError("timed out after " + std::to_string(int(timeout_s_)) + " s (CAPSCALE_NCCL_TIMEOUT_S) waiting for " + what() +
                         " on " + where_am_i() + (b.empty() ? "" : "; streams still busy: " + b) +
                         ". A peer rank probably failed or stopped; all communicators aborted");
    }
    if (interrupted_ && *interrupted_ && waited > kInterruptGraceS) {
      abort_all();
      throw Interrupted("interrupted while waiting for " + what() + " on " + where_am_i());
    }
    std::this_thread::yield();  // let NCCL's proxy threads run (nccl-tests does the same)
  }
}

void NcclComms::wait_stream(cudaStream_t s, const std::string& what) {
  wait_until([&] {
    const cudaError_t e = cudaStreamQuery(s);
    if (e == cudaErrorNotReady) return false;
    if (e != cudaSuccess) abort_all();
    CAPSCALE_CUDA_CHECK(e);
    return true;
  }, [&] { return what; });
}

// A call on a non-blocking communicator returns ncclInProgress until its work is set up (and, for
// operations, enqueued); the state is polled before anything else touches the stream.
void NcclComms::check(ncclResult_t r, Comm& c, const char* call) {
  if (r == ncclSuccess) return;
  if (r == ncclInProgress) {
    ncclResult_t state = ncclInProgress;
    wait_until([&] {
      CAPSCALE_NCCL_CHECK(ncclCommGetAsyncError(c.comm, &state));
      return state != ncclInProgress;
    }, [&] { return std::string(call) + " on the " + c.name + " communicator"; });
    if (state == ncclSuccess) return;
    r = state;
  }
  const std::string text = c.comm ? ncclGetLastError(c.comm) : ncclGetLastError(nullptr);
  abort_all();
  throw RuntimeError(std::string("NCCL error in ") + call + " on the " + c.name + " communicator on " + where_am_i() + ": " +
                     ncclGetErrorString(r) + " (" + text + "); all communicators aborted");
}

// ---- GroupComms ----------------------------------------------------------------------------------

namespace {

bool plan_uses(const plan::StagePlan& stage, parallel::Group g) {
  for (const plan::Op& op : stage.ops) {
    if (g == parallel::Group::kPp ? op.kind == plan::OpKind::kSendRecv : op.kind == plan::OpKind::kCollective && op.group == g)
      return true;
  }
  return false;
}

// Whether any member of `mc` has a plan that uses the group: all members then create it.
bool any_member_uses(MPI_Comm mc, bool mine) {
  int any = mine ? 1 : 0;
  CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, mc));
  return any != 0;
}

}  // namespace

Comm* GroupComms::edge(int64_t from, int64_t to) const {
  const auto it = edge_.find({from, to});
  return it == edge_.end() ? nullptr : it->second;
}

void GroupComms::connect(const ExecContext& ctx, const plan::StagePlan& stage, NcclComms& nccl, void* scratch, cudaStream_t s) {
  if (!ctx.layout || !ctx.comms) return;
  my_pp_ = ctx.layout->coords(ctx.world_rank).pp;
  for (parallel::Group g : parallel::kAllGroups) {
    MPI_Comm mc = ctx.comms->get(g);
    if (mc == MPI_COMM_NULL) continue;
    int size = 1, rank = 0;
    CAPSCALE_MPI_CHECK(MPI_Comm_size(mc, &size));
    CAPSCALE_MPI_CHECK(MPI_Comm_rank(mc, &rank));
    if (size < 2) continue;
    if (g == parallel::Group::kPp) {
      if (edge_.empty() && any_member_uses(mc, plan_uses(stage, g))) connect_edges(ctx, mc, nccl, scratch, s);
      continue;
    }
    if (group_[size_t(g)] || !any_member_uses(mc, plan_uses(stage, g))) continue;
    ncclUniqueId id{};
    if (rank == 0) CAPSCALE_NCCL_CHECK(ncclGetUniqueId(&id));
    CAPSCALE_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mc));
    Comm& c = nccl.create(id, size, rank, parallel::to_string(g), ctx.max_ctas.for_group(g));
    // Warm-up: a one-element all-reduce connects the ring/tree channels the step will use.
    nccl.check(ncclAllReduce(scratch, scratch, 1, ncclBfloat16, ncclSum, c.comm, s), c, "ncclAllReduce (warm-up)");
    nccl.wait_stream(s, "the warm-up all-reduce on the " + c.name + " communicator");
    group_[size_t(g)] = &c;
  }
}

// Stage s talks to s±1 (mod pp: the interleaved schedule wraps from the last stage to the first).
// Edges are visited in one global order; the sending side makes the id and sends it over the pp
// communicator, whose ranks are the pp coordinates.
void GroupComms::connect_edges(const ExecContext& ctx, MPI_Comm ppc, NcclComms& nccl, void* scratch, cudaStream_t s) {
  const int64_t pp = ctx.layout->size(parallel::Group::kPp);
  std::set<std::pair<int64_t, int64_t>> edges;
  for (int64_t a = 0; a < pp; ++a) edges.insert({a, (a + 1) % pp}), edges.insert({a, (a + pp - 1) % pp});
  for (const auto& [from, to] : edges) {
    if (from == to || (my_pp_ != from && my_pp_ != to)) continue;
    const bool sender = my_pp_ == from;
    ncclUniqueId id{};
    if (sender) {
      CAPSCALE_NCCL_CHECK(ncclGetUniqueId(&id));
      CAPSCALE_MPI_CHECK(MPI_Send(&id, sizeof id, MPI_BYTE, static_cast<int>(to), 0, ppc));
    } else {
      CAPSCALE_MPI_CHECK(MPI_Recv(&id, sizeof id, MPI_BYTE, static_cast<int>(from), 0, ppc, MPI_STATUS_IGNORE));
    }
    Comm& c = nccl.create(id, 2, sender ? 0 : 1, "pp " + std::to_string(from) + "->" + std::to_string(to), ctx.max_ctas.for_group(parallel::Group::kPp));
    // Warm-up: one byte in the direction the communicator carries.
    if (sender) nccl.check(ncclSend(scratch, 1, ncclUint8, 1, c.comm, s), c, "ncclSend (warm-up)");
    else nccl.check(ncclRecv(scratch, 1, ncclUint8, 0, c.comm, s), c, "ncclRecv (warm-up)");
    nccl.wait_stream(s, "the warm-up send/recv on the " + c.name + " communicator");
    edge_[{from, to}] = &c;
  }
}

}  // namespace capscale::exec::cuda
