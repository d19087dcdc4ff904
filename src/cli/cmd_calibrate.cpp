// `capscale calibrate`: measures, through the executor that `run` uses, the GEMM efficiency of every
// GEMM shape one micro-batch of the given models produces (forward + backward, each tp given) and
// the bus bandwidth of all-reduce, reduce-scatter and all-gather over the whole world at a range of
// sizes, and writes a calibration file (results/calibration_io.hpp) that `predict --calibration`
// and `run --calibration` use for targets of the device's architecture (source `calibrated`).
#include <mpi.h>
#include <sys/utsname.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>

#include "cli/commands.hpp"
#include "cli/host_profile.hpp"
#include "cli/host_run.hpp"
#include "cli/output.hpp"
#include "collectives/collectives.hpp"
#include "common/error.hpp"
#include "common/stats.hpp"
#include "config/chip.hpp"
#include "exec/bench.hpp"
#include "exec/executor.hpp"
#include "git_sha.hpp"
#include "mpi/mpi_context.hpp"
#include "plan/plan.hpp"
#include "predict/calibration.hpp"
#include "results/calibration_io.hpp"
#include "results/writer.hpp"

namespace capscale::cli {
namespace {

struct CalibrateOptions {
  std::string backend = "auto";
  std::vector<std::string> models;
  std::vector<int64_t> tp{1};
  int64_t seq_length = 0;
  std::vector<int64_t> sizes;
  int iters = 10, warmup = 2;
  std::string out;
  bool force = false;
};

/// Sequence length cap when none is given: long enough for the shapes that matter, short enough
/// for one CPU core (512) or one GPU's memory with the largest shipped vocabulary (4096).
constexpr int64_t kCpuSeqCap = 512, kCudaSeqCap = 4096;

config::Precision dtype_precision(const std::string& gemm_dtype) {
  if (gemm_dtype.rfind("bf16", 0) == 0) return config::Precision::kBf16;
  if (gemm_dtype.rfind("fp16", 0) == 0) return config::Precision::kFp16;
  if (gemm_dtype.rfind("fp8", 0) == 0) return config::Precision::kFp8;
  return config::Precision::kFp32;
}

std::string kernel_release() {
  struct utsname u {};
  return ::uname(&u) == 0 ? std::string("linux ") + u.release : std::string("unknown");
}

/// NVIDIA kernel driver version from /proc (no CUDA call outside exec/cuda), else "unknown".
std::string nvidia_driver() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line;
  return std::getline(in, line) ? nvidia_driver_from_proc(line) : "unknown";
}

/// Median of `iters` back-to-back repetitions of `op` through the executor (after `warmup`).
double time_op(exec::Executor& ex, const plan::Op& op, int iters, int warmup) {
  const plan::StagePlan st = exec::repeated_op_plan(op, iters);
  ex.prepare(st);
  if (warmup > 0) ex.run_step(exec::repeated_op_plan(op, warmup), -1);
  const auto t = ex.run_step(st, -1);
  return median(t.op_s);
}

std::string human_bytes(int64_t b) {
  char s[32];
  if (b >= (int64_t(1) << 30) && b % (int64_t(1) << 30) == 0) std::snprintf(s, sizeof s, "%lld GiB", (long long)(b >> 30));
  else if (b >= (1 << 20) && b % (1 << 20) == 0) std::snprintf(s, sizeof s, "%lld MiB", (long long)(b >> 20));
  else if (b >= (1 << 10) && b % (1 << 10) == 0) std::snprintf(s, sizeof s, "%lld KiB", (long long)(b >> 10));
  else std::snprintf(s, sizeof s, "%lld B", (long long)b);
  return s;
}

/// Collective sizes to measure: --sizes (validated, sorted, unique), or nccl-tests style ×4 ladders,
/// 1 KiB … 256 MiB on GPUs and 4 KiB … 16 MiB over CPU shared memory.
std::vector<int64_t> collective_sizes(const CalibrateOptions& o, bool cuda, int world) {
  std::vector<int64_t> sizes = o.sizes;
  if (sizes.empty()) {
    for (int64_t b = cuda ? 1024 : 4096; b <= (cuda ? (int64_t(256) << 20) : (int64_t(16) << 20)); b *= 4) sizes.push_back(b);
  }
  for (int64_t b : sizes) {
    if (b < 4 * int64_t(world) || b > (int64_t(4) << 30)) {
      throw InputError("--sizes", "", "each size must be in [4 x ranks, 4 GiB] bytes, got " + std::to_string(b));
    }
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

/// The GEMM shapes of one micro-batch (forward + backward) of each model at each tp; `source`
/// says which ("llama3.1-8b tp1 seq 4096, ...").
std::set<std::array<int64_t, 3>> gemm_shapes(const CalibrateOptions& o, bool cuda, std::string& source) {
  std::vector<std::string> models = o.models;
  if (models.empty()) models = cuda ? std::vector<std::string>{"llama3.1-8b", "llama3.1-70b"} : std::vector<std::string>{"tiny-demo"};
  std::set<std::array<int64_t, 3>> shapes;
  for (const auto& name : models) {
    const config::ModelConfig model = config::load_model(name);
    for (int64_t tp : o.tp) {
      config::ParallelConfig p;
      p.tp = tp;
      p.sequence_parallel = tp > 1;
      p.micro_batch_size = 1, p.global_batch_size = 1;
      p.seq_length = o.seq_length ? o.seq_length : std::min(model.seq_length, cuda ? kCudaSeqCap : kCpuSeqCap);
      p = config::resolve(p, model, tp, "calibrate");
      const plan::Plan plan = plan::build_plan(model, p);
      for (const auto& op : plan.stages[0].ops)
        if (op.kind == plan::OpKind::kGemm) shapes.insert({op.m, op.n, op.k});
      source += (source.empty() ? "" : ", ") + model.name + " tp" + std::to_string(tp) + " seq " + std::to_string(p.seq_length);
    }
  }
  return shapes;
}

/// The calibration's provenance: device, driver, dtype and the peak its efficiencies refer to.
predict::Calibration calibration_header(const exec::Executor& ex, const std::string& backend, const config::ChipProfile& host,
                                        int world, const Invocation& inv) {
  predict::Calibration cal;
  cal.arch = host.arch;
  cal.device = ex.device();
  cal.driver = backend == "cuda" ? nvidia_driver() : kernel_release();
  cal.backend = backend;
  cal.chip = host.name;
  cal.gemm_dtype = ex.gemm_dtype();
  cal.peak_tflops = host.peak_flops(dtype_precision(cal.gemm_dtype)) / 1e12;
  cal.nvlink_gbyte_s = host.nvlink_gbyte_s;
  cal.world = world;
  cal.command_line = inv.command_line;
  cal.capscale_version = CAPSCALE_VERSION;
  cal.git_sha = CAPSCALE_GIT_SHA;
  return cal;
}

/// Every shape through the executor, mean over ranks; rank 0 prints a row per shape.
void calibrate_gemms(exec::Executor& ex, const std::set<std::array<int64_t, 3>>& shapes, const CalibrateOptions& o,
                     predict::Calibration& cal, std::ostream* log, int world) {
  if (log) {
    char line[200];
    std::snprintf(line, sizeof line, "# %-22s %12s %12s %10s\n", "shape m x n x k", "time [s]", "TFLOP/s", "efficiency");
    *log << line << std::flush;
  }
  for (const auto& s : shapes) {
    const plan::Op op = plan::gemm_op(s[0], s[1], s[2]);
    double t = time_op(ex, op, o.iters, o.warmup);
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    t /= world;
    if (!(t > 0)) {
      if (log) *log << "# skipped " << s[0] << "x" << s[1] << "x" << s[2] << ": no time measured\n";
      continue;
    }
    const double eff = op.flops / t / (cal.peak_tflops * 1e12);
    cal.gemm.push_back({op.m, op.n, op.k, t, eff});
    if (log) {
      char line[200];
      const std::string shape = std::to_string(op.m) + " x " + std::to_string(op.n) + " x " + std::to_string(op.k);
      std::snprintf(line, sizeof line, "  %-22s %12.4g %12.4g %10.3f\n", shape.c_str(), t, op.flops / t / 1e12, eff);
      *log << line << std::flush;
    }
  }
}

/// All-reduce, reduce-scatter and all-gather over the whole world at each size, slowest rank.
void calibrate_collectives(exec::Executor& ex, const std::vector<int64_t>& sizes, const CalibrateOptions& o,
                           predict::Calibration& cal, std::ostream* log, int world) {
  if (world == 1) {
    if (log) *log << "# comm: skipped (one rank; run under mpirun -np N to measure collectives)\n";
    return;
  }
  if (log) {
    char line[200];
    std::snprintf(line, sizeof line, "# %-15s %10s %12s %12s %12s\n", "kind", "bytes", "size", "time [s]", "busbw GB/s");
    *log << "# comm: over all " << world << " ranks, median of " << o.iters << " ops per rank, slowest rank; busbw as nccl-tests\n"
         << line << std::flush;
  }
  for (auto kind : {plan::CollKind::kAllReduce, plan::CollKind::kReduceScatter, plan::CollKind::kAllGather}) {
    for (int64_t bytes : sizes) {
      const plan::Op op = exec::world_collective_op(kind, bytes);
      double t = time_op(ex, op, o.iters, o.warmup);
      // A collective is as fast as its slowest rank.
      CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
      if (!(t > 0)) continue;
      const double busbw = double(bytes) / t * collectives::bus_factor(kind, world);
      cal.comm.push_back({plan::to_string(kind), bytes, int64_t(world), t, busbw});
      if (log) {
        char line[200];
        std::snprintf(line, sizeof line, "  %-15s %10lld %12s %12.4g %12.4g\n", plan::to_string(kind).c_str(), (long long)bytes,
                      human_bytes(bytes).c_str(), t, busbw / 1e9);
        *log << line << std::flush;
      }
    }
  }
}

int calibrate(const CalibrateOptions& o, const Invocation& inv) {
  mpi::Session session(inv.argc, inv.argv);
  const bool root = session.rank() == 0;
  const int world = session.size();
  const std::string backend = resolve_backend(o.backend);
  if (o.out.empty()) throw InputError("--out", "", "is required (the calibration file to write, e.g. configs/calibration/h100-DATE.h5)");
  if (root) results::check_output_path(o.out, o.force);
  for (int64_t t : o.tp)
    if (t < 1) throw InputError("--tp", "", "each value must be >= 1, got " + std::to_string(t));
  if (o.seq_length < 0) throw InputError("--seq-length", "", "must be >= 1");
  const bool cuda = backend == "cuda";
  const std::vector<int64_t> sizes = collective_sizes(o, cuda, world);
  std::string shape_source;
  const auto shapes = gemm_shapes(o, cuda, shape_source);

  // The whole world is one tensor-parallel group for the collectives (as `bench comm`).
  const HostExecutor hx(session, parallel::Layout(world, 1, 1, 1), backend);
  // Efficiencies are fractions of the host's peaks: an unknown device has none, so it is refused.
  const config::ChipProfile host = backend == "cuda" ? known_gpu_host_profile(hx.ex->device()) : host_profile(backend, *hx.ex).chip;
  predict::Calibration cal = calibration_header(*hx.ex, backend, host, world, inv);
  std::ostream* log = root ? &std::cout : nullptr;
  if (log) {
    *log << "# capscale calibrate --backend " << backend << ": " << world << " rank(s), device " << cal.device << ", arch " << cal.arch
         << ", driver " << cal.driver << "\n"
         << "# gemm: " << cal.gemm_dtype << ", efficiency = 2mnk/t / " << fmt(cal.peak_tflops, 4) << " TFLOP/s (" << host.name << " "
         << config::to_string(dtype_precision(cal.gemm_dtype)) << " peak); " << shapes.size() << " unique shapes of " << shape_source
         << "; median of " << o.iters << " ops per rank, mean over ranks\n";
  }
  calibrate_gemms(*hx.ex, shapes, o, cal, log, world);
  calibrate_collectives(*hx.ex, sizes, o, cal, log, world);
  if (!root) return 0;
  results::write_calibration(o.out, cal, o.force);
  *log << "# wrote " << o.out << " (" << cal.gemm.size() << " GEMM shapes, " << cal.comm.size() << " collective points; arch "
       << cal.arch << ": use with predict/run --calibration " << o.out << ")\n";
  return 0;
}

}  // namespace

Action add_calibrate(CLI::App& app) {
  auto* cmd = app.add_subcommand("calibrate",
                                 "Measure GEMM efficiency and collective bus bandwidth on this device; write a calibration file");
  auto o = std::make_shared<CalibrateOptions>();
  cmd->add_option("--backend", o->backend, "auto | cpu | cuda (auto: cuda when a GPU is present)");
  cmd->add_option("--models", o->models,
                  "models whose GEMM shapes to measure (default: tiny-demo on cpu, llama3.1-8b,llama3.1-70b on cuda)")
      ->delimiter(',');
  cmd->add_option("--tp", o->tp, "tensor-parallel sizes whose GEMM shapes to measure, e.g. 1,2,4,8")->delimiter(',');
  cmd->add_option("--seq-length", o->seq_length, "sequence length (default: the model's, at most 4096 on cuda, 512 on cpu)");
  cmd->add_option("--sizes", o->sizes, "collective sizes in bytes (default: x4 from 1 KiB to 256 MiB on cuda, 4 KiB to 16 MiB on cpu)")
      ->delimiter(',');
  cmd->add_option("--iters", o->iters, "timed repetitions per shape and size")->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", o->warmup, "untimed repetitions first")->check(CLI::Range(0, 100000));
  cmd->add_option("--out", o->out, "calibration file to write (HDF5)")->required();
  cmd->add_flag("--force", o->force, "overwrite --out if it exists");
  return [o](const Invocation& inv) { return calibrate(*o, inv); };
}

}  // namespace capscale::cli
