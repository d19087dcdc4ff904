// CPU executor: runs a stage plan for real on an MPI rank. GEMMs through OpenBLAS (bf16 via
// cblas_sbgemm when the library exports it and the CPU has AVX512-BF16, else fp32 cblas_sgemm —
// chosen at runtime), attention as its two batched GEMMs plus a softmax pass over the scores,
// elementwise ops as a bandwidth pass of the plan's byte count, collectives and pipeline
// send/recv through MPI on the layout's communicators. By default ops run one after another in
// plan order (one queue per rank, and `run` checks the engine with serialized streams). With
// ExecContext::concurrent_streams the streams run concurrently, as on a GPU: the compute stream on
// a worker thread, the communication streams as non-blocking MPI calls that the main thread issues
// and progresses (MPI_THREAD_FUNNELED: only the main thread calls MPI), so `run` can check the
// engine's overlap against a measured step.
#include <cblas.h>
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "collectives/collectives.hpp"
#include "common/error.hpp"
#include "exec/cpu/cpu_access.hpp"
#include "exec/executor.hpp"

namespace capscale::exec {
namespace {

using plan::CollKind;

// The MPI implementation of each registry entry (collectives/collectives.hpp), in place on fp32
// elements (MPI has no bf16 sum; the volume is what matters): `count` elements, n ranks. `run` is
// the blocking call (serial steps), `start` its MPI-3 non-blocking twin (concurrent streams: started,
// then tested).
using MpiCollective = void (*)(float* buf, int count, int n, MPI_Comm comm);
using MpiICollective = void (*)(float* buf, int count, int n, MPI_Comm comm, MPI_Request* req);
struct MpiCollectiveCalls {
  MpiCollective run;
  MpiICollective start;
};
constexpr MpiCollectiveCalls kMpiCollectives[] = {
    // all_reduce
    {[](float* b, int count, int, MPI_Comm c) { CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, b, count, MPI_FLOAT, MPI_SUM, c)); },
     [](float* b, int count, int, MPI_Comm c, MPI_Request* r) {
       CAPSCALE_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, b, count, MPI_FLOAT, MPI_SUM, c, r));
     }},
    // reduce_scatter: this rank keeps count/n reduced elements
    {[](float* b, int count, int n, MPI_Comm c) {
       CAPSCALE_MPI_CHECK(MPI_Reduce_scatter_block(MPI_IN_PLACE, b, count / n, MPI_FLOAT, MPI_SUM, c));
     },
     [](float* b, int count, int n, MPI_Comm c, MPI_Request* r) {
       CAPSCALE_MPI_CHECK(MPI_Ireduce_scatter_block(MPI_IN_PLACE, b, count / n, MPI_FLOAT, MPI_SUM, c, r));
     }},
    // all_gather: each rank contributes count/n elements
    {[](float* b, int count, int n, MPI_Comm c) {
       CAPSCALE_MPI_CHECK(MPI_Allgather(MPI_IN_PLACE, count / n, MPI_FLOAT, b, count / n, MPI_FLOAT, c));
     },
     [](float* b, int count, int n, MPI_Comm c, MPI_Request* r) {
       CAPSCALE_MPI_CHECK(MPI_Iallgather(MPI_IN_PLACE, count / n, MPI_FLOAT, b, count / n, MPI_FLOAT, c, r));
     }},
    // all_to_all: count/n elements to each rank (in place, MPI 2.2)
    {[](float* b, int count, int n, MPI_Comm c) {
       CAPSCALE_MPI_CHECK(MPI_Alltoall(MPI_IN_PLACE, count / n, MPI_FLOAT, b, count / n, MPI_FLOAT, c));
     },
     [](float* b, int count, int n, MPI_Comm c, MPI_Request* r) {
       CAPSCALE_MPI_CHECK(MPI_Ialltoall(MPI_IN_PLACE, count / n, MPI_FLOAT, b, count / n, MPI_FLOAT, c, r));
     }},
};
static_assert(std::size(kMpiCollectives) == collectives::kNumKinds, "every registry entry needs an MPI implementation");

const MpiCollectiveCalls& mpi_collective(CollKind kind) {
  collectives::get(kind);  // throws for kNone
  return kMpiCollectives[collectives::index(kind)];
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

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
    int64_t a = 1, b = 1, c = 1, scores = 1, stream = 1, comm = 1, msg = kStampFloats;  // a message holds a send time
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
    if (ctx_.concurrent_streams) return run_step_concurrent(stage, step);
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
  static constexpr std::array<plan::Stream, 4> kCollectiveStreams = {plan::Stream::kTp, plan::Stream::kCp, plan::Stream::kDp,
                                                                     plan::Stream::kEp};
  static constexpr std::array<plan::Stream, 6> kCommStreams = {plan::Stream::kTp, plan::Stream::kCp,     plan::Stream::kDp,
                                                               plan::Stream::kEp, plan::Stream::kPpSend, plan::Stream::kPpRecv};
  static_assert(kCommStreams.size() + 1 == plan::kNumStreams, "every stream but compute is a communication stream");
  /// Floats at the head of a concurrent step's pipeline message that carry the send's time.
  static constexpr int64_t kStampFloats = sizeof(double) / sizeof(float);
  /// How long a concurrent step may go without any op finishing before it is declared stuck.
  static constexpr double kStallS = 120;

  /// Per-stream resources of concurrent steps, made on the first one (every rank reaches it
  /// together): each collective stream gets its own duplicate of every group's communicator, so
  /// two streams' non-blocking collectives on one group (the tp stream's and the ep stream's
  /// all-gather dispatcher, say) can never be matched with each other, and its own buffer.
  void ensure_concurrent(const plan::StagePlan& stage) {
    if (!stream_comm_.empty()) return;
    stream_buf_.assign(plan::kNumStreams, {});
    for (const auto& op : stage.ops) {
      if (op.kind != OpKind::kCollective) continue;
      auto& buf = stream_buf_[size_t(op.stream)];
      buf.resize(std::max<size_t>(buf.size(), size_t(op.bytes / 4 + 1)), 1.0f);
    }
    stream_comm_.assign(plan::kNumStreams * parallel::kNumGroups, MPI_COMM_NULL);
    // The same (stream, group) order on every rank: each dup is collective over the group's members.
    for (plan::Stream s : kCollectiveStreams)
      for (parallel::Group g : parallel::kAllGroups)
        if (MPI_Comm c = ctx_.comms->get(g); c != MPI_COMM_NULL)
          CAPSCALE_MPI_CHECK(MPI_Comm_dup(c, &stream_comm_[size_t(s) * parallel::kNumGroups + size_t(g)]));
    // Which pipeline peers share this rank's host (and so its steady clock): recv_begin_s.
    MPI_Comm pp = ctx_.comms->get(parallel::Group::kPp);
    int pp_size = 1;
    CAPSCALE_MPI_CHECK(MPI_Comm_rank(pp, &pp_rank_));
    CAPSCALE_MPI_CHECK(MPI_Comm_size(pp, &pp_size));
    const uint64_t mine = std::hash<std::string>{}(host_name());
    pp_host_.assign(size_t(pp_size), 0);
    CAPSCALE_MPI_CHECK(MPI_Allgather(&mine, 1, MPI_UINT64_T, pp_host_.data(), 1, MPI_UINT64_T, pp));
    // Every stream's queue: its ops' indices in plan order.
    queues_.assign(plan::kNumStreams, {});
    for (size_t i = 0; i < stage.ops.size(); ++i) queues_[size_t(stage.ops[i].stream)].push_back(int32_t(i));
    worker_ = std::thread([this] { compute_stream_loop(); });
  }

  /// Starts op i of a communication stream as a non-blocking MPI call; `req` completes with it.
  void start_comm(const plan::Op& op, MPI_Request* req) {
    *req = MPI_REQUEST_NULL;  // a collective over one rank, or a group this rank is not in: done at once
    if (op.kind == OpKind::kSendRecv) {
      if (op.is_send) {
        // As in a serial step: the send is posted from its own slot and done, the receive carries
        // the transfer (emulate::aggregate times it so). Waiting here for the peer's matching
        // receive would charge the send with the peer's schedule.
        sendrecv(op, /*stamp=*/true);
        return;
      }
      // A receive is posted once its message has arrived (poll_recv) and timed from the later of
      // its issue and the peer's send (recv_begin_s): posted and timed on issue, it would also
      // count the wait for the peer's send, which the engine models itself.
      return;
    }
    MPI_Comm comm = stream_comm_[size_t(op.stream) * parallel::kNumGroups + size_t(op.group)];
    int n = 1;
    if (const int count = collective_count(op, comm, &n)) mpi_collective(op.coll).start(stream_buf_[size_t(op.stream)].data(), count, n, comm, req);
  }

  /// A receive of a concurrent step whose message has not been seen yet: probes for it and, once
  /// it is there, posts the receive into `req`. True when it was posted (at `*arrived_s`).
  bool poll_recv(const plan::Op& op, MPI_Request* req, double* arrived_s) {
    MPI_Comm comm = ctx_.comms->get(parallel::Group::kPp);
    const auto [count, tag] = pp_message(op, kStampFloats);
    int flag = 0;
    CAPSCALE_MPI_CHECK(MPI_Iprobe(op.peer, tag, comm, &flag, MPI_STATUS_IGNORE));
    if (!flag) return false;
    *arrived_s = now_s();
    CAPSCALE_MPI_CHECK(MPI_Irecv(recv_.data(), count, MPI_FLOAT, op.peer, tag, comm, req));
    return true;
  }

  /// Where a completed receive's own time begins: the later of its issue and the peer's send
  /// (stamped into the message on the sender's steady clock) when both ranks share a host, so
  /// that the time from a send to the peer noticing its message, part of the real step, is in
  /// the receive's time; across hosts (clocks not comparable) when its message was seen.
  double recv_begin_s(const plan::Op& op, double issued_s, double arrived_s) const {
    if (size_t(op.peer) >= pp_host_.size() || pp_host_[size_t(op.peer)] != pp_host_[size_t(pp_rank_)]) return arrived_s;
    double sent_s = 0;
    std::memcpy(&sent_s, recv_.data(), sizeof sent_s);
    return std::min(arrived_s, std::max(issued_s, sent_s));
  }

  bool deps_done(const plan::Op& op) const {
    for (uint8_t d = 0; d < op.ndeps; ++d)
      if (!done_[size_t(op.deps[d])].load(std::memory_order_acquire)) return false;
    return op.overlap.partner < 0 || done_[size_t(op.overlap.partner)].load(std::memory_order_acquire);
  }

  /// Marks op i done and wakes the other thread (under the lock, so that no wake-up is lost).
  void mark_done(size_t i, std::condition_variable& wake) {
    done_[i].store(1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++completions_;
    }
    wake.notify_all();
  }

  /// The worker thread: for each step the main thread posts, runs the compute stream's ops in
  /// order, each once its dependencies are done (waiting on the main thread's communication ops),
  /// and times them. It makes no MPI call. Handing each op over from the main thread instead cost
  /// a scheduler wake-up per op, which on an oversubscribed node added ~10 % to the step unseen by
  /// any op's time.
  void compute_stream_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      worker_wake_.wait(lock, [&] { return quit_ || job_ != finished_job_; });
      if (quit_) return;
      const auto& ops = job_stage_->ops;
      lock.unlock();
      try {
        for (int32_t i : queues_[size_t(plan::Stream::kCompute)]) {
          const plan::Op& op = ops[size_t(i)];
          if (!deps_done(op)) {
            std::unique_lock<std::mutex> wait(mu_);
            worker_wake_.wait(wait, [&] { return quit_ || deps_done(op); });
            if (quit_) return;
          }
          faults_.maybe_fail(job_step_, size_t(i));
          const double s = now_s();
          run_op(op);
          if (time_ops_) (*job_op_s_)[size_t(i)] = now_s() - s;
          mark_done(size_t(i), main_wake_);
        }
      } catch (...) {
        worker_error_ = std::current_exception();
      }
      lock.lock();
      finished_job_ = job_;
      main_wake_.notify_all();
    }
  }

  /// One step with the streams running concurrently. Each stream runs its ops in plan order, one
  /// at a time; an op starts once its stream is free and its dependencies (and the partner of an
  /// overlap edge, which runs whole here, not in pieces) are done. The worker runs the compute
  /// stream; the main thread starts the communication ops and tests them, between tests waiting
  /// up to 20 us for the worker (so that it takes little of the core the worker runs on). An op's
  /// time is from its start to when it was seen done; a receive's from its message's arrival
  /// (MPI_Iprobe) to its completion.
  StepTimes run_step_concurrent(const plan::StagePlan& stage, int step) {
    ensure_concurrent(stage);
    const auto& ops = stage.ops;
    StepTimes t;
    t.op_s.assign(ops.size(), 0.0);
    if (done_size_ < ops.size()) done_ = std::make_unique<std::atomic<uint8_t>[]>(done_size_ = ops.size());
    for (size_t i = 0; i < ops.size(); ++i) done_[i].store(0, std::memory_order_relaxed);
    std::vector<double> start(ops.size(), 0.0);
    std::array<size_t, plan::kNumStreams> head{};
    std::array<int32_t, plan::kNumStreams> active;
    active.fill(-1);
    std::array<MPI_Request, plan::kNumStreams> req;
    req.fill(MPI_REQUEST_NULL);
    bool recv_posted = false;  // the receive in flight on the pp-recv stream has been posted
    double recv_arrived_s = 0;  // when its message was seen
    size_t comm_left = ops.size() - queues_[size_t(plan::Stream::kCompute)].size();
    CAPSCALE_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    const double t0 = now_s();
    next_slot_ = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_stage_ = &stage, job_step_ = step, job_op_s_ = &t.op_s, worker_error_ = nullptr;
      ++job_;
    }
    worker_wake_.notify_all();
    double last_progress = t0;
    int64_t seen = -1;
    for (;;) {
      bool progressed = false, comm_in_flight = false;
      for (plan::Stream st : kCommStreams) {
        const size_t s = size_t(st);
        const int32_t i = active[s];
        if (i < 0) continue;
        if (st == plan::Stream::kPpRecv && !recv_posted) {
          recv_posted = poll_recv(ops[size_t(i)], &req[s], &recv_arrived_s);
          if (!recv_posted) {
            comm_in_flight = true;
            continue;
          }
        }
        int flag = 0;
        CAPSCALE_MPI_CHECK(MPI_Test(&req[s], &flag, MPI_STATUS_IGNORE));
        if (!flag) {
          comm_in_flight = true;
          continue;
        }
        if (st == plan::Stream::kPpRecv) start[size_t(i)] = recv_begin_s(ops[size_t(i)], start[size_t(i)], recv_arrived_s);
        if (time_ops_) t.op_s[size_t(i)] = now_s() - start[size_t(i)];
        active[s] = -1, --comm_left, progressed = true;
        mark_done(size_t(i), worker_wake_);
      }
      for (plan::Stream st : kCommStreams) {
        const size_t s = size_t(st);
        const auto& q = queues_[s];
        if (active[s] >= 0 || head[s] >= q.size()) continue;
        const int32_t i = q[head[s]];
        if (!deps_done(ops[size_t(i)])) continue;
        faults_.maybe_fail(step, size_t(i));
        ++head[s], active[s] = i, progressed = true, comm_in_flight = true;
        start[size_t(i)] = now_s();
        start_comm(ops[size_t(i)], &req[s]);
        if (st == plan::Stream::kPpRecv) recv_posted = false;
      }
      if (progressed) {
        last_progress = now_s();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      if (finished_job_ == job_ && worker_error_) std::rethrow_exception(worker_error_);
      if (finished_job_ == job_ && comm_left == 0) break;
      if (completions_ != seen) {  // the worker finished an op since the last look: look again
        seen = completions_;
        last_progress = now_s();
        continue;
      }
      if (!comm_in_flight && finished_job_ == job_)
        throw RuntimeError("CPU executor: no op of the stage can start (a dependency that never completes); this is a bug");
      main_wake_.wait_for(lock, comm_in_flight ? std::chrono::microseconds(20) : std::chrono::milliseconds(100),
                          [&] { return completions_ != seen || finished_job_ == job_; });
      if (now_s() - last_progress > kStallS) {
        throw RuntimeError("CPU executor: rank " + std::to_string(ctx_.world_rank) + " on host " + host_name() + ": no op finished for " +
                           std::to_string(int(kStallS)) + " s in a concurrent step (a peer rank stopped?)");
      }
    }
    CAPSCALE_MPI_CHECK(MPI_Waitall(static_cast<int>(send_req_.size()), send_req_.data(), MPI_STATUSES_IGNORE));
    t.wall_s = now_s() - t0;
    return t;
  }

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

  /// The fp32 element count carrying a collective's byte count on `comm` (MPI has no bf16 sum;
  /// the volume is what matters), a multiple of its size `*n`; 0 when there is nothing to do (a
  /// group this rank is not in, or of one rank).
  static int collective_count(const plan::Op& op, MPI_Comm comm, int* n) {
    *n = 1;
    if (comm == MPI_COMM_NULL) return 0;
    MPI_Comm_size(comm, n);
    if (*n == 1) return 0;
    return static_cast<int>(std::max<int64_t>(*n, op.bytes / 4 / *n * *n));
  }

  void collective(const plan::Op& op) {
    MPI_Comm comm = ctx_.comms->get(op.group);
    int n = 1;
    if (const int count = collective_count(op, comm, &n)) mpi_collective(op.coll).run(comm_.data(), count, n, comm);
  }

  /// A pipeline message's fp32 element count (at least `min_count`) and MPI tag. Tags only need
  /// to be unique among messages in flight between two stages in one step.
  static std::pair<int, int> pp_message(const plan::Op& op, int64_t min_count) {
    return {static_cast<int>(std::max<int64_t>(min_count, op.bytes / 4)), static_cast<int>(op.tag % 32767)};
  }

  /// `stamp` (concurrent steps): the message's first bytes carry the send's time (recv_begin_s).
  void sendrecv(const plan::Op& op, bool stamp = false) {
    MPI_Comm comm = ctx_.comms->get(parallel::Group::kPp);
    const auto [count, tag] = pp_message(op, stamp ? kStampFloats : 1);
    if (op.is_send) {
      MPI_Request& req = send_req_[next_slot_];
      CAPSCALE_MPI_CHECK(MPI_Wait(&req, MPI_STATUS_IGNORE));  // reuse the slot's buffer safely
      if (stamp) {
        const double sent_s = now_s();
        std::memcpy(send_buf_[next_slot_].data(), &sent_s, sizeof sent_s);
      }
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
  // Concurrent streams (ensure_concurrent): per stream × group communicators, buffers, op queues.
  std::vector<MPI_Comm> stream_comm_;
  std::vector<std::vector<float>> stream_buf_;
  std::vector<std::vector<int32_t>> queues_;
  std::vector<uint64_t> pp_host_;  ///< a hash of each pipeline peer's host name
  int pp_rank_ = 0;
  // The compute stream's thread and what it shares with the main thread (mu_ guards the job and
  // completion counters; done_ holds one flag per op of the step).
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable worker_wake_, main_wake_;
  bool quit_ = false;
  int64_t job_ = 0, finished_job_ = 0, completions_ = 0;
  const plan::StagePlan* job_stage_ = nullptr;
  int job_step_ = 0;
  std::vector<double>* job_op_s_ = nullptr;
  std::exception_ptr worker_error_;
  std::unique_ptr<std::atomic<uint8_t>[]> done_;
  size_t done_size_ = 0;

 public:
  ~CpuExecutor() override {
    if (worker_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        quit_ = true;
      }
      worker_wake_.notify_all();
      worker_.join();
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    for (MPI_Comm& c : stream_comm_)
      if (c != MPI_COMM_NULL && !finalized) MPI_Comm_free(&c);
  }
};

}  // namespace

std::unique_ptr<Executor> make_cpu_executor(const ExecContext& ctx) { return std::make_unique<CpuExecutor>(ctx); }

}  // namespace capscale::exec
