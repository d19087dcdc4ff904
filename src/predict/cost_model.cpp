// Cost model; see cost_model.hpp.
#include "predict/cost_model.hpp"

#include <algorithm>
#include <cmath>

namespace capscale::predict {

using plan::CollKind;
using plan::OpKind;

CostModel::CostModel(const config::ChipProfile& chip, config::Precision precision, const parallel::Layout& layout,
                     const Calibration* calibration)
    : chip_(chip), peak_flops_(chip.peak_flops(precision)) {
  // A calibration describes one architecture; other chips keep the roofline.
  if (calibration && !calibration->arch.empty() && calibration->arch == chip.arch) calibration_ = calibration;
  link_.intra_Bps = chip.nvlink_Bps_per_direction() * chip.efficiency.nvlink;
  link_.intra_alpha_s = chip.nvlink_latency_us * 1e-6;
  link_.inter_Bps = chip.nic_Bps() * chip.efficiency.nic;
  link_.inter_alpha_s = chip.nic_latency_us * 1e-6;
  for (auto g : parallel::kAllGroups) spans_[static_cast<int>(g)] = collectives::group_span(layout, g, chip.nvlink_domain);
  pp_crosses_domain_ = spans_[static_cast<int>(parallel::Group::kPp)].domains > 1;
}

double CostModel::gemm_time(int64_t m, int64_t n, int64_t k, double flops, int64_t batch) const {
  if (calibration_) {
    // Measured: the nearest calibrated shape's achieved fraction of the calibrating device's peak,
    // applied to this chip's peak (same architecture), with the same whole-step derate as the
    // roofline. The measured time already holds the launch cost, so no overhead is added; the
    // HBM bound stays (a capped-compute chip of the same architecture can turn memory-bound).
    const double eff = calibrated_efficiency(m, n, k);
    if (eff > 0) {
      const double bytes = 2.0 * double(batch) * (double(m) * k + double(k) * n + double(m) * n);
      return std::max(flops / (peak_flops_ * eff * chip_.efficiency.sustained),
                      bytes / (chip_.hbm_Bps() * chip_.efficiency.hbm));
    }
  }
  return roofline_gemm_time(m, n, k, flops, batch);
}

double CostModel::calibrated_efficiency(int64_t m, int64_t n, int64_t k) const {
  return gemm_efficiency_.get({m, n, k}, [&] { return calibration_->gemm_efficiency(m, n, k); });
}

double CostModel::calibrated_busbw(CollKind kind, int64_t bytes, int64_t ranks) const {
  return busbw_.get({kind, bytes, ranks}, [&] { return calibration_->busbw(kind, bytes, ranks); });
}

double CostModel::roofline_gemm_time(int64_t m, int64_t n, int64_t k, double flops, int64_t batch) const {
  // Roofline with the chip's achieved GEMM fraction, derated for thin dimensions: a dimension x
  // fills x/(x+64) of the tensor-core tiles on average (partial tiles and waves; the 64 is half a
  // typical 128-wide cuBLAS tile), so 8192-wide GEMMs run at ~99 % of the large-GEMM rate and
  // 128-wide ones at ~2/3.
  auto fill = [](int64_t x) { return double(x) / (double(x) + 64.0); };
  // A grouped GEMM (batch > 1, one per local expert) is one kernel moving every group's operands.
  const double eff = chip_.efficiency.gemm * chip_.efficiency.sustained * fill(m) * fill(n) * fill(k);
  const double bytes = 2.0 * double(batch) * (double(m) * k + double(k) * n + double(m) * n);
  return std::max(flops / (peak_flops_ * eff), bytes / (chip_.hbm_Bps() * chip_.efficiency.hbm)) + kKernelOverheadS;
}

double CostModel::attention_time(const plan::Op& op) const {
  if (!op.fused) {
    // Unfused attention (Megatron before flash attention): QKᵀ and PV as batched GEMMs over the
    // whole score matrix (masked, not skipped), and the scores go through HBM: QKᵀ writes them,
    // the fused scale-mask-softmax reads and writes them, dropout reads and writes them (plus a
    // 1-byte mask), PV reads them: 6.5 passes of 2 bytes forward, twice that backward.
    const double scores = double(op.batch) * double(op.m) * double(op.n);
    const int rounds = op.phase == plan::Phase::kBackward ? 2 : 1;
    // One batched kernel per GEMM: the per-matrix time times the batch, one launch. Always the
    // roofline: calibrations measure the linear layers' GEMMs, not attention's batched ones.
    const double one = roofline_gemm_time(op.m, op.n, op.k, 2.0 * double(op.m) * double(op.n) * double(op.k)) - kKernelOverheadS;
    const double gemms = 2.0 * (double(op.batch) * one + kKernelOverheadS);
    return rounds * (gemms + elementwise_time(static_cast<int64_t>(6.5 * 2.0 * scores)));
  }
  // Flash attention skips the masked half of a causal score matrix, so it executes half the
  // accounted FLOPs; bytes are Q, K, V, O (and their grads) once.
  const double exec_flops = op.causal ? 0.5 * op.flops : op.flops;
  return std::max(exec_flops / (peak_flops_ * chip_.efficiency.attention * chip_.efficiency.sustained),
                  double(op.bytes) / (chip_.hbm_Bps() * chip_.efficiency.hbm)) + kKernelOverheadS;
}

double CostModel::elementwise_time(int64_t bytes) const {
  return double(bytes) / (chip_.hbm_Bps() * chip_.efficiency.hbm) + kKernelOverheadS;
}

bool CostModel::calibrated(const plan::Op& op) const {
  if (!calibration_) return false;
  if (op.kind == OpKind::kGemm) return calibrated_efficiency(op.m, op.n, op.k) > 0;
  if (op.kind == OpKind::kCollective) {
    const GroupSpan& sp = span(op.group);
    return sp.domains == 1 && sp.size > 1 && op.bytes > 0 && calibrated_busbw(op.coll, op.bytes, sp.size) > 0;
  }
  return false;
}

double CostModel::duration(const plan::Op& op) const {
  switch (op.kind) {
    case OpKind::kGemm: return gemm_time(op.m, op.n, op.k, op.flops, op.batch);
    case OpKind::kAttention: return attention_time(op);
    case OpKind::kElementwise: return elementwise_time(op.bytes);
    case OpKind::kCollective:
      if (calibrated(op)) {
        // nccl-tests: busbw = S/t · factor, so t = S · factor / busbw (measured inside one domain).
        const GroupSpan& sp = span(op.group);
        return double(op.bytes) * collectives::bus_factor(op.coll, sp.size) / calibrated_busbw(op.coll, op.bytes, sp.size);
      }
      return collectives::time_s(op.coll, op.bytes, span(op.group), link_, {op.route_topk, op.route_node_limit});
    case OpKind::kSendRecv:
      if (!op.is_send) return 0;  // a receive completes when its matching send does
      return pp_crosses_domain_ ? double(op.bytes) / link_.inter_Bps + link_.inter_alpha_s
                                : double(op.bytes) / link_.intra_Bps + link_.intra_alpha_s;
  }
  return 0;
}

}  // namespace capscale::predict
