// The Plan: per-pipeline-stage lists of ops (GEMM, attention, elementwise, collective, send/recv)
// with stream ids and dependencies, sized from the model. Plans are data: no CUDA, MPI or HDF5 here.
// The CPU executor, the CUDA executor and the timeline engine all walk the same Plan.
//
// Symmetry: every rank of one pipeline stage (its TP peers, CP peers and DP replicas) runs the same
// op list on equally sized shards, so a Plan stores one list per stage; rank r runs
// stages[layout.coords(r).pp]. This is what lets the predictor cost grow with pp × micro-batches ×
// layers instead of the number of chips.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "model/accounting.hpp"
#include "parallel/layout.hpp"

namespace capscale::plan {

enum class OpKind : uint8_t { kGemm, kAttention, kElementwise, kCollective, kSendRecv };
/// Streams as on a GPU: compute, one per communication kind. Ops on one stream run in order.
/// kEp carries the MoE token dispatch and combine (all-to-all over ep, or the all-gather /
/// reduce-scatter dispatcher over tp) and the expert-tensor collectives.
enum class Stream : uint8_t { kCompute, kTp, kCp, kDp, kPpSend, kPpRecv, kEp };
constexpr int kNumStreams = 7;
enum class CollKind : uint8_t { kNone, kAllReduce, kReduceScatter, kAllGather, kAllToAll };
enum class Phase : uint8_t { kForward, kBackward, kRecompute, kOptimizer };
/// What an op is in the model, for names, NVTX ranges and per-kind tables.
enum class OpName : uint8_t {
  kEmbedding, kInputNorm, kQkv, kCoreAttention, kAttnProj, kPostAttnNorm, kFc1, kActivation, kFc2,
  kResidual, kFinalNorm, kLogits, kCrossEntropy, kSpAllGather, kTpReduce, kCpKv, kGradReduce,
  kParamGather, kEmbeddingGrad, kOptimizerStep, kSendActivation, kRecvActivation, kSendGrad, kRecvGrad,
  kWgradGather,
  // Mixture of experts, multi-head latent attention, multi-token prediction.
  kRouter, kPermute, kDispatch, kExpertFc1, kExpertActivation, kExpertFc2, kCombine, kUnpermute, kSharedFc1,
  kSharedActivation, kSharedFc2, kExpertGather, kExpertScatter, kMlaDown, kMlaUp, kMtpProj,
  kAmaxReduce,  ///< Transformer Engine's FP8 amax all-reduce over the stage (precision fp8)
  kP2pGather,   ///< the tp all-gather of a received pipeline message sent in 1/tp pieces (p2p_scatter_gather)
  kP2pWait      ///< the compute stream's wait for a blocking pipeline transfer (p2p_blocking), no work
};

std::string to_string(OpKind k);
std::string to_string(Stream s);
std::string to_string(CollKind c);
std::string to_string(Phase p);
std::string to_string(OpName n);

/// NCCL's per-communicator thread-block limits of a run (ParallelConfig::dp_max_ctas, cp_max_ctas,
/// pp_max_ctas; 0: NCCL's own choice), by the group whose communicator they limit: the cost model
/// bounds those groups' bus bandwidth by them and the CUDA executor creates those communicators
/// with them (ncclConfig_t.maxCTAs).
struct CommCtas {
  int64_t dp = 0, cp = 0, pp = 0;
  static CommCtas of(const config::ParallelConfig& p) { return {p.dp_max_ctas, p.cp_max_ctas, p.pp_max_ctas}; }
  /// The limit of group g's communicator: dp for the dp and dp·cp groups, cp, pp for the pipeline
  /// transfers; the others (tp, expert, embedding, amax groups) keep NCCL's choice, 0. NeMo's
  /// per-communicator file names dp, dp_cp, cp, pp and tp; tp's traffic runs through Transformer
  /// Engine's userbuffers under TP overlap, so its limit is left out.
  int64_t for_group(parallel::Group g) const {
    switch (g) {
      case parallel::Group::kDp:
      case parallel::Group::kDpCp: return dp;
      case parallel::Group::kCp: return cp;
      case parallel::Group::kPp: return pp;
      default: return 0;
    }
  }
};

/// An overlap edge (Megatron-Core --tp-comm-overlap, Transformer Engine userbuffers): the op runs
/// pipelined in `chunks` pieces (tp) behind `partner`, an earlier op of the same stage on another
/// stream — a reduce-scatter behind the GEMM that produces it, a GEMM behind the all-gather that
/// feeds it. It starts once the partner's first chunk is done and ends one of its own chunks after
/// the slower of the two; the timeline engine applies this in one place (predict/timeline.cpp).
struct Overlap {
  int32_t partner = -1;  ///< index in the same stage's op list, < this op's; −1: not overlapped
  int32_t chunks = 1;
};

struct Op {
  OpKind kind = OpKind::kElementwise;
  Stream stream = Stream::kCompute;
  Phase phase = Phase::kForward;
  OpName name = OpName::kResidual;
  CollKind coll = CollKind::kNone;
  parallel::Group group = parallel::Group::kTp;
  bool causal = false;   ///< attention
  bool is_send = false;  ///< send/recv
  bool wgrad = false;    ///< GEMM computing a weight gradient
  bool fused = true;     ///< attention: flash (scores never stored) vs unfused (scores in HBM)
  bool dropout = false;  ///< attention: dropout on the scores (ModelConfig::attention_dropout > 0)
  bool fa1 = false;      ///< attention: flash by FlashAttention-1 (ParallelConfig::flash_attention_v1)
  /// All-to-all under the flex dispatcher (DeepEP / HybridEP): each token's top-k and the node
  /// limit of its routing (0: none); route_topk 0 is a plain all-to-all where every copy travels.
  uint8_t route_topk = 0, route_node_limit = 0;
  /// Explicit overlap edge (see Overlap); partner −1 when the op is not overlapped.
  Overlap overlap;
  int32_t layer = -1;    ///< global layer index; -1 for embedding/logits/optimizer ops
  int32_t microbatch = -1;
  int32_t chunk = 0;     ///< virtual pipeline chunk on this stage
  int32_t peer = -1;     ///< send/recv: the other pipeline stage
  int64_t tag = -1;      ///< send/recv: equal on the matching send and recv
  /// GEMM: batch × [m×k]·[k×n] (batch > 1: a grouped GEMM over local experts, m tokens each).
  /// Attention: batch = micro-batch × local heads, m = query length, n = key length (the window
  /// under sliding-window attention), k = head dim (the mean of the query/key and value widths
  /// under MLA).
  int64_t m = 0, n = 0, k = 0, batch = 1;
  /// Bytes: elementwise = read + write; collective = the buffer S of nccl-tests' convention
  /// (all-reduce: the buffer; all-gather / reduce-scatter: the gathered total; all-to-all: one
  /// rank's send buffer, S/n to each peer); send/recv: message.
  int64_t bytes = 0;
  double flops = 0;  ///< FLOPs this rank executes (attention counted without causal halving)
  uint8_t ndeps = 0;
  std::array<int32_t, 4> deps{};  ///< indices into the same stage's op list (cross-stream waits)

  /// Adds producer `idx` (an index into `stage_ops`, the stage's ops emitted so far). Four slots
  /// keep Op small. A fifth distinct producer replaces the earlier of it and a held producer on
  /// the same stream: ops on one stream complete in order, so waiting for the later one implies
  /// the earlier. With no held producer on the producer's stream nothing can be dropped soundly,
  /// and it throws RuntimeError (a builder bug). `stage_ops` is read only when all slots are taken.
  void add_dep(int32_t idx, const std::vector<Op>& stage_ops) {
    add_dep(idx, int32_t(stage_ops.size()), [&](int32_t i) { return stage_ops[size_t(i)].stream; });
  }
  /// The same for a list that is not one vector: `count` ops, `stream_of(i)` the stream of op i.
  template <typename StreamOf>
  void add_dep(int32_t idx, int32_t count, const StreamOf& stream_of) {
    for (uint8_t i = 0; i < ndeps; ++i)
      if (deps[i] == idx) return;
    if (ndeps < deps.size()) {
      deps[ndeps++] = idx;
      return;
    }
    // Full: merge with a held producer on the same stream, keeping the later of the two (in-order
    // streams: it ends after the earlier one). Dropping a producer on another stream would let
    // this op start before that producer ends, so that is a builder bug, not something to paper over.
    const auto valid = [&](int32_t i) { return i >= 0 && i < count; };
    if (valid(idx)) {
      for (auto& d : deps) {
        if (valid(d) && stream_of(d) == stream_of(idx)) {
          d = std::max(d, idx);
          return;
        }
      }
    }
    const Stream s = valid(idx) ? stream_of(idx) : Stream::kCompute;
    fifth_producer(idx, valid(idx) ? &s : nullptr);
  }
  std::string label() const;  ///< e.g. "fwd/mb0/L3/fc1"

 private:
  [[noreturn]] void fifth_producer(int32_t idx, const Stream* producer_stream) const;
};

/// Ops [begin, end) of a stage are copies of its source, ops [begin − shift, end − shift) (a layer
/// derived earlier): they differ only in their layer, micro-batch and chunk fields and dependency
/// indices, so anything computed from an op's sizes alone (a modelled duration, FLOPs) is the same
/// for both. The builder records one per copied layer (BuildOptions::copy_layers). A copy's
/// dependency d, read from its source op, is d + shift when d ≥ begin − shift, `pending` when d is
/// `source_pending`, and `entry` (the compute op before the copy) otherwise; its overlap partner
/// is the source's + shift.
///
/// Without a pending op, every op of the source but those on the DP stream waits only for ops of
/// the source and for `source_entry` (the compute op before the source), and the comm streams are
/// idle when a layer starts, so the timings of the copy are those of its source shifted by
/// end(entry) − end(source_entry) (timeline.cpp uses this for compact plans).
struct CopyRange {
  int32_t begin = 0, end = 0, shift = 0;
  int32_t entry = -1, source_entry = -1;
  /// The comm op pending when the copy (its source) started — the receive that opens a unit —
  /// which dependencies on the source's map to; −1: none. Such a copy waits for its own receive,
  /// so its timings are not a shift of its source's and the engine simulates it op by op.
  int32_t pending = -1, source_pending = -1;
  int32_t stored = 0;  ///< index in StagePlan::ops of the source's first op
  int32_t layer = 0, microbatch = 0, chunk = 0;  ///< of the copy (one layer)
  double flops = 0;    ///< GEMM and attention FLOPs of the range

  /// The copy of `source_op`, an op of the source: its dependencies and overlap partner mapped as
  /// above, its layer, micro-batch and chunk the copy's.
  Op copy(const Op& source_op) const {
    Op o = source_op;
    const int32_t source = begin - shift;
    o.layer = layer, o.microbatch = microbatch, o.chunk = chunk;
    for (uint8_t d = 0; d < o.ndeps; ++d)
      o.deps[d] = o.deps[d] >= source ? o.deps[d] + shift : o.deps[d] == source_pending ? pending : entry;
    if (o.overlap.partner >= 0) o.overlap.partner += shift;
    return o;
  }
};

struct StagePlan {
  int64_t pp_rank = 0;
  /// Every op, in issue order; in a compact stage only those outside `copies`, the copies being
  /// given by their ranges (BuildOptions::compact).
  std::vector<Op> ops;
  std::vector<CopyRange> copies;  ///< ascending, disjoint
  bool compact = false;
  int32_t compact_size = 0;  ///< compact stage: ops in issue order, copies included
  /// Ops in issue order, copies included.
  int32_t size() const { return compact ? compact_size : int32_t(ops.size()); }
  /// Op i with its own layer, micro-batch, chunk, dependencies and overlap partner (expanding a
  /// copy of a compact stage from its source). For tests and tools; O(log copies).
  Op op(int32_t i) const;
  std::vector<std::vector<int64_t>> chunk_layers;  ///< global layer ids per virtual chunk
  int64_t params = 0;  ///< parameters held by one rank of this stage outside routed experts (after TP sharding)
  int64_t expert_params = 0;  ///< routed-expert parameters held by one rank of this stage (÷ ep·etp)
};

struct Plan {
  config::ModelConfig model;
  config::ParallelConfig parallel;
  std::vector<StagePlan> stages;
  /// Layers per global model chunk (index c·pp + p), Megatron's uneven split shown.
  std::vector<int64_t> layers_per_chunk;

  int64_t num_ops() const;
  int64_t world() const { return parallel.world(); }
};

/// Megatron's uneven split of layers over global model chunks (model/accounting.hpp).
using model::split_layers;

/// The order of (micro-batch, chunk, forward?) units on one stage for the configured schedule.
struct ScheduleItem {
  int64_t microbatch;
  int64_t chunk;
  bool forward;
};
std::vector<ScheduleItem> schedule_order(const config::ParallelConfig& p, int64_t pp_rank);

/// An MoE layer's token dispatch (or combine) all-to-all over ep on one rank, as the builder emits
/// it: this rank's sequence-parallel tokens × top-k copies of h bf16 activations, × the imbalance
/// (the hottest rank's share), and under the flex dispatcher each token's top-k and node limit.
/// The search's lower bound times the same op.
Op moe_all_to_all(const config::ModelConfig& model, const config::ParallelConfig& parallel);

/// The collective that reduces a bucket's gradients over its data-parallel group: a reduce-scatter
/// under ZeRO-1 (each rank keeps its shard), else an all-reduce; also under ZeRO-1 with
/// grad_all_reduce (DeepSpeed's BF16_Optimizer reduces the whole gradient, then updates its shard).
inline CollKind grad_reduction(const config::ParallelConfig& p) {
  return p.zero && !p.grad_all_reduce ? CollKind::kReduceScatter : CollKind::kAllReduce;
}

/// A bf16 parameter, as ZeRO-1 all-gathers it.
inline constexpr int64_t kParamBytes = 2;

/// Adam step bytes per parameter of the rank's shard: read fp32 param, grad, m, v (16 B), write
/// param, m, v (12 B) and the bf16 model copy (2 B) — a bandwidth-bound elementwise pass.
inline constexpr int64_t kAdamBytesPerParam = 30;

/// HBM bytes of one rank's optimizer step for `params` dense and `expert_params` routed-expert
/// parameters: Adam over its shard (each part rounded up, as Megatron pads the buffers it splits;
/// ParallelConfig::optimizer_shards), plus the memset of its whole (unsharded) gradient buffer that
/// Megatron's zero_grad_buffer issues once per step. The builder's optimizer op and the search's
/// bound both take it from here. Throws InputError on overflow.
int64_t optimizer_step_bytes(const config::ParallelConfig& p, int64_t params, int64_t expert_params);

/// A GEMM op [m×k]·[k×n] with 2mnk FLOPs and its bf16 operands' bytes, `batch` times over (a
/// grouped GEMM, one group per local expert); `wgrad` marks a weight gradient, whose C is the fp32
/// main gradient (CostModel::gemm_bytes). Stand-alone for benchmarks and calibration.
Op gemm_op(int64_t m, int64_t n, int64_t k, bool wgrad = false, int64_t batch = 1);

/// A few GEMM ops by value, in the order they run (what linear_gemms and expert_gemms return).
struct Gemms {
  std::array<Op, 4> op{};
  int size = 0;
  const Op* begin() const { return op.data(); }
  const Op* end() const { return op.data() + size; }
  void add(const Gemms& g) {
    for (const Op& o : g) op.at(size_t(size++)) = o;  // at most 4 (expert_gemms: two linears backward)
  }
};

/// A linear layer's GEMMs as the builder emits them in phase `ph`: [m×k]·[k×n] forward (and
/// recompute); backward its dgrad [m×n]·[n×k], then its wgrad [k×m]·[m×n].
Gemms linear_gemms(Phase ph, int64_t m, int64_t n, int64_t k, int64_t batch = 1);

/// One MoE layer's routed experts on one rank (Megatron-Core's alltoall dispatcher, parallel
/// folding): its local experts, their width (÷ etp), the tokens each local expert runs (the hottest
/// rank's: top-k copies of this rank's sequence-parallel tokens, × etp gathered, × the imbalance),
/// the dispatch's bytes (moe_all_to_all) and the permutation's traffic.
struct MoeSizes {
  int64_t local = 0, f = 0, per_expert = 0, a2a = 0, permute = 0;
};
MoeSizes moe_sizes(const config::ModelConfig& model, const config::ParallelConfig& parallel);

/// The routed experts' grouped GEMMs of one MoE layer on one rank for one micro-batch, in the order
/// the builder runs them in phase `ph` (fc1, fc2 forward; fc2's then fc1's dgrad and wgrad
/// backward). The search's lower bound times the same ops.
Gemms expert_gemms(const config::ModelConfig& model, const config::ParallelConfig& parallel, Phase ph);

struct BuildOptions {
  /// Emit each repeated layer as a shifted copy of the previous one of its kind (fast); false
  /// derives every layer op by op (the reference the copies are tested against).
  bool copy_layers = true;
  /// Store copied layers only as their ranges (StagePlan::compact): for the timeline engine and
  /// model_durations, which read both forms; executors need every op stored.
  bool compact = false;
};

/// Builds the plan for a resolved ParallelConfig (dp set). Throws InputError for sizes that overflow.
Plan build_plan(const config::ModelConfig& model, const config::ParallelConfig& parallel, const BuildOptions& options = {});
/// The same, rebuilt into `out`, whose op lists keep their capacity: a caller building many plans
/// (prediction, search) reuses the memory instead of faulting in fresh pages for every plan.
void build_plan(const config::ModelConfig& model, const config::ParallelConfig& parallel, Plan& out,
                const BuildOptions& options = {});

}  // namespace capscale::plan
