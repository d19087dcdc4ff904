// `capscale bench gemm|comm`: the executor paths against direct library calls, same shapes, same
// run; prints the ratio (direct time / executor time) with the DESIGN.md budget as the verdict.
// `capscale bench clock`: a real training step with and without per-op timing (the virtual
// clock's input), alternating, to measure the clock's overhead (budget ≤ 2 %).
#include <algorithm>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/host_run.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "common/stats.hpp"
#include "exec/bench.hpp"
#include "mpi/mpi_context.hpp"

namespace capscale::cli {
namespace {

struct BenchCliOptions {
  std::string what, backend = "auto";
  int iters = 10, warmup = 2;
  std::vector<int64_t> sizes;
  bool json = false;
  std::string model = "tiny-demo";  // clock
  ParallelFlags par;                // clock
};

int bench_clock(const BenchCliOptions& o, const Invocation& inv) {
  mpi::Session session(inv.argc, inv.argv);
  const std::string backend = resolve_backend(o.backend);
  const config::ModelConfig model = o.par.load_model(o.model);
  const config::ParallelConfig p = config::resolve(o.par.to_config(), model, session.size(), "bench clock");
  const HostRun hr(session, model, p, backend, "bench clock");
  exec::Executor* ex = hr.ex.get();
  const plan::StagePlan& stage = hr.stage;
  // The slowest rank's wall time is the step's.
  auto step = [&](bool timed) {
    ex->set_op_timing(timed);
    double wall = ex->run_step(stage, -1).wall_s;
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &wall, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    return wall;
  };
  for (int w = 0; w < o.warmup; ++w) step(true);
  // Alternate the order every round (on/off, off/on) so that drift hits both sides alike.
  std::vector<double> on, off;
  for (int k = 0; k < o.iters; ++k) {
    const bool first = k % 2 == 0;
    (first ? on : off).push_back(step(first));
    (first ? off : on).push_back(step(!first));
  }
  if (session.rank() != 0) return 0;
  const double t_on = median(on), t_off = median(off), overhead = t_on / t_off - 1.0;
  std::ostream& log = o.json ? std::cerr : std::cout;
  print_config(log, model, p,
               "# capscale bench clock --backend " + backend + " (" + ex->gemm_dtype() + "): " + std::to_string(stage.ops.size()) +
                   " ops on stage 0; per-op timing on vs off, " + std::to_string(o.iters) + " steps each, alternating\n");
  log << "# step with per-op timing " << fmt(t_on, 4) << " s, without " << fmt(t_off, 4) << " s (medians, slowest rank): "
      << "virtual clock overhead " << fmt(100 * overhead, 2) << " % (budget <= 2 %): " << (overhead <= 0.02 ? "PASS" : "OVER BUDGET")
      << "\n";
  if (o.json) {
    std::cout << nlohmann::json{{"what", "clock"}, {"backend", backend}, {"model", model.name}, {"parallel", to_json(p)},
                                {"ops", stage.ops.size()}, {"steps", o.iters}, {"timed_step_s", t_on}, {"untimed_step_s", t_off},
                                {"overhead", overhead}}
                     .dump(2)
              << std::endl;
  }
  return 0;
}

int bench(const BenchCliOptions& o, const Invocation& inv) {
  if (o.what == "clock") return bench_clock(o, inv);
  mpi::Session session(inv.argc, inv.argv);
  const std::string backend = resolve_backend(o.backend);
  // The comm bench treats the whole world as one tensor-parallel group.
  const HostExecutor hx(session, parallel::Layout(session.size(), 1, 1, 1), backend);
  exec::Executor* ex = hx.ex.get();
  const exec::ExecContext& ctx = hx.ctx;
  exec::BenchOptions bo;
  bo.iters = o.iters, bo.warmup = o.warmup;
  std::vector<exec::BenchRow> rows;
  double budget = 0.95;
  if (o.what == "gemm") {
    if (backend == "cuda") {
      bo.gemm_shapes = {{8192, 8192, 8192}, {4096, 4096, 4096}, {8192, 28672, 8192}, {8192, 8192, 28672}};
      budget = 0.97;
      rows = exec::bench_cuda_gemm(*ex, bo);
    } else {
      bo.gemm_shapes = {{1024, 1024, 1024}, {512, 1408, 512}, {1024, 2048, 512}, {2048, 512, 1024}};
      rows = exec::bench_cpu_gemm(*ex, bo);
    }
  } else {
    bo.comm_bytes = o.sizes.empty() ? std::vector<int64_t>{1 << 20, 4 << 20, 16 << 20, 64 << 20} : o.sizes;
    for (int64_t b : bo.comm_bytes)
      if (b < 4 || b > (int64_t(1) << 33)) throw InputError("--sizes", "", "each size must be in [4, 8 GiB] bytes");
    rows = backend == "cuda" ? exec::bench_cuda_comm(*ex, ctx, bo) : exec::bench_cpu_comm(*ex, ctx, bo);
  }
  if (session.rank() != 0) return 0;
  std::ostream& log = o.json ? std::cerr : std::cout;
  const std::string unit = o.what == "gemm" ? "TFLOP/s" : "busbw GB/s";
  log << "# capscale bench " << o.what << " --backend " << backend << ": executor path vs direct "
      << (o.what == "gemm" ? (backend == "cuda" ? "cuBLASLt" : "cblas_sgemm") : (backend == "cuda" ? "ncclAllReduce" : "MPI_Allreduce"))
      << " loop, " << session.size() << " rank(s), median per side over interleaved rounds of " << o.iters
      << " ops (CPU: 3 to 20 rounds, ~2 s per row; CUDA: 3)\n";
  char line[300];
  std::snprintf(line, sizeof line, "#%-20s %-20s %12s %12s %14s %14s %7s\n", " shape", "dtype", "path [s]", "direct [s]",
                ("path [" + unit + "]").c_str(), ("direct [" + unit + "]").c_str(), "ratio");
  log << line;
  double worst = 1e9;
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, " %-20s %-20s %12.4g %12.4g %14.4g %14.4g %7.3f\n", r.shape.c_str(), r.dtype.c_str(),
                  r.path_s, r.direct_s, r.path_rate, r.direct_rate, r.ratio);
    log << line;
    worst = std::min(worst, r.ratio);
    arr.push_back({{"what", r.what}, {"shape", r.shape}, {"dtype", r.dtype}, {"path_s", r.path_s}, {"direct_s", r.direct_s},
                   {"path_rate", r.path_rate}, {"direct_rate", r.direct_rate}, {"ratio", r.ratio}});
  }
  log << "# worst ratio " << fmt(worst, 3) << " (budget >= " << fmt(budget, 2) << "): " << (worst >= budget ? "PASS" : "BELOW BUDGET") << "\n";
  if (o.json) std::cout << arr.dump(2) << std::endl;
  return 0;
}

}  // namespace

Action add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Executor GEMM / collective paths vs direct library calls (ratio); virtual clock overhead");
  auto o = std::make_shared<BenchCliOptions>();
  cmd->add_option("what", o->what, "gemm | comm | clock")->required()->check(CLI::IsMember({"gemm", "comm", "clock"}));
  cmd->add_option("--backend", o->backend, "auto | cpu | cuda");
  cmd->add_option("--iters", o->iters,
                  "gemm/comm: timed ops per round (interleaved rounds: CPU 3 to 20, CUDA 3); clock: steps per side")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--model", o->model, "clock: model name, YAML or HuggingFace config.json (default tiny-demo)");
  add_parallel_flags(cmd, o->par);
  cmd->add_option("--warmup", o->warmup, "untimed ops first")->check(CLI::Range(0, 100000));
  cmd->add_option("--sizes", o->sizes, "comm: buffer sizes in bytes, comma-separated")->delimiter(',');
  cmd->add_flag("--json", o->json, "print JSON on stdout");
  return [o, cmd](const Invocation& inv) {
    // Flags that belong to one mode are refused in the others rather than silently ignored.
    std::vector<std::string> clock_only = parallel_flag_names();
    clock_only.push_back("--model");
    for (const auto& flag : clock_only) {
      if (o->what != "clock" && cmd->count(flag) > 0) throw InputError(flag, "", "applies to 'bench clock' only");
    }
    if (o->what != "comm" && cmd->count("--sizes") > 0) throw InputError("--sizes", "", "applies to 'bench comm' only");
    return bench(*o, inv);
  };
}

}  // namespace capscale::cli
