// `capscale bench gemm|comm`: the executor paths against direct library calls, same shapes, same
// run; prints the ratio (direct time / executor time) with the DESIGN.md budget as the verdict.
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "exec/bench.hpp"
#include "mpi/mpi_context.hpp"

namespace capscale::cli {
namespace {

struct BenchCliOptions {
  std::string what, backend = "auto";
  int iters = 10, warmup = 2;
  std::vector<int64_t> sizes;
  bool json = false;
};

int bench(const BenchCliOptions& o, const Invocation& inv) {
  mpi::Session session(inv.argc, inv.argv);
  std::string backend = o.backend;
  if (backend == "auto") backend = exec::cuda_device_available() ? "cuda" : "cpu";
  if (backend != "cpu" && backend != "cuda") throw InputError("--backend", "", "must be one of: auto, cpu, cuda");
  // The comm bench treats the whole world as one tensor-parallel group.
  const parallel::Layout layout(session.size(), 1, 1, 1);
  const mpi::Communicators comms(layout, session.rank());
  exec::ExecContext ctx{&session, &layout, &comms, session.rank()};
  auto ex = backend == "cuda" ? exec::make_cuda_executor(ctx) : exec::make_cpu_executor(ctx);
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
  auto* cmd = app.add_subcommand("bench", "Executor GEMM / collective paths vs direct library calls (ratio)");
  auto o = std::make_shared<BenchCliOptions>();
  cmd->add_option("what", o->what, "gemm | comm")->required()->check(CLI::IsMember({"gemm", "comm"}));
  cmd->add_option("--backend", o->backend, "auto | cpu | cuda");
  cmd->add_option("--iters", o->iters, "timed ops per round (interleaved rounds: CPU 3 to 20, CUDA 3)")->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", o->warmup, "untimed ops first")->check(CLI::Range(0, 100000));
  cmd->add_option("--sizes", o->sizes, "comm: buffer sizes in bytes, comma-separated")->delimiter(',');
  cmd->add_flag("--json", o->json, "print JSON on stdout");
  return [o](const Invocation& inv) { return bench(*o, inv); };
}

}  // namespace capscale::cli
