// The CUDA backend as a plugin: libcapscale_cuda.so is the only object that links cudart, cuBLAS(Lt)
// and NCCL, and capscale dlopen()s it only when a command asks for the CUDA backend (PyTorch and
// NCCL's net plugins load vendor libraries lazily the same way), so `predict`, `sweep`, `report` and
// the CPU backend never map them and the binary starts on a machine without CUDA.
// The plugin exports one C symbol returning a table of function pointers; the types behind the
// pointers are capscale's own C++ types, so plugin and binary must come from the same source tree
// and compiler: kCudaPluginAbi is bumped whenever this table, ExecContext, Executor or the bench
// structs change, and a plugin of another version is refused with a message saying so.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "exec/bench.hpp"
#include "exec/executor.hpp"

namespace capscale::exec {

/// Bump on any change to CapscaleCudaPlugin, ExecContext, Executor, BenchOptions or BenchRow.
inline constexpr int kCudaPluginAbi = 3;
/// The plugin's file name, looked up in $CAPSCALE_PLUGIN_DIR or else next to the binary.
inline constexpr const char* kCudaPluginFile = "libcapscale_cuda.so";
/// The exported entry point: `extern "C" const CapscaleCudaPlugin* capscale_cuda_plugin(int abi)`,
/// which returns null when `abi` is not the plugin's own kCudaPluginAbi.
inline constexpr const char* kCudaPluginSymbol = "capscale_cuda_plugin";

extern "C" {
struct CapscaleCudaPlugin {
  int abi_version;          ///< kCudaPluginAbi of the plugin's build
  const char* description;  ///< e.g. "CUDA runtime 13000, cuBLAS 130000, NCCL 22703"
  /// Number of usable CUDA devices; 0 with the reason in `why` (when non-null) otherwise.
  int (*device_count)(std::string* why);
  /// A new CUDA executor (delete through Executor's virtual destructor). Throws capscale errors.
  Executor* (*make_executor)(const ExecContext* ctx);
  /// `capscale bench gemm|comm` on a CUDA executor made by this plugin (bench.hpp).
  void (*bench_gemm)(Executor* ex, const BenchOptions* o, std::vector<BenchRow>* rows);
  void (*bench_comm)(Executor* ex, const ExecContext* ctx, const BenchOptions* o, std::vector<BenchRow>* rows);
};
using CapscaleCudaPluginEntry = const CapscaleCudaPlugin* (*)(int abi_version);
}

/// Where the plugin is looked for: $CAPSCALE_PLUGIN_DIR/libcapscale_cuda.so when that variable is
/// set, else the directory of /proc/self/exe.
std::string cuda_plugin_path();

/// The loaded plugin (dlopen'ed once per process, never unloaded: its executors may live until
/// exit). Throws InputError naming --backend cuda with the reason (not found at PATH, the dlopen
/// error text, or an ABI mismatch) when it cannot be loaded.
const CapscaleCudaPlugin& cuda_plugin();

}  // namespace capscale::exec
