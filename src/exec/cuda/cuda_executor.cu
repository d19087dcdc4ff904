// CUDA executor: runs a stage plan on this rank's GPU. GEMMs through cuBLASLt (bf16 or fp16 in and
// out with fp32 accumulation; FP8 e4m3 inputs on sm_89+ when the run asks for fp8), attention as two
// strided-batched cuBLAS GEMMs around a row softmax, elementwise ops as a bandwidth pass of the
// plan's bytes, collectives and pipeline send/recv through NCCL. Every plan stream is a CUDA stream;
// a dependency across streams is an event recorded after the producer that the consumer's stream
// waits on (llm.c train_gpt2.cu's overlap, written out op by op). Op times are CUDA event pairs.
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "common/error.hpp"
#include "exec/buffer_sizing.hpp"
#include "exec/cuda/cuda_backend.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/kernels.cuh"
#include "exec/enqueue_throttle.hpp"
#include "exec/executor.hpp"

namespace capscale::exec {
namespace {

using cuda::DType;
using cuda::LtGemm;
using parallel::Group;
using plan::CollKind;
using plan::Op;
using plan::OpKind;

// cuBLAS docs (cublasSetWorkspace): 32 MiB of workspace is the recommended size on Hopper.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;
// Left free for what NCCL and cuBLAS allocate after prepare(): NCCL connects its channels (and
// allocates their buffers) lazily at a communicator's first operation.
constexpr size_t kReserveBytes = size_t(2) << 30;
// A SIGINT normally ends the job between steps (cli/cmd_run.cpp); a wait that has already lasted
// this long when one arrives is treated as hung and aborted.
constexpr double kInterruptGraceS = 5.0;

std::string gib(double bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", bytes / double(size_t(1) << 30));
  return s;
}

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) throw RuntimeError(std::string(what) + " = " + std::to_string(v) + " does not fit a cuBLAS int");
  return static_cast<int>(v);
}

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }
  void reset() noexcept {
    if (p_) cudaFree(p_);
    p_ = nullptr, bytes_ = 0;
  }
  void allocate(size_t bytes) {
    reset();
    CAPSCALE_CUDA_CHECK(cudaMalloc(&p_, bytes));
    bytes_ = bytes;
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Scratch buffer roles and sizes: buffer_sizing.hpp (kComm0 + s is plan stream s's buffer).
using Buf = BufferRole;
const char* buf_name(int b) {
  static const char* names[] = {"gemm A", "gemm W", "gemm C", "attention Q", "attention K", "attention V",
                                "attention scores", "attention out", "elementwise x", "elementwise y"};
  return b < kComm0 ? names[b] : "communication";
}
constexpr int kNumBufs = kNumBufferRoles;

struct Comm {
  ncclComm_t comm = nullptr;
  int rank = 0, size = 1;
  std::string name;  // "tp", "dp", "pp 1->2", ...
};

class CudaExecutor final : public Executor, public cuda::CudaExecutorAccess {
 public:
  explicit CudaExecutor(const ExecContext& ctx)
      : ctx_(ctx), faults_(ctx.world_rank), timeout_s_(cuda::nccl_timeout_s()) {
    try {
      select_device();
      const config::Precision want = ctx.precision;
      // cuBLASLt's FP8 GEMMs need FP8 tensor cores: Ada (sm_89) and Hopper (sm_90) onwards. A
      // precision the device cannot run is refused, never silently replaced by another.
      const int sm = prop_.major * 10 + prop_.minor;
      if (want == config::Precision::kFp8 && sm < 89) {
        throw InputError("--precision", "fp8", std::string("needs FP8 tensor cores (sm_89 or newer); ") + prop_.name + " on " + where() +
                                                   " is sm_" + std::to_string(sm) + ": use --precision bf16");
      }
      if (want == config::Precision::kFp32) {
        throw InputError("--precision", "fp32", "is not run by the CUDA executor (bf16, fp16 or fp8)");
      }
      gemm_type_ = want == config::Precision::kFp16 ? DType::kFp16 : want == config::Precision::kFp8 ? DType::kFp8E4m3 : DType::kBf16;
      // Transformer Engine keeps attention in bf16/fp16 under FP8 recipes; so do we.
      attn_type_ = want == config::Precision::kFp16 ? DType::kFp16 : DType::kBf16;
      // Communication streams at the highest priority, compute at the lowest: a collective's
      // kernels then get SMs as soon as they are launched instead of queueing behind GEMM tiles
      // (what Megatron/TE do for overlapped communication).
      int least = 0, greatest = 0;
      CAPSCALE_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
      for (int q = 0; q < plan::kNumStreams; ++q) {
        const int prio = q == static_cast<int>(plan::Stream::kCompute) ? least : greatest;
        CAPSCALE_CUDA_CHECK(cudaStreamCreateWithPriority(&streams_[q], cudaStreamNonBlocking, prio));
      }
      CAPSCALE_CUDA_CHECK(cudaStreamCreateWithFlags(&gate_stream_, cudaStreamNonBlocking));
      CAPSCALE_CUDA_CHECK(cudaEventCreateWithFlags(&gate_event_, cudaEventDisableTiming));
      CAPSCALE_CUBLAS_CHECK(cublasLtCreate(&lt_));
      CAPSCALE_CUBLAS_CHECK(cublasCreate(&blas_));
      lt_ws_.allocate(kWorkspaceBytes);
      blas_ws_.allocate(kWorkspaceBytes);
      init_comms();
    } catch (...) {
      release(/*abort=*/true);
      throw;
    }
  }

  ~CudaExecutor() override { release(!healthy_); }

  std::string backend() const override { return "cuda"; }

  std::string device() const override {
    return std::string(prop_.name) + " (sm_" + std::to_string(prop_.major) + std::to_string(prop_.minor) + ", pci " + pci_ + ")";
  }

  std::string gemm_dtype() const override {
    switch (gemm_type_) {
      case DType::kFp8E4m3: return "fp8 e4m3 (cublasLt, bf16 out)";
      case DType::kFp16: return "fp16 (cublasLt)";
      case DType::kBf16: break;
    }
    return "bf16 (cublasLt)";
  }

  void prepare(const plan::StagePlan& stage) override {
    CAPSCALE_CUDA_CHECK(cudaSetDevice(device_));
    // Bytes each buffer must hold (buffer_sizing.hpp): the largest GEMM and attention operands;
    // elementwise and communication buffers are bounded and those ops run in chunks. GEMM plans
    // are made here, so a step never waits on cuBLASLt's heuristic and FP8 shapes without a
    // kernel fall back early.
    for (const Op& op : stage.ops)
      if (op.kind == OpKind::kGemm && op.m > 0 && op.n > 0 && op.k > 0) gemm_for(op.m, op.n, op.k, std::max<int64_t>(op.batch, 1));
    const BufferTypes types{cuda::dtype_bytes(gemm_type_), cuda::dtype_bytes(gemm_type_ == DType::kFp16 ? DType::kFp16 : DType::kBf16),
                            cuda::dtype_bytes(attn_type_)};
    const BufferBytes need = size_buffers(stage.ops, types);
    // Buffers only grow; re-preparing a smaller plan (the bench does) keeps what is there.
    size_t add = 0;
    for (int b = 0; b < kNumBufs; ++b)
      if (need[b] > bufs_[b].bytes()) add += need[b];
    if (add > 0) {
      for (int b = 0; b < kNumBufs; ++b)
        if (need[b] > bufs_[b].bytes()) bufs_[b].reset();
      size_t free_b = 0, total_b = 0;
      CAPSCALE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
      if (add + kReserveBytes > free_b) {
        int largest = 0;
        for (int b = 1; b < kNumBufs; ++b)
          if (need[b] > need[largest]) largest = b;
        throw DoesNotFitError("run", "GPU memory",
                              "the CUDA executor needs " + gib(double(add)) + " of scratch buffers for this stage (largest: " +
                                  buf_name(largest) + ", " + gib(double(need[largest])) + ") plus a " + gib(double(kReserveBytes)) +
                                  " reserve for NCCL/cuBLAS, but " + prop_.name + " (device " + std::to_string(device_) +
                                  ") on " + where() + " has " + gib(double(free_b)) + " free of " + gib(double(total_b)) +
                                  "; use a smaller micro-batch or sequence, or more tp/pp/cp");
      }
      for (int b = 0; b < kNumBufs; ++b) {
        if (need[b] == 0 || bufs_[b].bytes() >= need[b]) continue;
        bufs_[b].allocate(need[b]);
        // Inputs get random values; GEMM inputs in the GEMM input type (fp8 bytes read as bf16
        // by a fallback shape are still small finite numbers).
        const DType t = (b == kGemmA || b == kGemmW) ? gemm_type_ : (b == kAttnQ || b == kAttnK || b == kAttnV || b == kAttnS) ? attn_type_ : DType::kBf16;
        cuda::fill_random(bufs_[b].get(), int64_t(need[b] / cuda::dtype_bytes(t)), t, 1234u + b, stream(plan::Stream::kCompute));
      }
      CAPSCALE_CUDA_CHECK(cudaStreamSynchronize(stream(plan::Stream::kCompute)));
    }
    ensure_events(stage.ops.size());
  }

  StepTimes run_step(const plan::StagePlan& stage, int step) override {
    try {
      return run_step_impl(stage, step);
    } catch (...) {
      healthy_ = false;  // work may be in flight or communicators aborted: tear down with abort
      cur_stage_ = nullptr;
      throw;
    }
  }

  // CudaExecutorAccess (cuda_bench.cu).
  const LtGemm& gemm_plan(int64_t m, int64_t n, int64_t k) override { return gemm_for(m, n, k, 1); }
  int device_id() const override { return device_; }

 private:
  cudaStream_t stream(plan::Stream s) const { return streams_[static_cast<int>(s)]; }
  std::string where() const {
    return "rank " + std::to_string(ctx_.world_rank) + " (host " + host_name() + ", device " + std::to_string(device_) + ")";
  }

  // ---- device and communicators -------------------------------------------------------------

  void select_device() {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
      (void)cudaGetLastError();
      throw InputError("--backend", "cuda", "no CUDA device is usable on rank " + std::to_string(ctx_.world_rank) + " (host " +
                                                host_name() + "): " + (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices visible") +
                                                "; use --backend cpu");
    }
    const int local_rank = ctx_.session ? ctx_.session->local_rank() : 0;
    const int local_size = ctx_.session ? ctx_.session->local_size() : 1;
    device_ = local_rank % count;
    CAPSCALE_CUDA_CHECK(cudaSetDevice(device_));
    CAPSCALE_CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
    char bus[32] = {};
    CAPSCALE_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, device_));
    pci_ = bus;
    if (!ctx_.session) return;
    // Two ranks on one GPU would time each other's kernels. Compare device UUIDs across the node
    // (not counts: a launcher may give each rank its own CUDA_VISIBLE_DEVICES, and MIG instances of
    // one GPU share a PCI id but not a UUID). MPI_Comm_split_type is collective over the world, so
    // every rank calls it, also a rank alone on its node (returning early there hung the others).
    MPI_Comm node = MPI_COMM_NULL;
    CAPSCALE_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, ctx_.world_rank, MPI_INFO_NULL, &node));
    std::vector<char> all(size_t(local_size) * sizeof(prop_.uuid));
    const int rc = MPI_Allgather(prop_.uuid.bytes, sizeof(prop_.uuid), MPI_BYTE, all.data(), sizeof(prop_.uuid), MPI_BYTE, node);
    MPI_Comm_free(&node);
    CAPSCALE_MPI_CHECK(rc);
    int sharing = 0;
    for (int r = 0; r < local_size; ++r) sharing += std::memcmp(&all[r * sizeof(prop_.uuid)], prop_.uuid.bytes, sizeof(prop_.uuid)) == 0;
    if (sharing > 1) {
      const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
      throw InputError("--backend", "cuda", "rank " + std::to_string(ctx_.world_rank) + " on host " + host_name() + " is local rank " +
                                                std::to_string(local_rank) + " of " + std::to_string(local_size) + " ranks on this node, but " +
                                                std::to_string(count) + " CUDA device(s) are visible to it (CUDA_VISIBLE_DEVICES=" +
                                                (vis ? vis : "unset") + "), so " + std::to_string(sharing) + " ranks would share GPU " + pci_ +
                                                ": start at most one rank per GPU");
    }
  }

  // One NCCL communicator per process group with more than one member: the unique id made on
  // group rank 0 and broadcast over the group's MPI communicator. Pipeline send/recv get one
  // communicator per direction between neighbouring stages instead of one for the pp group: NCCL
  // runs the operations of one communicator in the order they were enqueued, whatever their
  // stream, so a stage's send (to s+1) and receive (from s+1) on one communicator would wait for
  // each other; with a communicator per direction each one carries its sends in plan order and
  // the matching stage's receives in the same order, and sends and receives proceed independently
  // on the pp_send and pp_recv streams, as Megatron's batched isend/irecv pairs do.
  // All ranks create communicators in one global order, so blocking creation cannot deadlock.
  void init_comms() {
    if (!ctx_.layout || !ctx_.comms) return;
    for (Group g : {Group::kTp, Group::kCp, Group::kDp, Group::kDpCp, Group::kEmbedding}) {
      MPI_Comm mc = ctx_.comms->get(g);
      if (mc == MPI_COMM_NULL) continue;
      int size = 1, rank = 0;
      CAPSCALE_MPI_CHECK(MPI_Comm_size(mc, &size));
      CAPSCALE_MPI_CHECK(MPI_Comm_rank(mc, &rank));
      if (size < 2) continue;
      ncclUniqueId id{};
      if (rank == 0) CAPSCALE_NCCL_CHECK(ncclGetUniqueId(&id));
      CAPSCALE_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mc));
      group_comm_[static_cast<int>(g)] = init_comm(id, size, rank, parallel::to_string(g));
    }
    const int64_t pp = ctx_.layout->size(Group::kPp);
    my_pp_ = ctx_.layout->coords(ctx_.world_rank).pp;
    if (pp < 2) return;
    MPI_Comm ppc = ctx_.comms->get(Group::kPp);  // its ranks are the pp coordinates
    std::set<std::pair<int64_t, int64_t>> edges;
    for (int64_t a = 0; a < pp; ++a) {
      edges.insert({a, (a + 1) % pp});
      edges.insert({a, (a + pp - 1) % pp});
    }
    for (const auto& [from, to] : edges) {
      if (from == to || (my_pp_ != from && my_pp_ != to)) continue;
      ncclUniqueId id{};
      if (my_pp_ == from) {
        CAPSCALE_NCCL_CHECK(ncclGetUniqueId(&id));
        CAPSCALE_MPI_CHECK(MPI_Send(&id, sizeof id, MPI_BYTE, static_cast<int>(to), 0, ppc));
      } else {
        CAPSCALE_MPI_CHECK(MPI_Recv(&id, sizeof id, MPI_BYTE, static_cast<int>(from), 0, ppc, MPI_STATUS_IGNORE));
      }
      edge_comm_[{from, to}] = init_comm(id, 2, my_pp_ == from ? 0 : 1, "pp " + std::to_string(from) + "->" + std::to_string(to));
    }
  }

  Comm* init_comm(const ncclUniqueId& id, int size, int rank, const std::string& name) {
    comms_.push_back(std::make_unique<Comm>());
    Comm& c = *comms_.back();
    c.size = size, c.rank = rank, c.name = name;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
    // Non-blocking: creation (and any operation) may return ncclInProgress; we poll the state
    // with our timeout instead of blocking forever inside NCCL when a peer never arrives.
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 19, 0)
    cfg.commName = c.name.c_str();
#endif
    nccl_done(ncclCommInitRankConfig(&c.comm, size, id, rank, &cfg), c, "ncclCommInitRankConfig");
#else
    CAPSCALE_NCCL_CHECK(ncclCommInitRank(&c.comm, size, id, rank));
#endif
    return &c;
  }

  // ---- waiting with a watchdog --------------------------------------------------------------

  void abort_all() noexcept {
    for (auto& c : comms_)
      if (c->comm) ncclCommAbort(c->comm), c->comm = nullptr;
    healthy_ = false;
  }

  // Any communicator in an error state aborts them all (nccl-tests' testStreamSynchronize).
  template <typename What>
  void check_async_errors(const What& what) {
    for (auto& c : comms_) {
      if (!c->comm) continue;
      ncclResult_t r = ncclSuccess;
      CAPSCALE_NCCL_CHECK(ncclCommGetAsyncError(c->comm, &r));
      if (r == ncclSuccess || r == ncclInProgress) continue;
      const std::string text = ncclGetLastError(c->comm);
      const std::string name = c->name;
      abort_all();
      throw RuntimeError("NCCL asynchronous error on the " + name + " communicator while waiting for " + what() + " on " +
                         where() + ": " + ncclGetErrorString(r) + " (" + text + "); all communicators aborted");
    }
  }

  // Streams still running and the last op each was given, for timeout messages.
  std::string busy_streams() const {
    std::string s;
    for (int i = 0; i < plan::kNumStreams; ++i) {
      if (cudaStreamQuery(streams_[i]) != cudaErrorNotReady) continue;
      s += (s.empty() ? "" : ", ") + plan::to_string(static_cast<plan::Stream>(i));
      if (cur_stage_ && last_op_[i] >= 0) s += " (op " + std::to_string(last_op_[i]) + " " + cur_stage_->ops[last_op_[i]].label() + ")";
    }
    (void)cudaGetLastError();
    return s.empty() ? "none" : s;
  }

  template <typename Done, typename What>
  void wait_until(Done&& done, const What& what) {
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
      if (done()) return;
      check_async_errors(what);
      const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (waited > timeout_s_) {
        const std::string busy = busy_streams();
        abort_all();
        throw RuntimeError("timed out after " + std::to_string(int(timeout_s_)) + " s (CAPSCALE_NCCL_TIMEOUT_S) waiting for " +
                           what() + " on " + where() + "; streams still busy: " + busy +
                           ". A peer rank probably failed or stopped; all communicators aborted");
      }
      if (*ctx_.interrupted && waited > kInterruptGraceS) {
        abort_all();
        throw Interrupted("interrupted while waiting for " + what() + " on " + where());
      }
      std::this_thread::yield();  // let NCCL's proxy threads run
    }
  }

  // An NCCL call on a non-blocking communicator returns ncclInProgress until its work is set up
  // (and, for operations, enqueued); poll the state before anything else touches the stream.
  void nccl_done(ncclResult_t r, Comm& c, const char* call) {
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
    throw RuntimeError(std::string("NCCL error in ") + call + " on the " + c.name + " communicator on " + where() + ": " +
                       ncclGetErrorString(r) + " (" + text + "); all communicators aborted");
  }

  void wait_event(cudaEvent_t ev, size_t op_index) {
    wait_until([&] {
      const cudaError_t e = cudaEventQuery(ev);
      if (e == cudaErrorNotReady) return false;
      CAPSCALE_CUDA_CHECK(e);
      return true;
    }, [&] { return "op " + std::to_string(op_index) + " (" + cur_stage_->ops[op_index].label() + ") to finish"; });
  }

  void sync_all_streams() {
    wait_until([&] {
      for (cudaStream_t s : streams_) {
        const cudaError_t e = cudaStreamQuery(s);
        if (e == cudaErrorNotReady) return false;
        CAPSCALE_CUDA_CHECK(e);
      }
      return true;
    }, [] { return std::string("the end of the step (all streams)"); });
  }

  // ---- the step -----------------------------------------------------------------------------

  void ensure_events(size_t n) {
    while (events_.size() < n) {
      std::array<cudaEvent_t, 2> ev{};
      CAPSCALE_CUDA_CHECK(cudaEventCreate(&ev[0]));
      const cudaError_t e = cudaEventCreate(&ev[1]);
      if (e != cudaSuccess) cudaEventDestroy(ev[0]);
      CAPSCALE_CUDA_CHECK(e);
      events_.push_back(ev);
    }
  }

  // A host function on gate_stream_ that spins until open() (or the destructor, so an exception
  // never leaves the GPU held), with every plan stream waiting on the event recorded after it.
  // A host function may not call CUDA, but may wait on host memory (CUDA docs, cudaLaunchHostFunc).
  class Gate {
   public:
    explicit Gate(CudaExecutor& ex) : open_(ex.gate_open_) {
      open_.store(false, std::memory_order_release);
      CAPSCALE_CUDA_CHECK(cudaLaunchHostFunc(ex.gate_stream_, &Gate::hold, &open_));
      armed_ = true;
      try {
        CAPSCALE_CUDA_CHECK(cudaEventRecord(ex.gate_event_, ex.gate_stream_));
        for (cudaStream_t s : ex.streams_) CAPSCALE_CUDA_CHECK(cudaStreamWaitEvent(s, ex.gate_event_, 0));
      } catch (...) {
        open();
        throw;
      }
    }
    ~Gate() { open(); }
    Gate(const Gate&) = delete;
    Gate& operator=(const Gate&) = delete;
    void open() noexcept {
      if (armed_) open_.store(true, std::memory_order_release), armed_ = false;
    }

   private:
    static void CUDART_CB hold(void* flag) {
      auto* f = static_cast<std::atomic<bool>*>(flag);
      while (!f->load(std::memory_order_acquire)) std::this_thread::yield();
    }
    // The executor's flag, not the Gate's: the host function may run after the Gate is gone.
    std::atomic<bool>& open_;
    bool armed_ = false;
  };

  StepTimes run_step_impl(const plan::StagePlan& stage, int step) {
    CAPSCALE_CUDA_CHECK(cudaSetDevice(device_));
    const size_t n = stage.ops.size();
    ensure_events(n);
    cur_stage_ = &stage;
    last_op_.fill(-1);
    std::vector<char> ran(n, 0);
    StepTimes t;
    t.op_s.assign(n, 0.0);
    if (ctx_.session) CAPSCALE_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    const auto t0 = std::chrono::steady_clock::now();
    // Every stream waits behind a gate until the host has enqueued the step (or must wait for
    // the GPU), so the host's enqueue gaps between the first ops are not timed as GPU work.
    Gate gate(*this);
    EnqueueThrottle throttle;  // enqueue_throttle.hpp: waits on compute ops only, never before a p2p op
    for (size_t i = 0; i < n; ++i) {
      if (const int64_t w = throttle.wait_before(stage.ops[i], i); w >= 0) {
        gate.open();  // the GPU must run for the host to go on
        wait_event(events_[size_t(w)][1], size_t(w));
      }
      faults_.maybe_fail(step, i);
      const Op& op = stage.ops[i];
      const int si = static_cast<int>(op.stream);
      cudaStream_t s = streams_[si];
      for (uint8_t d = 0; d < op.ndeps; ++d) {
        const int32_t dep = op.deps[d];
        if (dep < 0 || size_t(dep) >= i) {
          throw RuntimeError("plan: op " + std::to_string(i) + " (" + op.label() + ") depends on op " + std::to_string(dep) +
                             ", which does not come before it");
        }
        if (stage.ops[dep].stream != op.stream) CAPSCALE_CUDA_CHECK(cudaStreamWaitEvent(s, events_[dep][1], 0));
      }
      const std::string label = op.label();
      nvtxRangePushA(label.c_str());
      if (time_ops_) CAPSCALE_CUDA_CHECK(cudaEventRecord(events_[i][0], s));
      ran[i] = run_op(op, i, si, s);
      CAPSCALE_CUDA_CHECK(cudaEventRecord(events_[i][1], s));  // also what later ops' deps wait on
      nvtxRangePop();
      last_op_[si] = static_cast<int64_t>(i);
    }
    gate.open();
    sync_all_streams();
    t.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t i = 0; i < n && time_ops_; ++i) {
      if (!ran[i]) continue;  // e.g. a collective over a group of one: takes no time
      float ms = 0;
      CAPSCALE_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i][0], events_[i][1]));
      t.op_s[i] = double(ms) * 1e-3;
    }
    cur_stage_ = nullptr;
    return t;
  }

  // Returns false when the op had nothing to do on this rank.
  bool run_op(const Op& op, size_t i, int si, cudaStream_t s) {
    switch (op.kind) {
      case OpKind::kGemm: return gemm(op, i, s);
      case OpKind::kAttention: return attention(op, i, s);
      case OpKind::kElementwise: return elementwise(op, i, s);
      case OpKind::kCollective: return collective(op, i, si, s);
      case OpKind::kSendRecv: return sendrecv(op, i, si, s);
    }
    return false;
  }

  void* buf(int b, size_t bytes, size_t i) const {
    if (bufs_[b].bytes() < bytes) {
      throw RuntimeError("op " + std::to_string(i) + " (" + cur_stage_->ops[i].label() + ") needs " + std::to_string(bytes) +
                         " bytes of " + buf_name(b) + " buffer but prepare() sized it to " + std::to_string(bufs_[b].bytes()) +
                         "; call prepare(stage) with this stage first");
    }
    return bufs_[b].get();
  }

  const LtGemm& gemm_for(int64_t m, int64_t n, int64_t k, int64_t batch) {
    const std::array<int64_t, 4> key{m, n, k, batch};
    auto it = gemms_.find(key);
    if (it != gemms_.end()) return *it->second;
    auto g = std::make_unique<LtGemm>(lt_, gemm_type_, m, n, k, batch, kWorkspaceBytes);
    // FP8 kernels need dims that are multiples of 16; other shapes run in bf16.
    if (!g->has_algo()) g = std::make_unique<LtGemm>(lt_, DType::kBf16, m, n, k, batch, kWorkspaceBytes);
    return *gemms_.emplace(key, std::move(g)).first->second;
  }

  bool gemm(const Op& op, size_t i, cudaStream_t s) {
    if (op.m < 1 || op.n < 1 || op.k < 1) return false;
    const LtGemm& g = gemm_for(op.m, op.n, op.k, std::max<int64_t>(op.batch, 1));
    g.run(buf(kGemmA, g.a_bytes(), i), buf(kGemmW, g.w_bytes(), i), buf(kGemmC, g.c_bytes(), i), lt_ws_.get(), s);
    return true;
  }

  int64_t attention_chunk(const Op& op) const { return exec::attention_chunk(op, cuda::dtype_bytes(attn_type_)); }

  // Per chunk of the batch: scores S = Q·Kᵀ ([m×k]·[k×n]), row softmax, out O = P·V ([m×n]·[n×k]).
  // Row-major through column-major cuBLAS: Sᵀ = op_T(K)·Qᵀ and Oᵀ = Vᵀ·Pᵀ. Backward has twice the
  // forward FLOPs (Narayanan et al. SC21: dQ, dK, dV, dP are four GEMMs of the same size), so it
  // runs the sequence twice. The causal mask is not applied: the plan counts attention without
  // causal halving, and masking changes no amount of work in this unfused form.
  bool attention(const Op& op, size_t i, cudaStream_t s) {
    if (op.m < 1 || op.n < 1 || op.k < 1 || op.batch < 1) return false;
    const int64_t chunk = attention_chunk(op);
    const size_t es = cuda::dtype_bytes(attn_type_);
    const int m = to_int(op.m, "attention m"), n = to_int(op.n, "attention n"), k = to_int(op.k, "attention k");
    void* q = buf(kAttnQ, chunk * op.m * op.k * es, i);
    void* kk = buf(kAttnK, chunk * op.n * op.k * es, i);
    void* v = buf(kAttnV, chunk * op.n * op.k * es, i);
    void* sc = buf(kAttnS, chunk * op.m * op.n * es, i);
    void* o = buf(kAttnO, chunk * op.m * op.k * es, i);
    const cudaDataType_t t = cuda::cuda_type(attn_type_);
    const float one = 1.0f, zero = 0.0f;
    if (s != blas_stream_) {
      // cublasSetStream resets the handle's workspace to cuBLAS' default pool (cuBLAS docs,
      // cublasSetStream), so the workspace is set again after it.
      CAPSCALE_CUBLAS_CHECK(cublasSetStream(blas_, s));
      CAPSCALE_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.get(), blas_ws_.bytes()));
      blas_stream_ = s;
    }
    const int rounds = op.phase == plan::Phase::kBackward ? 2 : 1;
    for (int r = 0; r < rounds; ++r) {
      for (int64_t b0 = 0; b0 < op.batch; b0 += chunk) {
        const int nb = to_int(std::min(chunk, op.batch - b0), "attention batch chunk");
        CAPSCALE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, kk, t, k, int64_t(n) * k, q, t,
                                                         k, int64_t(m) * k, &zero, sc, t, n, int64_t(m) * n, nb, CUBLAS_COMPUTE_32F,
                                                         CUBLAS_GEMM_DEFAULT));
        cuda::softmax_rows(sc, int64_t(nb) * m, n, attn_type_, s);
        CAPSCALE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, k, m, n, &one, v, t, k, int64_t(n) * k, sc, t,
                                                         n, int64_t(m) * n, &zero, o, t, k, int64_t(m) * k, nb, CUBLAS_COMPUTE_32F,
                                                         CUBLAS_GEMM_DEFAULT));
      }
    }
    return true;
  }

  // y = ½x + ½y over bytes/6 bf16 elements moves the op's bytes (read x and y, write y); the ½s
  // keep the values bounded however many steps run.
  // Ops larger than the bounded buffers (the optimizer step) run as consecutive passes over them.
  bool elementwise(const Op& op, size_t i, cudaStream_t s) {
    const int64_t count = op.bytes / 6;
    if (count < 1) return false;
    const int64_t chunk = std::min(count, elementwise_chunk_elems());
    void* x = buf(kEwX, size_t(chunk) * 2, i);
    void* y = buf(kEwY, size_t(chunk) * 2, i);
    for (int64_t done = 0; done < count; done += chunk) cuda::axpby_bf16(x, y, std::min(chunk, count - done), 0.5f, 0.5f, s);
    return true;
  }

  // bf16 in place, as Megatron reduces activations: count = bytes/2; reduce-scatter and all-gather
  // move bytes/2/n per rank (NCCL's in-place layout: this rank's shard at offset rank·shard).
  // Sums that overflow to inf after many steps change nothing: GPU arithmetic has no slow path
  // for non-finite values, and nothing reads these numbers.
  // Collectives larger than the bounded buffer run as consecutive NCCL calls on chunks of it
  // (buffer_sizing.hpp; Megatron's DP reduction is bucketed too): the same bytes move.
  bool collective(const Op& op, size_t i, int si, cudaStream_t s) {
    Comm* c = group_comm_[static_cast<int>(op.group)];
    if (!c || !c->comm) return false;  // a group of one: nothing to exchange
    const int64_t total = op.bytes / 2 * 2;
    if (total < 2) return false;
    const int64_t chunk_bytes = std::min(total, comm_chunk_bytes(c->size));
    char* b = static_cast<char*>(buf(kComm0 + si, size_t(chunk_bytes), i));
    bool any = false;
    for (int64_t done = 0; done < total; done += chunk_bytes) {
      const int64_t count = std::min(chunk_bytes, total - done) / 2;
      switch (op.coll) {
        case CollKind::kAllReduce:
          nccl_done(ncclAllReduce(b, b, size_t(count), ncclBfloat16, ncclSum, c->comm, s), *c, "ncclAllReduce");
          any = true;
          break;
        case CollKind::kReduceScatter: {
          const int64_t shard = count / c->size;
          if (shard < 1) break;
          nccl_done(ncclReduceScatter(b, b + shard * c->rank * 2, size_t(shard), ncclBfloat16, ncclSum, c->comm, s), *c,
                    "ncclReduceScatter");
          any = true;
          break;
        }
        case CollKind::kAllGather: {
          const int64_t shard = count / c->size;
          if (shard < 1) break;
          nccl_done(ncclAllGather(b + shard * c->rank * 2, b, size_t(shard), ncclBfloat16, c->comm, s), *c, "ncclAllGather");
          any = true;
          break;
        }
        case CollKind::kNone: return false;
      }
    }
    return any;
  }

  // Pipeline p2p on the communicator of the message's direction: the sender is its rank 0.
  bool sendrecv(const Op& op, size_t i, int si, cudaStream_t s) {
    if (op.bytes < 1) return false;
    const std::pair<int64_t, int64_t> key = op.is_send ? std::pair<int64_t, int64_t>{my_pp_, op.peer}
                                                       : std::pair<int64_t, int64_t>{op.peer, my_pp_};
    const auto it = edge_comm_.find(key);
    if (it == edge_comm_.end() || !it->second->comm) {
      throw RuntimeError("op " + std::to_string(i) + " (" + op.label() + ") " + (op.is_send ? "sends" : "receives") +
                         " between pipeline stages " + std::to_string(key.first) + " and " + std::to_string(key.second) +
                         ", which are not neighbours; the CUDA executor connects only stages s and s±1 (mod pp)");
    }
    Comm& c = *it->second;
    // Chunked like collectives; both sides cut the message the same way, so the calls match.
    const int64_t chunk = std::min<int64_t>(op.bytes, int64_t(kCommBufferBytes));
    void* b = buf(kComm0 + si, size_t(chunk), i);
    for (int64_t done = 0; done < op.bytes; done += chunk) {
      const size_t n = size_t(std::min(chunk, op.bytes - done));
      if (op.is_send) nccl_done(ncclSend(b, n, ncclUint8, 1, c.comm, s), c, "ncclSend");
      else nccl_done(ncclRecv(b, n, ncclUint8, 0, c.comm, s), c, "ncclRecv");
    }
    return true;
  }

  // ---- teardown -----------------------------------------------------------------------------

  // Never throws. A healthy executor finalizes its communicators (every rank in the same order,
  // as ncclCommFinalize waits for the peers); a failed one aborts them.
  void release(bool abort) noexcept {
    if (device_ >= 0) cudaSetDevice(device_);
    if (!abort) cudaDeviceSynchronize();
    for (auto& c : comms_) {
      if (!c->comm) continue;
      bool ok = !abort;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
      if (ok) {
        const ncclResult_t fr = ncclCommFinalize(c->comm);
        ok = fr == ncclSuccess || fr == ncclInProgress;
        const auto t0 = std::chrono::steady_clock::now();
        ncclResult_t state = ncclInProgress;
        while (ok && state == ncclInProgress) {
          if (ncclCommGetAsyncError(c->comm, &state) != ncclSuccess) ok = false;
          if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s_) ok = false;
          std::this_thread::yield();
        }
        ok = ok && state == ncclSuccess;
      }
#endif
      if (ok) ncclCommDestroy(c->comm);
      else ncclCommAbort(c->comm);
      c->comm = nullptr;
    }
    gemms_.clear();
    for (auto& ev : events_) cudaEventDestroy(ev[0]), cudaEventDestroy(ev[1]);
    events_.clear();
    for (auto& b : bufs_) b.reset();
    lt_ws_.reset(), blas_ws_.reset();
    if (blas_) cublasDestroy(blas_), blas_ = nullptr;
    if (lt_) cublasLtDestroy(lt_), lt_ = nullptr;
    for (auto& s : streams_)
      if (s) cudaStreamDestroy(s), s = nullptr;
    if (gate_event_) cudaEventDestroy(gate_event_), gate_event_ = nullptr;
    if (gate_stream_) cudaStreamDestroy(gate_stream_), gate_stream_ = nullptr;
  }

  ExecContext ctx_;
  FaultInjector faults_;
  double timeout_s_;
  int device_ = -1;
  cudaDeviceProp prop_{};
  std::string pci_;
  DType gemm_type_ = DType::kBf16, attn_type_ = DType::kBf16;
  bool healthy_ = true;

  std::array<cudaStream_t, plan::kNumStreams> streams_{};
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cudaStream_t blas_stream_ = nullptr;  // the stream blas_ is set to (null until the first attention)
  DeviceBuffer lt_ws_, blas_ws_;
  std::array<DeviceBuffer, kNumBufs> bufs_;
  std::map<std::array<int64_t, 4>, std::unique_ptr<LtGemm>> gemms_;
  std::vector<std::array<cudaEvent_t, 2>> events_;  // per op: start, end
  cudaStream_t gate_stream_ = nullptr;               // holds the step's start (Gate)
  cudaEvent_t gate_event_ = nullptr;
  std::atomic<bool> gate_open_{true};

  std::vector<std::unique_ptr<Comm>> comms_;  // in creation order (teardown uses it too)
  std::array<Comm*, 6> group_comm_{};         // by parallel::Group; null for groups of one
  std::map<std::pair<int64_t, int64_t>, Comm*> edge_comm_;  // (from stage, to stage)
  int64_t my_pp_ = 0;

  const plan::StagePlan* cur_stage_ = nullptr;  // during run_step, for messages
  std::array<int64_t, plan::kNumStreams> last_op_{};
};

}  // namespace

namespace cuda {

int device_count(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    (void)cudaGetLastError();  // no driver / no device: not an error for the caller
    return 0;
  }
  if (count < 1 && why) *why = "0 devices visible";
  return count;
}

std::unique_ptr<Executor> make_executor(const ExecContext& ctx) { return std::make_unique<CudaExecutor>(ctx); }

}  // namespace cuda
}  // namespace capscale::exec
