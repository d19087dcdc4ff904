// The executor's device: the GPU this rank runs on, a CUDA stream per plan stream, the step's start
// gate, per-op event pairs and the scratch buffers sized from the plan (buffer_sizing.hpp).
// Nothing here knows about ops or NCCL. Host-only header.
#pragma once
#include <cuda_runtime_api.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <string>
#include <vector>

#include "exec/buffer_sizing.hpp"
#include "exec/cuda/kernels.cuh"
#include "exec/executor.hpp"
#include "plan/plan.hpp"

namespace capscale::exec::cuda {

/// cudaMalloc'ed bytes, freed on destruction.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }
  void reset() noexcept;
  void allocate(size_t bytes);

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

/// Name of a scratch buffer role, for messages.
const char* buffer_name(int role);

class Device {
 public:
  /// Selects local rank's GPU (refusing two ranks on one GPU), creates the streams: communication
  /// at the highest priority, compute at the lowest, so a collective's kernels get SMs as soon as
  /// they launch instead of queueing behind GEMM tiles (what Megatron/TE do for overlap).
  explicit Device(const ExecContext& ctx);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  int id() const { return id_; }
  const cudaDeviceProp& prop() const { return prop_; }
  int sm() const { return prop_.major * 10 + prop_.minor; }
  /// "NVIDIA H100 (sm_90, pci 0000:...)".
  std::string describe() const;
  /// "rank R (host H, device D)".
  std::string where() const;
  /// Makes this device current on the calling thread.
  void make_current() const;

  cudaStream_t stream(plan::Stream s) const { return streams_[static_cast<size_t>(s)]; }
  cudaStream_t stream(int s) const { return streams_[size_t(s)]; }
  const std::array<cudaStream_t, plan::kNumStreams>& streams() const { return streams_; }
  /// Plan streams still running, for timeout messages.
  std::vector<int> busy_streams() const;

  /// A small zeroed buffer (4 KiB) for warm-ups and scale factors.
  void* tiny() const { return tiny_.get(); }

  /// At least n start/end event pairs (op i uses pair i).
  void ensure_events(size_t n);
  cudaEvent_t start_event(size_t i) const { return events_[i][0]; }
  cudaEvent_t end_event(size_t i) const { return events_[i][1]; }
  /// Seconds between op i's events.
  double elapsed_s(size_t i) const;

  /// Grows the scratch buffers to `need` (they never shrink: re-preparing a smaller plan keeps
  /// them), filling new ones with random values of `type[role]`. DoesNotFitError naming the
  /// largest buffer when they and a reserve for NCCL/cuBLAS do not fit in free memory.
  void reserve_buffers(const BufferBytes& need, const std::array<DType, kNumBufferRoles>& type);
  /// The buffer of `role`; RuntimeError naming op `what` when it holds fewer than `bytes`.
  void* buffer(int role, size_t bytes, const std::string& what) const;
  size_t buffer_bytes(int role) const { return bufs_[size_t(role)].bytes(); }
  /// `bytes` of a rotating role's buffer (buffer_sizing.hpp, rotating_role), starting where the
  /// previous call for that role ended (256-byte aligned), back at the start when the rest of the
  /// ring is too short: consecutive ops read addresses the last op did not leave in L2.
  void* rotating(int role, size_t bytes, const std::string& what);

  /// Every plan stream waits behind it until open(): the host enqueues a step's first ops without
  /// its enqueue gaps being timed as GPU work. A host function on a stream of its own spins on a
  /// flag (a host function may not call CUDA but may wait on host memory: CUDA docs,
  /// cudaLaunchHostFunc); the destructor opens it, so an exception never leaves the GPU held.
  /// A CUDA call that synchronizes the context while the gate is held (lazy loading of a kernel's
  /// module on its first launch can: CUDA Programming Guide, "Lazy Loading", concurrent execution)
  /// would wait for the gate forever; so the host function gives up after kGateFailsafeS and
  /// gate_timed_out() reports it. The executor runs a stage's first step ungated for this reason.
  static constexpr double kGateFailsafeS = 2.0;
  struct GateState {
    std::atomic<bool> open{true};
    std::atomic<bool> timed_out{false};
  };
  class Gate {
   public:
    explicit Gate(Device& d);
    ~Gate() { open(); }
    Gate(const Gate&) = delete;
    Gate& operator=(const Gate&) = delete;
    void open() noexcept;

   private:
    GateState& state_;  // the Device's flags: the host function may run after the Gate is gone
    bool armed_ = false;
  };
  /// Whether a gate opened by its failsafe since the last call (then clears it).
  bool gate_timed_out() noexcept { return gate_.timed_out.exchange(false); }

 private:
  void select(const ExecContext& ctx);
  void release() noexcept;

  int id_ = -1;
  cudaDeviceProp prop_{};
  std::string pci_;
  int world_rank_ = 0;
  std::array<cudaStream_t, plan::kNumStreams> streams_{};
  cudaStream_t gate_stream_ = nullptr;
  cudaEvent_t gate_event_ = nullptr;
  GateState gate_;
  std::vector<std::array<cudaEvent_t, 2>> events_;
  DeviceBuffer tiny_;
  std::array<DeviceBuffer, kNumBufferRoles> bufs_;
  std::array<size_t, kNumBufferRoles> cursor_{};  ///< rotating(): next offset per role
};

}  // namespace capscale::exec::cuda
