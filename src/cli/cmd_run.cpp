// `capscale run`: executes the training step's plan for real on every MPI rank, gathers the
// measured op and step times on rank 0, checks the timeline engine against the measured wall time,
// emulates each --emulate target from the same measurements, and writes one HDF5 file.
#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>

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
  std::string streams = "serial";  ///< CPU backend: "concurrent" or "serial" (ExecContext::concurrent_streams)
  std::string emulate, out, calibration;
  bool json = false, force = false;
};

/// Each rank's host and device name, gathered on rank 0 (empty elsewhere) as fixed-length strings.
struct RankNames {
  std::vector<std::string> hosts, devices;
};

RankNames gather_rank_names(const mpi::Session& session, const exec::Executor& ex) {
  constexpr size_t kLen = 128;
  const bool root = session.rank() == 0;
  auto gather = [&](const std::string& mine) {
    std::vector<char> buf(kLen, '\0'), all(root ? kLen * size_t(session.size()) : 0);
    std::copy_n(mine.begin(), std::min(mine.size(), kLen - 1), buf.begin());  // a name, for a table: cut, not refused
    CAPSCALE_MPI_CHECK(MPI_Gather(buf.data(), kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, 0, MPI_COMM_WORLD));
    std::vector<std::string> out;
    for (size_t r = 0; root && r < size_t(session.size()); ++r) out.emplace_back(&all[r * kLen]);
    return out;
  };
  return {gather(host_name()), gather(ex.device())};
}

/// The resolved config and the rank → host → device table (STYLE: echoed at start by rank 0).
/// How the host ran its streams, which the engine check replays: "serial" only for CPU ranks with
/// one queue (--streams serial); a GPU always runs its streams concurrently.
std::string streams_mode(const HostRun& hr, const std::string& backend) {
  return backend == "cpu" && !hr.ctx.concurrent_streams ? "serial" : "concurrent";
}

void print_start(std::ostream& log, const RunOptions& o, const HostRun& hr, const config::ModelConfig& model,
                 const config::ParallelConfig& p, const std::string& backend, const RankNames& names) {
  if (!hr.profile.known) log << "# host profile: " << hr.profile.note << "\n";
  const std::string streams = backend == "cpu" ? ", streams " + streams_mode(hr, backend) : "";
  print_config(log, model, p, "# backend: " + backend + " (" + hr.ex->gemm_dtype() + ")" + streams + ", " + std::to_string(hr.stage.ops.size()) +
                                  " ops on stage 0, " + std::to_string(o.warmup) + " warm-up + " + std::to_string(o.steps) + " timed steps\n");
  log << "#  rank  host                 tp pp dp cp  device\n";
  for (size_t r = 0; r < names.hosts.size(); ++r) {
    const auto c = hr.layout.coords(int(r));
    char line[400];
    std::snprintf(line, sizeof line, "  %5zu  %-20.20s %2lld %2lld %2lld %2lld  %s\n", r, names.hosts[r].c_str(), (long long)c.tp,
                  (long long)c.pp, (long long)c.dp, (long long)c.cp, names.devices[r].c_str());
    log << line;
  }
  log.flush();
}

/// Warm-up, then timed steps. Ranks agree on an interrupt before each step so all stop together;
/// `interrupted` says one came.
std::vector<exec::StepTimes> run_steps(const RunOptions& o, const HostRun& hr, std::ostream* log, bool& interrupted) {
  std::vector<exec::StepTimes> timed;
  interrupted = false;
  for (int k = 0; k < o.warmup + o.steps; ++k) {
    int flag = exec::g_interrupted ? 1 : 0;
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (flag) {
      interrupted = true;
      break;
    }
    exec::StepTimes t = hr.ex->run_step(hr.stage, k);
    if (k < o.warmup) continue;
    timed.push_back(std::move(t));
    if (log) *log << "# step " << (k - o.warmup + 1) << "/" << o.steps << ": " << fmt(timed.back().wall_s, 4) << " s on rank 0\n" << std::flush;
  }
  if (timed.empty()) throw Interrupted("interrupted before the first timed step; nothing was written");
  return timed;
}

/// Every rank's [steps × ops] op times and per-step walls, gathered on rank 0 (nullopt elsewhere).
std::optional<emulate::Measurements> gather_measurements(const mpi::Session& session, const HostRun& hr,
                                                         const std::vector<exec::StepTimes>& timed) {
  std::vector<std::vector<double>> op_s;
  std::vector<double> wall_s;
  for (const auto& t : timed) op_s.push_back(t.op_s), wall_s.push_back(t.wall_s);
  const std::vector<double> mine = emulate::pack_rank(op_s, wall_s);
  const int count = static_cast<int>(mine.size());
  const bool root = session.rank() == 0;
  std::vector<int> counts(session.size()), displs(session.size());
  CAPSCALE_MPI_CHECK(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD));
  std::vector<double> all;
  if (root) {
    for (int r = 1; r < session.size(); ++r) displs[r] = displs[r - 1] + counts[r - 1];
    all.resize(displs.back() + counts.back());
  }
  CAPSCALE_MPI_CHECK(MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, 0, MPI_COMM_WORLD));
  if (!root) return std::nullopt;
  std::vector<int64_t> rank_stage;
  for (int r = 0; r < session.size(); ++r) rank_stage.push_back(hr.layout.coords(r).pp);
  return emulate::unpack_gathered(hr.plan, rank_stage, all, displs, counts, int(timed.size()));
}

/// The timeline engine replaying the host's own measured ops, against the measured step.
struct EngineCheck {
  timeline::TimelineResult engine;
  double measured_s = 0, error = 0;
};

/// The engine runs the plan as the host executor did: the CUDA executor's streams with overlap
/// edges pipelined; the CPU executor's concurrent streams with an overlap edge's op whole after its
/// partner (it has no userbuffers), or its single queue (--streams serial).
timeline::TimelineOptions engine_options(const HostRun& hr, const std::string& backend) {
  timeline::TimelineOptions opt;
  if (backend != "cpu") return opt;
  opt.serialize = !hr.ctx.concurrent_streams;
  opt.chunked_overlap = false;
  return opt;
}

EngineCheck check_engine(const HostRun& hr, const emulate::Measurements& m, const std::string& backend) {
  const auto replay = emulate::aggregate(hr.plan, m, emulate::CollectiveTime::kReplay);
  EngineCheck c;
  c.engine = timeline::simulate(hr.plan, replay, engine_options(hr, backend));
  c.measured_s = emulate::measured_step_s(m);
  c.error = (c.engine.step_time_s - c.measured_s) / c.measured_s;
  return c;
}

predict::SummaryRow host_row(const HostRun& hr, const config::ModelConfig& model, const EngineCheck& c) {
  // What one rank has (CPU ranks share a node's RAM); HostRun refused the run unless it fits.
  predict::SummaryRow row = predict::identity_row(model, hr.host_share, hr.plan.parallel, "measured");
  row.target = "host:" + hr.host.name;
  predict::fill_throughput(row, hr.plan, hr.host, c.measured_s, c.engine.breakdown);
  return row;
}

/// The verdict lines under the summary table: engine check, and which targets the calibration served.
void print_verdicts(std::ostream& log, const RunOptions& o, const EngineCheck& c, const std::vector<predict::SummaryRow>& rows,
                    const predict::Calibration* cal, const HostRun& hr, size_t targets) {
  const config::ChipProfile& host = hr.host;
  char verdict[256];
  std::snprintf(verdict, sizeof verdict, "# engine check: timeline engine %.4g s vs measured host step %.4g s: %+.1f %% (budget 5 %%) %s\n",
                c.engine.step_time_s, c.measured_s, 100 * c.error, std::abs(c.error) <= 0.05 ? "PASS" : "OVER BUDGET");
  log << verdict;
  if (!hr.profile.known) log << "# host profile: unknown device (" << hr.host.description << "): host MFU/HFU not reported; targets modelled, not dilated\n";
  if (!cal) return;
  const auto used = std::count_if(rows.begin(), rows.end(), [](const predict::SummaryRow& r) { return r.source == "calibrated"; });
  log << "# calibration: " << o.calibration << " (" << cal->arch << ", " << cal->device << ", driver " << cal->driver << ", "
      << cal->created_utc << ") used for " << used << " of " << targets << " targets (those of arch " << cal->arch
      << " that the host, arch " << host.arch << ", cannot dilate)\n";
}

/// Everything but the targets (filled while emulating) for the run file.
void fill_run_data(results::RunData& data, const Invocation& inv, const HostRun& hr, const config::ModelConfig& model,
                   const config::ParallelConfig& p, const std::string& backend, const RankNames& names,
                   const emulate::Measurements& m, const EngineCheck& c) {
  data.meta = {"run", inv.command_line, CAPSCALE_VERSION, CAPSCALE_GIT_SHA};
  data.model_json = to_json(model).dump();
  data.parallel_json = to_json(p).dump();
  data.host_json = to_json(hr.host).dump();
  data.plan = &hr.plan;
  for (size_t r = 0; r < names.hosts.size(); ++r) {
    const auto co = hr.layout.coords(int(r));
    data.ranks.push_back({int64_t(r), names.hosts[r], names.devices[r], backend, hr.ex->gemm_dtype(), co.tp, co.pp, co.dp, co.cp});
    const auto& ops = hr.plan.stages[m.rank_stage[r]].ops;
    for (size_t k = 0; k < m.wall_s[r].size(); ++k) {
      data.steps.push_back({double(r), double(k), m.wall_s[r][k]});
      for (size_t i = 0; i < ops.size(); ++i) data.ops.push_back({int64_t(r), int64_t(k), int64_t(i), &ops[i], m.op_s[r][k][i]});
    }
  }
  data.engine_step_s = c.engine.step_time_s;
  data.engine_streams = streams_mode(hr, backend);
  data.measured_step_s = c.measured_s;
}

void print_json(const std::vector<predict::SummaryRow>& rows, const EngineCheck& c, const std::string& backend, const std::string& streams,
                const HostProfile& host) {
  nlohmann::json j = to_json(rows.front());
  // "known", or "unknown: <why>" for a device no configs/chips profile describes (its MFU/HFU are null).
  j["host_profile"] = host.known ? std::string("known") : "unknown: " + host.note;
  j["engine_check"] = {{"engine_step_s", c.engine.step_time_s}, {"measured_step_s", c.measured_s}, {"error", c.error},
                       {"streams", streams}};
  j["backend"] = backend;
  j["targets"] = nlohmann::json::array();
  for (const auto& r : rows) j["targets"].push_back(to_json(r));
  std::cout << j.dump(2) << std::endl;
}

// Whether the host executor refuses to have some op of the plan dilated (exec::Executor::dilatable:
// the CUDA executor's fused attention), so that op is modelled on every target.
bool any_op_not_dilatable(const HostRun& hr) {
  for (const auto& st : hr.plan.stages)
    for (const auto& op : st.ops)
      if (!hr.ex->dilatable(op)) return true;
  return false;
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
  for (const auto& t : targets) {
    try {
      target_chips.push_back(config::resolve_target(t));
    } catch (const InputError& e) {
      throw InputError("--emulate", "", e.what());  // name the flag: "chip: 'x' is neither a file nor a known chip"
    }
  }
  if (!o.out.empty()) check_run_names_fit(model, targets);  // refused now, not by the writer after the steps

  const HostRun hr(session, model, p, backend, "run", o.streams == "concurrent");
  const RankNames names = gather_rank_names(session, *hr.ex);
  if (root) print_start(log, o, hr, model, p, backend, names);
  bool interrupted = false;
  const auto timed = run_steps(o, hr, root ? &log : nullptr, interrupted);
  const auto m = gather_measurements(session, hr, timed);
  if (!root) return interrupted ? 130 : 0;

  const EngineCheck check = check_engine(hr, *m, backend);
  const auto host_durations = emulate::aggregate(hr.plan, *m);
  std::vector<predict::SummaryRow> rows{host_row(hr, model, check)};
  results::RunData data;
  for (size_t i = 0; i < targets.size(); ++i) {
    auto tr = emulate::emulate_target(hr.plan, host_durations, hr.host, target_chips[i], cal,
                                      [&](const plan::Op& op) { return hr.ex->dilatable(op); });
    tr.row.target = targets[i].spec;
    rows.push_back(tr.row);
    data.targets.push_back({targets[i].spec, to_json(target_chips[i]).dump(), std::move(tr.durations), std::move(tr.sources)});
  }
  log << "\n";
  print_summary_table(log, rows);
  if (!targets.empty() && any_op_not_dilatable(hr)) {
    log << "# fused attention is modelled on the targets (each chip's efficiency.attention), not dilated: this backend's attention\n"
           "# kernel is capscale's own, slower than production kernels; the host row measures it as it ran (docs/bundle.md)\n";
  }
  print_verdicts(log, o, check, rows, cal, hr, targets.size());
  if (!o.out.empty()) {
    fill_run_data(data, inv, hr, model, p, backend, names, *m, check);
    data.summary = rows;
    results::write_run(o.out, data, o.force);
    log << "# wrote " << o.out << "\n";
  }
  if (o.json) print_json(rows, check, backend, streams_mode(hr, backend), hr.profile);
  if (interrupted) {
    std::cerr << "capscale: interrupted after " << timed.size() << " timed steps; the finished steps were written\n";
    return 130;
  }
  return 0;
}

}  // namespace

void check_run_names_fit(const config::ModelConfig& model, const std::vector<config::TargetSpec>& targets) {
  predict::SummaryRow row;
  row.model = model.name;
  config::check_text_lengths(row, config::select(predict::summary_fields(), {"model"}), "--model");
  const auto target_field = config::select(predict::summary_fields(), {"target"});
  for (const auto& t : targets) {
    row.target = t.spec;
    config::check_text_lengths(row, target_field, "--emulate");
  }
}

Action add_run(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run a training step for real (under mpirun/srun or one rank) and emulate targets");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("--model", o->model, "model name (capscale list models), model YAML, or HuggingFace config.json")->required();
  cmd->add_option("--backend", o->backend, "auto | cuda | cpu (auto: cuda when a GPU is present)");
  add_parallel_flags(cmd, o->par);
  cmd->add_option("--steps", o->steps, "timed steps")->check(CLI::Range(1, 100000));
  cmd->add_option("--warmup", o->warmup, "untimed steps first")->check(CLI::Range(0, 100000));
  cmd->add_option("--streams", o->streams,
                  "CPU backend: serial (one queue per rank, the default) or concurrent (compute on a worker thread, "
                  "communication beside it through non-blocking MPI, as a GPU runs its streams); the engine check follows")
      ->check(CLI::IsMember({"concurrent", "serial"}));
  cmd->add_option("--emulate", o->emulate, "targets CHIP[@key=value,...], comma-separated (e.g. h200,h20,h200@nvlink=400)");
  cmd->add_option("--out", o->out, "HDF5 result file");
  cmd->add_option("--calibration", o->calibration,
                  "calibration file (capscale calibrate) for emulated targets of its architecture that the host does not share");
  cmd->add_flag("--force", o->force, "overwrite --out if it exists");
  cmd->add_flag("--json", o->json, "print one JSON object on stdout (tables go to stderr)");
  return [o](const Invocation& inv) { return run(*o, inv); };
}

}  // namespace capscale::cli
