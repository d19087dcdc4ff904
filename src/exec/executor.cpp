// Shared executor pieces: fault injection, interrupt flag, and the CUDA factory fallback when the
// CUDA backend is not compiled in.
#include "exec/executor.hpp"

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <sstream>
#include <thread>

#include "common/error.hpp"

namespace capscale::exec {

volatile std::sig_atomic_t g_interrupted = 0;

namespace {
extern "C" void on_interrupt(int) { g_interrupted = 1; }
}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

FaultInjector::FaultInjector(int world_rank) {
  const char* spec = std::getenv("CAPSCALE_FAULT");
  if (!spec || !*spec) return;
  int rank = -1;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw InputError("CAPSCALE_FAULT", item, "must be key=value (rank, step, op, mode)");
    const std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    try {
      if (k == "rank") rank = std::stoi(v);
      else if (k == "step") step_ = std::stoi(v);
      else if (k == "op") op_ = std::stoul(v);
      else if (k == "mode") mode_ = v;
      else throw InputError("CAPSCALE_FAULT", k, "is not a key; allowed: rank, step, op, mode");
    } catch (const std::logic_error&) {
      throw InputError("CAPSCALE_FAULT", k, "needs a number, got '" + v + "'");
    }
  }
  if (mode_.empty()) mode_ = "kill";
  if (mode_ != "kill" && mode_ != "throw" && mode_ != "hang") {
    throw InputError("CAPSCALE_FAULT", "mode", "must be kill, throw or hang; got '" + mode_ + "'");
  }
  armed_ = rank == world_rank;
}

void FaultInjector::maybe_fail(int step, size_t op_index) const {
  if (!armed_ || step != step_ || op_index != op_) return;
  if (mode_ == "kill") {
    ::kill(::getpid(), SIGKILL);
  } else if (mode_ == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  throw RuntimeError("injected fault at step " + std::to_string(step) + ", op " + std::to_string(op_index) +
                     " (CAPSCALE_FAULT)");
}


}  // namespace capscale::exec
