// CPU benchmarks: the executor's GEMM and collective paths against direct OpenBLAS / MPI loops on
// the same shapes in the same run (see bench.hpp for the ratio's meaning).
#include <cblas.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.hpp"
#include "common/stats.hpp"
#include "exec/cpu/cpu_access.hpp"
#include "exec/bench.hpp"
#include "mpi/mpi_context.hpp"
#include "collectives/collectives.hpp"

namespace capscale::exec {

plan::Op world_collective_op(plan::CollKind kind, int64_t bytes) {
  plan::Op op;
  op.kind = plan::OpKind::kCollective, op.coll = kind, op.bytes = bytes;
  op.group = parallel::Group::kTp, op.stream = plan::Stream::kTp;
  return op;
}

plan::StagePlan repeated_op_plan(const plan::Op& op, int count) {
  plan::StagePlan st;
  st.ops.assign(count, op);
  return st;
}

namespace {

// Alternates path and direct in rounds so that drift (other load, frequency) hits both alike:
// at least 3 rounds, and as many more (up to 20) as fit in ~2 s, so that short operations get
// enough samples for a stable median. `agree` makes every rank of a collective benchmark take the
// same number of rounds (the slowest rank's estimate).
template <typename PathFn, typename DirectFn, typename AgreeFn>
void interleaved(PathFn path, DirectFn direct, std::vector<double>& p, std::vector<double>& d, AgreeFn agree) {
  const auto t0 = std::chrono::steady_clock::now();
  path(p);
  direct(d);
  const double first = agree(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  const int rounds = static_cast<int>(std::clamp(std::ceil(2.0 / std::max(first, 1e-6)), 3.0, 20.0));
  for (int r = 1; r < rounds; ++r) {
    path(p);
    direct(d);
  }
}

}  // namespace

std::vector<BenchRow> bench_cpu_gemm(Executor& ex, const BenchOptions& o) {
  std::vector<BenchRow> rows;
  for (const auto& s : o.gemm_shapes) {
    const int64_t m = s[0], n = s[1], k = s[2];
    const plan::Op op = plan::gemm_op(m, n, k);
    const plan::StagePlan st = repeated_op_plan(op, o.iters);
    ex.prepare(st);
    std::vector<float> A(m * k, 0.5f), B(k * n, 0.25f), C(m * n, 0.f);
    auto direct_once = [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A.data(), k, B.data(), n, 0.0f, C.data(), n);
    };
    for (int w = 0; w < o.warmup; ++w) direct_once();
    ex.run_step(repeated_op_plan(op, o.warmup), -1);
    std::vector<double> path, direct;
    interleaved([&](std::vector<double>& out) {
      const auto t = ex.run_step(st, -1);
      out.insert(out.end(), t.op_s.begin(), t.op_s.end());
    }, [&](std::vector<double>& out) {
      for (int i = 0; i < o.iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        direct_once();
        out.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    }, path, direct, [](double t) {
      // run_step begins with a world barrier: every rank must take the same number of rounds.
      CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
      return t;
    });
    BenchRow r;
    r.what = "gemm";
    r.shape = std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
    r.dtype = ex.gemm_dtype();
    r.path_s = median(path);
    r.direct_s = median(direct);
    r.path_rate = op.flops / r.path_s / 1e12;
    r.direct_rate = op.flops / r.direct_s / 1e12;
    r.ratio = r.direct_s / r.path_s;
    rows.push_back(r);
  }
  return rows;
}

std::vector<BenchRow> bench_cpu_comm(Executor& ex, const ExecContext& ctx, const BenchOptions& o) {
  std::vector<BenchRow> rows;
  MPI_Comm comm = ctx.comms->get(parallel::Group::kTp);
  int n = 1;
  CAPSCALE_MPI_CHECK(MPI_Comm_size(comm, &n));
  // The all-reduce (dense TP/DP) and the all-to-all (MoE dispatch and combine), each against a
  // direct loop of its MPI call on the same buffer.
  for (const plan::CollKind kind : {plan::CollKind::kAllReduce, plan::CollKind::kAllToAll})
  for (int64_t bytes : o.comm_bytes) {
    const plan::Op op = world_collective_op(kind, bytes);
    const plan::StagePlan st = repeated_op_plan(op, o.iters);
    ex.prepare(st);
    const int count = static_cast<int>(bytes / 4 / n * n);
    // The direct loop reduces the executor's own buffer (the same memory, so the same placement).
    auto* acc = dynamic_cast<cpu::CpuExecutorAccess*>(&ex);
    if (!acc) throw RuntimeError("bench comm: the executor is not the CPU executor");
    std::vector<float>& buf = acc->comm_buffer();
    if (buf.size() < size_t(count)) throw RuntimeError("bench comm: the executor's buffer is smaller than the message");
    auto direct_once = [&] {
      if (kind == plan::CollKind::kAllToAll) {
        CAPSCALE_MPI_CHECK(MPI_Alltoall(MPI_IN_PLACE, count / n, MPI_FLOAT, buf.data(), count / n, MPI_FLOAT, comm));
      } else {
        CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf.data(), count, MPI_FLOAT, MPI_SUM, comm));
      }
    };
    for (int w = 0; w < o.warmup; ++w) direct_once();
    ex.run_step(repeated_op_plan(op, o.warmup), -1);
    std::vector<double> path, direct;
    interleaved([&](std::vector<double>& out) {
      CAPSCALE_MPI_CHECK(MPI_Barrier(comm));
      const auto t = ex.run_step(st, -1);
      out.insert(out.end(), t.op_s.begin(), t.op_s.end());
    }, [&](std::vector<double>& out) {
      CAPSCALE_MPI_CHECK(MPI_Barrier(comm));
      for (int i = 0; i < o.iters; ++i) {
        const double t0 = MPI_Wtime();
        direct_once();
        out.push_back(MPI_Wtime() - t0);
      }
    }, path, direct, [&](double t) {
      CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm));
      return t;
    });
    // The slowest rank's median decides a collective's speed; agree on it across ranks.
    double pm = median(path), dm = median(direct);
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &pm, 1, MPI_DOUBLE, MPI_MAX, comm));
    CAPSCALE_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &dm, 1, MPI_DOUBLE, MPI_MAX, comm));
    BenchRow r;
    r.what = std::string(collectives::get(kind).name);
    r.shape = std::to_string(bytes) + " B";
    r.dtype = "fp32";
    r.path_s = pm;
    r.direct_s = dm;
    // nccl-tests bus bandwidth: S/t × 2(n−1)/n (all-reduce), × (n−1)/n (all-to-all).
    const double f = collectives::bus_factor(kind, n);
    r.path_rate = double(count) * 4 / pm * f / 1e9;
    r.direct_rate = double(count) * 4 / dm * f / 1e9;
    r.ratio = dm / pm;
    rows.push_back(r);
  }
  return rows;
}

}  // namespace capscale::exec
