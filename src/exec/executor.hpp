// The executor contract: run one stage's plan for real, one step at a time, and return every op's
// measured time and the step's wall time. The CPU (OpenBLAS + MPI) and CUDA (cuBLAS + NCCL)
// executors implement it; cli/cmd_run.cpp drives both the same way.
#pragma once
#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "mpi/mpi_context.hpp"
#include "plan/plan.hpp"

namespace capscale::exec {

/// Set by SIGINT/SIGTERM (the only process-wide state; a signal handler cannot reach an object).
extern volatile std::sig_atomic_t g_interrupted;
void install_interrupt_handlers();

struct StepTimes {
  std::vector<double> op_s;  ///< per op of the stage, seconds
  double wall_s = 0;         ///< from the step's start barrier to this rank's last op finishing
};

/// Everything an executor needs besides the plan: where it runs and with which communicators.
struct ExecContext {
  const mpi::Session* session = nullptr;
  const parallel::Layout* layout = nullptr;
  const mpi::Communicators* comms = nullptr;
  int world_rank = 0;
  /// The run's --precision: the data type of forward GEMMs. An executor refuses (InputError) a
  /// precision its device cannot run rather than running another one.
  config::Precision precision = config::Precision::kBf16;
  /// The interrupt flag the executor polls while it waits. A pointer, not the global itself: the
  /// CUDA plugin is a shared library with its own copy of this module's globals, and only the
  /// binary's copy is set by the signal handler.
  const volatile std::sig_atomic_t* interrupted = &g_interrupted;
  /// CPU executor: run the plan's streams concurrently, as a GPU does: the compute stream's ops on a
  /// worker thread, each communication stream's collectives and pipeline transfers progressing
  /// beside it through non-blocking MPI, every op starting once its stream is free and its
  /// dependencies are done. Off: one queue, ops in plan order. The CUDA executor always runs its
  /// streams concurrently.
  bool concurrent_streams = false;
  /// NCCL's per-communicator thread-block limits from the plan: the CUDA executor creates each
  /// group's communicator with ncclConfig_t.maxCTAs set to its limit, as NeMo does from its
  /// nccl_communicator_config_path, so a measured step runs what the cost model times.
  plan::CommCtas max_ctas;
};

class Executor {
 public:
  virtual ~Executor() = default;
  /// "cpu" or "cuda".
  virtual std::string backend() const = 0;
  /// Device description for the /ranks table (CPU model, or GPU name and PCI bus id).
  virtual std::string device() const = 0;
  /// The device's memory in bytes (cudaDeviceProp::totalGlobalMem); 0 where the host's chip profile
  /// gives it (CPU). Sizes the memory check of a GPU that has no chip profile.
  virtual double device_memory_bytes() const { return 0; }
  /// The GEMM data type actually used (e.g. "bf16 (cblas_sbgemm)" or "fp32 (cblas_sgemm)").
  virtual std::string gemm_dtype() const = 0;
  /// Allocates buffers for the stage's largest ops; throws DoesNotFitError naming the sizes when
  /// they exceed the device's memory.
  virtual void prepare(const plan::StagePlan& stage) = 0;
  /// Runs the stage's ops once, in list order (respecting dependencies), and times them.
  /// `step` is passed to the fault injector.
  virtual StepTimes run_step(const plan::StagePlan& stage, int step) = 0;
  /// Per-op timing (the virtual clock's input) on or off; off, run_step still times the step but
  /// leaves op_s at zero. `capscale bench clock` compares the two to measure the clock's overhead.
  /// CUDA: the end-of-op event also orders cross-stream dependencies, so it stays when timing is
  /// off; what is measured is the start events and the read-back of elapsed times.
  void set_op_timing(bool on) { time_ops_ = on; }
  bool op_timing() const { return time_ops_; }
  /// Whether `op`'s measured time is what production training software reaches on this device, so
  /// that targets of the same architecture may be dilated from it (emulate::emulate_target). The
  /// CUDA executor's fused attention is capscale's own FlashAttention-2 kernel, several times slower
  /// than cuDNN's or FlashAttention-3's on Hopper (docs/bundle.md): targets model those ops instead.
  virtual bool dilatable(const plan::Op& /*op*/) const { return true; }

 protected:
  bool time_ops_ = true;
};

/// Test hook and reliability drill: CAPSCALE_FAULT="rank=R,step=S,op=I,mode=kill|throw|hang" makes
/// rank R fail at op I of step S. Parsed once per executor.
class FaultInjector {
 public:
  explicit FaultInjector(int world_rank);
  /// Call before each op; kills, throws or hangs when this is the chosen op.
  void maybe_fail(int step, size_t op_index) const;

 private:
  bool armed_ = false;
  int step_ = 0;
  size_t op_ = 0;
  std::string mode_;
};

/// CPU executor (always available).
std::unique_ptr<Executor> make_cpu_executor(const ExecContext& ctx);
/// CUDA executor from the CUDA plugin (exec/cuda_plugin.hpp), loaded on this first use; throws
/// InputError naming --backend when the plugin cannot be loaded (saying why) or no device is present.
std::unique_ptr<Executor> make_cuda_executor(const ExecContext& ctx);
/// Whether a CUDA device is visible, asked of the driver (libcuda.so.1, dlopen'ed) without loading
/// the plugin or the CUDA runtime; false without a driver.
bool cuda_device_available();

}  // namespace capscale::exec
