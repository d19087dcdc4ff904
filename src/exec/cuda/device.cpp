// The executor's device (device.hpp): GPU selection, streams, the start gate, events and buffers.
#include "exec/cuda/device.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "common/error.hpp"
#include "exec/cuda/cuda_check.hpp"

namespace capscale::exec::cuda {
namespace {

// Left free for what NCCL and cuBLAS allocate after prepare(): NCCL connects its channels (and
// allocates their buffers) lazily at a communicator's first operation.
constexpr size_t kReserveBytes = size_t(2) << 30;
constexpr size_t kTinyBytes = 4096;

std::string gib(double bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", bytes / double(size_t(1) << 30));
  return s;
}

}  // namespace

void DeviceBuffer::reset() noexcept {
  if (p_) cudaFree(p_);
  p_ = nullptr, bytes_ = 0;
}

void DeviceBuffer::allocate(size_t bytes) {
  reset();
  CAPSCALE_CUDA_CHECK(cudaMalloc(&p_, bytes));
  bytes_ = bytes;
}

const char* buffer_name(int role) {
  static const char* names[] = {"gemm A",           "gemm W",        "gemm C",           "attention Q",
                                "attention K",      "attention V",   "attention scores", "attention out",
                                "attention scratch", "elementwise x", "elementwise y"};
  static_assert(std::size(names) == kComm0, "a name per non-communication role");
  return role < kComm0 ? names[role] : "communication";
}

Device::Device(const ExecContext& ctx) : world_rank_(ctx.world_rank) {
  try {
    select(ctx);
    int least = 0, greatest = 0;
    CAPSCALE_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    for (int q = 0; q < plan::kNumStreams; ++q) {
      const int prio = q == static_cast<int>(plan::Stream::kCompute) ? least : greatest;
      CAPSCALE_CUDA_CHECK(cudaStreamCreateWithPriority(&streams_[size_t(q)], cudaStreamNonBlocking, prio));
    }
    CAPSCALE_CUDA_CHECK(cudaStreamCreateWithFlags(&gate_stream_, cudaStreamNonBlocking));
    CAPSCALE_CUDA_CHECK(cudaEventCreateWithFlags(&gate_event_, cudaEventDisableTiming));
    tiny_.allocate(kTinyBytes);
    CAPSCALE_CUDA_CHECK(cudaMemset(tiny_.get(), 0, kTinyBytes));
  } catch (...) {
    release();
    throw;
  }
}

Device::~Device() { release(); }

void Device::release() noexcept {
  if (id_ >= 0) cudaSetDevice(id_);
  for (auto& ev : events_) cudaEventDestroy(ev[0]), cudaEventDestroy(ev[1]);
  events_.clear();
  for (auto& b : bufs_) b.reset();
  tiny_.reset();
  for (auto& s : streams_)
    if (s) cudaStreamDestroy(s), s = nullptr;
  if (gate_event_) cudaEventDestroy(gate_event_), gate_event_ = nullptr;
  if (gate_stream_) cudaStreamDestroy(gate_stream_), gate_stream_ = nullptr;
}

std::string Device::describe() const {
  return std::string(prop_.name) + " (sm_" + std::to_string(prop_.major) + std::to_string(prop_.minor) + ", pci " + pci_ + ")";
}

std::string Device::where() const {
  return "rank " + std::to_string(world_rank_) + " (host " + host_name() + ", device " + std::to_string(id_) + ")";
}

void Device::make_current() const { CAPSCALE_CUDA_CHECK(cudaSetDevice(id_)); }

void Device::select(const ExecContext& ctx) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count < 1) {
    (void)cudaGetLastError();
    throw InputError("--backend", "cuda", "no CUDA device is usable on rank " + std::to_string(ctx.world_rank) + " (host " + host_name() +
                                              "): " + (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices visible") +
                                              "; use --backend cpu");
  }
  const int local_rank = ctx.session ? ctx.session->local_rank() : 0;
  const int local_size = ctx.session ? ctx.session->local_size() : 1;
  id_ = local_rank % count;
  CAPSCALE_CUDA_CHECK(cudaSetDevice(id_));
  CAPSCALE_CUDA_CHECK(cudaGetDeviceProperties(&prop_, id_));
  char bus[32] = {};
  CAPSCALE_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, id_));
  pci_ = bus;
  if (!ctx.session) return;
  // Two ranks on one GPU would time each other's kernels. Compare device UUIDs across the node
  // (not counts: a launcher may give each rank its own CUDA_VISIBLE_DEVICES, and MIG instances of
  // one GPU share a PCI id but not a UUID). MPI_Comm_split_type is collective over the world, so
  // every rank calls it, also a rank alone on its node (returning early there hung the others).
  MPI_Comm node = MPI_COMM_NULL;
  CAPSCALE_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, ctx.world_rank, MPI_INFO_NULL, &node));
  std::vector<char> all(size_t(local_size) * sizeof(prop_.uuid));
  const int rc = MPI_Allgather(prop_.uuid.bytes, sizeof(prop_.uuid), MPI_BYTE, all.data(), sizeof(prop_.uuid), MPI_BYTE, node);
  MPI_Comm_free(&node);
  CAPSCALE_MPI_CHECK(rc);
  int sharing = 0;
  for (int r = 0; r < local_size; ++r) sharing += std::memcmp(&all[size_t(r) * sizeof(prop_.uuid)], prop_.uuid.bytes, sizeof(prop_.uuid)) == 0;
  if (sharing > 1) {
    const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
    throw InputError("--backend", "cuda", "rank " + std::to_string(ctx.world_rank) + " on host " + host_name() + " is local rank " +
                                              std::to_string(local_rank) + " of " + std::to_string(local_size) + " ranks on this node, but " +
                                              std::to_string(count) + " CUDA device(s) are visible to it (CUDA_VISIBLE_DEVICES=" +
                                              (vis ? vis : "unset") + "), so " + std::to_string(sharing) + " ranks would share GPU " + pci_ +
                                              ": start at most one rank per GPU");
  }
}

std::vector<int> Device::busy_streams() const {
  std::vector<int> busy;
  for (int i = 0; i < plan::kNumStreams; ++i)
    if (cudaStreamQuery(streams_[size_t(i)]) == cudaErrorNotReady) busy.push_back(i);
  (void)cudaGetLastError();
  return busy;
}

void Device::ensure_events(size_t n) {
  while (events_.size() < n) {
    std::array<cudaEvent_t, 2> ev{};
    CAPSCALE_CUDA_CHECK(cudaEventCreate(&ev[0]));
    const cudaError_t e = cudaEventCreate(&ev[1]);
    if (e != cudaSuccess) cudaEventDestroy(ev[0]);
    CAPSCALE_CUDA_CHECK(e);
    events_.push_back(ev);
  }
}

double Device::elapsed_s(size_t i) const {
  float ms = 0;
  CAPSCALE_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i][0], events_[i][1]));
  return double(ms) * 1e-3;
}

void Device::reserve_buffers(const BufferBytes& need, const std::array<DType, kNumBufferRoles>& type) {
  make_current();
  size_t add = 0;
  int largest = 0;
  for (int b = 0; b < kNumBufferRoles; ++b) {
    if (need[size_t(b)] > bufs_[size_t(b)].bytes()) add += need[size_t(b)];
    if (need[size_t(b)] > need[size_t(largest)]) largest = b;
  }
  if (add == 0) return;
  for (int b = 0; b < kNumBufferRoles; ++b)
    if (need[size_t(b)] > bufs_[size_t(b)].bytes()) bufs_[size_t(b)].reset();
  size_t free_b = 0, total_b = 0;
  CAPSCALE_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (add + kReserveBytes > free_b) {
    throw DoesNotFitError("run", "GPU memory",
                          "the CUDA executor needs " + gib(double(add)) + " of scratch buffers for this stage (largest: " +
                              buffer_name(largest) + ", " + gib(double(need[size_t(largest)])) + ") plus a " + gib(double(kReserveBytes)) +
                              " reserve for NCCL/cuBLAS, but " + prop_.name + " on " + where() + " has " + gib(double(free_b)) + " free of " +
                              gib(double(total_b)) + "; use a smaller micro-batch or sequence, or more tp/pp/cp");
  }
  cudaStream_t s = stream(plan::Stream::kCompute);
  for (int b = 0; b < kNumBufferRoles; ++b) {
    DeviceBuffer& buf = bufs_[size_t(b)];
    if (need[size_t(b)] == 0 || buf.bytes() >= need[size_t(b)]) continue;
    buf.allocate(need[size_t(b)]);
    cursor_[size_t(b)] = 0;
    // Random inputs: timings on all-zero operands are optimistic (kernels.cuh, fill_random).
    const DType t = type[size_t(b)];
    fill_random(buf.get(), int64_t(need[size_t(b)] / dtype_bytes(t)), t, 1234u + uint32_t(b), s);
  }
  CAPSCALE_CUDA_CHECK(cudaStreamSynchronize(s));
}

void* Device::buffer(int role, size_t bytes, const std::string& what) const {
  const DeviceBuffer& b = bufs_[size_t(role)];
  if (b.bytes() < bytes) {
    throw RuntimeError(what + " needs " + std::to_string(bytes) + " bytes of " + buffer_name(role) + " buffer but prepare() sized it to " +
                       std::to_string(b.bytes()) + "; call prepare(stage) with this stage first");
  }
  return b.get();
}

void* Device::rotating(int role, size_t bytes, const std::string& what) {
  char* base = static_cast<char*>(buffer(role, bytes, what));
  const size_t cap = bufs_[size_t(role)].bytes();
  size_t& at = cursor_[size_t(role)];
  if (at + bytes > cap) at = 0;
  char* p = base + at;
  at += (bytes + 255) / 256 * 256;
  return p;
}

namespace {
void CUDART_CB hold_gate(void* state) {
  auto* g = static_cast<Device::GateState*>(state);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(Device::kGateFailsafeS);
  while (!g->open.load(std::memory_order_acquire)) {
    if (std::chrono::steady_clock::now() > give_up) {
      g->timed_out.store(true, std::memory_order_release);
      return;
    }
    std::this_thread::yield();
  }
}
}  // namespace

Device::Gate::Gate(Device& d) : state_(d.gate_) {
  state_.open.store(false, std::memory_order_release);
  CAPSCALE_CUDA_CHECK(cudaLaunchHostFunc(d.gate_stream_, &hold_gate, &state_));
  armed_ = true;
  try {
    CAPSCALE_CUDA_CHECK(cudaEventRecord(d.gate_event_, d.gate_stream_));
    for (cudaStream_t s : d.streams_) CAPSCALE_CUDA_CHECK(cudaStreamWaitEvent(s, d.gate_event_, 0));
  } catch (...) {
    open();
    throw;
  }
}

void Device::Gate::open() noexcept {
  if (armed_) state_.open.store(true, std::memory_order_release), armed_ = false;
}

}  // namespace capscale::exec::cuda
