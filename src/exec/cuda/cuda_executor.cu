// CUDA executor: runs a stage plan on this rank's GPU. Three parts, each its own file: the device
// (device.hpp: GPU, streams, events, buffers), the NCCL communicators and their watchdog
// (nccl_comms.hpp) and the op families (ops.hpp). What is left here is the step: every plan stream
// is a CUDA stream, a dependency across streams is an event recorded after the producer that the
// consumer's stream waits on (llm.c train_gpt2.cu's overlap, written out op by op), op times are
// CUDA event pairs, and NVTX ranges carry the plan's op labels.
#include <nvtx3/nvToolsExt.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "common/error.hpp"
#include "exec/buffer_sizing.hpp"
#include "exec/cuda/cuda_backend.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/device.hpp"
#include "exec/cuda/nccl_comms.hpp"
#include "exec/cuda/ops.hpp"
#include "exec/enqueue_throttle.hpp"
#include "exec/executor.hpp"

namespace capscale::exec {
namespace {

using cuda::DType;
using plan::Op;

// What --precision runs as. cuBLASLt's FP8 GEMMs need FP8 tensor cores: Ada (sm_89) and Hopper
// (sm_90) onwards. A precision the device cannot run is refused, never silently replaced.
DType gemm_type_for(config::Precision want, const cuda::Device& dev) {
  if (want == config::Precision::kFp8 && dev.sm() < 89) {
    throw InputError("--precision", "fp8", std::string("needs FP8 tensor cores (sm_89 or newer); ") + dev.prop().name + " on " +
                                               dev.where() + " is sm_" + std::to_string(dev.sm()) + ": use --precision bf16");
  }
  if (want == config::Precision::kFp32) throw InputError("--precision", "fp32", "is not run by the CUDA executor (bf16, fp16 or fp8)");
  return want == config::Precision::kFp16 ? DType::kFp16 : want == config::Precision::kFp8 ? DType::kFp8E4m3 : DType::kBf16;
}

class CudaExecutor final : public Executor, public cuda::CudaExecutorAccess {
 public:
  explicit CudaExecutor(const ExecContext& ctx)
      : ctx_(ctx),
        faults_(ctx.world_rank),
        dev_(ctx),
        nccl_(cuda::nccl_timeout_s(), ctx.interrupted),
        // Transformer Engine keeps attention in bf16/fp16 under FP8 recipes; so do we.
        ops_(dev_, nccl_, comms_, gemm_type_for(ctx.precision, dev_),
             ctx.precision == config::Precision::kFp16 ? DType::kFp16 : DType::kBf16) {}

  // Members are destroyed in reverse order: ops, then communicators (finalized when healthy,
  // aborted otherwise), then the device. A healthy executor lets the GPU finish first.
  ~CudaExecutor() override {
    if (nccl_.healthy()) cudaDeviceSynchronize();
  }

  std::string backend() const override { return "cuda"; }
  std::string device() const override { return dev_.describe(); }
  double device_memory_bytes() const override { return double(dev_.prop().totalGlobalMem); }
  std::string gemm_dtype() const override { return ops_.gemm_dtype(); }
  // Fused attention runs our own kernels (attention.cu), not a production one: on an H200 they
  // reach 54 TFLOP/s forward and 43 backward at Llama 3.1 8B's shape (seq 8192, causal), against
  // several hundred for FlashAttention-3; so targets model fused attention rather than dilate it.
  bool dilatable(const plan::Op& op) const override { return !(op.kind == plan::OpKind::kAttention && op.fused); }

  // A check that the stage's fused attention can run here, buffers for its largest ops
  // (buffer_sizing.hpp), tuned GEMM plans, and the communicators of the groups this stage
  // communicates in, each warmed up.
  void prepare(const plan::StagePlan& stage) override {
    dev_.make_current();
    ops_.check_attention(stage);
    dev_.reserve_buffers(size_buffers(stage.ops, ops_.buffer_types()), ops_.fill_types());
    ops_.plan_gemms(stage);
    comms_.connect(ctx_, stage, nccl_, dev_.tiny(), dev_.stream(plan::Stream::kDp));
    dev_.ensure_events(stage.ops.size());
  }

  StepTimes run_step(const plan::StagePlan& stage, int step) override {
    try {
      return step_impl(stage, step);
    } catch (...) {
      nccl_.abort_all();  // work may be in flight: tear down with abort
      throw;
    }
  }

  // CudaExecutorAccess (cuda_bench.cu).
  const cuda::LtGemm& gemm_plan(int64_t m, int64_t n, int64_t k) override {
    return ops_.gemm_plan(ops_.gemm_spec(plan::gemm_op(m, n, k)));
  }
  int device_id() const override { return dev_.id(); }

 private:
  // One step, top to bottom: barrier, hold the streams behind the gate, enqueue every op on its
  // stream after its cross-stream producers, open the gate, wait for all streams, read the times.
  StepTimes step_impl(const plan::StagePlan& stage, int step) {
    dev_.make_current();
    const size_t n = stage.ops.size();
    dev_.ensure_events(n);
    std::array<int64_t, plan::kNumStreams> last_op;  // per stream, for timeout messages
    last_op.fill(-1);
    std::vector<char> ran(n, 0);
    if (ctx_.session) CAPSCALE_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    const auto t0 = std::chrono::steady_clock::now();
    // The first step of a stage runs ungated: it is the one that loads kernels lazily, and a load
    // may synchronize the context (device.hpp, Gate). It is a warm-up step in every caller.
    std::optional<cuda::Device::Gate> gate;
    if (warmed_.count({&stage, n})) gate.emplace(dev_);
    EnqueueThrottle throttle;  // enqueue_throttle.hpp: waits on compute ops only, never before a p2p op
    for (size_t i = 0; i < n; ++i) {
      const Op& op = stage.ops[i];
      if (const int64_t w = throttle.wait_before(op, i); w >= 0) {
        if (gate) gate->open();  // the GPU must run for the host to go on
        wait_for_op(stage, size_t(w));
      }
      faults_.maybe_fail(step, i);
      const int si = static_cast<int>(op.stream);
      cudaStream_t s = dev_.stream(si);
      for (uint8_t d = 0; d < op.ndeps; ++d) {
        const int32_t dep = op.deps[d];
        if (dep < 0 || size_t(dep) >= i) {
          throw RuntimeError("plan: op " + std::to_string(i) + " (" + op.label() + ") depends on op " + std::to_string(dep) +
                             ", which does not come before it");
        }
        if (stage.ops[size_t(dep)].stream != op.stream) CAPSCALE_CUDA_CHECK(cudaStreamWaitEvent(s, dev_.end_event(size_t(dep)), 0));
      }
      const std::string label = op.label();
      nvtxRangePushA(label.c_str());
      if (time_ops_) CAPSCALE_CUDA_CHECK(cudaEventRecord(dev_.start_event(i), s));
      ran[i] = ops_.run(op, si, s, "op " + std::to_string(i) + " (" + label + ")");
      CAPSCALE_CUDA_CHECK(cudaEventRecord(dev_.end_event(i), s));  // also what later ops' deps wait on
      nvtxRangePop();
      last_op[size_t(si)] = static_cast<int64_t>(i);
    }
    if (gate) gate->open();
    nccl_.wait_until([&] { return all_streams_idle(); }, [] { return std::string("the end of the step (all streams)"); },
                     [&] { return busy_streams(stage, last_op); });
    warmed_.insert({&stage, n});
    if (dev_.gate_timed_out() && !gate_warned_) {
      gate_warned_ = true;
      std::fprintf(stderr,
                   "capscale: warning: rank %d (%s): the step's start gate opened by its %.0f s failsafe (a CUDA call synchronized "
                   "while it was held); that step's wall time includes the wait\n",
                   ctx_.world_rank, dev_.where().c_str(), cuda::Device::kGateFailsafeS);
    }
    StepTimes t;
    t.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    t.op_s.assign(n, 0.0);
    for (size_t i = 0; i < n && time_ops_; ++i)
      if (ran[i]) t.op_s[i] = dev_.elapsed_s(i);  // an op with nothing to do (a group of one) takes no time
    return t;
  }

  void wait_for_op(const plan::StagePlan& stage, size_t i) {
    const cudaEvent_t ev = dev_.end_event(i);
    nccl_.wait_until([&] {
      const cudaError_t e = cudaEventQuery(ev);
      if (e == cudaErrorNotReady) return false;
      CAPSCALE_CUDA_CHECK(e);
      return true;
    }, [&] { return "op " + std::to_string(i) + " (" + stage.ops[i].label() + ") to finish"; });
  }

  bool all_streams_idle() const {
    for (cudaStream_t s : dev_.streams()) {
      const cudaError_t e = cudaStreamQuery(s);
      if (e == cudaErrorNotReady) return false;
      CAPSCALE_CUDA_CHECK(e);
    }
    return true;
  }

  // "tp (op 12 fwd/mb0/L1/attn_all_reduce), ...": the streams still running and their last op.
  std::string busy_streams(const plan::StagePlan& stage, const std::array<int64_t, plan::kNumStreams>& last_op) const {
    std::string s;
    for (int q : dev_.busy_streams()) {
      s += (s.empty() ? "" : ", ") + plan::to_string(static_cast<plan::Stream>(q));
      if (const int64_t i = last_op[size_t(q)]; i >= 0) s += " (op " + std::to_string(i) + " " + stage.ops[size_t(i)].label() + ")";
    }
    return s.empty() ? "none" : s;
  }

  ExecContext ctx_;
  FaultInjector faults_;
  cuda::Device dev_;
  cuda::NcclComms nccl_;
  cuda::GroupComms comms_;
  cuda::Ops ops_;
  std::set<std::pair<const plan::StagePlan*, size_t>> warmed_;  // stages that ran a step (ungated)
  bool gate_warned_ = false;
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
