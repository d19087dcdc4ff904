// CUDA executor tests (label gpu): a tiny model's stage plan runs with one positive time per op, and
// the fast paths agree with slow host references — cuBLASLt GEMMs exactly (small-integer inputs make
// every product and sum exact in bf16/fp16/fp8), the softmax and a·x + b·y kernels within stated
// tolerances. Every test skips cleanly without a CUDA device. Own main: one MPI session, no mpirun.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.hpp"
#include "config/parallel_config.hpp"
#include "exec/cuda/cuda_backend.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/device.hpp"
#include "exec/cuda/kernels.cuh"
#include "exec/cuda/nccl_comms.hpp"
#include "exec/executor.hpp"
#include "mpi/mpi_context.hpp"
#include "plan/plan.hpp"
#include "sim/attention_reference.hpp"

namespace capscale {
namespace {

const mpi::Session* g_session = nullptr;  // set by main; tests only read it

#define SKIP_WITHOUT_GPU() \
  if (!(exec::cuda::device_count(nullptr) > 0)) GTEST_SKIP() << "no CUDA device visible"

using exec::cuda::DType;

// --- host encodings (exact for the values used here) ---------------------------------------------

uint16_t bf16_from_float(float f) {  // round to nearest even
  uint32_t b;
  std::memcpy(&b, &f, 4);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}
float bf16_to_float(uint16_t h) {
  const uint32_t b = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
float fp16_to_float(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(m / 1024.0, -14) : std::ldexp(1.0 + m / 1024.0, e - 15);
  return float(s ? -v : v);
}
// The small integers -2..2 in each input type (IEEE-style layouts: fp16 1-5-10, e4m3 1-4-3 bias 7, e5m2).
uint16_t small_int_bits(int v, DType t) {
  static const uint16_t fp16[5] = {0xC000, 0xBC00, 0x0000, 0x3C00, 0x4000};
  static const uint16_t fp8[5] = {0xC0, 0xB8, 0x00, 0x38, 0x40};
  static const uint16_t e5m2[5] = {0xC0, 0xBC, 0x00, 0x3C, 0x40};  // 1-5-2, bias 15
  if (t == DType::kFp16) return fp16[v + 2];
  if (t == DType::kFp8E4m3) return fp8[v + 2];
  if (t == DType::kFp8E5m2) return e5m2[v + 2];
  return bf16_from_float(float(v));
}

// --- small RAII helpers ---------------------------------------------------------------------------

struct DevMem {
  void* p = nullptr;
  explicit DevMem(size_t bytes) { CAPSCALE_CUDA_CHECK(cudaMalloc(&p, bytes)); }
  ~DevMem() { cudaFree(p); }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
};

config::ModelConfig tiny_model() {
  // tiny-demo's layout, smaller: 2 layers, h 256, ffn 512, 4 heads in 2 query groups.
  config::ModelConfig m;
  m.name = "tiny-gpu-test";
  m.num_layers = 2;
  m.hidden_size = 256;
  m.ffn_hidden_size = 512;
  m.num_attention_heads = 4;
  m.num_query_groups = 2;
  m.kv_channels = 64;
  m.vocab_size = 1024;
  m.seq_length = 128;
  m.activation = config::Activation::kSwiglu;
  m.normalization = config::Normalization::kRmsNorm;
  m.position_embedding = config::PositionEmbedding::kRope;
  return m;
}

// --- executor -------------------------------------------------------------------------------------

struct OneRank {
  parallel::Layout layout{1, 1, 1, 1};
  mpi::Communicators comms{layout, 0};
  exec::ExecContext ctx{g_session, &layout, &comms, 0};
};

TEST(CudaExecutor, DescribesItself) {
  SKIP_WITHOUT_GPU();
  OneRank r;
  auto ex = exec::cuda::make_executor(r.ctx);
  EXPECT_EQ(ex->backend(), "cuda");
  EXPECT_NE(ex->device().find("sm_"), std::string::npos) << ex->device();
  EXPECT_NE(ex->device().find("pci "), std::string::npos) << ex->device();
  EXPECT_EQ(ex->gemm_dtype().rfind("bf16", 0), 0u) << ex->gemm_dtype();
  EXPECT_LE(ex->gemm_dtype().size(), 31u) << "the /ranks table's gemm_dtype column holds 31 characters";
}

TEST(CudaExecutor, RunsTinyPlanWithOnePositiveTimePerOp) {
  SKIP_WITHOUT_GPU();
  const config::ModelConfig model = tiny_model();
  config::ParallelConfig p;
  p.tp = 1, p.pp = 1;
  p = config::resolve(p, model, 1, "test");
  const plan::Plan plan = plan::build_plan(model, p);
  ASSERT_EQ(plan.stages.size(), 1u);
  const plan::StagePlan& stage = plan.stages[0];
  ASSERT_FALSE(stage.ops.empty());

  OneRank r;
  auto ex = exec::cuda::make_executor(r.ctx);
  ex->prepare(stage);
  ex->run_step(stage, 0);  // warm-up: first-use costs of cuBLAS(Lt) and module loading
  const exec::StepTimes t = ex->run_step(stage, 1);
  ASSERT_EQ(t.op_s.size(), stage.ops.size());
  double longest = 0;
  for (size_t i = 0; i < t.op_s.size(); ++i) {
    EXPECT_GT(t.op_s[i], 0.0) << "op " << i << " " << stage.ops[i].label();
    EXPECT_LT(t.op_s[i], 10.0) << "op " << i << " " << stage.ops[i].label();
    longest = std::max(longest, t.op_s[i]);
  }
  // Every op runs inside the step, so the step lasts at least as long as its longest op.
  EXPECT_GE(t.wall_s, longest);
  // Without per-op timing (bench clock's baseline) the step still runs and is timed; ops are not.
  ex->set_op_timing(false);
  const exec::StepTimes u = ex->run_step(stage, 2);
  EXPECT_GT(u.wall_s, 0.0);
  for (double s : u.op_s) EXPECT_EQ(s, 0.0);
}

// The tiny plan under each precision and attention form the executor runs: every op timed.
void run_tiny_plan(config::Precision precision, bool flash) {
  const config::ModelConfig model = tiny_model();
  config::ParallelConfig p;
  p.precision = precision;
  p.flash_attention = flash;
  p = config::resolve(p, model, 1, "test");
  const plan::Plan plan = plan::build_plan(model, p);
  const plan::StagePlan& stage = plan.stages[0];
  OneRank r;
  r.ctx.precision = precision;
  auto ex = exec::cuda::make_executor(r.ctx);
  ex->prepare(stage);
  ex->run_step(stage, 0);
  const exec::StepTimes t = ex->run_step(stage, 1);
  ASSERT_EQ(t.op_s.size(), stage.ops.size());
  for (size_t i = 0; i < t.op_s.size(); ++i) EXPECT_GT(t.op_s[i], 0.0) << "op " << i << " " << stage.ops[i].label();
  if (precision == config::Precision::kFp8) {
    EXPECT_EQ(ex->gemm_dtype().rfind("fp8", 0), 0u) << ex->gemm_dtype();
    EXPECT_LE(ex->gemm_dtype().size(), 31u) << ex->gemm_dtype();
  }
}

TEST(CudaExecutor, RunsTinyPlanUnfusedAttention) {
  SKIP_WITHOUT_GPU();
  run_tiny_plan(config::Precision::kBf16, false);
}

TEST(CudaExecutor, RunsTinyPlanFp16) {
  SKIP_WITHOUT_GPU();
  run_tiny_plan(config::Precision::kFp16, true);
}

TEST(CudaExecutor, RunsTinyPlanFp8OnSm89PlusAndRefusesItBelow) {
  SKIP_WITHOUT_GPU();
  int dev = 0;
  cudaDeviceProp prop{};
  CAPSCALE_CUDA_CHECK(cudaGetDevice(&dev));
  CAPSCALE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  if (prop.major * 10 + prop.minor >= 89) {
    run_tiny_plan(config::Precision::kFp8, true);
  } else {
    OneRank r;
    r.ctx.precision = config::Precision::kFp8;
    EXPECT_THROW(exec::cuda::make_executor(r.ctx), InputError);
  }
}

TEST(CudaExecutor, CollectiveOverGroupOfOneTakesNoTime) {
  SKIP_WITHOUT_GPU();
  plan::StagePlan st;
  plan::Op g;
  g.kind = plan::OpKind::kGemm;
  g.m = 256, g.n = 256, g.k = 256;
  st.ops.push_back(g);
  plan::Op c;
  c.kind = plan::OpKind::kCollective;
  c.coll = plan::CollKind::kAllReduce;
  c.group = parallel::Group::kTp;
  c.stream = plan::Stream::kTp;
  c.bytes = 1 << 20;
  c.add_dep(0, st.ops);
  st.ops.push_back(c);
  OneRank r;
  auto ex = exec::cuda::make_executor(r.ctx);
  ex->prepare(st);
  const exec::StepTimes t = ex->run_step(st, 0);
  ASSERT_EQ(t.op_s.size(), 2u);
  EXPECT_GT(t.op_s[0], 0.0);
  EXPECT_EQ(t.op_s[1], 0.0);
}

// --- a producer -> collective dependency, as the executor writes it --------------------------------

// The executor's cross-stream rule on its own Device: the producer (a long a·x + b·y chain on the
// compute stream, the lowest priority) records its end event, the communication stream (highest
// priority) waits on it and runs an NCCL all-reduce of the produced buffer (a one-rank
// communicator: a copy, so the result is known). Without the wait the all-reduce would read the
// buffer before the chain finished; with it, it reads exactly the chain's result.
TEST(CudaDependency, CollectiveReadsWhatItsProducerWrote) {
  SKIP_WITHOUT_GPU();
  OneRank r;
  exec::cuda::Device dev(r.ctx);
  exec::cuda::NcclComms nccl(60.0, nullptr);
  ncclUniqueId id{};
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  exec::cuda::Comm& comm = nccl.create(id, 1, 0, "dependency test");
  dev.ensure_events(1);
  const int64_t n = int64_t(64) << 20;  // 64 Mi bf16: each pass ~0.1 ms, the chain a few ms
  DevMem x(size_t(n) * 2), y(size_t(n) * 2), out(size_t(n) * 2);
  std::vector<uint16_t> ones(size_t(n), bf16_from_float(1.0f)), zeros(size_t(n), 0);
  CAPSCALE_CUDA_CHECK(cudaMemcpy(x.p, ones.data(), size_t(n) * 2, cudaMemcpyHostToDevice));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(y.p, zeros.data(), size_t(n) * 2, cudaMemcpyHostToDevice));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(out.p, zeros.data(), size_t(n) * 2, cudaMemcpyHostToDevice));
  cudaStream_t compute = dev.stream(plan::Stream::kCompute), tp = dev.stream(plan::Stream::kTp);
  // y ← 1/64·1 + y, 40 times: y = k/64 after pass k (exact in bf16), 40/64 = 0.625 at the end only.
  for (int i = 0; i < 40; ++i) exec::cuda::axpby_bf16(x.p, y.p, n, 1.0f / 64, 1.0f, compute);
  CAPSCALE_CUDA_CHECK(cudaEventRecord(dev.end_event(0), compute));
  CAPSCALE_CUDA_CHECK(cudaStreamWaitEvent(tp, dev.end_event(0), 0));
  nccl.check(ncclAllReduce(y.p, out.p, size_t(n), ncclBfloat16, ncclSum, comm.comm, tp), comm, "ncclAllReduce");
  nccl.wait_stream(tp, "the dependent all-reduce");
  CAPSCALE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> h(static_cast<size_t>(n));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(h.data(), out.p, size_t(n) * 2, cudaMemcpyDeviceToHost));
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += bf16_to_float(h[size_t(i)]) != 0.625f;
  EXPECT_EQ(wrong, 0) << "elements the all-reduce read before the producer finished";
}

// --- cuBLASLt GEMMs against host loops, each layout and precision ----------------------------------

float fp32_of(const std::vector<uint8_t>& c, int64_t i, DType t) {
  uint16_t h;
  if (t == DType::kFp32) {
    float f;
    std::memcpy(&f, &c[4 * i], 4);
    return f;
  }
  std::memcpy(&h, &c[2 * i], 2);
  return t == DType::kFp16 ? fp16_to_float(h) : bf16_to_float(h);
}

struct DevScale {
  DevMem mem{sizeof(float)};
  DevScale() {
    const float one = 1.0f;
    CAPSCALE_CUDA_CHECK(cudaMemcpy(mem.p, &one, sizeof one, cudaMemcpyHostToDevice));
  }
};

// Runs `spec` (after tuning it) on small integers and compares with the layout's meaning
// (kernels.cuh, GemmLayout), exactly: every product and partial sum is an integer below 2^11.
// The A slot holds [m×k] values, the W slot [n×k], both as flat arrays a[i] and w[i]; wgrad starts
// from C0 = 0.5·(index mod 7) in fp32 and must add to it (β = 1).
void check_gemm_exact(const exec::cuda::GemmSpec& spec) {
  SCOPED_TRACE(spec.describe());
  const int64_t m = spec.m, n = spec.n, k = spec.k;
  cublasLtHandle_t lt = nullptr;
  CAPSCALE_CUBLAS_CHECK(cublasLtCreate(&lt));
  {
    const size_t ws_bytes = size_t(32) << 20;
    DevScale one;
    exec::cuda::LtGemm g(lt, spec, ws_bytes, static_cast<const float*>(one.mem.p));
    ASSERT_TRUE(g.has_algo());
    std::vector<int> a(m * k), w(n * k);
    for (int64_t i = 0; i < m * k; ++i) a[i] = int((i * 7 + 3) % 5) - 2;
    for (int64_t i = 0; i < n * k; ++i) w[i] = int((i * 11 + 1) % 5) - 2;
    auto encode = [](const std::vector<int>& v, DType t) {
      std::vector<uint8_t> out(v.size() * exec::cuda::dtype_bytes(t));
      for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t bits = small_int_bits(v[i], t);
        if (exec::cuda::dtype_bytes(t) == 1) out[i] = uint8_t(bits);
        else std::memcpy(&out[2 * i], &bits, 2);
      }
      return out;
    };
    const std::vector<uint8_t> ha = encode(a, spec.a), hw = encode(w, spec.w);
    std::vector<uint8_t> hc(g.c_bytes(), 0);
    if (spec.accumulate)
      for (int64_t i = 0; i < m * n; ++i) {
        const float c0 = 0.5f * float(i % 7);
        std::memcpy(&hc[4 * i], &c0, 4);
      }
    DevMem da(ha.size()), dw(hw.size()), dc(g.c_bytes()), ws(ws_bytes);
    CAPSCALE_CUDA_CHECK(cudaMemcpy(da.p, ha.data(), ha.size(), cudaMemcpyHostToDevice));
    CAPSCALE_CUDA_CHECK(cudaMemcpy(dw.p, hw.data(), hw.size(), cudaMemcpyHostToDevice));
    // Tuning runs the GEMM many times (and accumulates when β = 1): reset C after it.
    g.tune(da.p, dw.p, dc.p, ws.p, nullptr, 2);
    EXPECT_GE(g.chosen(), 0);
    EXPECT_LT(g.chosen(), g.candidates());
    CAPSCALE_CUDA_CHECK(cudaMemcpy(dc.p, hc.data(), hc.size(), cudaMemcpyHostToDevice));
    g.run(da.p, dw.p, dc.p, ws.p, nullptr);
    CAPSCALE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<uint8_t> out(g.c_bytes());
    CAPSCALE_CUDA_CHECK(cudaMemcpy(out.data(), dc.p, out.size(), cudaMemcpyDeviceToHost));
    using exec::cuda::GemmLayout;
    int bad = 0;
    for (int64_t i = 0; i < m && bad < 5; ++i) {
      for (int64_t j = 0; j < n && bad < 5; ++j) {
        double ref = 0;
        int64_t at = i * n + j;  // row-major [m×n]
        if (spec.tn) {
          for (int64_t p = 0; p < k; ++p) ref += a[i * k + p] * w[j * k + p];  // A·Wᵀ
        } else if (spec.layout == GemmLayout::kDgradNN) {
          for (int64_t p = 0; p < k; ++p) ref += a[i * k + p] * w[p * n + j];  // dY [m×k] · W [k×n]
        } else {
          // main_grad [n×m] (row-major [out×in]) += dYᵀ·X: X [k×m], dY [k×n]
          for (int64_t p = 0; p < k; ++p) ref += a[p * m + i] * w[p * n + j];
          at = j * m + i;
        }
        if (spec.accumulate) ref += 0.5 * double(at % 7);
        const float got = fp32_of(out, at, spec.out);
        if (got != float(ref)) {
          ++bad;
          ADD_FAILURE() << "C[" << i << "][" << j << "] = " << got << ", host " << ref;
        }
      }
    }
  }
  cublasLtDestroy(lt);
}

int device_sm() {
  int dev = 0;
  cudaDeviceProp prop{};
  CAPSCALE_CUDA_CHECK(cudaGetDevice(&dev));
  CAPSCALE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return prop.major * 10 + prop.minor;
}

using exec::cuda::GemmLayout;
using exec::cuda::GemmSpec;
constexpr GemmLayout kLayouts[] = {GemmLayout::kForwardTN, GemmLayout::kDgradNN, GemmLayout::kWgradNT};

TEST(CudaGemm, Bf16EveryLayoutMatchesHostExactly) {
  SKIP_WITHOUT_GPU();
  for (GemmLayout l : kLayouts) {
    check_gemm_exact(GemmSpec::megatron(l, DType::kBf16, 64, 48, 32, 1));
    check_gemm_exact(GemmSpec::megatron(l, DType::kBf16, 40, 24, 24, 1));  // leading dims not multiples of 16
  }
}

TEST(CudaGemm, Fp16EveryLayoutMatchesHostExactly) {
  SKIP_WITHOUT_GPU();
  for (GemmLayout l : kLayouts) check_gemm_exact(GemmSpec::megatron(l, DType::kFp16, 64, 48, 32, 1));
}

TEST(CudaGemm, Fp8EveryLayoutMatchesHostExactlyOnSm89Plus) {
  SKIP_WITHOUT_GPU();
  if (device_sm() < 89) GTEST_SKIP() << "FP8 GEMMs need sm_89+";
  for (GemmLayout l : kLayouts) {
    const GemmSpec s = GemmSpec::megatron(l, DType::kFp8E4m3, 64, 48, 32, 1);
    EXPECT_TRUE(s.tn);
    EXPECT_EQ(s.fast_accum, l == GemmLayout::kForwardTN);
    check_gemm_exact(s);
  }
}

// --- fused attention against a host reference -----------------------------------------------------

std::vector<uint16_t> random_bf16(size_t n, uint32_t seed, float amp) {
  std::vector<uint16_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& e : v) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    e = bf16_from_float(amp * (float(x >> 40) / float(1 << 24) * 2.0f - 1.0f));
  }
  return v;
}

struct AttnCase {
  int64_t batch, m, n, d;
  bool causal;
};

// The fused kernels on the device against the host reference (sim/attention_reference.hpp).
void check_flash(const AttnCase& c) {
  SCOPED_TRACE("batch " + std::to_string(c.batch) + " m " + std::to_string(c.m) + " n " + std::to_string(c.n) + " d " +
               std::to_string(c.d) + (c.causal ? " causal" : ""));
  const int64_t b = c.batch, m = c.m, n = c.n, d = c.d;
  const auto q = random_bf16(b * m * d, 1, 1.0f), k = random_bf16(b * n * d, 2, 1.0f), v = random_bf16(b * n * d, 3, 1.0f),
             dout = random_bf16(b * m * d, 4, 1.0f);
  DevMem dq_(q.size() * 2), dk_(k.size() * 2), dv_(v.size() * 2), do_(q.size() * 2), o_(q.size() * 2), lse_(b * m * 4), delta_(b * m * 4),
      acc_(b * m * d * 4), gq_(q.size() * 2), gk_(k.size() * 2), gv_(v.size() * 2);
  CAPSCALE_CUDA_CHECK(cudaMemcpy(dq_.p, q.data(), q.size() * 2, cudaMemcpyHostToDevice));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(dk_.p, k.data(), k.size() * 2, cudaMemcpyHostToDevice));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(dv_.p, v.data(), v.size() * 2, cudaMemcpyHostToDevice));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(do_.p, dout.data(), dout.size() * 2, cudaMemcpyHostToDevice));
  exec::cuda::FlashArgs a;
  a.t = DType::kBf16;
  a.batch = b, a.m = m, a.n = n, a.d = d, a.causal = c.causal;
  a.scale = 1.0f / std::sqrt(float(d));
  a.q = dq_.p, a.k = dk_.p, a.v = dv_.p, a.o = o_.p, a.lse = static_cast<float*>(lse_.p);
  a.dout = do_.p, a.delta = static_cast<float*>(delta_.p), a.dq_acc = static_cast<float*>(acc_.p);
  a.dq = gq_.p, a.dk = gk_.p, a.dv = gv_.p;
  exec::cuda::flash_forward(a, nullptr);
  exec::cuda::flash_backward(a, nullptr);
  CAPSCALE_CUDA_CHECK(cudaDeviceSynchronize());
  auto fetch = [](const DevMem& dm, size_t count) {
    std::vector<uint16_t> h(count);
    CAPSCALE_CUDA_CHECK(cudaMemcpy(h.data(), dm.p, count * 2, cudaMemcpyDeviceToHost));
    return h;
  };
  const auto o = fetch(o_, q.size()), gq = fetch(gq_, q.size()), gk = fetch(gk_, k.size()), gv = fetch(gv_, v.size());
  auto f = [](const std::vector<uint16_t>& x, int64_t i) { return double(bf16_to_float(x[i])); };
  capscale_test::expect_attention_close(capscale_test::attention_errors(b, m, n, d, c.causal, f, q, k, v, dout, o, gq, gk, gv));
}

TEST(CudaAttention, FusedMatchesHostReference) {
  SKIP_WITHOUT_GPU();
  for (const AttnCase& c : {AttnCase{2, 100, 100, 64, true}, AttnCase{2, 100, 100, 64, false}, AttnCase{1, 130, 130, 128, true},
                            AttnCase{1, 64, 192, 128, true},  // a CP rank's queries: the diagonal stretched over the keys
                            AttnCase{2, 70, 70, 96, true},    // padded head dim
                            AttnCase{1, 200, 70, 64, true},   // a sliding window of 70 keys
                            AttnCase{1, 80, 80, 32, false}}) {
    check_flash(c);
  }
}

// Throughput of the fused kernels at Llama 3.1 8B's attention shape (one micro-batch, 32 heads,
// s 8192, d 128, causal), for gpu_check.sh's summary: FLOPs as FlashAttention counts them, causal
// halved (forward 4·s²·d·heads / 2, backward 2.5× forward). Informational: no budget here.
TEST(CudaAttention, ThroughputLlama8bShape) {
  SKIP_WITHOUT_GPU();
  const int64_t b = 32, s = 8192, d = 128;
  const size_t elems = size_t(b * s * d);
  DevMem q(elems * 2), k(elems * 2), v(elems * 2), o(elems * 2), dout(elems * 2), lse(b * s * 4), delta(b * s * 4), acc(elems * 4),
      gq(elems * 2), gk(elems * 2), gv(elems * 2);
  for (void* p : {q.p, k.p, v.p, dout.p}) exec::cuda::fill_random(p, int64_t(elems), DType::kBf16, 7, nullptr);
  exec::cuda::FlashArgs a;
  a.batch = b, a.m = s, a.n = s, a.d = d, a.causal = true, a.scale = 1.0f / std::sqrt(float(d));
  a.q = q.p, a.k = k.p, a.v = v.p, a.o = o.p, a.lse = static_cast<float*>(lse.p);
  a.dout = dout.p, a.delta = static_cast<float*>(delta.p), a.dq_acc = static_cast<float*>(acc.p), a.dq = gq.p, a.dk = gk.p, a.dv = gv.p;
  cudaEvent_t e[3];
  for (auto& x : e) CAPSCALE_CUDA_CHECK(cudaEventCreate(&x));
  exec::cuda::flash_forward(a, nullptr);
  exec::cuda::flash_backward(a, nullptr);  // warm-up
  const int iters = 5;
  CAPSCALE_CUDA_CHECK(cudaEventRecord(e[0], nullptr));
  for (int i = 0; i < iters; ++i) exec::cuda::flash_forward(a, nullptr);
  CAPSCALE_CUDA_CHECK(cudaEventRecord(e[1], nullptr));
  for (int i = 0; i < iters; ++i) exec::cuda::flash_backward(a, nullptr);
  CAPSCALE_CUDA_CHECK(cudaEventRecord(e[2], nullptr));
  CAPSCALE_CUDA_CHECK(cudaEventSynchronize(e[2]));
  float fwd_ms = 0, bwd_ms = 0;
  CAPSCALE_CUDA_CHECK(cudaEventElapsedTime(&fwd_ms, e[0], e[1]));
  CAPSCALE_CUDA_CHECK(cudaEventElapsedTime(&bwd_ms, e[1], e[2]));
  for (auto& x : e) cudaEventDestroy(x);
  const double fwd_flops = 4.0 * double(s) * double(s) * double(d) * double(b) / 2;
  const double fwd_tflops = fwd_flops / (fwd_ms / iters * 1e-3) / 1e12, bwd_tflops = 2.5 * fwd_flops / (bwd_ms / iters * 1e-3) / 1e12;
  std::printf("[ attention ] fused causal b*h %lld s %lld d %lld bf16: forward %.3f ms %.1f TFLOP/s, backward %.3f ms %.1f TFLOP/s\n",
              (long long)b, (long long)s, (long long)d, fwd_ms / iters, fwd_tflops, bwd_ms / iters, bwd_tflops);
  RecordProperty("attention_fwd_tflops", std::to_string(fwd_tflops));
  RecordProperty("attention_bwd_tflops", std::to_string(bwd_tflops));
  EXPECT_GT(fwd_tflops, 0.0);
}

// --- kernels against host loops -------------------------------------------------------------------

TEST(CudaKernels, SoftmaxRowsMatchesHost) {
  SKIP_WITHOUT_GPU();
  for (int64_t cols : {7, 300, 1000}) {
    const int64_t rows = 5;
    std::vector<uint16_t> h(rows * cols);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) h[r * cols + j] = bf16_from_float(3.0f * std::sin(0.37f * r + 0.11f * j));
    DevMem d(h.size() * 2);
    CAPSCALE_CUDA_CHECK(cudaMemcpy(d.p, h.data(), h.size() * 2, cudaMemcpyHostToDevice));
    exec::cuda::softmax_rows(d.p, rows, cols, DType::kBf16, nullptr);
    std::vector<uint16_t> out(h.size());
    CAPSCALE_CUDA_CHECK(cudaMemcpy(out.data(), d.p, out.size() * 2, cudaMemcpyDeviceToHost));
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -1e30, sum = 0;
      for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, double(bf16_to_float(h[r * cols + j])));
      for (int64_t j = 0; j < cols; ++j) sum += std::exp(double(bf16_to_float(h[r * cols + j])) - mx);
      for (int64_t j = 0; j < cols; ++j) {
        const double ref = std::exp(double(bf16_to_float(h[r * cols + j])) - mx) / sum;
        // bf16 output: 8 significant bits, so a relative error up to 2^-8 plus __expf's.
        EXPECT_NEAR(bf16_to_float(out[r * cols + j]), ref, 0.006 * ref + 1e-6) << "row " << r << " col " << j << " of " << cols;
      }
    }
  }
}

TEST(CudaKernels, AxpbyMatchesHostExactly) {
  SKIP_WITHOUT_GPU();
  const int64_t n = 1003;  // 125 vectors of 8 and a tail of 3
  std::vector<uint16_t> x(n), y(n);
  // Multiples of 1/4 in [-2, 2]: ½x + ½y is a multiple of 1/8 in [-2, 2], exact in bf16.
  for (int64_t i = 0; i < n; ++i) x[i] = bf16_from_float(0.25f * float(i % 17) - 2.0f), y[i] = bf16_from_float(2.0f - 0.25f * float(i % 13));
  DevMem dx(n * 2), dy(n * 2);
  CAPSCALE_CUDA_CHECK(cudaMemcpy(dx.p, x.data(), n * 2, cudaMemcpyHostToDevice));
  CAPSCALE_CUDA_CHECK(cudaMemcpy(dy.p, y.data(), n * 2, cudaMemcpyHostToDevice));
  exec::cuda::axpby_bf16(dx.p, dy.p, n, 0.5f, 0.5f, nullptr);
  std::vector<uint16_t> out(n);
  CAPSCALE_CUDA_CHECK(cudaMemcpy(out.data(), dy.p, n * 2, cudaMemcpyDeviceToHost));
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(bf16_to_float(out[i]), 0.5f * bf16_to_float(x[i]) + 0.5f * bf16_to_float(y[i])) << "element " << i;
  }
}

}  // namespace
}  // namespace capscale

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  capscale::mpi::Session session(&argc, &argv);
  capscale::g_session = &session;
  return RUN_ALL_TESTS();
}
