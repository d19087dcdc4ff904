// Loads the CUDA plugin on first use and forwards the CUDA backend's entry points to it; asks the
// driver whether a device is present without loading the plugin. See cuda_plugin.hpp. Compiled into
// every capscale (with or without the CUDA toolkit): only dlopen/dlsym, no CUDA header.
#include "exec/cuda_plugin.hpp"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "common/error.hpp"

namespace capscale::exec {
namespace {

[[noreturn]] void unavailable(const std::string& why) {
  throw InputError("--backend", "cuda", "is not available: " + why + "; use --backend cpu");
}

std::string exe_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, size_t(n));
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

// Loaded once; a failure is remembered too, so every caller gets the same reason.
struct Loaded {
  const CapscaleCudaPlugin* plugin = nullptr;
  std::string error;
};

Loaded load() {
  Loaded r;
  const std::string path = cuda_plugin_path();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    r.error = "the CUDA backend's plugin was not found at " + path +
              " (this capscale was built without the CUDA toolkit, or the plugin was not installed next to the binary; "
              "CAPSCALE_PLUGIN_DIR names another directory)";
    return r;
  }
  // RTLD_LOCAL: the plugin's copies of capscale's static libraries stay private to it.
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = ::dlerror();
    r.error = "cannot load the CUDA backend's plugin " + path + ": " + (e ? e : "unknown dlopen error") +
              " (are the CUDA 13 runtime, cuBLAS and NCCL libraries installed and on the loader path?)";
    return r;
  }
  auto entry = reinterpret_cast<CapscaleCudaPluginEntry>(::dlsym(h, kCudaPluginSymbol));
  const CapscaleCudaPlugin* p = entry ? entry(kCudaPluginAbi) : nullptr;
  if (!p || p->abi_version != kCudaPluginAbi) {
    r.error = "the CUDA plugin " + path + (entry ? " was built for another capscale (plugin ABI mismatch; expected " +
                                                       std::to_string(kCudaPluginAbi) + "): rebuild it with this capscale"
                                                 : std::string(" does not export ") + kCudaPluginSymbol);
    return r;  // h stays open: unloading a library whose initialisers ran gains nothing
  }
  r.plugin = p;
  return r;
}

}  // namespace

std::string cuda_plugin_path() {
  const char* dir = std::getenv("CAPSCALE_PLUGIN_DIR");
  return (dir && *dir ? std::string(dir) : exe_dir()) + "/" + kCudaPluginFile;
}

const CapscaleCudaPlugin& cuda_plugin() {
  static const Loaded loaded = load();  // thread-safe once; the process-wide dlopen state is global anyway
  if (!loaded.plugin) unavailable(loaded.error);
  return *loaded.plugin;
}

std::unique_ptr<Executor> make_cuda_executor(const ExecContext& ctx) {
  const CapscaleCudaPlugin& p = cuda_plugin();
  return std::unique_ptr<Executor>(p.make_executor(&ctx));
}

// The driver API's two calls, looked up in libcuda.so.1 (the driver's own library, present
// wherever a GPU is usable): no runtime, no plugin, nothing mapped when there is no driver.
bool cuda_device_available() {
  void* h = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) return false;
  using InitFn = int (*)(unsigned);
  using CountFn = int (*)(int*);
  auto init = reinterpret_cast<InitFn>(::dlsym(h, "cuInit"));
  auto count_fn = reinterpret_cast<CountFn>(::dlsym(h, "cuDeviceGetCount"));
  int count = 0;
  const bool ok = init && count_fn && init(0) == 0 && count_fn(&count) == 0 && count > 0;
  // The driver stays loaded when a device was found (the plugin is about to use it).
  if (!ok) ::dlclose(h);
  return ok;
}

std::vector<BenchRow> bench_cuda_gemm(Executor& ex, const BenchOptions& o) {
  std::vector<BenchRow> rows;
  cuda_plugin().bench_gemm(&ex, &o, &rows);
  return rows;
}

std::vector<BenchRow> bench_cuda_comm(Executor& ex, const ExecContext& ctx, const BenchOptions& o) {
  std::vector<BenchRow> rows;
  cuda_plugin().bench_comm(&ex, &ctx, &o, &rows);
  return rows;
}

}  // namespace capscale::exec
