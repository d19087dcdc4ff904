// What a command that executes ops on this rank sets up. HostExecutor: the layout, communicators
// and executor (every executing command: run, bench, calibrate). HostRun adds what running a
// training step needs (run, bench clock): the host's chip profile with the memory verdict, the
// plan, and this rank's prepared stage.
#pragma once
#include <memory>
#include <string>

#include "cli/host_profile.hpp"
#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "exec/executor.hpp"
#include "mpi/mpi_context.hpp"
#include "parallel/layout.hpp"
#include "plan/plan.hpp"

namespace capscale::cli {

/// "auto" → "cuda" when a device is visible, else "cpu"; InputError naming --backend otherwise.
std::string resolve_backend(const std::string& backend);

/// The host's chip profile: the GPU's (an unknown device gets unknown_device_profile(), known =
/// false, see host_profile.hpp), or cpu-host.
HostProfile host_profile(const std::string& backend, const exec::Executor& ex);

/// This rank's executor over `layout` (its communicators and context live here, so it is pinned).
class HostExecutor {
 public:
  /// `precision` is the GEMM type the executor runs (--precision); bench and calibrate use bf16.
  /// `concurrent_streams`: ExecContext::concurrent_streams (the CPU executor's stream mode).
  /// `parallel_plan` (may be null: bench, calibrate) gives the NCCL thread-block limits (ExecContext).
  HostExecutor(const mpi::Session& session, const parallel::Layout& layout, const std::string& backend,
               config::Precision precision = config::Precision::kBf16, bool concurrent_streams = false,
               const config::ParallelConfig* parallel_plan = nullptr);
  HostExecutor(const HostExecutor&) = delete;
  HostExecutor& operator=(const HostExecutor&) = delete;

  const parallel::Layout layout;
  const mpi::Communicators comms;
  const exec::ExecContext ctx;
  const std::unique_ptr<exec::Executor> ex;
};

class HostRun : public HostExecutor {
 public:
  /// Refuses (DoesNotFitError naming `command`) a plan that does not fit the host's memory: a
  /// GPU's, or for CPU ranks their share of the node's RAM. Never silently runs it.
  HostRun(const mpi::Session& session, const config::ModelConfig& model, const config::ParallelConfig& parallel,
          const std::string& backend, const std::string& command, bool concurrent_streams = false);

  const HostProfile profile;       ///< the device's profile and whether configs/chips knows it
  const config::ChipProfile host;  ///< profile.chip (cpu-host for CPU ranks)
  const config::ChipProfile host_share;  ///< what one rank has: CPU ranks on one node share its RAM
  const double need_gb;                 ///< memory the plan needs per rank (it fits host_share)
  const plan::Plan plan;
  const plan::StagePlan& stage;    ///< this rank's pipeline stage, prepared
};

}  // namespace capscale::cli
