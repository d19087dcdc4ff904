// Cost model; see cost_model.hpp.
#include "predict/cost_model.hpp"

#include <algorithm>
#include <cmath>

namespace capscale::predict {

using plan::CollKind;
using plan::OpKind;

CostModel::CostModel(const config::ChipProfile& chip, config::Precision precision, const parallel::Layout& layout,
                     const Calibration* calibration, int64_t main_grad_bytes, CommCtas ctas)
    : chip_(chip),
      peak_flops_(chip.peak_flops(precision)),
      bf16_peak_flops_(chip.supports(config::Precision::kBf16) ? chip.peak_flops(config::Precision::kBf16) : peak_flops_),
      gemm_fraction_(chip.gemm_efficiency(precision)),
      fp8_(precision == config::Precision::kFp8),
      main_grad_bytes_(main_grad_bytes) {
  // Transformer Engine's FP8 recipe (TE docs, "Using FP8 with Transformer Engine"): only the
  // te.Linear / LayerNormLinear / LayerNormMLP GEMMs run in FP8. DotProductAttention stays in bf16
  // unless fp8_dpa is set (the DGXC recipes do not set it), and Megatron-Core's output layer is a
  // plain ColumnParallelLinear in bf16; both run at the bf16 peak with the bf16 fractions.
  if (!fp8_) bf16_peak_flops_ = peak_flops_;
  link_.intra_Bps = chip.nvlink_Bps_per_direction() * chip.efficiency.nvlink;
  link_.intra_alpha_s = chip.nvlink_latency_us * 1e-6;
  link_.inter_Bps = chip.nic_Bps() * chip.efficiency.nic;
  link_.inter_alpha_s = chip.nic_latency_us * 1e-6;
  // NVLink SHARP (ChipProfile::nvls): the switch reduces an in-domain all-reduce (all_reduce.cpp).
  if (chip.nvls && chip.nvlink_domain > 1) link_.nvls_Bps = link_.intra_Bps * chip.efficiency.nvls;
  // A calibration describes one architecture; other chips keep the roofline.
  if (calibration && !calibration->arch.empty() && calibration->arch == chip.arch) {
    calibration_ = calibration;
    // Caps apply to calibrated numbers as apply_caps applies them to a profile: what was measured
    // on the calibrating chip is split into a part that scales with its peak (or link) and a part
    // that does not, and only the first moves to this chip's peak (or link). Same architecture, so
    // the fixed part (prologue/epilogue, latency, protocol) is the same kernel's.
    if (calibration->peak_tflops > 0) cal_peak_ratio_ = peak_flops_ / (calibration->peak_tflops * 1e12);
    if (calibration->nvlink_gbyte_s > 0) {
      const double b_cal = calibration->nvlink_gbyte_s * 1e9 / 2 * chip.efficiency.nvlink;
      cal_link_extra_s_per_byte_ = 1.0 / link_.intra_Bps - 1.0 / b_cal;
    }
  }
  for (auto g : parallel::kAllGroups) {
    const GroupSpan sp = collectives::group_span(layout, g, chip.nvlink_domain);
    spans_[static_cast<int>(g)] = sp;
    LinkParams l = link_;
    // Full mesh (Ascend 910B HCCS; configs/chips/ascend-910b2.yaml): a ring over the L members of a
    // group inside one d-chip domain uses L−1 of each chip's d−1 links, so its bus bandwidth is
    // (L−1)/(d−1) of the full-node figure. Measured: a 2-NPU all_reduce on 910B reaches busbw 18 GB/s,
    // 1/7 of the 8-NPU 126-130 GB/s (github.com/gameofdimension/limulidae).
    if (chip.full_mesh && chip.nvlink_domain > 1 && sp.per_domain > 1 && sp.per_domain < chip.nvlink_domain)
      l.intra_Bps *= double(sp.per_domain - 1) / double(chip.nvlink_domain - 1);
    group_links_[static_cast<int>(g)] = l;
  }
  pp_crosses_domain_ = spans_[static_cast<int>(parallel::Group::kPp)].domains > 1;
  // A communicator limited to k thread blocks runs k channels, each moving at most
  // nccl_channel_gbyte_s of bus bandwidth (which groups: CommCtas::for_group; MLPerf's file also
  // gives tp_exp and tp_dp_cp 1 block, but they carry only small messages). On a chip that does
  // not give the per-channel figure the limits are not applied.
  if (const double channel = chip.nccl_channel_Bps(); channel > 0) {
    for (auto g : parallel::kAllGroups) bus_cap_Bps_[static_cast<int>(g)] = double(ctas.for_group(g)) * channel;
  }
  // A pipeline transfer inside a full-mesh domain is one link's worth of it.
  pp_intra_Bps_ = chip.full_mesh && chip.nvlink_domain > 1 ? link_.intra_Bps / double(chip.nvlink_domain - 1) : link_.intra_Bps;
}

double CostModel::gemm_time(int64_t m, int64_t n, int64_t k, double flops, int64_t batch, double c_bytes) const {
  if (calibration_) {
    // Measured: the nearest calibrated shape's achieved fraction e of the calibrating device's
    // peak P_c, moved to this chip's peak P = r·P_c as apply_caps moves a capped profile's: the
    // measured t = F/P_c + F·(1/e − 1)/P_c keeps its peak-independent part, so here
    // e' = 1 / (1 + r·(1/e − 1)) (an H20, r = 0.15, runs an H100-calibrated 0.78 GEMM at 0.96;
    // an H800, r = 1, keeps it). Then the same whole-step derate as the roofline. The measured time
    // already holds the launch cost, so no overhead is added; the HBM bound stays (a
    // capped-compute chip of the same architecture can turn memory-bound).
    double eff = calibrated_efficiency(m, n, k);
    if (eff > 0) {
      eff = 1.0 / (1.0 + cal_peak_ratio_ * (1.0 / eff - 1.0));
      return std::max(flops / (peak_flops_ * eff * chip_.efficiency.sustained),
                      gemm_bytes(m, n, k, batch, c_bytes) / (chip_.hbm_Bps() * chip_.efficiency.hbm));
    }
  }
  return roofline_gemm_time(m, n, k, flops, batch, c_bytes);
}

double CostModel::calibrated_efficiency(int64_t m, int64_t n, int64_t k) const {
  return gemm_efficiency_.get({m, n, k}, [&] { return calibration_->gemm_efficiency(m, n, k); });
}

double CostModel::calibrated_busbw(CollKind kind, int64_t bytes, int64_t ranks) const {
  return busbw_.get({kind, bytes, ranks}, [&] { return calibration_->busbw(kind, bytes, ranks); });
}

double CostModel::roofline_gemm_time(int64_t m, int64_t n, int64_t k, double flops, int64_t batch, double c_bytes) const {
  return roofline_gemm_time(m, n, k, flops, peak_flops_, gemm_fraction_, batch, c_bytes);
}

double CostModel::roofline_gemm_time(int64_t m, int64_t n, int64_t k, double flops, double peak, double efficiency,
                                     int64_t batch, double c_bytes) const {
  // Roofline with the chip's achieved GEMM fraction, derated for thin dimensions: a dimension x
  // fills x/(x+64) of the tensor-core tiles on average (partial tiles and waves; the 64 is half a
  // typical 128-wide cuBLAS tile), so 8192-wide GEMMs run at ~99 % of the large-GEMM rate and
  // 128-wide ones at ~2/3.
  auto fill = [](int64_t x) { return double(x) / (double(x) + 64.0); };
  // A grouped GEMM (batch > 1, one per local expert) is one kernel moving every group's operands.
  const double eff = efficiency * chip_.efficiency.sustained * fill(m) * fill(n) * fill(k);
  return std::max(flops / (peak * eff), gemm_bytes(m, n, k, batch, c_bytes) / (chip_.hbm_Bps() * chip_.efficiency.hbm)) +
         kKernelOverheadS;
}

// HBM traffic: bf16 A and B read once, C written once in bf16 (c_bytes 2) or, for a weight gradient,
// its fp32 main_grad read and written (c_bytes 8; gemm_time). A wgrad whose reduction runs over few
// tokens (an expert's share under MoE) is then memory-bound: 2k FLOP per 8 bytes, under an H200's
// ~200 FLOP/B ridge for k < ~800 (the executor's expert wgrads on an H200 ran 2.6x the
// compute-bound model's time; docs/bundle.md).
double CostModel::gemm_bytes(int64_t m, int64_t n, int64_t k, int64_t batch, double c_bytes) {
  return double(batch) * (2.0 * (double(m) * k + double(k) * n) + c_bytes * double(m) * n);
}

double CostModel::attention_time(const plan::Op& op) const {
  if (!op.fused) {
    // Unfused attention (Megatron before flash attention): QKᵀ and PV as batched GEMMs over the
    // whole score matrix (masked, not skipped), and the scores go through HBM in 2-byte passes.
    // Forward, 6.5: QKᵀ writes S; the fused scale-mask-softmax reads S and writes P; dropout reads
    // P, writes P_d and a 1-byte mask; PV reads P_d. Backward, 9.5: dP_d = dO·Vᵀ writes, dV reads
    // P_d; dropout's backward reads dP_d and the mask and writes dP; the fused softmax backward
    // reads P and dP and writes dS; dQ and dK each read dS. Four GEMMs backward, two forward.
    // Without dropout its passes go (2.5 each way): 4 forward, 7 backward.
    const double scores = double(op.batch) * double(op.m) * double(op.n);
    const bool backward = op.phase == plan::Phase::kBackward;
    // One batched kernel per GEMM: the per-matrix time times the batch, one launch. Always the
    // roofline: calibrations measure the linear layers' GEMMs, not attention's batched ones.
    const double one = roofline_gemm_time(op.m, op.n, op.k, 2.0 * double(op.m) * double(op.n) * double(op.k), bf16_peak_flops_,
                                          chip_.efficiency.gemm, 1) - kKernelOverheadS;
    const double gemms = (backward ? 4.0 : 2.0) * (double(op.batch) * one + kKernelOverheadS);
    const double passes = (backward ? 9.5 : 6.5) - (op.dropout ? 0.0 : 2.5);
    return gemms + elementwise_time(static_cast<int64_t>(passes * 2.0 * scores));
  }
  // Flash attention skips the masked half of a causal score matrix, so it executes half the
  // accounted FLOPs; bytes are Q, K, V, O (and their grads) once.
  const double exec_flops = op.causal ? 0.5 * op.flops : op.flops;
  return std::max(exec_flops / (bf16_peak_flops_ * flash_efficiency(op)), double(op.bytes) / (chip_.hbm_Bps() * chip_.efficiency.hbm)) +
         kKernelOverheadS;
}

double CostModel::flash_efficiency(const plan::Op& op) const {
  // The kernel's achieved fraction (FlashAttention-1 for runs before FlashAttention-2), what it
  // keeps with dropout's in-kernel random numbers, and the whole-step derate.
  if (op.fa1 && !chip_.times_flash_attention_v1())
    throw InputError(chip_.origin.empty() ? chip_.name : chip_.origin, "efficiency.attention_fa1",
                     "is not given for this chip, so a FlashAttention-1 run (flash_attention_v1) cannot be timed on it; "
                     "give the kernel's fraction of the 16-bit peak (forward + backward) or leave flash_attention_v1 off");
  const double kernel = op.fa1 ? chip_.efficiency.attention_fa1 : chip_.efficiency.attention;
  return kernel * (op.dropout ? chip_.efficiency.attention_dropout : 1.0) * chip_.efficiency.sustained;
}

double CostModel::elementwise_time(int64_t bytes) const {
  return double(bytes) / (chip_.hbm_Bps() * chip_.efficiency.hbm) + kKernelOverheadS;
}

double CostModel::fp8_cast_time(const plan::Op& op) const {
  // Each FP8 GEMM quantises its activation-side input once: X (m×k) before the forward GEMM and
  // dY (m×k in the dgrad's shape) before the dgrad; the wgrad reuses both transposes. Weights are
  // cast once per step, not per GEMM (cached across micro-batches): the plan charges that pass to
  // the step (plan/builder.cpp, kFp8WeightCastBytes). Delayed scaling's amax is fused into the
  // same kernel.
  if (!fp8_ || op.kind != OpKind::kGemm || op.wgrad || op.name == plan::OpName::kLogits) return 0;
  return elementwise_time(static_cast<int64_t>(kFp8CastBytesPerElement * double(op.batch) * double(op.m) * double(op.k)));
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
    case OpKind::kGemm:
      if (fp8_ && op.name == plan::OpName::kLogits)  // bf16 under FP8 (see the constructor)
        return roofline_gemm_time(op.m, op.n, op.k, op.flops, bf16_peak_flops_, chip_.efficiency.gemm, op.batch, c_bytes(op));
      return gemm_time(op.m, op.n, op.k, op.flops, op.batch, c_bytes(op)) + fp8_cast_time(op);
    case OpKind::kAttention: return attention_time(op);
    case OpKind::kElementwise: return elementwise_time(op.bytes);
    case OpKind::kCollective: {
      const double t = collective_time(op);
      const double cap = bus_cap_Bps_[static_cast<int>(op.group)];
      if (cap <= 0 || span(op.group).size < 2) return t;
      return std::max(t, double(op.bytes) * collectives::bus_factor(op.coll, span(op.group).size) / cap);
    }
    case OpKind::kSendRecv: {
      if (!op.is_send) return 0;  // a receive completes when its matching send does
      double rate = pp_crosses_domain_ ? link_.inter_Bps : pp_intra_Bps_;
      if (const double cap = bus_cap_Bps_[static_cast<int>(parallel::Group::kPp)]; cap > 0) rate = std::min(rate, cap);
      return double(op.bytes) / rate + (pp_crosses_domain_ ? link_.inter_alpha_s : link_.intra_alpha_s);
    }
  }
  return 0;
}

double CostModel::collective_time(const plan::Op& op) const {
  if (calibrated(op)) {
    // nccl-tests: busbw = S/t · factor, so t = S · factor / busbw (measured inside one domain).
    // Measured on the calibrating chip's NVLink B_c; on this chip's (capped) link B the wire time
    // S·factor/B replaces S·factor/B_c and the rest of the measured time stays (as for GEMMs
    // above): an H800 (200 GB/s each way) calibrated on an H100 (450) is slower.
    const GroupSpan& sp = span(op.group);
    const double bus_bytes = double(op.bytes) * collectives::bus_factor(op.coll, sp.size);
    const double measured = bus_bytes / calibrated_busbw(op.coll, op.bytes, sp.size);
    // Never faster than the target's line rate (a calibration on a slower link moved to a faster one).
    return std::max(measured + bus_bytes * cal_link_extra_s_per_byte_, bus_bytes / chip_.nvlink_Bps_per_direction());
  }
  return collectives::time_s(op.coll, op.bytes, span(op.group), link(op.group), {op.route_topk, op.route_node_limit});
}

}  // namespace capscale::predict
