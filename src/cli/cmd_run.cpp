// `capscale run`: executes the training step's plan for real on every MPI rank, gathers the
// measured op and step times on rank 0, checks the timeline engine against the measured wall time,
// emulates each --emulate target from the same measurements, and writes one HDF5 file.
#include <algorithm>
#include <iostream>
#include <memory>

#include "cli/commands.hpp"
#include "cli/host_run.hpp"
#include "git_sha.hpp"
#include "cli/output.hpp"
#include "common/error.hpp"
#include "config/chip.hpp"
#include "emulate/emulate.hpp"
#include "exec/executor.hpp"
#include "mpi/mpi_context.hpp"
#include "results/calibration_io.hpp"
#include "results/writer.hpp"

namespace capscale::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string backend = "auto";
  ParallelFlags par;
  int steps = 3, warmup = 1;
  std::string emulate, out, calibration;
  bool json = false, force = false;
};

std::vector<char> fixed_string(const std::string& s, size_t n) {
  std::vector<char> out(n, '\0');
  std::copy_n(s.begin(), std::min(s.size(), n - 1), out.begin());
  return out;
}

int run(const RunOptions& o, const Invocation& inv) {
  mpi::Session session(inv.argc, inv.argv);
  exec::install_interrupt_handlers();
  const bool root = session.rank() == 0;
  std::ostream& log = o.json ? std::cerr : std::cout;
  if (o.steps < 1) throw InputError("--steps", "", "must be >= 1, got " + std::to_string(o.steps));
  if (o.warmup < 0) throw InputError("--warmup", "", "must be >= 0, got " + std::to_string(o.warmup));
  const std::string backend = resolve_backend(o.backend);
  if (root && !o.out.empty()) results::check_output_path(o.out, o.force);
  // Only rank 0 emulates targets; read the calibration there, before any work.
  predict::Calibration calibration;
  if (root && !o.calibration.empty()) calibration = results::read_calibration(o.calibration);
  const predict::Calibration* cal = o.calibration.empty() ? nullptr : &calibration;

  const config::ModelConfig model = o.par.load_model(o.model);
  const config::ParallelConfig p = config::resolve(o.par.to_config(), model, session.size(), "run");
  std::vector<config::TargetSpec> targets;
  if (!o.emulate.empty()) targets = config::parse_target_list(o.emulate, "--emulate");
  std::vector<config::ChipProfile> target_chips;
  for (const auto& t : targets) target_chips.push_back(config::resolve_target(t));

  const HostRun hr(session, model, p, backend, "run");
  const parallel::Layout& layout = hr.layout;
  exec::Executor* ex = hr.ex.get();
  const config::ChipProfile& host = hr.host;
  const plan::Plan& plan = hr.plan;
  const plan::StagePlan& stage = hr.stage;

  // Rank → host → device table (STYLE: echoed at start by rank 0).
  constexpr size_t kStr = 128;
  auto host_str = fixed_string(host_name(), kStr), dev_str = fixed_string(ex->device(), kStr);
  std::vector<char> all_hosts(root ? kStr * session.size() : 0), all_devs(root ? kStr * session.size() : 0);
  CAPSCALE_MPI_CHECK(MPI_Gather(host_str.data(), kStr, MPI_CHAR, all_hosts.data(), kStr, MPI_CHAR, 0, MPI_COMM_WORLD));
  CAPSCALE_MPI_CHECK(MPI_Gather(dev_str.data(), kStr, MPI_CHAR, all_devs.data(), kStr, MPI_CHAR, 0, MPI_COMM_WORLD));
  if (root) {
    print_config(log, model, p, "# backend: " + backend + " (" + ex->gemm_dtype() + "), " + std::to_string(stage.ops.size()) +
                                   " ops on stage 0, " + std::to_string(o.warmup) + " warm-up + " + std::to_string(o.steps) + " timed steps\n");
    log << "#  rank  host                 tp pp dp cp  device\n";
    for (int r = 0; r < session.size(); ++r) {
      const auto c = layout.coords(r);
      char line[400];
      std::snprintf(line, sizeof line, "  %5d  %-20.20s %2lld %2lld %2lld %2lld  %s\n", r, &all_hosts[r * kStr], (long long)c.tp,
                    (long long)c.pp, (long long)c.dp, (long long)c.cp, &all_devs[r * kStr]);
      log << line;
    }
    log.flush();
  }

  // Warm-up, then timed steps. Ranks agree on an interrupt before each step so all stop together.
  std::vector<exec::StepTimes> timed;
  bool interrupted = false;
  for (int k = 0; k < o.warmup + o.steps; ++k) {
    int flag = exec::g_interrupted ? 1 : 0;
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (flag) {
      interrupted = true;
      break;
    }
    exec::StepTimes t = ex->run_step(stage, k);
    if (k >= o.warmup) timed.push_back(std::move(t));
    if (root && k >= o.warmup) {
      log << "# step " << (k - o.warmup + 1) << "/" << o.steps << ": " << fmt(timed.back().wall_s, 4) << " s on rank 0\n";
      log.flush();
    }
  }
  if (timed.empty()) throw Interrupted("interrupted before the first timed step; nothing was written");

  // Gather [steps × ops] op times and per-step walls on rank 0.
  const int nsteps = static_cast<int>(timed.size());
  std::vector<std::vector<double>> op_s;
  std::vector<double> wall_s;
  for (const auto& t : timed) op_s.push_back(t.op_s), wall_s.push_back(t.wall_s);
  const std::vector<double> mine = emulate::pack_rank(op_s, wall_s);
  const int count = static_cast<int>(mine.size());
  std::vector<int> counts(session.size()), displs(session.size());
  CAPSCALE_MPI_CHECK(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD));
  std::vector<double> all;
  if (root) {
    for (int r = 1; r < session.size(); ++r) displs[r] = displs[r - 1] + counts[r - 1];
    all.resize(displs.back() + counts.back());
  }
  CAPSCALE_MPI_CHECK(MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, 0, MPI_COMM_WORLD));
  if (!root) return interrupted ? 130 : 0;

  std::vector<int64_t> rank_stage;
  for (int r = 0; r < session.size(); ++r) rank_stage.push_back(layout.coords(r).pp);
  const emulate::Measurements m = emulate::unpack_gathered(plan, rank_stage, all, displs, counts, nsteps);
  const auto host_durations = emulate::aggregate(plan, m);
  const auto replay = emulate::aggregate(plan, m, emulate::CollectiveTime::kReplay);
  const double measured = emulate::measured_step_s(m);
  predict::TimelineOptions serial;
  serial.serialize = true;  // the CPU executor runs one queue per rank
  const auto engine = predict::simulate(plan, replay, backend == "cpu" ? serial : predict::TimelineOptions{});
  const double engine_error = (engine.step_time_s - measured) / measured;

  predict::SummaryRow host_row;
  host_row.model = model.name;
  host_row.target = "host:" + host.name;
  host_row.source = "measured";
  host_row.fits = true;
  host_row.memory_gb_per_chip = hr.need_gb;
  host_row.memory_capacity_gb = hr.host_share.usable_memory_bytes() / 1e9;
  predict::fill_throughput(host_row, plan, host, measured, engine.breakdown);
  std::vector<predict::SummaryRow> rows{host_row};

  results::RunData data;
  for (size_t i = 0; i < targets.size(); ++i) {
    auto tr = emulate::emulate_target(plan, host_durations, host, target_chips[i], cal);
    tr.row.target = targets[i].spec;
    rows.push_back(tr.row);
    data.targets.push_back({targets[i].spec, to_json(target_chips[i]).dump(), std::move(tr.durations), std::move(tr.sources)});
  }

  log << "\n";
  print_summary_table(log, rows);
  char verdict[256];
  std::snprintf(verdict, sizeof verdict, "# engine check: timeline engine %.4g s vs measured host step %.4g s: %+.1f %% (budget 5 %%) %s\n",
                engine.step_time_s, measured, 100 * engine_error, std::abs(engine_error) <= 0.05 ? "PASS" : "OVER BUDGET");
  log << verdict;
  if (cal) {
    const auto used = std::count_if(rows.begin(), rows.end(), [](const predict::SummaryRow& r) { return r.source == "calibrated"; });
    log << "# calibration: " << o.calibration << " (" << cal->arch << ", " << cal->device << ", driver " << cal->driver << ", "
        << cal->created_utc << ") used for " << used << " of " << targets.size()
        << " targets (those of arch " << cal->arch << " that the host, arch " << host.arch << ", cannot dilate)\n";
  }

  if (!o.out.empty()) {
    data.meta = {"run", inv.command_line, CAPSCALE_VERSION, CAPSCALE_GIT_SHA};
    data.model_json = to_json(model).dump();
    data.parallel_json = to_json(p).dump();
    data.host_json = to_json(host).dump();
    data.plan = &plan;
    for (int r = 0; r < session.size(); ++r) {
      const auto c = layout.coords(r);
      data.ranks.push_back({r, std::string(&all_hosts[r * kStr]), std::string(&all_devs[r * kStr]), backend, ex->gemm_dtype(),
                            c.tp, c.pp, c.dp, c.cp});
      const auto& ops = plan.stages[m.rank_stage[r]].ops;
      for (int k = 0; k < nsteps; ++k) {
        data.steps.push_back({double(r), double(k), m.wall_s[r][k]});
        for (size_t i = 0; i < ops.size(); ++i) data.ops.push_back({r, k, int64_t(i), &ops[i], m.op_s[r][k][i]});
      }
    }
    data.summary = rows;
    data.engine_step_s = engine.step_time_s;
    data.measured_step_s = measured;
    results::write_run(o.out, data, o.force);
    log << "# wrote " << o.out << "\n";
  }
  if (o.json) {
    nlohmann::json j = to_json(host_row);
    j["engine_check"] = {{"engine_step_s", engine.step_time_s}, {"measured_step_s", measured}, {"error", engine_error}};
    j["backend"] = backend;
    j["targets"] = nlohmann::json::array();
    for (const auto& r : rows) j["targets"].push_back(to_json(r));
    std::cout << j.dump(2) << std::endl;
  }
  if (interrupted) {
    std::cerr << "capscale: interrupted after " << nsteps << " timed steps; the finished steps were written\n";
    return 130;
  }
  return 0;
}

}  // namespace

Action add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run a training step for real (under mpirun/srun or one rank) and emulate targets");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--model", o->model, "model name (capscale list models), model YAML, or HuggingFace config.json")->required();
  cmd->add_option("--backend", o->backend, "auto | cuda | cpu (auto: cuda when a GPU is present)");
  add_parallel_flags(cmd, o->par);
  cmd->add_option("--steps", o->steps, "timed steps");
  cmd->add_option("--warmup", o->warmup, "untimed steps first");
  cmd->add_option("--emulate", o->emulate, "targets CHIP[@key=value,...], comma-separated (e.g. h200,h20,h200@nvlink=400)");
  cmd->add_option("--out", o->out, "HDF5 result file");
  cmd->add_option("--calibration", o->calibration,
                  "calibration file (capscale calibrate) for emulated targets of its architecture that the host does not share");
  cmd->add_flag("--force", o->force, "overwrite --out if it exists");
  cmd->add_flag("--json", o->json, "print one JSON object on stdout (tables go to stderr)");
  return [o](const Invocation& inv) { return run(*o, inv); };
}

}  // namespace capscale::cli
