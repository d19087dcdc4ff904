// CUDA executor tests (label gpu): a tiny model's stage plan runs with one positive time per op, and
// the fast paths agree with slow host references — cuBLASLt GEMMs exactly (small-integer inputs make
// every product and sum exact in bf16/fp16/fp8), the softmax and a·x + b·y kernels within stated
// tolerances. Every test skips cleanly without a CUDA device. Own main: one MPI session, no mpirun.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "config/parallel_config.hpp"
#include "exec/cuda/cuda_backend.hpp"
#include "exec/cuda/cuda_check.hpp"
#include "exec/cuda/kernels.cuh"
#include "exec/executor.hpp"
#include "mpi/mpi_context.hpp"
#include "plan/plan.hpp"

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
// The small integers -2..2 in each input type (IEEE-style layouts: fp16 1-5-10, e4m3 1-4-3, bias 7).
uint16_t small_int_bits(int v, DType t) {
  static const uint16_t fp16[5] = {0xC000, 0xBC00, 0x0000, 0x3C00, 0x4000};
  static const uint16_t fp8[5] = {0xC0, 0xB8, 0x00, 0x38, 0x40};
  if (t == DType::kFp16) return fp16[v + 2];
  if (t == DType::kFp8E4m3) return fp8[v + 2];
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

// --- cuBLASLt GEMM against a host loop ------------------------------------------------------------

void check_gemm_exact(DType in, int64_t m, int64_t n, int64_t k) {
  cublasLtHandle_t lt = nullptr;
  CAPSCALE_CUBLAS_CHECK(cublasLtCreate(&lt));
  {
    const size_t ws_bytes = size_t(32) << 20;
    exec::cuda::LtGemm g(lt, in, m, n, k, 1, ws_bytes);
    ASSERT_TRUE(g.has_algo());
    // A [m×k] and W [n×k] (row-major) hold integers in -2..2; C = A·Wᵀ then has |C| <= 4k = 128,
    // exactly representable in bf16 and fp16, and fp32 accumulation is exact too.
    std::vector<int> a(m * k), w(n * k);
    for (int64_t i = 0; i < m * k; ++i) a[i] = int((i * 7 + 3) % 5) - 2;
    for (int64_t i = 0; i < n * k; ++i) w[i] = int((i * 11 + 1) % 5) - 2;
    const size_t es = exec::cuda::dtype_bytes(in);
    std::vector<uint8_t> ha(m * k * es), hw(n * k * es);
    auto put = [&](std::vector<uint8_t>& dst, int64_t i, int v) {
      const uint16_t bits = small_int_bits(v, in);
      if (es == 1) dst[i] = uint8_t(bits);
      else std::memcpy(&dst[2 * i], &bits, 2);
    };
    for (int64_t i = 0; i < m * k; ++i) put(ha, i, a[i]);
    for (int64_t i = 0; i < n * k; ++i) put(hw, i, w[i]);
    DevMem da(ha.size()), dw(hw.size()), dc(g.c_bytes()), ws(ws_bytes);
    CAPSCALE_CUDA_CHECK(cudaMemcpy(da.p, ha.data(), ha.size(), cudaMemcpyHostToDevice));
    CAPSCALE_CUDA_CHECK(cudaMemcpy(dw.p, hw.data(), hw.size(), cudaMemcpyHostToDevice));
    g.run(da.p, dw.p, dc.p, ws.p, nullptr);
    CAPSCALE_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<uint16_t> hc(m * n);
    CAPSCALE_CUDA_CHECK(cudaMemcpy(hc.data(), dc.p, hc.size() * 2, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int64_t i = 0; i < m && bad < 5; ++i) {
      for (int64_t j = 0; j < n && bad < 5; ++j) {
        int ref = 0;
        for (int64_t p = 0; p < k; ++p) ref += a[i * k + p] * w[j * k + p];
        const float got = g.out_type() == DType::kFp16 ? fp16_to_float(hc[i * n + j]) : bf16_to_float(hc[i * n + j]);
        if (got != float(ref)) {
          ++bad;
          ADD_FAILURE() << exec::cuda::to_string(in) << " C[" << i << "][" << j << "] = " << got << ", host " << ref;
        }
      }
    }
  }
  cublasLtDestroy(lt);
}

TEST(CudaGemm, Bf16MatchesHostExactly) {
  SKIP_WITHOUT_GPU();
  check_gemm_exact(DType::kBf16, 64, 48, 32);
  check_gemm_exact(DType::kBf16, 37, 19, 24);  // odd sizes: unaligned leading dimensions
}

TEST(CudaGemm, Fp16MatchesHostExactly) {
  SKIP_WITHOUT_GPU();
  check_gemm_exact(DType::kFp16, 64, 48, 32);
}

TEST(CudaGemm, Fp8MatchesHostExactlyOnSm89Plus) {
  SKIP_WITHOUT_GPU();
  int dev = 0;
  cudaDeviceProp prop{};
  CAPSCALE_CUDA_CHECK(cudaGetDevice(&dev));
  CAPSCALE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  if (prop.major * 10 + prop.minor < 89) GTEST_SKIP() << "FP8 GEMMs need sm_89+";
  check_gemm_exact(DType::kFp8E4m3, 64, 48, 32);
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
