// The CUDA executor's op families (ops.hpp). Collectives are a table of NCCL implementations
// indexed by collectives::index(kind), checked complete against the registry like the MPI table
// in exec/cpu/cpu_executor.cpp: adding a collective is one line here.
#include "exec/cuda/ops.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <iterator>

#include "collectives/collectives.hpp"
#include "common/error.hpp"
#include "exec/cuda/cuda_check.hpp"

namespace capscale::exec::cuda {
namespace {

// cuBLAS docs (cublasSetWorkspace): 32 MiB of workspace is the recommended size on Hopper.
constexpr size_t kWorkspaceBytes = size_t(32) << 20;
// Timed calls per candidate algorithm when tuning a GEMM (after one untimed call).
constexpr int kTuneIters = 3;

int to_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) throw RuntimeError(std::string(what) + " = " + std::to_string(v) + " does not fit a cuBLAS int");
  return static_cast<int>(v);
}

// The NCCL implementation of each registry entry, bf16 sum in place as Megatron reduces
// activations. `sharded` kinds take this rank's shard count (count / n elements) and use NCCL's
// in-place layout: this rank's shard at offset rank·shard of the full buffer.
struct NcclCollective {
  bool sharded;
  ncclResult_t (*enqueue)(char* buf, size_t elems, const Comm& c, cudaStream_t s);
};
constexpr NcclCollective kNcclCollectives[] = {
    // all_reduce
    {false, [](char* b, size_t n, const Comm& c, cudaStream_t s) { return ncclAllReduce(b, b, n, ncclBfloat16, ncclSum, c.comm, s); }},
    // reduce_scatter
    {true,
     [](char* b, size_t shard, const Comm& c, cudaStream_t s) {
       return ncclReduceScatter(b, b + shard * size_t(c.rank) * 2, shard, ncclBfloat16, ncclSum, c.comm, s);
     }},
    // all_gather
    {true,
     [](char* b, size_t shard, const Comm& c, cudaStream_t s) {
       return ncclAllGather(b + shard * size_t(c.rank) * 2, b, shard, ncclBfloat16, c.comm, s);
     }},
    // all_to_all (NCCL ≥ 2.28: ncclAlltoAll): `shard` elements to each peer, out of place into the
    // second half of a buffer of twice the chunk (Ops::collective sizes it so)
    {true,
     [](char* b, size_t shard, const Comm& c, cudaStream_t s) {
       char* recv = b + shard * size_t(c.size) * 2;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
       return ncclAlltoAll(b, recv, shard, ncclBfloat16, c.comm, s);
#else
       // Older NCCL: the same exchange as grouped point-to-point calls (nccl-tests' alltoall).
       ncclResult_t r = ncclGroupStart();
       for (int p = 0; p < c.size && r == ncclSuccess; ++p) {
         r = ncclSend(b + shard * size_t(p) * 2, shard, ncclBfloat16, p, c.comm, s);
         if (r == ncclSuccess) r = ncclRecv(recv + shard * size_t(p) * 2, shard, ncclBfloat16, p, c.comm, s);
       }
       const ncclResult_t end = ncclGroupEnd();
       return r != ncclSuccess ? r : end;
#endif
     }},
};
static_assert(std::size(kNcclCollectives) == collectives::kNumKinds, "every registry entry needs an NCCL implementation");

constexpr const char* kNcclCallNames[] = {"ncclAllReduce", "ncclReduceScatter", "ncclAllGather", "ncclAlltoAll"};
static_assert(std::size(kNcclCallNames) == collectives::kNumKinds);

}  // namespace

Ops::Ops(Device& dev, NcclComms& nccl, GroupComms& comms, DType gemm_type, DType attn_type)
    : dev_(dev), nccl_(nccl), comms_(comms), gemm_type_(gemm_type), attn_type_(attn_type) {
  try {
    CAPSCALE_CUBLAS_CHECK(cublasLtCreate(&lt_));
    CAPSCALE_CUBLAS_CHECK(cublasCreate(&blas_));
    lt_ws_.allocate(kWorkspaceBytes);
    blas_ws_.allocate(kWorkspaceBytes);
    scale_one_.allocate(sizeof(float));
    const float one = 1.0f;
    CAPSCALE_CUDA_CHECK(cudaMemcpy(scale_one_.get(), &one, sizeof one, cudaMemcpyHostToDevice));
  } catch (...) {
    if (blas_) cublasDestroy(blas_);
    if (lt_) cublasLtDestroy(lt_);
    throw;
  }
}

Ops::~Ops() {
  gemms_.clear();
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

BufferTypes Ops::buffer_types() const {
  BufferTypes t;
  // Two bytes even under fp8: an FP8 shape without an FP8 kernel runs in bf16 (gemm_plan).
  t.gemm_in_bytes = 2;
  t.gemm_out_bytes = 2;   // bf16 (fp16 under fp16)
  t.wgrad_out_bytes = 4;  // fp32 main_grad
  t.attn_bytes = dtype_bytes(attn_type_);
  return t;
}

std::array<DType, kNumBufferRoles> Ops::fill_types() const {
  std::array<DType, kNumBufferRoles> t;
  t.fill(DType::kBf16);
  // GEMM inputs in the forward input type: e4m3 bytes in [-1, 1) are finite e5m2 values too (the
  // exponent field never reaches e5m2's all-ones), so backward FP8 GEMMs read finite gradients.
  // C stays bf16-filled: read as fp32 main_grad (β = 1) each pair is a finite float.
  t[kGemmA] = t[kGemmW] = gemm_type_;
  t[kAttnQ] = t[kAttnK] = t[kAttnV] = t[kAttnS] = t[kAttnO] = attn_type_;
  return t;
}

GemmSpec Ops::gemm_spec(const plan::Op& op) const {
  const GemmLayout layout = op.phase != plan::Phase::kBackward ? GemmLayout::kForwardTN
                            : op.wgrad                         ? GemmLayout::kWgradNT
                                                               : GemmLayout::kDgradNN;
  return GemmSpec::megatron(layout, gemm_type_, op.m, op.n, op.k, std::max<int64_t>(op.batch, 1));
}

void Ops::plan_gemms(const plan::StagePlan& stage) {
  for (const plan::Op& op : stage.ops)
    if (op.kind == plan::OpKind::kGemm && op.m > 0 && op.n > 0 && op.k > 0) gemm_plan(gemm_spec(op));
}

void Ops::check_attention(const plan::StagePlan& stage) const {
  for (const plan::Op& op : stage.ops) {
    if (op.kind != plan::OpKind::kAttention || !op.fused || op.k < 1) continue;
    const std::string what = "fused attention with head dim " + std::to_string(op.k);
    if (!flash_supported(op.k)) throw RuntimeError(what + " is beyond the kernels (at most 192); run it with --no-flash-attention");
    const size_t need = flash_smem_bytes(op.k, op.phase == plan::Phase::kBackward);
    if (need > dev_.prop().sharedMemPerBlockOptin) {
      throw RuntimeError(what + " needs " + std::to_string(need) + " bytes of shared memory per block; " + dev_.prop().name + " on " +
                         dev_.where() + " has " + std::to_string(dev_.prop().sharedMemPerBlockOptin) +
                         "; run it with --no-flash-attention");
    }
  }
}

std::string Ops::gemm_dtype() const {
  // At most 31 characters: the /ranks table's gemm_dtype column (results/writer.cpp). The layouts
  // (TN forward, NN dgrad, NT wgrad into fp32; all TN under fp8) are described in kernels.cuh.
  switch (gemm_type_) {
    case DType::kFp8E4m3: return "fp8 e4m3/e5m2 (cublasLt TN)";
    case DType::kFp16: return "fp16 (cublasLt, fp32 wgrad)";
    default: break;
  }
  return "bf16 (cublasLt, fp32 wgrad)";
}

bool Ops::run(const plan::Op& op, int si, cudaStream_t s, const std::string& what) {
  switch (op.kind) {
    case plan::OpKind::kGemm: return gemm(op, s, what);
    case plan::OpKind::kAttention: return attention(op, s, what);
    case plan::OpKind::kElementwise: return elementwise(op, s, what);
    case plan::OpKind::kCollective: return collective(op, si, s, what);
    case plan::OpKind::kSendRecv: return sendrecv(op, si, s, what);
  }
  return false;
}

const LtGemm& Ops::gemm_plan(const GemmSpec& want, bool tune) {
  const auto key = want.key();
  auto it = gemms_.find(key);
  if (it != gemms_.end()) return *it->second;
  auto g = std::make_unique<LtGemm>(lt_, want, kWorkspaceBytes, static_cast<const float*>(scale_one_.get()));
  // FP8 kernels need dims that are multiples of 16; other shapes run in bf16.
  if (!g->has_algo()) g = std::make_unique<LtGemm>(lt_, want.as_bf16(), kWorkspaceBytes, static_cast<const float*>(scale_one_.get()));
  // Tuned on the scratch buffers prepare() sized for this stage (a shape the buffers cannot hold
  // is not the stage's: keep the heuristic's first).
  const std::string what = "tuning " + g->spec().describe();
  if (tune && dev_.buffer_bytes(kGemmA) >= g->a_bytes() && dev_.buffer_bytes(kGemmW) >= g->w_bytes() &&
      dev_.buffer_bytes(kGemmC) >= g->c_bytes()) {
    g->tune(dev_.buffer(kGemmA, g->a_bytes(), what), dev_.buffer(kGemmW, g->w_bytes(), what), dev_.buffer(kGemmC, g->c_bytes(), what),
            lt_ws_.get(), dev_.stream(plan::Stream::kCompute), kTuneIters);
  }
  return *gemms_.emplace(key, std::move(g)).first->second;
}

bool Ops::gemm(const plan::Op& op, cudaStream_t s, const std::string& what) {
  if (op.m < 1 || op.n < 1 || op.k < 1) return false;
  // Planned and tuned in prepare(); a shape it did not see runs the heuristic's first algorithm.
  const LtGemm& g = gemm_plan(gemm_spec(op), false);
  // Rotating operands (Device::rotating): no op reads what the one before it left in L2.
  void* a = dev_.rotating(kGemmA, g.a_bytes(), what);
  void* w = dev_.rotating(kGemmW, g.w_bytes(), what);
  void* c = dev_.rotating(kGemmC, g.c_bytes(), what);
  g.run(a, w, c, lt_ws_.get(), s);
  return true;
}

// Attention as the plan says users run it: fused (flash) by default, causal where the plan is;
// unfused only for the runs that stored scores (op.fused false, the SC21-era configurations).
bool Ops::attention(const plan::Op& op, cudaStream_t s, const std::string& what) {
  if (op.m < 1 || op.n < 1 || op.k < 1 || op.batch < 1) return false;
  return op.fused ? fused_attention(op, s, what) : unfused_attention(op, s, what);
}

// FlashAttention-2 (attention.cu) over the whole micro-batch × heads: forward for the forward and
// recompute phases, the backward kernels (which recompute P from the saved statistics) in backward.
bool Ops::fused_attention(const plan::Op& op, cudaStream_t s, const std::string& what) {
  if (!flash_supported(op.k)) {
    throw RuntimeError(what + ": head dim " + std::to_string(op.k) + " is beyond the fused attention kernels (at most 192)");
  }
  const size_t es = dtype_bytes(attn_type_);
  const size_t qo = size_t(op.batch * op.m * op.k) * es, kv = size_t(op.batch * op.n * op.k) * es;
  FlashArgs a;
  a.t = attn_type_;
  a.batch = op.batch, a.m = op.m, a.n = op.n, a.d = op.k;
  a.causal = op.causal;
  a.scale = 1.0f / std::sqrt(float(op.k));  // softmax(QKᵀ/√d) (Vaswani et al. 2017)
  a.q = dev_.rotating(kAttnQ, qo, what);
  a.k = dev_.rotating(kAttnK, kv, what);
  a.v = dev_.rotating(kAttnV, kv, what);
  a.o = dev_.rotating(kAttnO, qo, what);
  const FusedAttentionScratch f = fused_attention_scratch(op, es);
  char* x = static_cast<char*>(dev_.buffer(kAttnX, f.end, what));
  a.lse = reinterpret_cast<float*>(x + f.lse);
  if (op.phase != plan::Phase::kBackward) {
    flash_forward(a, s);
    return true;
  }
  a.delta = reinterpret_cast<float*>(x + f.delta);
  a.dq_acc = reinterpret_cast<float*>(x + f.dq_acc);
  a.dout = x + f.dout;
  a.dq = x + f.dq, a.dk = x + f.dk, a.dv = x + f.dv;
  flash_backward(a, s);
  return true;
}

// Per chunk of the batch: scores S = Q·Kᵀ ([m×k]·[k×n]), row softmax, out O = P·V ([m×n]·[n×k]).
// Row-major through column-major cuBLAS: Sᵀ = op_T(K)·Qᵀ and Oᵀ = Vᵀ·Pᵀ. Backward has twice the
// forward FLOPs (Narayanan et al. SC21: dQ, dK, dV, dP are four GEMMs of the same size), so it
// runs the sequence twice. The causal mask is not applied: the unfused form computes every score
// whatever the mask, as Megatron's unfused softmax path does.
bool Ops::unfused_attention(const plan::Op& op, cudaStream_t s, const std::string& what) {
  const size_t es = dtype_bytes(attn_type_);
  const int64_t chunk = attention_chunk(op, es);
  const int m = to_int(op.m, "attention m"), n = to_int(op.n, "attention n"), k = to_int(op.k, "attention k");
  void* q = dev_.buffer(kAttnQ, size_t(chunk * op.m * op.k) * es, what);
  void* kk = dev_.buffer(kAttnK, size_t(chunk * op.n * op.k) * es, what);
  void* v = dev_.buffer(kAttnV, size_t(chunk * op.n * op.k) * es, what);
  void* sc = dev_.buffer(kAttnS, size_t(chunk * op.m * op.n) * es, what);
  void* o = dev_.buffer(kAttnO, size_t(chunk * op.m * op.k) * es, what);
  const cudaDataType_t t = cuda_type(attn_type_);
  const float one = 1.0f, zero = 0.0f;
  if (s != blas_stream_) {
    // cublasSetStream resets the handle's workspace to cuBLAS' default pool (cuBLAS docs,
    // cublasSetStream), so the workspace is set again after it.
    CAPSCALE_CUBLAS_CHECK(cublasSetStream(blas_, s));
    CAPSCALE_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.get(), blas_ws_.bytes()));
    blas_stream_ = s;
  }
  const int rounds = op.phase == plan::Phase::kBackward ? 2 : 1;
  for (int r = 0; r < rounds; ++r) {
    for (int64_t b0 = 0; b0 < op.batch; b0 += chunk) {
      const int nb = to_int(std::min(chunk, op.batch - b0), "attention batch chunk");
      CAPSCALE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, kk, t, k, int64_t(n) * k, q, t, k,
                                                       int64_t(m) * k, &zero, sc, t, n, int64_t(m) * n, nb, CUBLAS_COMPUTE_32F,
                                                       CUBLAS_GEMM_DEFAULT));
      softmax_rows(sc, int64_t(nb) * m, n, attn_type_, s);
      CAPSCALE_CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, k, m, n, &one, v, t, k, int64_t(n) * k, sc, t, n,
                                                       int64_t(m) * n, &zero, o, t, k, int64_t(m) * k, nb, CUBLAS_COMPUTE_32F,
                                                       CUBLAS_GEMM_DEFAULT));
    }
  }
  return true;
}

// y = ½x + ½y over bytes/6 bf16 elements moves the op's bytes (read x and y, write y); the ½s
// keep the values bounded however many steps run. Ops larger than the bounded buffers (the
// optimizer step) run as consecutive passes over them.
bool Ops::elementwise(const plan::Op& op, cudaStream_t s, const std::string& what) {
  const int64_t count = op.bytes / 6;
  if (count < 1) return false;
  const int64_t chunk = std::min(count, elementwise_chunk_elems());
  void* x = dev_.buffer(kEwX, size_t(chunk) * 2, what);
  void* y = dev_.buffer(kEwY, size_t(chunk) * 2, what);
  for (int64_t done = 0; done < count; done += chunk) axpby_bf16(x, y, std::min(chunk, count - done), 0.5f, 0.5f, s);
  return true;
}

// bf16 in place: count = bytes/2 (kNcclCollectives). Sums that overflow to inf after many steps
// change nothing: GPU arithmetic has no slow path for non-finite values, and nothing reads them.
// Collectives larger than the bounded buffer run as consecutive NCCL calls on chunks of it
// (buffer_sizing.hpp; Megatron's DP reduction is bucketed too): the same bytes move.
bool Ops::collective(const plan::Op& op, int si, cudaStream_t s, const std::string& what) {
  Comm* c = comms_.group(op.group);
  if (!c || !c->comm) return false;  // a group of one: nothing to exchange
  collectives::get(op.coll);         // throws for kNone
  const int idx = collectives::index(op.coll);
  const NcclCollective& impl = kNcclCollectives[idx];
  const int64_t total = op.bytes / 2 * 2;
  if (total < 2) return false;
  const int64_t chunk_bytes = std::min(total, comm_chunk_bytes(c->size));
  const size_t halves = op.coll == plan::CollKind::kAllToAll ? 2 : 1;  // all-to-all runs out of place
  char* b = static_cast<char*>(dev_.buffer(kComm0 + si, size_t(chunk_bytes) * halves, what));
  bool any = false;
  for (int64_t done = 0; done < total; done += chunk_bytes) {
    const int64_t count = std::min(chunk_bytes, total - done) / 2;
    const int64_t elems = impl.sharded ? count / c->size : count;
    if (elems < 1) continue;
    nccl_.check(impl.enqueue(b, size_t(elems), *c, s), *c, kNcclCallNames[idx]);
    any = true;
  }
  return any;
}

// Pipeline p2p on the communicator of the message's direction: the sender is its rank 0.
bool Ops::sendrecv(const plan::Op& op, int si, cudaStream_t s, const std::string& what) {
  if (op.bytes < 1) return false;
  const int64_t me = comms_.my_pp();
  const int64_t from = op.is_send ? me : op.peer, to = op.is_send ? op.peer : me;
  Comm* c = comms_.edge(from, to);
  if (!c || !c->comm) {
    throw RuntimeError(what + " " + (op.is_send ? "sends" : "receives") + " between pipeline stages " + std::to_string(from) + " and " +
                       std::to_string(to) + ", which are not neighbours; the CUDA executor connects only stages s and s±1 (mod pp)");
  }
  // Chunked like collectives; both sides cut the message the same way, so the calls match.
  const int64_t chunk = std::min<int64_t>(op.bytes, int64_t(kCommBufferBytes));
  void* b = dev_.buffer(kComm0 + si, size_t(chunk), what);
  for (int64_t done = 0; done < op.bytes; done += chunk) {
    const size_t n = size_t(std::min(chunk, op.bytes - done));
    if (op.is_send) nccl_.check(ncclSend(b, n, ncclUint8, 1, c->comm, s), *c, "ncclSend");
    else nccl_.check(ncclRecv(b, n, ncclUint8, 0, c->comm, s), *c, "ncclRecv");
  }
  return true;
}

}  // namespace capscale::exec::cuda
