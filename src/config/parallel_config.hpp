// How one training step is parallelised and batched (Megatron's ModelParallelConfig names; short
// tp/pp/dp/cp/vpp in code). Defaults live here; validate() reports every violation at once.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/chip.hpp"
#include "config/model_config.hpp"
#include "config/record.hpp"

namespace capscale::config {

enum class Recompute { kNone, kSelective, kFull };
/// Megatron-Core --moe-token-dispatcher-type: alltoall (NCCL all-to-all, every routed copy
/// travels) or flex (DeepEP / HybridEP: a token crosses to each remote node once and is
/// forwarded to its experts there over NVLink).
enum class Dispatcher { kAllToAll, kFlex };
enum class Schedule { kNoPipelining, kOneFOneB, kInterleaved1F1B };

template <>
struct EnumNames<Recompute> {
  static constexpr std::array<std::pair<Recompute, std::string_view>, 3> kNames{
      {{Recompute::kNone, "none"}, {Recompute::kSelective, "selective"}, {Recompute::kFull, "full"}}};
};
template <>
struct EnumNames<Schedule> {
  static constexpr std::array<std::pair<Schedule, std::string_view>, 3> kNames{
      {{Schedule::kNoPipelining, "no_pipelining"}, {Schedule::kOneFOneB, "one_f_one_b"},
       {Schedule::kInterleaved1F1B, "interleaved_1f1b"}}};
};
template <>
struct EnumNames<Dispatcher> {
  static constexpr std::array<std::pair<Dispatcher, std::string_view>, 2> kNames{
      {{Dispatcher::kAllToAll, "alltoall"}, {Dispatcher::kFlex, "flex"}}};
};
inline std::string to_string(Recompute r) { return enum_name(r); }
inline std::string to_string(Schedule s) { return enum_name(s); }

struct ParallelConfig {
  int64_t tp = 1;   ///< tensor_model_parallel_size
  int64_t pp = 1;   ///< pipeline_model_parallel_size
  int64_t cp = 1;   ///< context_parallel_size
  int64_t vpp = 1;  ///< virtual_pipeline_model_parallel_size (model chunks per pipeline rank)
  int64_t dp = 1;   ///< data parallel size: world / (tp·pp·cp), set by resolve()
  /// Expert layout (Megatron-Core MoE parallel folding): the experts of a layer are spread over ep
  /// ranks, each expert split over etp ranks, replicated over edp = world / (pp·ep·etp) ranks,
  /// folded onto the same ranks as attention's tp-cp-dp.
  int64_t ep = 1;   ///< expert_model_parallel_size
  int64_t etp = 1;  ///< expert_tensor_parallel_size
  /// Load of the hottest expert relative to the mean under the router (1.0: force-balanced, as
  /// NVIDIA's published MoE benchmarks run); every rank waits for the hottest one.
  double moe_imbalance = 1.0;
  Dispatcher moe_token_dispatcher = Dispatcher::kAllToAll;
  /// Megatron --account-for-embedding-in-pipeline-split / --account-for-loss-in-pipeline-split:
  /// the embedding / the output head and loss count as a layer when layers are split over stages.
  bool account_for_embedding_in_pipeline_split = false;
  bool account_for_loss_in_pipeline_split = false;
  /// Megatron-Core --pipeline-model-parallel-layout: the layers of each model chunk, in global chunk
  /// order (chunk v·pp + p is virtual stage v of pipeline rank p), e.g. "Et*4|(t*4|)*14tmL" for
  /// DeepSeek-V3 on pp 8 × vpp 2 (parse_pipeline_layout). "" (the default): layers split evenly
  /// (model::split_layers, with the two account-for flags above).
  std::string pipeline_layout;
  bool sequence_parallel = false;
  int64_t micro_batch_size = 1;
  int64_t global_batch_size = 0;  ///< sequences per step; 0 → micro_batch_size·dp
  int64_t seq_length = 0;         ///< 0 → the model's
  Recompute recompute = Recompute::kNone;
  int64_t zero = 0;  ///< 1 = distributed optimizer (ZeRO-1): reduce-scatter grads, all-gather params
  Precision precision = Precision::kBf16;
  bool overlap_grad_reduce = true;  ///< DP reduction overlaps the last micro-batch's backward
  /// ZeRO-1's parameter all-gather overlaps the first micro-batch's forward (Megatron
  /// --overlap-param-gather); off, it runs whole after the optimizer step, before any forward
  /// (Megatron without the flag, DeepSpeed ZeRO-1).
  bool overlap_param_gather = true;
  /// Pipeline sends and receives run beside compute under the interleaved schedule (Megatron
  /// --overlap-p2p-communication, on by default in Megatron-Core and in NeMo's performance
  /// configs). Without interleaving Megatron forces it off, and Megatron-LM before 2023 had no such
  /// option: each transfer is a batch_isend_irecv that the schedule waits for, followed by
  /// torch.cuda.synchronize(), so the next compute waits for the unit's send as for its receive
  /// (p2p_blocking()).
  bool overlap_p2p_comm = true;
  /// Without sequence parallelism, each tp rank sends 1/tp of a pipeline message and the receiver
  /// all-gathers it over tp (Megatron-LM's --scatter-gather-tensors-in-pipeline, its default from
  /// 2021 until the schedules moved to Megatron-Core, whose p2p sends the whole tensor from every
  /// tp rank). With sequence parallelism the message is already 1/tp and nothing changes.
  bool p2p_scatter_gather = false;
  /// A column-parallel linear's backward (QKV, FC1, the output layer, MLA's up-projections, the MTP
  /// projection) overlaps its TP communication with its GEMMs:
  /// the all-gather of the wgrad input (sequence parallelism) runs beside the dgrad GEMM, and the
  /// dgrad's all-reduce (reduce-scatter under SP) beside the wgrad GEMM. Megatron-LM's
  /// LinearWithGradAccumulationAndAsyncCommunication does this since 2021-08 (commit cf7efd4f,
  /// --no-async-tensor-model-parallel-allreduce turns it off), Megatron-Core and Transformer
  /// Engine's Linear / LayerNormLinear always. Off: Megatron-LM before it (SC21's runs), each in
  /// series with the GEMMs.
  bool async_tp_comm = true;
  /// ZeRO-1 reduces the gradients with an all-reduce over data parallel (every rank receives the
  /// whole reduced gradient and updates its shard), then all-gathers the updated bf16 parameters:
  /// DeepSpeed's BF16_Optimizer (BLOOM; `bf16` with ZeRO stage 0 in the DeepSpeed config), which
  /// sends 8 + 2 bytes per parameter in fp32 + bf16 where Megatron's distributed optimizer sends
  /// 4 + 2 (reduce-scatter + all-gather). Needs zero 1.
  bool grad_all_reduce = false;
  /// NCCL's per-communicator limit on thread blocks (ncclConfig_t::maxCTAs), which NeMo sets from
  /// a YAML (nccl_communicator_config_path; NVIDIA's MLPerf Training configs since v4.0 give the
  /// dp and dp_cp communicators 8, pp 2, cp 1): a collective on the group moves at most that many
  /// channels' bus bandwidth (ChipProfile::nccl_channel_gbyte_s each). 0: NCCL's own choice.
  /// dp_max_ctas covers data parallel's reductions and gathers (dp and dp·cp groups),
  /// cp_max_ctas context parallel's K/V exchange, pp_max_ctas the pipeline transfers.
  int64_t dp_max_ctas = 0;
  int64_t cp_max_ctas = 0;
  int64_t pp_max_ctas = 0;
  /// Fused (flash) attention: the s×s scores are never stored, so the 5as/h activation term of
  /// Korthikanti et al. is absent, as it is for Megatron-Core with Transformer Engine's fused
  /// attention. Off for runs that predate it (SC21 used full recompute, where it does not matter).
  bool flash_attention = true;
  /// The flash attention kernel is FlashAttention-1 (Dao et al. 2022; Megatron-LM's --use-flash-attn
  /// before FlashAttention-2, mid-2023), at the chip's efficiency.attention_fa1 instead of
  /// efficiency.attention (FlashAttention-2 and later, cuDNN). Needs flash_attention.
  bool flash_attention_v1 = false;
  /// Each step's forward and backward replay as one captured CUDA graph (Megatron-Core
  /// --cuda-graph-scope full_iteration, Megatron-Bridge cuda_graph_impl local with that scope,
  /// MLPerf's config_common_cg.sh): the host's step-boundary work no longer leaves the GPU idle, so
  /// the chip's host_step_gap_s is not charged (predict::apply_host_step_gap).
  bool full_iteration_cuda_graph = false;
  /// Tensor-parallel communication overlapped with the adjacent GEMM in chunks (Megatron-Core
  /// --tp-comm-overlap, Transformer Engine userbuffers); needs sequence parallelism.
  bool tp_comm_overlap = false;
  /// Gradients accumulated and reduced across DP in bf16 (Megatron --grad-reduce-in-bf16) instead
  /// of Megatron's default for bf16 training, fp32 (accumulate_allreduce_grads_in_fp32): halves the
  /// DP reduce-scatter / all-reduce bytes and the gradient buffer.
  bool grad_reduce_in_bf16 = false;

  /// Bytes per gradient element in the DP reduction and the gradient buffer. Megatron accumulates
  /// and reduces in fp32 for bf16 (and FP8) training (`if args.bf16:
  /// accumulate_allreduce_grads_in_fp32 = True`) but keeps fp16 training's gradients in fp16
  /// unless --accumulate-allreduce-grads-in-fp32 is given (SC21's run scripts do not give it).
  int64_t grad_bytes() const { return grad_reduce_in_bf16 || precision == Precision::kFp16 ? 2 : 4; }

  /// Pipeline transfers the compute stream waits for: no interleaving (Megatron forces
  /// overlap_p2p_comm off there) or overlap_p2p_comm off.
  bool p2p_blocking() const { return pp > 1 && (vpp == 1 || !overlap_p2p_comm); }
  /// The pipeline message is split over the tp ranks and all-gathered after receipt.
  bool p2p_split() const { return p2p_scatter_gather && !sequence_parallel && tp > 1; }

  int64_t model_parallel() const { return tp * pp * cp; }
  /// Expert-data-parallel size: the replicas of one expert shard, reduced over after backward.
  int64_t edp() const { return tp * cp * dp / (ep * etp); }
  int64_t world() const { return model_parallel() * dp; }
  /// The ranks one parameter's optimizer state is split over (ZeRO-1's distributed optimizer: the
  /// dense parameters over dp·cp, the routed experts over the expert-data-parallel group; 1 without).
  int64_t optimizer_shards() const { return zero ? dp * cp : 1; }
  int64_t expert_optimizer_shards() const { return zero ? edp() : 1; }
  /// ZeRO-1 all-gathers the updated bf16 parameters from their shards every step.
  bool gathers_params() const { return zero && dp * cp > 1; }
  /// Micro-batches per step on each pipeline: global / (micro · dp).
  int64_t num_microbatches() const { return global_batch_size / (micro_batch_size * dp); }
  Schedule schedule() const {
    return pp == 1 ? Schedule::kNoPipelining : vpp > 1 ? Schedule::kInterleaved1F1B : Schedule::kOneFOneB;
  }
};

/// The field table of ParallelConfig (record.hpp): flags, JSON, HDF5 columns, text and sweep keys
/// are generated from it. Megatron's names; short tp/pp/... in code and columns.
const FieldTable<ParallelConfig>& parallel_fields();
/// The one-line text form, e.g. "tp8 pp4 dp2 cp1 mbs1 sel z1 sp tpo".
inline std::string parallel_text(const ParallelConfig& p) { return to_text(p, parallel_fields()); }

/// Fills dp from world size, seq_length and global batch defaults, then validates against the
/// model. Throws one InputError listing every violation; `where` names the flag source.
ParallelConfig resolve(ParallelConfig p, const ModelConfig& model, int64_t world, const std::string& where);

/// One model chunk of a pipeline layout: its decoder layers and MTP layers, and whether it holds
/// the embedding (E) or the output layer and loss (L).
struct LayoutChunk {
  int64_t decoder = 0, mtp = 0;
  bool embedding = false, loss = false;
};

/// Megatron-Core's layout syntax (PipelineParallelLayerLayout.parse_str_to_list): chunks separated
/// by '|', one character per layer (E embedding, t decoder layer, m MTP layer, L loss), "x*n"
/// repeats a character and "(…)*n" a group (not nested), commas are ignored. Returns the chunks in
/// global order, or sets `error` (and returns nothing) for text Megatron would not parse.
std::vector<LayoutChunk> parse_pipeline_layout(const std::string& text, std::string* error);

/// Violations as "field: problem" strings (empty when valid); used by resolve() and by --search to
/// skip invalid candidates without exceptions.
std::vector<std::string> violations(const ParallelConfig& p, const ModelConfig& model, int64_t world);

}  // namespace capscale::config
