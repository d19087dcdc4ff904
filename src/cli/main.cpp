// capscale's entry point: parses the subcommand, runs it, and turns errors into one clear line
// and an exit code (2 bad input, 1 runtime failure, 130 interrupted). Under MPI a failing rank
// aborts the whole job with a message naming its rank and host.
#include <malloc.h>
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.hpp"
#include "git_sha.hpp"
#include "common/error.hpp"
#include "mpi/mpi_context.hpp"

namespace {

int fail(const std::string& raw, int code) {
  const std::string message = capscale::cli::one_line(raw);
  int inited = 0, finalized = 0, size = 1;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (inited && !finalized) {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) capscale::mpi::abort_job(message, code);  // names rank and host, never returns
  }
  std::cerr << "capscale: error: " << message << "\n";
  if (inited && !finalized) MPI_Finalize();
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace capscale;
  // Predictions build and drop plans of 10^4–10^5 ops many times (search, sweeps); by default glibc
  // serves such blocks with mmap and returns them to the kernel on free, which made half of a search
  // system time. Keep them in the heap instead (measured: a 512-chip 70B search 2.5 s → 1.1 s).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app{"capscale: LLM training throughput per chip, on real hardware and emulated capped targets"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(CAPSCALE_VERSION) + " (" + CAPSCALE_GIT_SHA + ")");
  std::vector<std::pair<CLI::App*, cli::Action>> commands;
  auto add = [&](cli::Action (*adder)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    cli::Action a = adder(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(a));
  };
  add(cli::add_run);
  add(cli::add_predict);
  add(cli::add_sweep);
  add(cli::add_report);
  add(cli::add_bench);
  add(cli::add_list);
  add(cli::add_check);
  add(cli::add_validate);
  add(cli::add_calibrate);
  // Bad input: one line, exit 2; with no command recognised, the line lists the commands.
  auto bad_input = [&](std::string message) {
    if (app.get_subcommands().empty()) {
      message += " (commands:";
      for (const auto& [cmd, action] : commands) message += " " + cmd->get_name();
      message += std::string(")") + (argc > 1 ? "; got '" + std::string(argv[1]) + "'" : "");
    }
    return fail(message, 2);
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print what was asked for and succeed; every other parse error is bad
    // input: one line naming the flag (CLI11's own exit() adds "Run with --help ..." on a second).
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    return bad_input(e.what());
  }
  cli::Invocation inv{&argc, &argv, ""};
  for (int i = 0; i < argc; ++i) inv.command_line += (i ? " " : "") + std::string(argv[i]);
  try {
    for (auto& [cmd, action] : commands)
      if (cmd->parsed()) return action(inv);
  } catch (const InputError& e) {
    return bad_input(e.what());
  } catch (const Interrupted& e) {
    return fail(e.what(), 130);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
  return 0;
}
