// Setup shared by run, bench and calibrate; see host_run.hpp.
#include "cli/host_run.hpp"

#include "cli/host_profile.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "predict/predictor.hpp"

namespace capscale::cli {

std::string resolve_backend(const std::string& backend) {
  if (backend == "auto") return exec::cuda_device_available() ? "cuda" : "cpu";
  if (backend != "cpu" && backend != "cuda") throw InputError("--backend", "", "must be one of: auto, cpu, cuda; got '" + backend + "'");
  return backend;
}

HostProfile host_profile(const std::string& backend, const exec::Executor& ex) {
  if (backend == "cuda") return gpu_host_profile(ex.device(), ex.device_memory_bytes());
  return {config::load_chip("cpu-host"), true, ""};
}

namespace {
std::unique_ptr<exec::Executor> make_executor(const std::string& backend, const exec::ExecContext& ctx) {
  return backend == "cuda" ? exec::make_cuda_executor(ctx) : exec::make_cpu_executor(ctx);
}

const plan::StagePlan& prepared_stage(const plan::Plan& plan, const parallel::Layout& layout, int rank, exec::Executor& ex) {
  const plan::StagePlan& stage = plan.stages[size_t(layout.coords(rank).pp)];
  ex.prepare(stage);
  return stage;
}

// The memory the plan needs per rank; DoesNotFitError when the rank's share cannot hold it.
double fitting_need_gb(const config::ModelConfig& model, const config::ParallelConfig& p, const config::ChipProfile& host_share,
                       const std::string& host_name, const std::string& command) {
  double need_gb = 0;
  if (!predict::fits_memory(model, host_share, p, &need_gb)) {
    throw DoesNotFitError(command, "memory", model.name + " with " + parallel_text(p) + " needs " + fmt(need_gb, 1) +
                                                 " GB per rank; the host has " + fmt(host_share.usable_memory_bytes() / 1e9, 1) +
                                                 " GB per rank (" + host_name + "). Use more ranks, more tp/pp, or a smaller model");
  }
  return need_gb;
}

config::ChipProfile share_of(const config::ChipProfile& host, const std::string& backend, const mpi::Session& session) {
  config::ChipProfile s = host;
  if (backend == "cpu") s.hbm_gb = host.hbm_gb / session.local_size(), s.reserved_gb = 0;
  return s;
}
}  // namespace

HostExecutor::HostExecutor(const mpi::Session& session, const parallel::Layout& l, const std::string& backend,
                           config::Precision precision, bool concurrent_streams, const config::ParallelConfig* parallel_plan)
    : layout(l),
      comms(layout, session.rank()),
      ctx{.session = &session,
          .layout = &layout,
          .comms = &comms,
          .world_rank = session.rank(),
          .precision = precision,
          .concurrent_streams = concurrent_streams,
          .max_ctas = parallel_plan ? plan::CommCtas::of(*parallel_plan) : plan::CommCtas{}},
      ex(make_executor(backend, ctx)) {}

HostRun::HostRun(const mpi::Session& session, const config::ModelConfig& model, const config::ParallelConfig& p,
                 const std::string& backend, const std::string& command, bool concurrent_streams)
    : HostExecutor(session, parallel::Layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp), backend, p.precision, concurrent_streams, &p),
      profile(host_profile(backend, *ex)),
      host(profile.chip),
      host_share(share_of(host, backend, session)),
      need_gb(fitting_need_gb(model, p, host_share, host.name, command)),
      plan(plan::build_plan(model, p)),
      stage(prepared_stage(plan, layout, session.rank(), *ex)) {}

}  // namespace capscale::cli
