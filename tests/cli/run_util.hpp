// Runs the capscale binary (or mpiexec) as a child process with a wall-clock bound, capturing
// stdout, stderr and how it ended. Shared by the CLI test files.
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace capscale::test {

struct RunResult {
  int exit_code = -1;   ///< exit status, or 128 + signal
  bool timed_out = false;
  std::string out, err;
  double seconds = 0;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A fresh path stem for one child's captured stdout (stem.out) and stderr (stem.err).
inline std::string capture_stem() {
  static int counter = 0;
  return std::string(::testing::TempDir()) + "capscale_run_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
}

/// Fills `r`'s exit code (or 128 + signal) from a wait status and its output from the files at
/// `stem`, which it then removes.
inline void collect(RunResult& r, int status, const std::string& stem) {
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(stem + ".out");
  r.err = slurp(stem + ".err");
  std::remove((stem + ".out").c_str());
  std::remove((stem + ".err").c_str());
}

/// Runs `args` (a shell command line) with `env` prefixed, killed after `timeout_s`.
inline RunResult run(const std::string& args, int timeout_s = 120, const std::string& env = "") {
  const std::string base = capture_stem();
  const std::string cmd = env + " timeout -s KILL " + std::to_string(timeout_s) + " " + args + " >" + base + ".out 2>" + base + ".err";
  const auto t0 = std::chrono::steady_clock::now();
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  collect(r, status, base);
  r.timed_out = r.exit_code == 137 && r.seconds >= timeout_s - 1;
  return r;
}

/// Runs `args` (one command, exec'd by sh so the signal reaches it) and sends it SIGINT as soon as
/// its stdout (or stderr, `in_stderr`) contains `ready`: an interruption at a point of progress
/// rather than after a fixed time, which a loaded machine may not have reached. Killed after
/// `timeout_s` whether or not it got there. `signalled` says whether SIGINT was sent.
struct SigintResult : RunResult {
  bool signalled = false;
};

inline SigintResult run_then_sigint(const std::string& args, const std::string& ready, bool in_stderr, int timeout_s = 120) {
  const std::string base = capture_stem();
  // No output of an earlier process may match before this one has written its own.
  std::remove((base + ".out").c_str());
  std::remove((base + ".err").c_str());
  const std::string cmd = "exec " + args + " >" + base + ".out 2>" + base + ".err";
  const auto t0 = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  SigintResult r;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed: " << std::strerror(errno);
    return r;
  }
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {  // cannot wait for it: end it, report, and do not leave it behind
      ADD_FAILURE() << "waitpid failed: " << std::strerror(errno);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    if (!r.signalled && slurp(base + (in_stderr ? ".err" : ".out")).find(ready) != std::string::npos) {
      ::kill(pid, SIGINT);
      r.signalled = true;
    }
    if (elapsed() > timeout_s) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      r.timed_out = true;
      break;
    }
    ::usleep(20000);
  }
  r.seconds = elapsed();
  collect(r, status, base);
  return r;
}

inline std::string bin() { return CAPSCALE_BIN; }
inline std::string mpiexec(int n) {
  return std::string(CAPSCALE_MPIEXEC) + " -n " + std::to_string(n) + " --oversubscribe --allow-run-as-root";
}
inline std::string tmpdir() { return ::testing::TempDir(); }

/// A path under tmpdir() with no file (and no sweep .partial) left there by an earlier run.
inline std::string fresh_path(const std::string& name) {
  const std::string p = tmpdir() + name;
  std::filesystem::remove(p);
  std::filesystem::remove(p + ".partial");
  return p;
}

}  // namespace capscale::test
