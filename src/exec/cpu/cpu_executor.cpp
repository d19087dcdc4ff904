// CPU executor: runs a stage plan for real on an MPI rank. GEMMs through OpenBLAS (bf16 via
// cblas_sbgemm when the library exports it and the CPU has AVX512-BF16, else fp32 cblas_sgemm —
// chosen at runtime), attention as its two batched GEMMs plus a softmax pass over the scores,
// elementwise ops as a bandwidth pass of the plan's byte count, collectives and pipeline
// send/recv through MPI on the layout's communicators. Ops run one after another in plan order:
// a CPU rank has one queue, which is why `run` checks the engine with serialized streams.
#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <thread>

#include "collectives/collectives.hpp"
#include "common/error.hpp"
#include "exec/cpu/cpu_access.hpp"
#include "exec/executor.hpp"

namespace capscale::exec {
namespace {

using plan::CollKind;

// The MPI implementation of each registry entry (collectives/collectives.hpp), in place on fp32
// elements (MPI has no bf16 sum; the volume is what matters): `count` elements, n ranks.
using MpiCollective = void (*)(float* buf, int count, int n, MPI_Comm comm);
constexpr MpiCollective kMpiCollectives[] = {
    // all_reduce
    [](float* b, int count, int, MPI_Comm c) { CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, b, count, MPI_FLOAT, MPI_SUM, c)); },
    // reduce_scatter: this rank keeps count/n reduced elements
    [](float* b, int count, int n, MPI_Comm c) {
      CAPSCALE_MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, b, count / n, MPI_FLOAT, MPI_SUM, c));
    },
    // all_gather: each rank contributes count/n elements
    [](float* b, int count, int n, MPI_Comm c) {
      CAPSCALE_MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, count / n, MPI_FLOAT, b, count / n, MPI_FLOAT, c));
    },
    // all_to_all: count/n elements to each rank (in place, MPI 2.2)
    [](float* b, int count, int n, MPI_Comm c) {
      CAPSCALE_MPI_CHECK(MPI_Alltoall(MPI_IN_PLACE, count / n, MPI_FLOAT, b, count / n, MPI_FLOAT, c));
    },
};
static_assert(std::size(kMpiCollectives) == collectives::kNumKinds, "every registry entry needs an MPI implementation");

MpiCollective mpi_collective(CollKind kind) {
  collectives::get(kind);  // throws for kNone
  return kMpiCollectives[collectives::index(kind)];
}

using plan::OpKind;

// OpenBLAS' bf16 GEMM (0.3.10+), looked up at runtime so one binary runs on any OpenBLAS.
using SbgemmFn = void (*)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint, float,
                          const uint16_t*, blasint, const uint16_t*, blasint, float, float*, blasint);

bool cpu_has_avx512_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) return line.find("avx512_bf16") != std::string::npos;
  return false;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "cpu";
}

double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024.0;
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

class CpuExecutor final : public Executor, public cpu::CpuExecutorAccess {
 public:
  std::vector<float>& comm_buffer() override { return comm_; }

  explicit CpuExecutor(const ExecContext& ctx) : ctx_(ctx), faults_(ctx.world_rank) {
    if (void* f = dlsym(RTLD_DEFAULT, "cblas_sbgemm"); f && cpu_has_avx512_bf16()) sbgemm_ = reinterpret_cast<SbgemmFn>(f);
    // One BLAS thread per core this rank can have: oversubscribed ranks must not each spawn
    // a thread per core (that would be 4 ranks × 2 threads on 2 cores).
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    const int local = ctx.session ? ctx.session->local_size() : 1;
    openblas_set_num_threads(std::max(1, cores / std::max(1, local)));
  }

  std::string backend() const override { return "cpu"; }
  std::string device() const override { return cpu_model(); }
  std::string gemm_dtype() const override { return sbgemm_ ? "bf16 (cblas_sbgemm)" : "fp32 (cblas_sgemm)"; }

  void prepare(const plan::StagePlan& stage) override {
    int64_t a = 1, b = 1, c = 1, scores = 1, stream = 1, comm = 1, msg = 1;
    int64_t sends = 0;
    for (const auto& op : stage.ops) {
      switch (op.kind) {
        case OpKind::kGemm:
          a = std::max(a, op.m * op.k), b = std::max(b, op.k * op.n), c = std::max(c, op.m * op.n);
          break;
        case OpKind::kAttention:
          // One batch element at a time: Q [m×k], K/V [n×k], scores [m×n], out [m×k].
          a = std::max(a, op.m * op.k), b = std::max(b, op.n * op.k), c = std::max(c, op.m * op.k);
          scores = std::max(scores, op.m * op.n);
          break;
        case OpKind::kElementwise: stream = std::max(stream, op.bytes / 12 + 1); break;
        case OpKind::kCollective: comm = std::max(comm, op.bytes / 4 + 1); break;
        case OpKind::kSendRecv:
          msg = std::max(msg, op.bytes / 4 + 1);
          sends += op.is_send;
          break;
      }
    }
    send_slots_ = std::min<int64_t>(std::max<int64_t>(sends, 1), 64);
    const double floats = double(a + b + c + scores + 2 * stream + comm + msg * (1 + send_slots_));
    const double need = floats * 4.0;
    const double avail = available_memory_bytes() / double(ctx_.session ? ctx_.session->local_size() : 1);
    if (avail > 0 && need > 0.9 * avail) {
      throw DoesNotFitError("run", "memory", "the CPU executor needs " + std::to_string(need / 1e9) + " GB per rank for this plan's buffers but " +
                                                 std::to_string(avail / 1e9) + " GB per rank is available on host " + host_name() +
                                                 "; use a smaller model (e.g. --model tiny-demo), micro-batch or sequence");
    }
    A_.assign(a, 0.5f), B_.assign(b, 0.25f), C_.assign(std::max(c, int64_t(1)), 0.0f), S_.assign(scores, 0.0f);
    X_.assign(stream, 1.0f), Y_.assign(stream, 0.0f), comm_.assign(comm, 1.0f), recv_.assign(msg, 0.0f);
    send_buf_.assign(send_slots_, std::vector<float>(msg, 1.0f));
    send_req_.assign(send_slots_, MPI_REQUEST_NULL);
    if (sbgemm_) {
      A16_.assign(a, 0x3f00), B16_.assign(b, 0x3e80);  // bf16 0.5 and 0.25
    }
  }

  StepTimes run_step(const plan::StagePlan& stage, int step) override {
    StepTimes t;
    t.op_s.resize(stage.ops.size());
    CAPSCALE_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    const double t0 = MPI_Wtime();
    next_slot_ = 0;
    for (size_t i = 0; i < stage.ops.size(); ++i) {
      faults_.maybe_fail(step, i);
      if (!time_ops_) {
        run_op(stage.ops[i]);
        continue;
      }
      const double s = MPI_Wtime();
      run_op(stage.ops[i]);
      t.op_s[i] = MPI_Wtime() - s;
    }
    CAPSCALE_MPI_CHECK(MPI_Waitall(static_cast<int>(send_req_.size()), send_req_.data(), MPI_STATUSES_IGNORE));
    t.wall_s = MPI_Wtime() - t0;
    return t;
  }

 private:
  void gemm(int64_t m, int64_t n, int64_t k, bool transpose_b = false, const float* a = nullptr, const float* b = nullptr,
            float* c = nullptr) {
    const auto tb = transpose_b ? CblasTrans : CblasNoTrans;
    const blasint ldb = static_cast<blasint>(transpose_b ? k : n);
    if (sbgemm_ && !a) {
      sbgemm_(CblasRowMajor, CblasNoTrans, tb, m, n, k, 1.0f, A16_.data(), k, B16_.data(), ldb, 0.0f, C_.data(), n);
      return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tb, m, n, k, 1.0f, a ? a : A_.data(), k, b ? b : B_.data(), ldb, 0.0f,
                c ? c : C_.data(), n);
  }

  void softmax_rows(int64_t rows, int64_t cols) {
    float* s = S_.data();
    for (int64_t r = 0; r < rows; ++r) {
      float* row = s + r * cols;
      float mx = row[0];
      for (int64_t j = 1; j < cols; ++j) mx = std::max(mx, row[j]);
      float sum = 0;
      for (int64_t j = 0; j < cols; ++j) sum += (row[j] = std::exp(row[j] - mx));
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < cols; ++j) row[j] *= inv;
    }
  }

  void attention(const plan::Op& op) {
    // Per batch element: scores = Q·Kᵀ [m×k]·[k×n], softmax, out = P·V [m×n]·[n×k]. Backward has
    // twice the forward FLOPs (Narayanan et al.), so it runs the pair twice.
    const int rounds = op.phase == plan::Phase::kBackward ? 2 : 1;
    for (int r = 0; r < rounds; ++r) {
      for (int64_t b = 0; b < op.batch; ++b) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, op.m, op.n, op.k, 1.0f, A_.data(), op.k, B_.data(), op.k,
                    0.0f, S_.data(), op.n);
        softmax_rows(op.m, op.n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, op.m, op.k, op.n, 1.0f, S_.data(), op.n, B_.data(), op.k,
                    0.0f, C_.data(), op.k);
      }
    }
  }

  void elementwise(int64_t bytes) {
    // y = a·x + y moves 12 bytes per fp32 element (two reads, one write).
    const int64_t n = std::max<int64_t>(1, bytes / 12);
    float* __restrict y = Y_.data();
    const float* __restrict x = X_.data();
    for (int64_t i = 0; i < n; ++i) y[i] = 1.0001f * x[i] + y[i];
  }

  void collective(const plan::Op& op) {
    MPI_Comm comm = ctx_.comms->get(op.group);
    if (comm == MPI_COMM_NULL) return;
    int n = 1;
    MPI_Comm_size(comm, &n);
    if (n == 1) return;
    // fp32 elements carrying the plan's byte count (MPI has no bf16 sum); the volume is what matters.
    const int count = static_cast<int>(std::max<int64_t>(n, op.bytes / 4 / n * n));
    mpi_collective(op.coll)(comm_.data(), count, n, comm);
  }

  void sendrecv(const plan::Op& op) {
    MPI_Comm comm = ctx_.comms->get(parallel::Group::kPp);
    const int count = static_cast<int>(std::max<int64_t>(1, op.bytes / 4));
    int tag_ub = 32767;
    // Tags only need to be unique among messages in flight between two stages in one step.
    const int tag = static_cast<int>(op.tag % tag_ub);
    if (op.is_send) {
      MPI_Request& req = send_req_[next_slot_];
      CAPSCALE_MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));  // reuse the slot's buffer safely
      CAPSCALE_MPI_CHECK(MPI_Isend(send_buf_[next_slot_].data(), count, MPI_FLOAT, op.peer, tag, comm, &req));
      next_slot_ = (next_slot_ + 1) % send_slots_;
    } else {
      CAPSCALE_MPI_CHECK(MPI_Recv(recv_.data(), count, MPI_FLOAT, op.peer, tag, comm, MPI_STATUS_IGNORE));
    }
  }

  void run_op(const plan::Op& op) {
    switch (op.kind) {
      case OpKind::kGemm:
        for (int64_t g = 0; g < op.batch; ++g) gemm(op.m, op.n, op.k);  // a grouped GEMM: one per local expert
        break;
      case OpKind::kAttention: attention(op); break;
      case OpKind::kElementwise: elementwise(op.bytes); break;
      case OpKind::kCollective: collective(op); break;
      case OpKind::kSendRecv: sendrecv(op); break;
    }
  }

  ExecContext ctx_;
  FaultInjector faults_;
  SbgemmFn sbgemm_ = nullptr;
  std::vector<float> A_, B_, C_, S_, X_, Y_, comm_, recv_;
  std::vector<uint16_t> A16_, B16_;
  std::vector<std::vector<float>> send_buf_;
  std::vector<MPI_Request> send_req_;
  int64_t send_slots_ = 1, next_slot_ = 0;
};

}  // namespace

std::unique_ptr<Executor> make_cpu_executor(const ExecContext& ctx) { return std::make_unique<CpuExecutor>(ctx); }

}  // namespace capscale::exec
