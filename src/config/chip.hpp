// Chip profiles (configs/chips/*.yaml) and target specs with caps, `CHIP[@key=value,...]`.
// Figures are kept in the units of the datasheet (TFLOP/s, GB, TB/s, NVLink GB/s bidirectional,
// NIC Gb/s); the *_Bps() accessors give the unidirectional bytes/s the cost model works in.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "config/enum_names.hpp"

namespace capscale::config {

enum class Precision { kBf16, kFp16, kFp8, kFp32 };
template <>
struct EnumNames<Precision> {
  static constexpr std::array<std::pair<Precision, std::string_view>, 4> kNames{
      {{Precision::kBf16, "bf16"}, {Precision::kFp16, "fp16"}, {Precision::kFp8, "fp8"}, {Precision::kFp32, "fp32"}}};
};
inline std::string to_string(Precision p) { return enum_name(p); }

/// Achieved fractions of the nameplate figures (see docs/configs.md and each chip's sources).
struct Efficiency {
  double gemm = 0.75;
  /// Achieved fraction of the FP8 dense peak on large FP8 GEMMs (Transformer Engine's cuBLASLt
  /// per-tensor-scaled GEMMs); 0 → the same as `gemm`. cuBLAS reaches a lower fraction of the FP8
  /// peak than of the 16-bit one (each chip YAML cites its figure).
  double gemm_fp8 = 0;
  double attention = 0.6;
  /// Achieved fraction of the 16-bit peak of FlashAttention-1 (forward + backward, causal, on the
  /// executed FLOPs), for runs that predate FlashAttention-2 (ParallelConfig::flash_attention_v1);
  /// 0: no figure for this chip (such a run is refused).
  double attention_fa1 = 0;
  /// Fraction of the attention kernel's rate it keeps with dropout on the scores (Philox random
  /// numbers drawn in the kernel, forward and again in the backward); 1 = no cost.
  double attention_dropout = 1.0;
  double hbm = 0.85;
  double nvlink = 0.8;
  double nic = 0.85;
  /// Fraction of the isolated-kernel GEMM/attention rate a chip sustains through a whole training
  /// step (clocks under sustained tensor load at TDP, gaps between kernels). Calibrated once per
  /// architecture on one published run (docs/validation.md); 1 = no loss.
  double sustained = 1.0;
  /// NVLink SHARP all-reduce rate as a fraction of the ring's achieved NVLink rate (`nvlink` ×
  /// the link); used only where the chip has `nvls`, and required there (all_reduce.cpp).
  double nvls = 0;
};

struct ChipProfile {
  std::string name;
  std::string description;
  std::string arch;
  /// The architecture whose fitted efficiency.sustained this chip takes (efficiency.sustained_from):
  /// a chip of an architecture no published run has fit (Blackwell, Ascend) borrows one, and its
  /// YAML's `sustained` must then be that architecture's. Empty: its own architecture's fit.
  std::string sustained_from;
  /// The architecture that fits this chip's efficiency.sustained: sustained_from, else arch.
  const std::string& sustained_arch() const { return sustained_from.empty() ? arch : sustained_from; }
  /// Whether a FlashAttention-1 plan (flash_attention_v1) can be timed here: only with the kernel's
  /// own fraction, efficiency.attention_fa1 (no default: FA1 ran at half FA2's rate or less).
  bool times_flash_attention_v1() const { return efficiency.attention_fa1 > 0; }
  std::map<std::string, double> peak_tflops;  ///< dense, by dtype name
  double hbm_gb = 0;
  double hbm_tbps = 0;
  double nvlink_gbyte_s = 0;  ///< GB/s (10⁹ bytes/s) per chip, bidirectional total (datasheet convention)
  int64_t nvlink_domain = 1;
  double nic_gbit_s = 0;      ///< Gb/s (10⁹ bits/s) per chip, one direction (network vendors' convention)
  double nvlink_latency_us = 3;
  double nic_latency_us = 10;
  Efficiency efficiency;
  double reserved_gb = 0;
  int64_t chips_per_package = 1;
  /// The scale-up domain is a full mesh of point-to-point links (Ascend 910B's HCCS: each of 8 NPUs
  /// has 7 links), not a switch: a collective over n of its d chips drives only n−1 of each chip's
  /// d−1 links, so it gets (n−1)/(d−1) of nvlink_gbyte_s; a point-to-point transfer gets one link.
  bool full_mesh = false;
  /// The scale-up domain's switches reduce (NVLink SHARP, NVSwitch 3 and later: HGX H100/H200/
  /// H800/H20, B200): NCCL ≥ 2.17 runs an in-domain all-reduce as NVLS when that is faster than
  /// the ring, at efficiency.nvls of the ring's rate on (n+1)/n·S instead of 2(n−1)/n·S.
  bool nvls = false;
  /// Streaming multiprocessors (SMs; AI cores on Ascend) and the thread blocks a running NCCL
  /// collective keeps resident on them (one per channel). While a collective runs beside the
  /// compute stream its blocks hold comm_ctas of the sm_count SMs and the GEMMs beside it slow
  /// down by that share (comm_contention()). 0 (the default) models overlapped communication as
  /// free.
  int64_t sm_count = 0;
  int64_t comm_ctas = 0;
  /// Bus bandwidth one NCCL channel (one thread block) carries, GB/s per direction: the most a
  /// collective or transfer limited to k channels reaches is k times this (a communicator's
  /// maxCTAs; ParallelConfig::dp_max_ctas, cp_max_ctas, pp_max_ctas). 0: not given, such limits
  /// are ignored on this chip.
  double nccl_channel_gbyte_s = 0;
  /// Relative standard deviation of a node's speed, persistent through a step (clock and thermal
  /// spread between nodes, a slow host): every synchronising collective waits for the slowest of
  /// the job's nodes (predict::apply_node_jitter). 0 (the default): nodes run alike.
  double node_jitter = 0;
  /// The largest node_jitter a chip YAML or cap may give.
  static constexpr double kMaxNodeJitter = 0.5;
  /// Seconds the GPU idles at each step boundary while the host finishes one step and starts the
  /// next (eager PyTorch: from the optimizer's synchronising read of the gradient norm to the next
  /// step's first kernel: step bookkeeping, logging, the next batch). Added once per step
  /// (predict::apply_host_step_gap) unless the plan replays whole iterations as a CUDA graph
  /// (ParallelConfig::full_iteration_cuda_graph). Fitted with sustained and node_jitter, one value
  /// for every chip (`capscale validate --fit`); 0 (the default): none.
  double host_step_gap_s = 0;
  /// The largest host_step_gap_s a chip YAML may give.
  static constexpr double kMaxHostStepGapS = 1.0;
  /// [low, high] of the kernel fractions whose value is least certain (an assumption, or a forward
  /// measurement stretched to forward + backward), by efficiency field name (gemm, gemm_fp8,
  /// attention, hbm, nvlink, nic); each holds the shipped value. `predict --vs` re-predicts at
  /// the ends to give the ratio's band (predict::ratio_band). Empty: the value is taken as known.
  std::map<std::string, std::pair<double, double>> efficiency_ranges;
  std::map<std::string, std::string> sources;
  std::string origin;

  /// Dense peak FLOP/s for a precision; throws InputError if the chip lacks it (fp8 on A100).
  double peak_flops(Precision p) const;
  bool supports(Precision p) const;
  double hbm_Bps() const { return hbm_tbps * 1e12; }
  double nvlink_Bps_per_direction() const { return nvlink_gbyte_s * 1e9 / 2; }
  double nic_Bps() const { return nic_gbit_s * 1e9 / 8; }
  double nccl_channel_Bps() const { return nccl_channel_gbyte_s * 1e9; }
  /// HBM capacity usable by the training process. HBM is sold in binary units: an "80 GB" H100
  /// holds five 16 GiB stacks (nvidia-smi: 81,559 MiB of 81,920 after the driver's share), so
  /// hbm_gb and reserved_gb are GiB (2^30 bytes); every other byte figure in capscale is 10^9.
  double usable_memory_bytes() const { return (hbm_gb - reserved_gb) * double(int64_t(1) << 30); }
  /// Share of the compute rate a collective running beside the compute stream takes:
  /// comm_ctas / sm_count (0 without both).
  double comm_contention() const { return sm_count > 0 ? double(comm_ctas) / double(sm_count) : 0.0; }
  /// The GEMM fraction for a precision: efficiency.gemm_fp8 for FP8 when set, else efficiency.gemm.
  double gemm_efficiency(Precision p) const {
    return p == Precision::kFp8 && efficiency.gemm_fp8 > 0 ? efficiency.gemm_fp8 : efficiency.gemm;
  }
};

/// The efficiency fields a chip may give a range for (ChipProfile::efficiency_ranges).
const std::vector<std::string>& ranged_efficiency_fields();
/// The member of `e` named `name` (one of ranged_efficiency_fields() or "sustained").
double& efficiency_field(Efficiency& e, const std::string& name);
inline double efficiency_value(Efficiency e, const std::string& name) { return efficiency_field(e, name); }

/// One cap: key (nvlink, nic, tflops, hbm_tbps, hbm_gb, nvlink_domain, node_jitter) and an
/// absolute value or a percentage of the chip's own figure (node_jitter: absolute only).
struct Cap {
  std::string key;
  double value = 0;
  bool percent = false;
};

/// A target: a chip profile plus caps, e.g. `h200@nvlink=400`. `spec` keeps the text as given.
struct TargetSpec {
  std::string spec;
  std::string chip_name;
  std::vector<Cap> caps;
};

/// Allowed cap keys, in the order documented.
const std::vector<std::string>& cap_keys();

/// Parses `CHIP[@key=value,...]`; throws InputError naming `where`, the key and the allowed keys.
TargetSpec parse_target(const std::string& text, const std::string& where = "--emulate");
/// Parses a comma-separated list of targets (caps use ',' too, so split on ',' only before a name
/// that is not key=value).
std::vector<TargetSpec> parse_target_list(const std::string& text, const std::string& where);

ChipProfile load_chip_yaml(const std::string& path);
/// Loads a chip by name from configs/chips or by path.
ChipProfile load_chip(const std::string& name_or_path);
/// Chip with its caps applied (name becomes the spec text).
ChipProfile apply_caps(ChipProfile chip, const TargetSpec& target);
/// load_chip(target.chip_name) + apply_caps.
ChipProfile resolve_target(const TargetSpec& target);

}  // namespace capscale::config
