// Emulation of targets from host measurements; see emulate.hpp.
#include "emulate/emulate.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "common/error.hpp"
#include "common/stats.hpp"

namespace capscale::emulate {

using plan::OpKind;

std::vector<std::vector<double>> aggregate(const plan::Plan& plan, const Measurements& m, CollectiveTime collectives) {
  const bool own = collectives == CollectiveTime::kOwn;
  std::vector<std::vector<double>> out(plan.stages.size());
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    const auto& ops = plan.stages[s].ops;
    out[s].assign(ops.size(), 0);
    std::vector<size_t> ranks;
    for (size_t r = 0; r < m.rank_stage.size(); ++r)
      if (m.rank_stage[r] == int64_t(s)) ranks.push_back(r);
    if (ranks.empty()) continue;
    const size_t steps = m.op_s[ranks[0]].size();
    double min_recv = INFINITY;
    for (size_t i = 0; i < ops.size(); ++i) {
      std::vector<double> per_step;
      for (size_t k = 0; k < steps; ++k) {
        double acc = ops[i].kind == OpKind::kCollective && own ? INFINITY : 0;
        for (size_t r : ranks) {
          const double v = m.op_s[r][k][i];
          if (ops[i].kind == OpKind::kCollective && own) acc = std::min(acc, v);
          else acc += v / double(ranks.size());
          if (ops[i].kind == OpKind::kSendRecv && !ops[i].is_send) min_recv = std::min(min_recv, v);
        }
        per_step.push_back(acc);
      }
      out[s][i] = median(per_step);
    }
    for (size_t i = 0; i < ops.size(); ++i)
      if (ops[i].kind == OpKind::kSendRecv && !ops[i].is_send) out[s][i] = std::isfinite(min_recv) ? min_recv : 0;
  }
  return out;
}

std::vector<double> pack_rank(const std::vector<std::vector<double>>& op_s, const std::vector<double>& wall_s) {
  std::vector<double> out;
  for (const auto& step : op_s) out.insert(out.end(), step.begin(), step.end());
  out.insert(out.end(), wall_s.begin(), wall_s.end());
  return out;
}

Measurements unpack_gathered(const plan::Plan& plan, const std::vector<int64_t>& rank_stage, const std::vector<double>& all,
                             const std::vector<int>& offsets, const std::vector<int>& counts, int steps) {
  Measurements m;
  for (size_t r = 0; r < rank_stage.size(); ++r) {
    const int64_t s = rank_stage[r];
    const size_t nops = plan.stages.at(size_t(s)).ops.size();
    const size_t need = size_t(steps) * (nops + 1);
    if (size_t(counts.at(r)) != need || size_t(offsets.at(r)) + need > all.size())
      throw RuntimeError("rank " + std::to_string(r) + " sent " + std::to_string(counts[r]) + " timings, expected " +
                         std::to_string(need) + " (" + std::to_string(steps) + " steps of " + std::to_string(nops) +
                         " ops of stage " + std::to_string(s) + ")");
    const auto first = all.begin() + offsets[r];
    m.rank_stage.push_back(s);
    m.op_s.emplace_back(size_t(steps));
    m.wall_s.emplace_back(size_t(steps));
    for (int k = 0; k < steps; ++k) {
      m.op_s[r][k].assign(first + k * nops, first + (k + 1) * nops);
      m.wall_s[r][k] = first[steps * nops + k];
    }
  }
  return m;
}

double measured_step_s(const Measurements& m) {
  if (m.wall_s.empty()) return 0;
  std::vector<double> slowest(m.wall_s[0].size(), 0);
  for (const auto& rank : m.wall_s)
    for (size_t k = 0; k < rank.size() && k < slowest.size(); ++k) slowest[k] = std::max(slowest[k], rank[k]);
  return median(slowest);
}

double dilate(double host_s, double host_model_s, double target_model_s) {
  if (host_model_s <= 0) return target_model_s;
  if (host_s >= host_model_s) return target_model_s + (host_s - host_model_s);
  return target_model_s * host_s / host_model_s;
}

TargetResult emulate_target(const plan::Plan& plan, const std::vector<std::vector<double>>& host_s,
                            const config::ChipProfile& host, const config::ChipProfile& target,
                            const predict::Calibration* calibration, const std::function<bool(const plan::Op&)>& dilatable) {
  const auto& p = plan.parallel;
  const parallel::Layout layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp);
  // Dilation needs the host's own roofline: a host without peaks for the run's precision (a GPU no
  // profile describes, cli/host_profile.hpp) is never dilated from; every target is then modelled.
  const bool same_arch = host.arch == target.arch && host.supports(p.precision);
  // Dilation keeps the host's own measurements, so a calibration only serves targets of another
  // architecture than the host's (the dilation ratio stays the roofline's).
  const auto ctas = predict::CommCtas::of(p);
  const predict::CostModel target_cost(target, p.precision, layout, same_arch ? nullptr : calibration, p.grad_bytes(), ctas);
  std::unique_ptr<predict::CostModel> host_cost;
  // The host ran the plan's NCCL thread-block limits too (the CUDA executor sets them; the CPU
  // host's profile gives no per-channel rate, so its MPI collectives stay unlimited here).
  if (same_arch)
    host_cost = std::make_unique<predict::CostModel>(host, p.precision, layout, nullptr, p.grad_bytes(), ctas);
  TargetResult r;
  r.durations.resize(plan.stages.size());
  r.sources.resize(plan.stages.size());
  bool all_dilated = true, any_calibrated = false;
  for (size_t s = 0; s < plan.stages.size(); ++s) {
    for (size_t i = 0; i < plan.stages[s].ops.size(); ++i) {
      const auto& op = plan.stages[s].ops[i];
      const double modelled = target_cost.duration(op);
      const bool may_dilate = !dilatable || dilatable(op);
      if (same_arch && may_dilate && i < host_s[s].size() && host_s[s][i] > 0) {
        r.durations[s].push_back(dilate(host_s[s][i], host_cost->duration(op), modelled));
        r.sources[s].push_back("dilated");
      } else {
        r.durations[s].push_back(modelled);
        const bool cal = target_cost.calibrated(op);
        any_calibrated = any_calibrated || cal;
        r.sources[s].push_back(cal ? "calibrated" : "roofline");
        if (!same_arch || may_dilate) all_dilated = false;  // ops the host may not dilate do not count
      }
    }
  }
  const auto tl = predict::simulate_on(plan, r.durations, target);  // as predict times a step
  r.row = predict::identity_row(plan.model, target, p, all_dilated ? "dilated" : any_calibrated ? "calibrated" : "roofline");
  predict::fill_throughput(r.row, plan, target, tl.step_time_s, tl.breakdown);
  return r;
}

}  // namespace capscale::emulate
