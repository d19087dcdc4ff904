// CUDA benchmarks: the executor's GEMM and all-reduce paths against direct library loops on the
// same shapes in the same run (bench.hpp has the ratio's meaning). The direct GEMM loop calls
// cublasLtMatmul with the executor's own descriptors and (tuned) algorithm, so the ratio measures
// the executor's overhead, not a different kernel; the direct all-reduce is nccl-tests' loop
// (in-place ncclAllReduce on a communicator of its own, bf16 sum).
#include <mpi.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <vector>

#include "common/stats.hpp"
#include "exec/bench.hpp"
#include "exec/buffer_sizing.hpp"
#include "exec/cuda/cuda_backend.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/kernels.cuh"
#include "exec/cuda/nccl_comms.hpp"
#include "collectives/collectives.hpp"

namespace capscale::exec {
namespace {

class Scratch {
 public:
  explicit Scratch(size_t bytes) { CAPSCALE_CUDA_CHECK(cudaMalloc(&p_, std::max<size_t>(bytes, 1))); }
  ~Scratch() { cudaFree(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
};

class Stream {
 public:
  Stream() { CAPSCALE_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

// One start/end event pair per timed call, read after the loop (as the executor times its ops).
class EventPairs {
 public:
  explicit EventPairs(int n) : ev_(size_t(2 * std::max(n, 0))) {
    for (auto& e : ev_) CAPSCALE_CUDA_CHECK(cudaEventCreate(&e));
  }
  ~EventPairs() {
    for (auto e : ev_)
      if (e) cudaEventDestroy(e);
  }
  EventPairs(const EventPairs&) = delete;
  EventPairs& operator=(const EventPairs&) = delete;
  cudaEvent_t start(int i) const { return ev_[2 * i]; }
  cudaEvent_t end(int i) const { return ev_[2 * i + 1]; }
  void append_seconds(int n, std::vector<double>& out) const {
    for (int i = 0; i < n; ++i) {
      float ms = 0;
      CAPSCALE_CUDA_CHECK(cudaEventElapsedTime(&ms, start(i), end(i)));
      out.push_back(double(ms) * 1e-3);
    }
  }

 private:
  std::vector<cudaEvent_t> ev_;
};

cuda::CudaExecutorAccess& cuda_access(Executor& ex, const char* what) {
  auto* acc = dynamic_cast<cuda::CudaExecutorAccess*>(&ex);
  if (!acc) throw InputError("bench", what, "needs the CUDA executor, got backend '" + ex.backend() + "'");
  CAPSCALE_CUDA_CHECK(cudaSetDevice(acc->device_id()));
  return *acc;
}

// Path and direct alternate in rounds so that drift (clocks, other load) hits both alike.
constexpr int kRounds = 3;
constexpr double kClockSettleS = 0.5;  // busy time before a GEMM shape is timed

}  // namespace

std::vector<BenchRow> cuda::bench_gemm(Executor& ex, const BenchOptions& o) {
  cuda::CudaExecutorAccess& acc = cuda_access(ex, "gemm");
  // 8192³ first: DESIGN.md's budget (≥ 750 TFLOP/s bf16 on H100/H200) is stated for it.
  std::vector<std::array<int64_t, 3>> shapes{{8192, 8192, 8192}};
  for (const auto& s : o.gemm_shapes)
    if (std::find(shapes.begin(), shapes.end(), s) == shapes.end()) shapes.push_back(s);
  cuda::NcclComms watchdog(cuda::nccl_timeout_s(), nullptr);  // no communicator: timeouts only
  Stream stream;
  std::vector<BenchRow> rows;
  for (const auto& s : shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    const plan::Op op = plan::gemm_op(m, n, k);
    const plan::StagePlan st = repeated_op_plan(op, o.iters);
    ex.prepare(st);
    const cuda::LtGemm& g = acc.gemm_plan(m, n, k);
    // The same L2 rotation as the executor's buffers (Device::rotating), so neither side reads what
    // the call before it left in L2.
    const size_t ring = kL2RotationBytes;
    Scratch a(g.a_bytes() + ring), w(g.w_bytes() + ring), c(g.c_bytes() + ring), ws(g.workspace_bytes());
    cuda::fill_random(a.get(), int64_t((g.a_bytes() + ring) / cuda::dtype_bytes(g.spec().a)), g.spec().a, 1, stream.get());
    cuda::fill_random(w.get(), int64_t((g.w_bytes() + ring) / cuda::dtype_bytes(g.spec().w)), g.spec().w, 2, stream.get());
    std::array<size_t, 3> at{};
    auto next = [&](int i, const Scratch& buf, size_t bytes) {
      if (at[size_t(i)] + bytes > bytes + ring) at[size_t(i)] = 0;
      char* p = static_cast<char*>(buf.get()) + at[size_t(i)];
      at[size_t(i)] += (bytes + 255) / 256 * 256;
      return p;
    };
    auto direct_once = [&] {
      const void* pa = next(0, a, g.a_bytes());
      const void* pw = next(1, w, g.w_bytes());
      void* pc = next(2, c, g.c_bytes());
      const void* first = g.a_first() ? pa : pw;
      const void* second = g.a_first() ? pw : pa;
      CAPSCALE_CUBLAS_CHECK(cublasLtMatmul(g.handle(), g.desc(), g.alpha(), first, g.first_layout(), second, g.second_layout(), g.beta(),
                                           pc, g.c_layout(), pc, g.c_layout(), &g.algo(), ws.get(), g.workspace_bytes(), stream.get()));
    };
    for (int i = 0; i < o.warmup; ++i) direct_once();
    watchdog.wait_stream(stream.get(), "the direct GEMM warm-up");
    // An idle GPU sits at low clocks (an H200 at 345 MHz) and boosts within tens to hundreds of ms:
    // keep it busy for kClockSettleS first, or the first shape is timed while the clocks climb.
    for (const auto t0 = std::chrono::steady_clock::now();
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < kClockSettleS;) {
      for (int i = 0; i < 8; ++i) direct_once();
      watchdog.wait_stream(stream.get(), "the direct GEMM warm-up");
    }
    if (o.warmup > 0) ex.run_step(repeated_op_plan(op, o.warmup), -1);
    EventPairs ev(o.iters);
    std::vector<double> path, direct;
    for (int r = 0; r < kRounds; ++r) {
      const StepTimes t = ex.run_step(st, -1);
      path.insert(path.end(), t.op_s.begin(), t.op_s.end());
      for (int i = 0; i < o.iters; ++i) {
        CAPSCALE_CUDA_CHECK(cudaEventRecord(ev.start(i), stream.get()));
        direct_once();
        CAPSCALE_CUDA_CHECK(cudaEventRecord(ev.end(i), stream.get()));
      }
      watchdog.wait_stream(stream.get(), "the direct GEMM loop");
      ev.append_seconds(o.iters, direct);
    }
    BenchRow row;
    row.what = "gemm";
    row.shape = std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
    row.dtype = cuda::to_string(g.in_type());
    row.path_s = median(path);
    row.direct_s = median(direct);
    row.path_rate = row.path_s > 0 ? op.flops / row.path_s / 1e12 : 0;
    row.direct_rate = row.direct_s > 0 ? op.flops / row.direct_s / 1e12 : 0;
    row.ratio = row.path_s > 0 ? row.direct_s / row.path_s : 0;
    rows.push_back(row);
  }
  return rows;
}

std::vector<BenchRow> cuda::bench_comm(Executor& ex, const ExecContext& ctx, const BenchOptions& o) {
  cuda_access(ex, "comm");
  if (!ctx.comms) throw InputError("bench", "comm", "needs the MPI communicators of a tp = world layout");
  MPI_Comm mc = ctx.comms->get(parallel::Group::kTp);
  int n = 1, rank = 0;
  CAPSCALE_MPI_CHECK(MPI_Comm_size(mc, &n));
  CAPSCALE_MPI_CHECK(MPI_Comm_rank(mc, &rank));
  if (n < 2) {
    throw InputError("bench", "comm", "needs at least 2 ranks (got 1): start it under mpirun -np N with N >= 2");
  }
  // The direct loop's own communicator, under the same watchdog as the executor's (nccl_comms.hpp):
  // destroyed when done, aborted when leaving by an exception or a timeout.
  cuda::NcclComms nccl(cuda::nccl_timeout_s(), ctx.interrupted);
  ncclUniqueId id{};
  if (rank == 0) CAPSCALE_NCCL_CHECK(ncclGetUniqueId(&id));
  CAPSCALE_MPI_CHECK(MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, mc));
  cuda::Comm& comm = nccl.create(id, n, rank, "bench all_reduce");
  Stream stream;
  int64_t max_bytes = 2;
  for (int64_t b : o.comm_bytes) max_bytes = std::max(max_bytes, b);
  Scratch buf{size_t(max_bytes)};
  cuda::fill_random(buf.get(), max_bytes / 2, cuda::DType::kBf16, 3, stream.get());
  EventPairs ev(o.iters);
  std::vector<BenchRow> rows;
  for (int64_t bytes : o.comm_bytes) {
    const plan::Op op = world_collective_op(plan::CollKind::kAllReduce, bytes);
    const plan::StagePlan st = repeated_op_plan(op, o.iters);
    ex.prepare(st);
    const int64_t count = bytes / 2;  // bf16 elements, as the executor sends
    auto direct_once = [&] {
      nccl.check(ncclAllReduce(buf.get(), buf.get(), size_t(count), ncclBfloat16, ncclSum, comm.comm, stream.get()), comm, "ncclAllReduce");
    };
    for (int i = 0; i < o.warmup; ++i) direct_once();
    nccl.wait_stream(stream.get(), "the direct all-reduce warm-up");
    if (o.warmup > 0) ex.run_step(repeated_op_plan(op, o.warmup), -1);
    std::vector<double> path, direct;
    for (int r = 0; r < kRounds; ++r) {
      const StepTimes t = ex.run_step(st, -1);
      path.insert(path.end(), t.op_s.begin(), t.op_s.end());
      CAPSCALE_MPI_CHECK(MPI_Barrier(mc));
      for (int i = 0; i < o.iters; ++i) {
        CAPSCALE_CUDA_CHECK(cudaEventRecord(ev.start(i), stream.get()));
        direct_once();
        CAPSCALE_CUDA_CHECK(cudaEventRecord(ev.end(i), stream.get()));
      }
      nccl.wait_stream(stream.get(), "the direct all-reduce loop");
      ev.append_seconds(o.iters, direct);
    }
    // The slowest rank's median decides a collective's speed; agree on it across ranks.
    double pm = median(path), dm = median(direct);
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &pm, 1, MPI_DOUBLE, MPI_MAX, mc));
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &dm, 1, MPI_DOUBLE, MPI_MAX, mc));
    BenchRow row;
    row.what = "all_reduce";
    row.shape = std::to_string(bytes) + " B";
    row.dtype = "bf16";
    row.path_s = pm;
    row.direct_s = dm;
    // nccl-tests doc/PERFORMANCE.md: busbw = algbw · 2(n−1)/n for all-reduce, algbw = S/t.
    const double f = collectives::bus_factor(plan::CollKind::kAllReduce, n);
    const double moved = double(count) * 2;
    row.path_rate = pm > 0 ? moved / pm * f / 1e9 : 0;
    row.direct_rate = dm > 0 ? moved / dm * f / 1e9 : 0;
    row.ratio = pm > 0 ? dm / pm : 0;
    rows.push_back(row);
  }
  return rows;
}

}  // namespace capscale::exec
