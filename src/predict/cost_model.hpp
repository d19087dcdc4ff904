// Modelled op durations on a target chip: roofline for compute (achieved-fraction efficiencies
// from the chip profile) and α–β costs for collectives (src/collectives: NCCL's ring, NVLink inside
// the domain and NIC across, pipelined, with a tree's log-latency across domains; NVLink SHARP for
// an in-domain all-reduce where the chip has it).
// With a calibration of the chip's architecture (`capscale calibrate`), GEMMs take the measured
// efficiency of the nearest calibrated shape and collectives inside one scale-up domain the
// measured bus bandwidth, both moved to the target's own (or capped) peak and NVLink the way
// apply_caps moves a profile: the time that does not scale with the peak or the link stays fixed.
// FP8 runs as Transformer Engine runs it: GEMMs at the FP8 peak with their own achieved fraction,
// plus the cast/transpose of each activation-side input; attention and the output layer in bf16.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "config/chip.hpp"
#include "parallel/layout.hpp"
#include "collectives/collectives.hpp"
#include "plan/plan.hpp"
#include "predict/calibration.hpp"

namespace capscale::predict {

using collectives::GroupSpan;
using collectives::LinkParams;

/// A collective NCCL runs over k channels moves at most k · nccl_channel_gbyte_s of bus bandwidth
/// (NCCL src/graph/tuning.cc: busBw = nChannels · per-channel bandwidth).
using plan::CommCtas;

class CostModel {
 public:
  /// `calibration` (may be null, must outlive the model) is used only when its arch equals the chip's.
  /// `main_grad_bytes`: bytes per element of the gradient buffer that weight-gradient GEMMs
  /// accumulate into (ParallelConfig::grad_bytes(): fp32 in Megatron unless --grad-reduce-in-bf16).
  /// `ctas`: the run's channel limits per communicator (ignored on a chip without
  /// nccl_channel_gbyte_s).
  CostModel(const config::ChipProfile& chip, config::Precision precision, const parallel::Layout& layout,
            const Calibration* calibration = nullptr, int64_t main_grad_bytes = 4, CommCtas ctas = {});

  /// Duration of one op on this chip.
  double duration(const plan::Op& op) const;
  /// `c_bytes`: HBM bytes per element of the m×n output: 2 for a bf16 result written once; a
  /// weight-gradient GEMM reads and writes its fp32 main_grad (Megatron's gradient accumulation
  /// fusion, β = 1), 2 · main_grad_bytes.
  double gemm_time(int64_t m, int64_t n, int64_t k, double flops, int64_t batch = 1, double c_bytes = 2) const;
  double attention_time(const plan::Op& op) const;
  /// A flash attention op's achieved fraction of the 16-bit peak over a whole step: the chip's
  /// kernel fraction (efficiency.attention, or attention_fa1 for FlashAttention-1), times
  /// efficiency.attention_dropout when the op drops out scores, times efficiency.sustained.
  /// Throws InputError for FlashAttention-1 on a chip without attention_fa1.
  double flash_efficiency(const plan::Op& op) const;
  double elementwise_time(int64_t bytes) const;
  const LinkParams& link() const { return link_; }
  /// The link parameters a collective over group g sees (link() but on a full mesh).
  const LinkParams& link(parallel::Group g) const { return group_links_[static_cast<int>(g)]; }
  const GroupSpan& span(parallel::Group g) const { return spans_[static_cast<int>(g)]; }
  const config::ChipProfile& chip() const { return chip_; }
  /// Whether a calibration of this chip's architecture is in use.
  bool calibrated() const { return calibration_ != nullptr; }
  /// Whether op's duration comes from the calibration (GEMMs; collectives inside one domain of a
  /// kind the calibration measured).
  bool calibrated(const plan::Op& op) const;

  /// Fixed cost of one kernel launch on the device (seconds): a few µs on current GPUs
  /// (CUDA launch latency; cf. llm.c's note on kernel fusion), kept small and constant.
  static constexpr double kKernelOverheadS = 3e-6;
  /// HBM bytes per element of Transformer Engine's fused cast+transpose (with amax) of an FP8 GEMM
  /// input: read bf16 (2 B), write the FP8 tensor and its FP8 transpose (1 + 1 B)
  /// (transformer_engine/common/transpose/cast_transpose.cu; the transpose feeds the wgrad GEMM).
  static constexpr double kFp8CastBytesPerElement = 4;
  /// Extra time of an FP8 GEMM op for casting its activation-side input (0 unless FP8).
  double fp8_cast_time(const plan::Op& op) const;

 private:
  /// A collective's time from the calibration or the α–β model, before the channel limit.
  double collective_time(const plan::Op& op) const;

  config::ChipProfile chip_;
  double peak_flops_;            ///< dense peak of the plan's precision (FP8 GEMMs under fp8)
  double bf16_peak_flops_;       ///< attention and the output layer (bf16 under Transformer Engine's FP8)
  double gemm_fraction_;         ///< achieved GEMM fraction of peak_flops_
  bool fp8_ = false;
  int64_t main_grad_bytes_;      ///< bytes per element of the gradient buffer wgrad GEMMs accumulate into
  double cal_peak_ratio_ = 1;    ///< this chip's peak / the calibrating chip's peak
  double cal_link_extra_s_per_byte_ = 0;  ///< 1/B_target − 1/B_calibrating, NVLink bus bytes
  LinkParams link_;
  std::array<GroupSpan, parallel::kNumGroups> spans_{};
  /// link_ as each group sees it: on a full-mesh domain (ChipProfile::full_mesh) a group with fewer
  /// members per domain than the domain holds drives fewer links.
  std::array<LinkParams, parallel::kNumGroups> group_links_{};
  /// Bus bandwidth a collective over each group (and a pipeline transfer, kPp) may reach under the
  /// run's channel limits (CommCtas); 0: no limit.
  std::array<double, parallel::kNumGroups> bus_cap_Bps_{};
  bool pp_crosses_domain_ = true;
  double pp_intra_Bps_ = 0;  ///< a pipeline send inside one domain (one link on a full mesh)
  const Calibration* calibration_ = nullptr;  ///< null unless its arch matches the chip's
  /// Calibration lookups already made: a plan has a handful of distinct GEMM shapes and
  /// collective sizes but up to 10^5 ops, and each lookup scans the calibration. Bounded at 256
  /// entries, linear scan (single-threaded use).
  template <typename Key>
  class Memo {
   public:
    template <typename Compute>
    double get(const Key& key, Compute compute) const {
      for (const auto& [k, v] : entries_)
        if (k == key) return v;
      const double v = compute();
      if (entries_.size() < 256) entries_.emplace_back(key, v);
      return v;
    }

   private:
    mutable std::vector<std::pair<Key, double>> entries_;
  };
  Memo<std::tuple<int64_t, int64_t, int64_t>> gemm_efficiency_;
  Memo<std::tuple<plan::CollKind, int64_t, int64_t>> busbw_;
  double calibrated_efficiency(int64_t m, int64_t n, int64_t k) const;
  double calibrated_busbw(plan::CollKind kind, int64_t bytes, int64_t ranks) const;
  double roofline_gemm_time(int64_t m, int64_t n, int64_t k, double flops, int64_t batch = 1, double c_bytes = 2) const;
  double roofline_gemm_time(int64_t m, int64_t n, int64_t k, double flops, double peak, double efficiency, int64_t batch,
                            double c_bytes = 2) const;
  static double gemm_bytes(int64_t m, int64_t n, int64_t k, int64_t batch, double c_bytes);
  /// HBM bytes per output element of op (a GEMM): see gemm_time.
  double c_bytes(const plan::Op& op) const { return op.wgrad ? 2.0 * double(main_grad_bytes_) : 2.0; }
};

}  // namespace capscale::predict
