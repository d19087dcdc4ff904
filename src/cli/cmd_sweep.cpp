// `capscale sweep SWEEP.yaml`: every point of the grid predicted (or searched), one row per point
// appended and flushed to NAME.h5.partial as it finishes, renamed to NAME.h5 at the end. Launched
// with several MPI ranks, points are dealt round-robin and rank 0 writes what the others send.
// --resume skips every point already in the partial file.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "analysis/sweep_analysis.hpp"
#include "cli/commands.hpp"
#include "git_sha.hpp"
#include "cli/output.hpp"
#include "cli/sweep_api.hpp"
#include "common/error.hpp"
#include "config/fields.hpp"
#include "exec/executor.hpp"
#include "mpi/mpi_context.hpp"
#include "results/analysis_io.hpp"
#include "results/reader.hpp"
#include "results/writer.hpp"
#include "sweep/sweep_config.hpp"

namespace capscale::cli {
namespace {

namespace h5 = results::h5;

struct SweepOptions {
  std::string file, out;
  bool resume = false, force = false, json = false;
  int progress_every = 0;
};

constexpr int kTagRow = 11, kTagDone = 12;

/// Reliability drill and test hook: CAPSCALE_SWEEP_FAULT="after=N,mode=interrupt|kill" makes rank 0
/// act as if it got SIGINT (or die by SIGKILL) right after the N-th point it wrote.
struct SweepFault {
  size_t after = 0;
  std::string mode;
  SweepFault() {
    const char* s = std::getenv("CAPSCALE_SWEEP_FAULT");
    if (!s || !*s) return;
    const std::string spec = s;
    const auto a = spec.find("after="), m = spec.find("mode=");
    if (a == std::string::npos || m == std::string::npos) {
      throw InputError("CAPSCALE_SWEEP_FAULT", "", "must be after=N,mode=interrupt|kill, got '" + spec + "'");
    }
    after = std::strtoull(spec.c_str() + a + 6, nullptr, 10);
    mode = spec.substr(m + 5, spec.find(',', m) == std::string::npos ? std::string::npos : spec.find(',', m) - m - 5);
    if (mode != "interrupt" && mode != "kill") throw InputError("CAPSCALE_SWEEP_FAULT", "mode", "must be interrupt or kill");
  }
  void check(size_t written) const {
    if (mode.empty() || written != after) return;
    if (mode == "kill") ::raise(SIGKILL);
    exec::g_interrupted = 1;
  }
};

class PointRunner {
 public:
  explicit PointRunner(const sweep::SweepConfig& s) : s_(s) {}

  /// Computes one point into a one-row table (status "ok", "does not fit", "no plan fits" or
  /// "invalid: ...").
  h5::Table run(const sweep::Point& pt) {
    const SweepRow r = compute(pt);
    h5::Table t = results::summary_table();
    results::add_summary_row(t, r.row, r.point, r.key, r.status);
    return t;
  }

  /// The same as a row with its point index, key and status.
  SweepRow compute(const sweep::Point& pt) {
    const auto& model = models_.try_emplace(pt.model, config::load_model(pt.model)).first->second;
    const auto& chip = chips_.try_emplace(pt.target.spec, config::resolve_target(pt.target)).first->second;
    predict::SummaryRow row;
    row.model = model.name;
    row.gpus = pt.gpus;
    row.source = "roofline";
    std::string status = "ok";
    if (pt.plan.search) {
      predict::SearchOptions so;
      so.gpus = pt.gpus, so.global_batch_size = pt.global_batch_size, so.seq_length = s_.seq_length;
      so.precision = s_.precision, so.top = 1;
      const auto r = predict::search(model, chip, so);
      if (r.ranked.empty()) status = "no plan fits (" + std::to_string(r.candidates) + " candidates)";
      else row = r.ranked[0];
    } else {
      config::ParallelConfig p = pt.plan.parallel;
      p.global_batch_size = pt.global_batch_size, p.seq_length = s_.seq_length, p.precision = s_.precision;
      auto v = config::violations(p, model, pt.gpus);
      for (auto& t : predict::target_violations(p, chip)) v.push_back(std::move(t));
      if (!v.empty()) {
        status = "invalid: " + config::join(v);
        // The status column holds 511 characters: past that, the first reason and a count.
        if (status.size() > 511) status = "invalid: " + v.front() + " (and " + std::to_string(v.size() - 1) + " more)";
      } else {
        row = predict::predict(model, chip, config::resolve(p, model, pt.gpus, "sweep")).row;
        if (!row.fits) status = "does not fit";
      }
    }
    row.target = pt.target.spec;
    row.gpus = pt.gpus;
    return SweepRow{row, int64_t(pt.index), pt.key, status};
  }

 private:
  const sweep::SweepConfig& s_;
  std::map<std::string, config::ModelConfig> models_;
  std::map<std::string, config::ChipProfile> chips_;
};

/// The sweep's analysis (best plan per point, cliffs, equivalence) over every row now in the file,
/// this run's and any resumed ones, stored under /analysis for report and plot.py.
void write_analysis(const results::SweepFile& file, const sweep::SweepConfig& cfg) {
  const results::Summary sum = results::read_summary(file.id());
  std::optional<analysis::Reference> ref;
  if (!cfg.reference_target.empty()) ref = analysis::Reference{cfg.reference_target, cfg.reference_gpus};
  results::write_analysis(file.id(), analysis::analyze(analysis::sweep_rows(sum.rows, sum.statuses, sum.points), ref));
}

class Progress {
 public:
  Progress(size_t total, int every) : total_(total), every_(every), tty_(::isatty(STDERR_FILENO)), t0_(clock::now()) {}
  void tick(size_t done) {
    const double s = std::chrono::duration<double>(clock::now() - t0_).count();
    const double rate = done / std::max(s, 1e-9), eta = (total_ - done) / std::max(rate, 1e-9);
    if (tty_) {
      std::fprintf(stderr, "\r# %zu/%zu points, %.1f points/s, ETA %.0f s   ", done, total_, rate, eta);
      if (done == total_) std::fprintf(stderr, "\n");
    } else if (done % every_ == 0 || done == total_) {
      std::fprintf(stderr, "# progress: %zu/%zu points, %.1f points/s, ETA %.0f s\n", done, total_, rate, eta);
    }
  }

 private:
  using clock = std::chrono::steady_clock;
  size_t total_;
  int every_;
  bool tty_;
  clock::time_point t0_;
};

/// Each row stores the loaded model's own name (a YAML's `name`, not the path the sweep lists, which
/// expand() checks): it must fit the /summary column whole, refused now rather than half-way through.
void check_model_names_fit(const sweep::SweepConfig& cfg, const std::string& path) {
  const auto model_field = config::select(predict::summary_fields(), {"model"});
  for (const auto& spec : cfg.models) {
    predict::SummaryRow row;
    row.model = config::load_model(spec).name;
    config::check_text_lengths(row, model_field, path + ": models: " + spec);
  }
}

int sweep_cmd(const SweepOptions& o, const Invocation& inv) {
  mpi::Session session(inv.argc, inv.argv);
  exec::install_interrupt_handlers();
  const bool root = session.rank() == 0;
  const auto cfg = sweep::load_sweep(o.file);
  const auto points = sweep::expand(cfg);
  check_model_names_fit(cfg, o.file);
  const std::string out = o.out.empty() ? "results/" + cfg.name + ".h5" : o.out;

  // Rank 0 opens the file (fails early on a bad path) and tells everyone which points are done.
  std::unique_ptr<results::SweepFile> file;
  std::vector<char> done(points.size(), 0);
  if (root) {
    file = std::make_unique<results::SweepFile>(out, results::FileMeta{"sweep", inv.command_line, CAPSCALE_VERSION, CAPSCALE_GIT_SHA},
                                                cfg.text, o.resume, o.force);
    for (size_t i = 0; i < points.size(); ++i) done[i] = file->done(points[i].key);
  }
  CAPSCALE_MPI_CHECK(MPI_Bcast(done.data(), static_cast<int>(done.size()), MPI_CHAR, 0, MPI_COMM_WORLD));
  std::vector<size_t> pending;
  for (size_t i = 0; i < points.size(); ++i)
    if (!done[i]) pending.push_back(i);
  if (root) {
    std::cerr << "# sweep " << cfg.name << ": " << points.size() << " points (" << (points.size() - pending.size())
              << " already done), " << session.size() << " rank(s), writing " << out << ".partial\n";
  }

  PointRunner runner(cfg);
  Progress progress(pending.size(), o.progress_every > 0 ? o.progress_every : std::max<int>(1, int(pending.size() / 20)));
  size_t written = 0;
  const SweepFault fault;
  std::vector<predict::SummaryRow> json_rows;
  h5::Table row_buf = results::summary_table();
  auto write_rows = [&](const h5::Table& t) {
    file->append_rows(t);
    for (size_t i = 0; i < t.rows(); ++i)
      if (o.json) json_rows.push_back(results::summary_row_from(t, i));
    written += t.rows();
    progress.tick(written);
    fault.check(written);
  };
  // Drain rows other ranks sent; returns how many ranks have said they are done.
  int finished_ranks = 0;
  auto drain = [&](bool block) {
    while (true) {
      int flag = 0;
      MPI_Status st;
      if (block) CAPSCALE_MPI_CHECK(MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &st)), flag = 1;
      else CAPSCALE_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st));
      if (!flag) return;
      if (st.MPI_TAG == kTagDone) {
        int dummy = 0;
        CAPSCALE_MPI_CHECK(MPI_Recv(&dummy, 1, MPI_INT, st.MPI_SOURCE, kTagDone, MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        ++finished_ranks;
      } else {
        h5::Table t = results::summary_table();
        t.add_row();
        CAPSCALE_MPI_CHECK(MPI_Recv(t.mutable_data(), static_cast<int>(t.row_size()), MPI_BYTE, st.MPI_SOURCE, kTagRow,
                                    MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        write_rows(t);
      }
      if (block) return;
    }
  };

  bool interrupted = false;
  for (size_t j = session.rank(); j < pending.size(); j += session.size()) {
    if (exec::g_interrupted) {
      interrupted = true;
      break;
    }
    const h5::Table t = runner.run(points[pending[j]]);
    if (root) {
      write_rows(t);
      drain(false);
    } else {
      CAPSCALE_MPI_CHECK(MPI_Send(t.data(), static_cast<int>(t.row_size()), MPI_BYTE, 0, kTagRow, MPI_COMM_WORLD));
    }
  }
  if (!root) {
    int one = 1;
    CAPSCALE_MPI_CHECK(MPI_Send(&one, 1, MPI_INT, 0, kTagDone, MPI_COMM_WORLD));
    return interrupted ? 130 : 0;
  }
  while (finished_ranks < session.size() - 1) drain(true);
  interrupted = interrupted || exec::g_interrupted || file->done_count() < points.size();
  if (interrupted) {
    std::cerr << "capscale: sweep interrupted: " << file->done_count() << "/" << points.size() << " points are in " << out
              << ".partial; run the same command with --resume to finish\n";
    return 130;
  }
  write_analysis(*file, cfg);
  file->finish();
  std::cerr << "# wrote " << out << " (" << points.size() << " points)\n";
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : json_rows) arr.push_back(to_json(r));
    std::cout << arr.dump(2) << std::endl;
  } else {
    std::cout << "# sweep " << cfg.name << " done; see: capscale report " << out << "\n";
  }
  return 0;
}

}  // namespace

std::vector<SweepRow> sweep_rows(const std::string& path) {
  const auto cfg = sweep::load_sweep(path);
  const auto points = sweep::expand(cfg);
  check_model_names_fit(cfg, path);
  PointRunner runner(cfg);
  std::vector<SweepRow> out;
  out.reserve(points.size());
  for (const auto& pt : points) {
    out.push_back(runner.compute(pt));
    results::check_finite(out.back().row);  // as the file writer does, so both refuse alike
  }
  return out;
}

Action add_sweep(CLI::App& app) {
  auto* cmd = app.add_subcommand("sweep", "Predict a grid of models x targets x chip counts x plans into one HDF5 table");
  auto o = std::make_shared<SweepOptions>();
  cmd->add_option("file", o->file, "sweep YAML (configs/sweeps/*.yaml)")->required();
  cmd->add_option("--out", o->out, "result file (default results/<name>.h5)");
  cmd->add_flag("--resume", o->resume, "continue an interrupted sweep from <out>.partial");
  cmd->add_flag("--force", o->force, "overwrite an existing result");
  cmd->add_flag("--json", o->json, "print a JSON array of rows on stdout");
  cmd->add_option("--progress-every", o->progress_every, "print a progress line every N points when not on a terminal");
  return [o](const Invocation& inv) { return sweep_cmd(*o, inv); };
}

}  // namespace capscale::cli
