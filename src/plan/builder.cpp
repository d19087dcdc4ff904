// Plan builder for dense GPT / Llama layers under TP (+SP), CP, PP (1F1B, interleaved) and DP
// (all-reduce or ZeRO-1), with recompute none / selective / full. Op shapes follow Megatron-Core's
// ColumnParallelLinear / RowParallelLinear: QKV and FC1 split their output columns over tp, the
// attention projection and FC2 split their input rows; each linear's backward is a dgrad GEMM
// (dX = dY·Wᵀ) and a wgrad GEMM (dW = Xᵀ·dY). Communication per layer (Korthikanti et al. 2022,
// Fig. 5): without SP an all-reduce after each row-parallel linear in forward and after each
// column-parallel linear's dgrad in backward; with SP an all-gather before and a reduce-scatter
// after each of them instead, plus the all-gather Megatron repeats in backward for the wgrad input.
#include <algorithm>
#include <array>
#include <cmath>
#include <initializer_list>
#include <utility>

#include "common/checked.hpp"
#include "common/error.hpp"
#include "model/accounting.hpp"
#include "plan/plan.hpp"

namespace capscale::plan {
namespace {

using config::ModelConfig;
using config::ParallelConfig;
using config::Recompute;
using parallel::Group;

constexpr int64_t kActBytes = 2;   // bf16/fp16 activations
/// Transformer Engine casts each FP8 linear layer's weight once per step, in the first
/// micro-batch's forward (is_first_microbatch; later micro-batches reuse the cached FP8 copy): it
/// reads the bf16 weight and writes the FP8 weight and its FP8 transpose, which the dgrad GEMM
/// takes: 2 + 1 + 1 bytes per weight.
constexpr int64_t kFp8WeightCastBytes = 4;

/// Tokens of one micro-batch on a rank: its sequences' tokens over cp.
int64_t tokens_per_microbatch(const ParallelConfig& p) {
  return checked_mul(p.micro_batch_size, p.seq_length / p.cp, "tokens per micro-batch");
}
/// The tokens a rank's elementwise ops and MoE router see: 1/tp of them under sequence parallelism.
int64_t sp_tokens_per_microbatch(const ParallelConfig& p) {
  const int64_t tokens = tokens_per_microbatch(p);
  return p.sequence_parallel ? tokens / p.tp : tokens;
}

/// A stage's ops as the builder sees them: every op by its index in issue order, whether stored
/// or (in a compact stage) standing in a copied range, where its source op stands for it — the
/// builder reads only fields a copy shares with its source (stream, kind).
class OpList {
 public:
  explicit OpList(StagePlan& st) : st_(st) {}
  int32_t size() const { return n_; }
  const Op& operator[](int32_t i) const { return st_.ops[size_t(stored(i))]; }
  /// The last op emitted (an op, never a copy, when called after emit).
  Op& back() { return st_.ops.back(); }
  int32_t push(const Op& op) {
    st_.ops.push_back(op);
    if (op.stream == Stream::kDp) last_dp_ = n_;
    return n_++;
  }
  /// The last op on the DP stream, −1 if none.
  int32_t last_dp() const { return last_dp_; }
  /// Index in st_.ops of op i: a copied op's source op in a compact stage.
  int32_t stored(int32_t i) const {
    if (!st_.compact || st_.copies.empty() || i < st_.copies.front().begin) return i;
    const auto& c = st_.copies;
    if (i >= c.back().end) return i - skipped_after_.back();  // the usual case: an op after the last copy
    // The last range starting at or before i; skipped_after_[r]: copied ops up to its end.
    const size_t r = size_t(std::upper_bound(c.begin(), c.end(), i, [](int32_t x, const CopyRange& y) { return x < y.begin; }) -
                            c.begin()) - 1;
    if (i < c[r].end) return c[r].stored + (i - c[r].begin);
    return i - skipped_after_[r];
  }
  /// Records ops [size(), size() + n) as the copy `c` (already stored unless the stage is compact).
  /// `last_dp`: the copy's last op on the DP stream, −1 if none.
  void copied(const CopyRange& c, int32_t last_dp) {
    st_.copies.push_back(c);
    if (last_dp >= 0) last_dp_ = last_dp;
    n_ += c.end - c.begin;
    if (st_.compact) skipped_after_.push_back((skipped_after_.empty() ? 0 : skipped_after_.back()) + (c.end - c.begin));
  }
  void reserve(size_t n) { st_.ops.reserve(st_.ops.size() + n); }

 private:
  StagePlan& st_;
  int32_t n_ = 0;
  int32_t last_dp_ = -1;
  std::vector<int32_t> skipped_after_;  ///< compact: copied (unstored) ops up to the end of each range
};

/// Emits one stage's ops, keeping track of which compute op the next comm op reads and which comm
/// ops the next compute op must wait for.
class StageBuilder {
 public:
  StageBuilder(const ModelConfig& m, const ParallelConfig& p, StagePlan& stage, const std::vector<int64_t>& layers_per_chunk,
               bool copy_layers)
      : m_(m), p_(p), st_(stage), ops_(stage), layers_per_chunk_(layers_per_chunk), copy_layers_(copy_layers) {
    tokens_ = tokens_per_microbatch(p);
    sp_tokens_ = sp_tokens_per_microbatch(p);
    if (m.is_moe()) {
      a2a_ = moe_all_to_all(m, p), moe_ = moe_sizes(m, p);
      experts_fwd_ = expert_gemms(m, p, Phase::kForward), experts_bwd_ = expert_gemms(m, p, Phase::kBackward);
    }
    heads_ = m.num_attention_heads / p.tp;
    groups_ = m.num_query_groups / p.tp;
    d_ = m.kv_channels;
    h_ = m.hidden_size;
    // K and V widths per token on one tp rank (what CP exchanges): GQA's 2·groups·d, or under MLA
    // each head's up-projected key (qk_dim) and value (v_dim).
    kv_ = m.multi_latent_attention() ? heads_ * (m.qk_dim() + m.v_dim()) : 2 * groups_ * d_;
    // A pipeline message is one micro-batch's hidden states on this rank: 1/tp of them under
    // sequence parallelism or when Megatron-LM splits it over tp (p2p_split; whole if it does not
    // divide, as Megatron then overrides the split).
    const int64_t whole = checked_mul(checked_mul(sp_tokens_, h_, "activation message"), kActBytes, "activation message");
    split_msg_ = p.p2p_split() && (sp_tokens_ * h_) % p.tp == 0;
    act_msg_ = split_msg_ ? whole / p.tp : whole;
  }

  void build();

 private:
  int32_t emit(const Op& op) { return ops_.push(op); }
  void add_dep(Op& op, int32_t idx) const {
    op.add_dep(idx, ops_.size(), [this](int32_t i) { return ops_[i].stream; });
  }
  // A compute op waits for the comm ops the previous code path produced.
  int32_t compute(Op op) {
    op.stream = Stream::kCompute;
    for (int32_t d : pending_) add_dep(op, d);
    pending_.clear();
    if (overlap_ag_ >= 0 && op.kind == OpKind::kGemm) {
      op.overlap = {overlap_ag_, static_cast<int32_t>(p_.tp)};  // pipelined behind the all-gather feeding it
      overlap_ag_ = -1;
    }
    last_compute_ = emit(op);
    return last_compute_;
  }
  // A blocking comm op: reads the last compute op's output; the next compute op waits for it.
  int32_t comm(Op op, Stream s) {
    op.stream = s;
    op.kind = OpKind::kCollective;
    if (last_compute_ >= 0) add_dep(op, last_compute_);
    for (int32_t d : pending_) add_dep(op, d);
    pending_.clear();
    const int32_t idx = emit(op);
    pending_.push_back(idx);
    return idx;
  }

  Op base(OpName name, Phase ph, int64_t layer) const {
    Op op;
    op.name = name;
    op.phase = ph;
    op.layer = static_cast<int32_t>(layer);
    op.microbatch = static_cast<int32_t>(mb_);
    op.chunk = static_cast<int32_t>(chunk_);
    return op;
  }
  // A GEMM of gemm_op's shape (batch > 1: a grouped GEMM, one [m×k]·[k×n] per local expert).
  void emit_gemm(OpName name, Phase ph, int64_t layer, const Op& shape) {
    Op op = base(name, ph, layer);
    op.kind = OpKind::kGemm;
    op.m = shape.m, op.n = shape.n, op.k = shape.k, op.batch = shape.batch;
    op.wgrad = shape.wgrad;
    op.flops = shape.flops;
    op.bytes = shape.bytes;
    compute(op);
  }
  // A linear layer in forward, or its two backward GEMMs (linear_gemms).
  void linear(OpName name, Phase ph, int64_t layer, int64_t m, int64_t n, int64_t k, int64_t batch = 1) {
    for (const Op& g : linear_gemms(ph, m, n, k, batch)) emit_gemm(name, ph, layer, g);
  }
  void elementwise(OpName name, Phase ph, int64_t layer, int64_t bytes) {
    Op op = base(name, ph, layer);
    op.kind = OpKind::kElementwise;
    op.bytes = bytes;
    compute(op);
  }
  int32_t collective(OpName name, Phase ph, int64_t layer, CollKind kind, Group g, int64_t bytes, Stream s) {
    Op op = base(name, ph, layer);
    op.coll = kind;
    op.group = g;
    op.bytes = bytes;
    return comm(op, s);
  }
  // TP collective of one activation-sized tensor (skipped when tp == 1); returns its index (−1:
  // skipped). Under tp_comm_overlap a reduce-scatter is pipelined with the GEMM that produced it,
  // an all-gather with the next GEMM.
  int32_t tp_comm(OpName name, Phase ph, int64_t layer, CollKind kind, int64_t width = 0) {
    if (p_.tp == 1) return -1;
    const int32_t idx =
        collective(name, ph, layer, kind, Group::kTp, checked_mul(tokens_ * (width ? width : h_), kActBytes, "tp message"), Stream::kTp);
    if (!p_.tp_comm_overlap || kind == CollKind::kAllReduce) return idx;
    if (kind == CollKind::kReduceScatter && last_compute_ >= 0 && ops_[last_compute_].kind == OpKind::kGemm) {
      // Pipelined behind the GEMM producing it. Its only dependency is that GEMM (compute() has
      // just cleared pending_), which the overlap edge replaces.
      ops_.back().overlap = {last_compute_, static_cast<int32_t>(p_.tp)};
    } else if (kind == CollKind::kAllGather) {
      overlap_ag_ = idx;  // the next GEMM pairs with it
    }
    return idx;
  }
  /// `behind`: the CP K/V exchange the attention is pipelined behind (−1: none).
  void attention(Phase ph, int64_t layer, int32_t behind = -1) {
    Op op = base(OpName::kCoreAttention, ph, layer);
    if (behind >= 0) op.overlap = {behind, static_cast<int32_t>(p_.cp)};
    op.kind = OpKind::kAttention;
    op.batch = p_.micro_batch_size * heads_;
    op.m = p_.seq_length / p_.cp;                        // local queries
    op.n = m_.attended_keys(layer, p_.seq_length);      // keys: the sequence (CP exchanges K/V) or the window
    op.k = (m_.qk_dim() + m_.v_dim()) / 2;
    op.causal = true;
    op.fused = p_.flash_attention;
    op.dropout = m_.attention_dropout > 0;
    op.fa1 = p_.flash_attention_v1;  // read only on the flash path (CostModel::flash_efficiency)
    // QKᵀ and PV: 2·b·heads·s_q·s_k·(d_qk + d_v) forward (Narayanan SC21's 4Bs²h per layer at
    // cp=tp=1); backward twice that. Not halved for the causal mask, as in the papers' accounting.
    const double fwd = 2.0 * double(op.batch) * double(op.m) * double(op.n) * double(m_.qk_dim() + m_.v_dim());
    op.flops = ph == Phase::kBackward ? 2 * fwd : fwd;
    op.bytes = checked_mul(checked_mul(op.batch, (2 * op.m + 2 * op.n) * op.k, "attention bytes"), kActBytes, "attention bytes");
    compute(op);
  }

  void layer_forward(int64_t layer, Phase ph);
  void layer_backward(int64_t layer);
  void attention_forward(int64_t layer, Phase ph);
  void attention_backward(int64_t layer);
  struct MlpNames {
    OpName fc1, act, fc2;
  };
  static constexpr MlpNames kDenseNames{OpName::kFc1, OpName::kActivation, OpName::kFc2};
  static constexpr MlpNames kSharedNames{OpName::kSharedFc1, OpName::kSharedActivation, OpName::kSharedFc2};
  void mlp_forward(int64_t layer, Phase ph, int64_t width, const MlpNames& n);
  void mlp_backward(int64_t layer, int64_t width, const MlpNames& n);
  /// A column-parallel linear's GEMM shape ([m×k]·[k×n] forward).
  struct ColumnGemm {
    OpName name;
    int64_t m, n, k;
  };
  void column_backward(std::initializer_list<ColumnGemm> gemms, int64_t layer, int64_t width);
  void moe_forward(int64_t layer, Phase ph);
  void moe_backward(int64_t layer);
  void shared_experts(int64_t layer, Phase ph);
  void expert_comm(OpName name, Phase ph, int64_t layer, CollKind kind, Group g, int64_t bytes);
  void mtp_forward();
  void mtp_backward();
  // Which template a layer uses: its kind (forward/backward) × its variant (MoE or
  // dense, windowed or full attention): only layers of one variant are copies of each other.
  int variant(int64_t layer) const {
    return 2 * int(m_.is_moe_layer(layer)) + int(m_.attended_keys(layer, p_.seq_length) < p_.seq_length);
  }
  // Emits layer `layer` of the kind `kind` (kForwardLayer, kBackwardLayer)
  // through `derive`, or as a copy of the last layer of that kind (see LayerTemplate).
  template <typename Derive>
  void repeated_layer(int kind, int64_t layer, Derive derive);
  void embedding_forward();
  void embedding_backward();
  void head_forward();
  void head_backward();
  void forward_unit(int64_t mb, int64_t chunk);
  void backward_unit(int64_t mb, int64_t chunk);
  void grad_reduce(int64_t layer, int64_t params, int64_t expert_params = 0);
  void reduce_bucket(int group, int64_t layer, int64_t params);
  // The data-parallel group of bucket kind `b` and its size: dense gradients over dp·cp, routed
  // experts' over expert-DP (Megatron's expert_data_parallel_group).
  std::pair<Group, int64_t> dp_group(int b) const {
    return b == 0 ? std::pair<Group, int64_t>{Group::kDpCp, p_.dp * p_.cp} : std::pair<Group, int64_t>{Group::kEdp, p_.edp()};
  }
  void plan_buckets();
  void amax_reduce(Phase ph, int64_t chunk);
  void optimizer();

  int64_t global_chunk(int64_t chunk) const { return chunk * p_.pp + st_.pp_rank; }
  bool first_chunk(int64_t chunk) const { return global_chunk(chunk) == 0; }
  bool last_chunk(int64_t chunk) const { return global_chunk(chunk) == p_.pp * p_.vpp - 1; }
  int64_t stage_of(int64_t g) const { return g % p_.pp; }
  // Tag of the message entering global chunk g for micro-batch mb; dir 0 activations, 1 grads.
  int64_t tag(int64_t mb, int64_t g, int dir) const { return (mb * p_.pp * p_.vpp + g) * 2 + dir; }
  void send(OpName name, int64_t to_g, int dir) {
    Op op = base(name, Phase::kForward, -1);
    op.phase = dir ? Phase::kBackward : Phase::kForward;
    op.kind = OpKind::kSendRecv;
    op.stream = Stream::kPpSend;
    op.is_send = true;
    op.peer = static_cast<int32_t>(stage_of(to_g));
    op.tag = tag(mb_, to_g, dir);
    op.bytes = act_msg_;
    op.group = Group::kPp;
    if (last_compute_ >= 0) add_dep(op, last_compute_);
    // The chunk's amax reduction is on the stream the send is ordered behind (amax_reduce).
    if (amax_ >= 0) add_dep(op, amax_);
    amax_ = -1;
    const int32_t idx = emit(op);
    if (p_.p2p_blocking()) blocking_send_ = idx;
  }
  // Without overlap_p2p_comm Megatron posts a unit's send with the next transfer
  // (batch_isend_irecv), waits for both and calls torch.cuda.synchronize(): the compute stream
  // waits for the send and for the receive that opens the next unit (p2p_wait, a no-op on the
  // compute stream; its own time is one launch gap, kKernelOverheadS, as the GPU idles until the
  // host launches the next kernel). The receive itself never waits for the send: an NCCL send ends
  // only when its peer's receive runs, and two neighbours' receives each waiting for their own
  // sends would wait for each other.
  void p2p_wait(Phase ph) {
    if (blocking_send_ < 0) return;
    pending_.push_back(std::exchange(blocking_send_, -1));
    elementwise(OpName::kP2pWait, ph, -1, 0);
  }
  void recv(OpName name, int64_t from_g, int64_t my_g, int dir) {
    Op op = base(name, Phase::kForward, -1);
    op.phase = dir ? Phase::kBackward : Phase::kForward;
    op.kind = OpKind::kSendRecv;
    op.stream = Stream::kPpRecv;
    op.peer = static_cast<int32_t>(stage_of(from_g));
    op.tag = tag(mb_, my_g, dir);
    op.bytes = act_msg_;
    op.group = Group::kPp;
    pending_.push_back(emit(op));
    // Megatron-LM's gather_split_1d_tensor: the receiver all-gathers the 1/tp pieces over tp.
    if (split_msg_) collective(OpName::kP2pGather, op.phase, -1, CollKind::kAllGather, Group::kTp, act_msg_ * p_.tp, Stream::kTp);
  }

  const ModelConfig& m_;
  const ParallelConfig& p_;
  StagePlan& st_;
  OpList ops_;
  int32_t amax_ = -1;  ///< the unit's amax reduction, which its send waits for; −1: none
  /// Parameters of this stage's layers (dense and routed experts), without the embedding, the
  /// output head and the MTP modules: the weights FP8 casts once per step (build, optimizer).
  int64_t layer_params_ = 0;
  int32_t blocking_send_ = -1;  ///< the send the next p2p_wait waits for (p2p_blocking); −1: none
  bool split_msg_ = false;      ///< pipeline messages go in 1/tp pieces, all-gathered on receipt
  const std::vector<int64_t>& layers_per_chunk_;
  int64_t tokens_, sp_tokens_, heads_, groups_, d_, h_, kv_, act_msg_;
  Op a2a_;  ///< an MoE layer's dispatch / combine all-to-all (moe_all_to_all): its bytes and routing
  MoeSizes moe_;  ///< an MoE layer's sizes on this rank (moe_sizes)
  Gemms experts_fwd_, experts_bwd_;  ///< its routed experts' GEMMs (expert_gemms): fc1, fc2; fc2's then fc1's dgrad and wgrad
  int64_t mb_ = 0, chunk_ = 0;
  int32_t last_compute_ = -1;
  int32_t overlap_ag_ = -1;
  std::vector<int32_t> pending_;
  std::vector<int32_t> param_gather_;  // ZeRO-1: per global layer, the all-gather its first forward waits for
  /// One model chunk's DDP buckets (plan_buckets), per kind [dense over dp·cp, routed experts over
  /// expert-DP]: its items (the embedding, its layers, the head) in forward order, and the bucket
  /// sizes in backward order, the bucket still open when the chunk's backward ends last.
  struct ChunkBuckets {
    struct Item {
      int64_t layer = -1;                          ///< −1: the embedding or the head
      std::array<bool, 2> holds{};                 ///< holds parameters of the kind
      std::array<int64_t, 2> first_bucket{};       ///< the bucket its backward-first parameters open or join
      std::array<std::vector<int64_t>, 2> closes;  ///< sizes of the buckets its backward fills
    };
    std::vector<Item> items;
    std::array<std::vector<int64_t>, 2> sizes;
    std::array<int64_t, 2> left{};  ///< the open bucket at the chunk's end (reduced then), 0 if none
  };
  std::vector<ChunkBuckets> buckets_;  // per chunk
  int32_t embedding_gather_ = -1, head_gather_ = -1;  // ZeRO-1: the same for the embedding and the output head
  int64_t first_layer_ = 0;

  /// A layer's ops as first derived, to copy for the next layers of the same kind. A layer's ops
  /// differ from its predecessor's only in the layer, micro-batch and chunk fields and in their
  /// dependency indices, which shift by the distance between the two. Copying is used only where
  /// that holds by construction: the layer is entered with no pending comm op and no all-gather
  /// waiting for a GEMM, and every dependency pointing out of the template points at the compute
  /// op before it (`entry`), which maps to the compute op before the copy. Anything else is
  /// derived as before. tests/unit/test_plan.cpp holds copied plans equal to derived ones.
  struct LayerTemplate {
    std::vector<Op> ops;
    int32_t start = -1;  ///< index of ops[0] in the stage when derived; −1: none yet
    int32_t entry = -1;  ///< last_compute_ before it
    int32_t entry_pending = -1;  ///< the comm op pending before it, −1 if none
    int32_t stored = 0;  ///< index of ops[0] in StagePlan::ops
    int32_t exit_dp = -1;  ///< its last op on the DP stream, −1 if none
    int32_t exit_compute = -1, exit_overlap_ag = -1;  ///< last_compute_, overlap_ag_ after it
    std::vector<int32_t> exit_pending;                ///< pending_ after it
    double flops = 0;                                 ///< GEMM and attention FLOPs of its ops
  };
  enum { kForwardLayer, kBackwardLayer, kLayerKinds };
  static constexpr int kVariants = 4;
  bool copy_layers_;
  std::array<LayerTemplate, kLayerKinds * kVariants * 2> templates_;  // × entered with a pending op or not
};

template <typename Derive>
void StageBuilder::repeated_layer(int kind, int64_t layer, Derive derive) {
  const bool param_gather = kind == kForwardLayer && mb_ == 0 && !param_gather_.empty();
  // A layer entered with one comm op pending (the receive opening a unit) is copied from a
  // template entered the same way; its copies wait for their own pending op.
  const bool clean = copy_layers_ && pending_.size() <= 1 && overlap_ag_ < 0 && last_compute_ >= 0 && !param_gather;
  const int32_t in_pending = pending_.empty() ? -1 : pending_[0];
  LayerTemplate& t = templates_[(kind * kVariants + variant(layer)) * 2 + (in_pending >= 0)];
  if (clean && t.start >= 0) {
    const int32_t begin = ops_.size(), shift = begin - t.start;
    const CopyRange c{begin,        begin + int32_t(t.ops.size()), shift, last_compute_, t.entry, in_pending, t.entry_pending,
                      t.stored,     int32_t(layer),               int32_t(mb_), int32_t(chunk_), t.flops};
    pending_.clear();  // the copy's first compute op waits for it
    if (!st_.compact)
      for (const Op& src : t.ops) st_.ops.push_back(c.copy(src));
    ops_.copied(c, t.exit_dp < 0 ? -1 : t.exit_dp + shift);
    last_compute_ = t.exit_compute + shift;
    overlap_ag_ = t.exit_overlap_ag < 0 ? -1 : t.exit_overlap_ag + shift;
    for (int32_t d : t.exit_pending) pending_.push_back(d + shift);
    return;
  }
  const int32_t start = ops_.size(), entry = last_compute_;
  derive();
  if (!clean) return;
  // Keep it as the template only if every edge leaving it is the entry edge described above, and
  // no op off the DP stream waits for one on it (what makes a copy's timings its source's,
  // shifted: plan::CopyRange).
  const int32_t end = ops_.size();
  if (end == start || last_compute_ < start || (overlap_ag_ >= 0 && overlap_ag_ < start)) return;
  for (int32_t d : pending_)
    if (d < start) return;
  for (int32_t i = start; i < end; ++i) {
    const Op& op = ops_[i];
    if (op.overlap.partner >= 0 && (op.overlap.partner < start || ops_[op.overlap.partner].stream == Stream::kDp)) return;
    for (uint8_t d = 0; d < op.ndeps; ++d) {
      if (op.deps[d] < start && op.deps[d] != entry && op.deps[d] != in_pending) return;
      if (op.deps[d] >= start && op.stream != Stream::kDp && ops_[op.deps[d]].stream == Stream::kDp) return;
    }
  }
  // A derived layer is stored whole, in order: its ops are st_.ops[stored(start) ..].
  const int32_t stored = ops_.stored(start);
  t.ops.assign(st_.ops.begin() + stored, st_.ops.begin() + stored + (end - start));
  t.flops = 0;
  for (const Op& op : t.ops)
    if (op.kind == OpKind::kGemm || op.kind == OpKind::kAttention) t.flops += op.flops;
  t.start = start, t.entry = entry, t.entry_pending = in_pending, t.stored = stored;
  t.exit_dp = -1;
  for (int32_t i = start; i < end; ++i)
    if (t.ops[size_t(i - start)].stream == Stream::kDp) t.exit_dp = i;
  t.exit_compute = last_compute_, t.exit_overlap_ag = overlap_ag_, t.exit_pending = pending_;
}

void StageBuilder::layer_forward(int64_t layer, Phase ph) {
  const bool sp = p_.sequence_parallel;
  const int64_t Ts = sp_tokens_;
  if (ph == Phase::kForward && mb_ == 0 && !param_gather_.empty() && layer < m_.num_layers) {
    pending_.push_back(param_gather_[layer - first_layer_]);
  }
  attention_forward(layer, ph);
  elementwise(OpName::kPostAttnNorm, ph, layer, 5 * Ts * h_ * kActBytes);  // residual add + norm
  if (m_.is_moe_layer(layer)) {
    moe_forward(layer, ph);
  } else {
    if (sp) tp_comm(OpName::kSpAllGather, ph, layer, CollKind::kAllGather);
    mlp_forward(layer, ph, m_.ffn_hidden_size, kDenseNames);
  }
  elementwise(OpName::kResidual, ph, layer, 3 * Ts * h_ * kActBytes);
}

void StageBuilder::attention_forward(int64_t layer, Phase ph) {
  const bool sp = p_.sequence_parallel;
  const int64_t T = tokens_, Ts = sp_tokens_;
  elementwise(OpName::kInputNorm, ph, layer, 2 * Ts * h_ * kActBytes);
  if (!m_.multi_latent_attention()) {
    if (sp) tp_comm(OpName::kSpAllGather, ph, layer, CollKind::kAllGather);
    linear(OpName::kQkv, ph, layer, T, heads_ * d_ + 2 * groups_ * d_, h_);
  } else {
    // MLA (DeepSeek-V2 §2.1; Megatron MLASelfAttention): the replicated down-projections run on
    // the sequence-parallel shard, their (small) latents are all-gathered over tp, then the
    // column-parallel up-projections produce this rank's heads. Without a query latent the
    // queries come straight from the hidden state, which is gathered as well.
    const int64_t ql = m_.q_lora_rank, down = ql + m_.kv_lora_rank + m_.qk_pos_emb_head_dim;
    linear(OpName::kMlaDown, ph, layer, Ts, down, h_);
    if (sp) tp_comm(OpName::kSpAllGather, ph, layer, CollKind::kAllGather, down + (ql > 0 ? 0 : h_));
    linear(OpName::kMlaUp, ph, layer, T, heads_ * m_.qk_dim(), ql > 0 ? ql : h_);
    linear(OpName::kMlaUp, ph, layer, T, heads_ * (m_.qk_head_dim + m_.v_head_dim), m_.kv_lora_rank);
  }
  int32_t kv = -1;
  if (p_.cp > 1) {
    // Ring attention exchanges every peer's K and V: an all-gather of the K/V shards on the cp
    // group, which Transformer Engine runs as cp − 1 peer-to-peer steps, each computing on the
    // chunk it holds while the next arrives (AttnFuncWithCPAndKVP2P): attention is pipelined
    // behind the exchange in cp pieces (an overlap edge).
    collective(OpName::kCpKv, ph, layer, CollKind::kAllGather, Group::kCp, checked_mul(T * kv_, kActBytes * p_.cp, "cp kv"),
               Stream::kCp);
    kv = ops_.size() - 1;
  }
  attention(ph, layer, kv);
  linear(OpName::kAttnProj, ph, layer, T, h_, heads_ * m_.v_dim());
  tp_comm(OpName::kTpReduce, ph, layer, sp ? CollKind::kReduceScatter : CollKind::kAllReduce);
}

void StageBuilder::attention_backward(int64_t layer) {
  const bool sp = p_.sequence_parallel;
  const Phase B = Phase::kBackward;
  const int64_t T = tokens_, Ts = sp_tokens_;
  if (sp) tp_comm(OpName::kSpAllGather, B, layer, CollKind::kAllGather);  // bwd of proj's reduce-scatter
  linear(OpName::kAttnProj, B, layer, T, h_, heads_ * m_.v_dim());
  if (p_.recompute == Recompute::kSelective) attention(Phase::kRecompute, layer);
  attention(B, layer);
  if (p_.cp > 1) {
    // The K/V gradients travel the ring back while the next chunk's backward runs: the
    // reduce-scatter is pipelined behind the attention backward that produces it (its only
    // dependency, which the overlap edge replaces).
    collective(OpName::kCpKv, B, layer, CollKind::kReduceScatter, Group::kCp, checked_mul(T * kv_, kActBytes * p_.cp, "cp kv"),
               Stream::kCp);
    ops_.back().overlap = {last_compute_, static_cast<int32_t>(p_.cp)};
  }
  if (!m_.multi_latent_attention()) {
    column_backward({{OpName::kQkv, T, heads_ * d_ + 2 * groups_ * d_, h_}}, layer, h_);
  } else {
    const int64_t ql = m_.q_lora_rank, down = ql + m_.kv_lora_rank + m_.qk_pos_emb_head_dim;
    column_backward({{OpName::kMlaUp, T, heads_ * (m_.qk_head_dim + m_.v_head_dim), m_.kv_lora_rank},
                     {OpName::kMlaUp, T, heads_ * m_.qk_dim(), ql > 0 ? ql : h_}},
                    layer, down + (ql > 0 ? 0 : h_));
    linear(OpName::kMlaDown, B, layer, Ts, down, h_);
  }
  elementwise(OpName::kInputNorm, B, layer, 4 * Ts * h_ * kActBytes);
}

// A tp-split MLP of width `width` (Megatron's ColumnParallel FC1, RowParallel FC2): the dense
// MLP and the shared experts. Under SP the caller has all-gathered the input in forward.
void StageBuilder::mlp_forward(int64_t layer, Phase ph, int64_t width, const MlpNames& n) {
  const int64_t T = tokens_, f_local = width / p_.tp;
  linear(n.fc1, ph, layer, T, f_local * (m_.mlp_matrices() - 1), h_);
  elementwise(n.act, ph, layer, T * f_local * m_.activation_passes(false) * kActBytes);
  linear(n.fc2, ph, layer, T, h_, f_local);
  tp_comm(OpName::kTpReduce, ph, layer, p_.sequence_parallel ? CollKind::kReduceScatter : CollKind::kAllReduce);
}

void StageBuilder::mlp_backward(int64_t layer, int64_t width, const MlpNames& n) {
  const bool sp = p_.sequence_parallel;
  const Phase B = Phase::kBackward;
  const int64_t T = tokens_, f_local = width / p_.tp;
  if (sp) tp_comm(OpName::kSpAllGather, B, layer, CollKind::kAllGather);  // bwd of FC2's reduce-scatter
  linear(n.fc2, B, layer, T, h_, f_local);
  elementwise(n.act, B, layer, T * f_local * m_.activation_passes(true) * kActBytes);
  column_backward({{n.fc1, T, f_local * (m_.mlp_matrices() - 1), h_}}, layer, h_);
}

// A column-parallel linear's backward (QKV, FC1, the output layer, the MTP projection; MLA's two
// up-projections, whose input gradients Megatron reduces as one here) with its TP communication
// over inputs `width` wide: under SP an all-gather of the input again for the wgrad, and the
// dgrad's all-reduce (reduce-scatter under SP). With async_tp_comm (Megatron's LinearWithGrad-
// AccumulationAndAsyncCommunication, TE's Linear / LayerNormLinear): the gather runs beside the
// dgrad GEMM and only the wgrad waits for it; the reduction reads the dgrad and runs beside the
// wgrad GEMM, and the next op waits for it. Without it (Megatron-LM before 2021-08), in series.
// Under tp_comm_overlap TE's userbuffers do the same with the SMs they take from the GEMMs; the
// plan keeps its chunked edges there (each collective pipelined with a GEMM, 1/tp of it exposed),
// which the DGXC fit rows prefer to a free overlap (rms log error 0.0236 against 0.0255;
// docs/validation.md).
void StageBuilder::column_backward(std::initializer_list<ColumnGemm> gemms, int64_t layer, int64_t width) {
  const Phase B = Phase::kBackward;
  const bool sp = p_.sequence_parallel;
  const CollKind reduce = sp ? CollKind::kReduceScatter : CollKind::kAllReduce;
  if (!p_.async_tp_comm || p_.tp_comm_overlap || p_.tp == 1) {
    if (sp) tp_comm(OpName::kWgradGather, B, layer, CollKind::kAllGather, width);
    for (const auto& g : gemms) linear(g.name, B, layer, g.m, g.n, g.k);
    tp_comm(OpName::kTpReduce, B, layer, reduce, width);
    return;
  }
  int32_t gather = -1;
  if (sp) {
    auto earlier = std::exchange(pending_, {});  // the dgrads still wait for these, not for the gather
    gather = tp_comm(OpName::kWgradGather, B, layer, CollKind::kAllGather, width);
    pending_ = std::move(earlier);
  }
  for (const auto& g : gemms) emit_gemm(g.name, B, layer, linear_gemms(B, g.m, g.n, g.k).op[0]);  // dgrad
  tp_comm(OpName::kTpReduce, B, layer, reduce, width);
  auto reduction = std::exchange(pending_, {});
  if (gather >= 0) pending_.push_back(gather);
  for (const auto& g : gemms) emit_gemm(g.name, B, layer, linear_gemms(B, g.m, g.n, g.k).op[1]);  // wgrad
  pending_ = std::move(reduction);
}

void StageBuilder::expert_comm(OpName name, Phase ph, int64_t layer, CollKind kind, Group g, int64_t bytes) {
  Op op = base(name, ph, layer);
  op.coll = kind;
  op.group = g;
  op.bytes = bytes;
  if (kind == CollKind::kAllToAll) op.route_topk = a2a_.route_topk, op.route_node_limit = a2a_.route_node_limit;
  comm(op, Stream::kEp);
}

// Shared experts (Megatron SharedExpertMLP, a tp-split MLP of their summed width) run beside the
// token dispatch (--moe-shared-expert-overlap): the comm ops held in pending_ (the dispatch) are
// set aside while they are emitted, so they start without waiting for it, and the next compute
// op waits for both.
void StageBuilder::shared_experts(int64_t layer, Phase ph) {
  const int64_t fs = m_.moe_shared_expert_intermediate_size;
  if (fs == 0) return;
  std::vector<int32_t> held;
  held.swap(pending_);
  if (ph != Phase::kBackward) {
    if (p_.sequence_parallel) tp_comm(OpName::kSpAllGather, ph, layer, CollKind::kAllGather);
    mlp_forward(layer, ph, fs, kSharedNames);
  } else {
    mlp_backward(layer, fs, kSharedNames);
  }
  pending_.insert(pending_.end(), held.begin(), held.end());
}

// An MoE layer's MLP block (Megatron-Core MoELayer with the alltoall token dispatcher, parallel
// folding): the router scores this rank's sequence-parallel tokens, the top-k copies of each are
// permuted into expert order and dispatched by an all-to-all over ep, all-gathered over etp, run
// through the local experts as grouped GEMMs, reduce-scattered over etp, combined by the reverse
// all-to-all and un-permuted (weighted sum of the k outputs). With ep = 1 and etp > 1 this is
// Megatron's allgather dispatcher. Under balanced routing each rank receives as many copies as it
// sends; the hottest expert holds moe_imbalance × the mean, and its rank sets the pace.
void StageBuilder::moe_forward(int64_t layer, Phase ph) {
  const MoeSizes& z = moe_;
  const int64_t E = m_.num_moe_experts, Td = sp_tokens_;
  const Gemms& experts = experts_fwd_;  // the recompute's forward too
  linear(OpName::kRouter, ph, layer, Td, E, h_);
  elementwise(OpName::kRouter, ph, layer, Td * E * 12);  // fp32 softmax / top-k over the logits
  elementwise(OpName::kPermute, ph, layer, z.permute);
  if (p_.ep > 1) expert_comm(OpName::kDispatch, ph, layer, CollKind::kAllToAll, Group::kEp, z.a2a);
  shared_experts(layer, ph);
  if (p_.etp > 1) expert_comm(OpName::kExpertGather, ph, layer, CollKind::kAllGather, Group::kEtp, z.a2a * p_.etp);
  emit_gemm(OpName::kExpertFc1, ph, layer, experts.op[0]);
  elementwise(OpName::kExpertActivation, ph, layer, z.local * z.per_expert * z.f * m_.activation_passes(false) * kActBytes);
  emit_gemm(OpName::kExpertFc2, ph, layer, experts.op[1]);
  if (p_.etp > 1) expert_comm(OpName::kExpertScatter, ph, layer, CollKind::kReduceScatter, Group::kEtp, z.a2a * p_.etp);
  if (p_.ep > 1) expert_comm(OpName::kCombine, ph, layer, CollKind::kAllToAll, Group::kEp, z.a2a);
  elementwise(OpName::kUnpermute, ph, layer, z.permute);
}

void StageBuilder::moe_backward(int64_t layer) {
  const Phase B = Phase::kBackward;
  const MoeSizes& z = moe_;
  const int64_t E = m_.num_moe_experts, Td = sp_tokens_;
  const Gemms& experts = experts_bwd_;
  elementwise(OpName::kUnpermute, B, layer, z.permute);
  if (p_.ep > 1) expert_comm(OpName::kCombine, B, layer, CollKind::kAllToAll, Group::kEp, z.a2a);
  if (p_.etp > 1) expert_comm(OpName::kExpertScatter, B, layer, CollKind::kAllGather, Group::kEtp, z.a2a * p_.etp);
  emit_gemm(OpName::kExpertFc2, B, layer, experts.op[0]);
  emit_gemm(OpName::kExpertFc2, B, layer, experts.op[1]);
  elementwise(OpName::kExpertActivation, B, layer, z.local * z.per_expert * z.f * m_.activation_passes(true) * kActBytes);
  emit_gemm(OpName::kExpertFc1, B, layer, experts.op[2]);
  emit_gemm(OpName::kExpertFc1, B, layer, experts.op[3]);
  if (p_.etp > 1) expert_comm(OpName::kExpertGather, B, layer, CollKind::kReduceScatter, Group::kEtp, z.a2a * p_.etp);
  if (p_.ep > 1) expert_comm(OpName::kDispatch, B, layer, CollKind::kAllToAll, Group::kEp, z.a2a);
  shared_experts(layer, B);
  elementwise(OpName::kPermute, B, layer, z.permute);
  elementwise(OpName::kRouter, B, layer, Td * E * 12);
  linear(OpName::kRouter, B, layer, Td, E, h_);
}

void StageBuilder::layer_backward(int64_t layer) {
  const Phase B = Phase::kBackward;
  const int64_t Ts = sp_tokens_;
  if (p_.recompute == Recompute::kFull) layer_forward(layer, Phase::kRecompute);
  elementwise(OpName::kResidual, B, layer, 3 * Ts * h_ * kActBytes);
  if (m_.is_moe_layer(layer)) moe_backward(layer);
  else mlp_backward(layer, m_.ffn_hidden_size, kDenseNames);
  elementwise(OpName::kPostAttnNorm, B, layer, 6 * Ts * h_ * kActBytes);
  attention_backward(layer);
}

void StageBuilder::embedding_forward() {
  // Vocab-parallel embedding: each tp rank looks up its vocabulary slice, then an all-reduce
  // (reduce-scatter under SP) sums the slices.
  if (mb_ == 0 && embedding_gather_ >= 0) pending_.push_back(embedding_gather_);
  elementwise(OpName::kEmbedding, Phase::kForward, -1, tokens_ * h_ * kActBytes);
  tp_comm(OpName::kTpReduce, Phase::kForward, -1, p_.sequence_parallel ? CollKind::kReduceScatter : CollKind::kAllReduce);
}

void StageBuilder::embedding_backward() {
  // The lookup's backward reads the output gradient and scatters it into a dense [V/tp × h] bf16
  // weight gradient (PyTorch's embedding_dense_backward zero-fills it: 2 B, then writes it: 2 B);
  // Megatron's DDP hook then adds it to the main gradient (read g + 2, write g; g = 4 B in fp32,
  // 2 B under --grad-reduce-in-bf16) — no GEMM epilogue can fuse this accumulation, unlike the
  // linear layers' (gradient_accumulation_fusion).
  const int64_t dense = checked_mul(m_.vocab_size / p_.tp, h_, "embedding grad elements");
  const int64_t per_element = 6 + 2 * p_.grad_bytes();
  elementwise(OpName::kEmbedding, Phase::kBackward, -1,
              checked_add(2 * tokens_ * h_ * kActBytes, checked_mul(dense, per_element, "embedding grad bytes"), "embedding grad bytes"));
}

void StageBuilder::head_forward() {
  const int64_t v_local = m_.vocab_size / p_.tp;
  if (mb_ == 0 && head_gather_ >= 0) pending_.push_back(head_gather_);
  elementwise(OpName::kFinalNorm, Phase::kForward, -1, 2 * sp_tokens_ * h_ * kActBytes);
  if (p_.sequence_parallel) tp_comm(OpName::kSpAllGather, Phase::kForward, -1, CollKind::kAllGather);
  linear(OpName::kLogits, Phase::kForward, -1, tokens_, v_local, h_);
  // Megatron's vocab_parallel_cross_entropy runs unfused in fp32 over the [tokens × V/tp] logits:
  // cast bf16→fp32 (2 + 4 B), max (4), subtract (4 + 4), exp (4 + 4), sum (4), normalise and keep
  // the softmax for backward (4 + 4): 38 bytes per logit forward; plus small tp all-reduces of the
  // max and the sum (3 fp32 values per token).
  elementwise(OpName::kCrossEntropy, Phase::kForward, -1, checked_mul(tokens_ * v_local, 38, "cross entropy bytes"));
  if (p_.tp > 1) collective(OpName::kTpReduce, Phase::kForward, -1, CollKind::kAllReduce, Group::kTp, tokens_ * 12, Stream::kTp);
}

void StageBuilder::head_backward() {
  const int64_t v_local = m_.vocab_size / p_.tp;
  // Backward: softmax − one-hot (4 + 4 B) and the cast of the gradient to bf16 (4 + 2): 14 B per logit.
  elementwise(OpName::kCrossEntropy, Phase::kBackward, -1, checked_mul(tokens_ * v_local, 14, "cross entropy bytes"));
  column_backward({{OpName::kLogits, tokens_, v_local, h_}}, -1, h_);
  elementwise(OpName::kFinalNorm, Phase::kBackward, -1, 4 * sp_tokens_ * h_ * kActBytes);
}

// Multi-token prediction (DeepSeek-V3 §2.2; Megatron MultiTokenPredictionLayer) on the last
// stage: per module, RMSNorm of the hidden state and of the next token's embedding, their
// concatenation projected 2h → h (column-parallel, gathered back to the sequence-parallel layout),
// one transformer layer of the last layer's kind, and the shared output head and loss.
void StageBuilder::mtp_forward() {
  const bool sp = p_.sequence_parallel;
  for (int64_t d = 0; d < m_.mtp_num_layers; ++d) {
    const int64_t layer = m_.num_layers + d;
    elementwise(OpName::kInputNorm, Phase::kForward, layer, 4 * sp_tokens_ * h_ * kActBytes);
    if (sp) tp_comm(OpName::kSpAllGather, Phase::kForward, layer, CollKind::kAllGather, 2 * h_);
    linear(OpName::kMtpProj, Phase::kForward, layer, tokens_, h_ / p_.tp, 2 * h_);
    if (sp) tp_comm(OpName::kSpAllGather, Phase::kForward, layer, CollKind::kAllGather);
    layer_forward(layer, Phase::kForward);
    head_forward();
  }
}

void StageBuilder::mtp_backward() {
  const bool sp = p_.sequence_parallel;
  for (int64_t d = m_.mtp_num_layers - 1; d >= 0; --d) {
    const int64_t layer = m_.num_layers + d;
    head_backward();
    layer_backward(layer);
    if (sp) tp_comm(OpName::kTpReduce, Phase::kBackward, layer, CollKind::kReduceScatter);
    column_backward({{OpName::kMtpProj, tokens_, h_ / p_.tp, 2 * h_}}, layer, 2 * h_);
    elementwise(OpName::kInputNorm, Phase::kBackward, layer, 8 * sp_tokens_ * h_ * kActBytes);
  }
}

void StageBuilder::reduce_bucket(int group, int64_t layer, int64_t params) {
  // One bucket's reduction over its data-parallel group (dp_group), on the dp stream.
  const auto [dp, ranks] = dp_group(group);
  if (ranks == 1 || params == 0) return;
  Op op = base(OpName::kGradReduce, Phase::kBackward, layer);
  op.kind = OpKind::kCollective;
  op.stream = Stream::kDp;
  op.coll = grad_reduction(p_);
  op.group = dp;
  op.bytes = checked_mul(params, p_.grad_bytes(), "gradient bytes");
  if (last_compute_ >= 0) add_dep(op, last_compute_);
  emit(op);
}

void StageBuilder::grad_reduce(int64_t layer, int64_t params, int64_t expert_params) {
  reduce_bucket(0, layer, params);
  reduce_bucket(1, layer, expert_params);
}

// Megatron's DDP (distributed_data_parallel.py, r0.8) packs a model chunk's parameters, in reverse
// order of definition (the order the backward produces their gradients), into buckets of at least
// bucket_size = max(40 M, 1 M × data-parallel size) parameters (the whole chunk without
// --overlap-grad-reduce, bucket_size None): a bucket closes at the first parameter that fills it,
// so a parameter larger than a bucket is a bucket of its own. Here parameters come in the weight
// groups a layer adds one by one (layer_param_groups). Under --overlap-grad-reduce a bucket is
// reduced once its last gradient is ready, i.e. after the backward of the item that closes it; the
// one left open is reduced when the chunk's backward ends. ZeRO-1 gathers the same buckets.
void StageBuilder::plan_buckets() {
  const int64_t bucket = p_.overlap_grad_reduce ? std::max<int64_t>(40'000'000, 1'000'000 * p_.dp * p_.cp) : INT64_MAX;
  buckets_.assign(size_t(p_.vpp), {});
  for (int64_t c = 0; c < p_.vpp; ++c) {
    ChunkBuckets& cb = buckets_[size_t(c)];
    std::vector<std::vector<int64_t>> groups;  // per item: dense weight groups in backward order
    std::vector<int64_t> experts;              // per item: routed-expert parameters
    auto item = [&](int64_t layer, std::vector<int64_t> dense, int64_t routed) {
      cb.items.push_back({layer, {true, routed > 0}, {}, {}});
      groups.push_back(std::move(dense)), experts.push_back(routed);
    };
    if (first_chunk(c)) item(-1, {model::embedding_params_per_rank(m_, p_.tp)}, 0);
    for (int64_t layer : st_.chunk_layers[size_t(c)])
      item(layer, model::layer_param_groups(m_, layer, p_.tp), model::expert_params_per_rank(m_, layer, p_.ep, p_.etp));
    if (last_chunk(c))
      item(-1, {model::head_params_per_rank(m_, p_.tp) + model::mtp_params_per_rank(m_, p_.tp)},
           m_.mtp_num_layers * model::expert_params_per_rank(m_, m_.num_layers, p_.ep, p_.etp));
    std::array<int64_t, 2> open{};
    for (size_t i = cb.items.size(); i-- > 0;) {
      ChunkBuckets::Item& it = cb.items[i];
      it.first_bucket = {int64_t(cb.sizes[0].size()), int64_t(cb.sizes[1].size())};
      auto add = [&](int b, int64_t params) {
        open[b] += params;
        if (open[b] < bucket) return;
        cb.sizes[b].push_back(open[b]);
        it.closes[b].push_back(std::exchange(open[b], 0));
      };
      for (int64_t g : groups[i]) add(0, g);
      if (it.holds[1]) add(1, experts[i]);
    }
    cb.left = open;
    for (int b = 0; b < 2; ++b)
      if (open[b] > 0) cb.sizes[b].push_back(open[b]);
  }
}

// Transformer Engine's delayed scaling (recipe reduce_amax, the default) all-reduces the amaxes
// its FP8 modules recorded over the amax group, Megatron's tensor-and-data-parallel group with
// context parallelism (this stage's tp·cp·dp ranks): once when the fp8_autocast region around a
// chunk's transformer layers exits in forward, once when that region's backward ends
// (FP8GlobalStateManager.reduce_and_update_fp8_tensors, synchronous unless
// NVTE_ASYNC_AMAX_REDUCTION). The buffer is one fp32 per scaled tensor: input and weight of every
// linear layer forward, the output gradient backward (4 linear layers per layer, plus 2 per local
// expert), a few hundred bytes, so each reduction is latency-bound; across thousands of ranks it
// is a tree over the nodes at every micro-batch and chunk, which the next compute op and the
// unit's pipeline send wait for (Megatron sends the chunk's output after forward_step returns,
// behind the reduction on the compute stream).
void StageBuilder::amax_reduce(Phase ph, int64_t chunk) {
  const int64_t ranks = p_.tp * p_.cp * p_.dp;
  if (p_.precision != config::Precision::kFp8 || ranks == 1) return;
  int64_t linears = 0;
  for (int64_t layer : st_.chunk_layers[chunk])
    linears += 4 + (m_.is_moe_layer(layer) ? 2 * (m_.num_moe_experts / p_.ep) : 0);
  if (linears == 0) return;
  const int64_t per_linear = ph == Phase::kForward ? 2 : 1;
  collective(OpName::kAmaxReduce, ph, -1, CollKind::kAllReduce, Group::kTpCpDp, checked_mul(linears * per_linear, 4, "amax bytes"),
             Stream::kTp);
  amax_ = int32_t(ops_.size()) - 1;
}

void StageBuilder::forward_unit(int64_t mb, int64_t chunk) {
  mb_ = mb, chunk_ = chunk;
  amax_ = -1;
  const int64_t g = global_chunk(chunk);
  if (!first_chunk(chunk)) recv(OpName::kRecvActivation, g - 1, g, 0);
  p2p_wait(Phase::kForward);
  if (first_chunk(chunk)) embedding_forward();
  for (int64_t layer : st_.chunk_layers[chunk])
    repeated_layer(kForwardLayer, layer, [&] { layer_forward(layer, Phase::kForward); });
  amax_reduce(Phase::kForward, chunk);
  if (last_chunk(chunk)) {
    head_forward();
    mtp_forward();
  } else {
    send(OpName::kSendActivation, g + 1, 0);
  }
}

void StageBuilder::backward_unit(int64_t mb, int64_t chunk) {
  mb_ = mb, chunk_ = chunk;
  amax_ = -1;
  const int64_t g = global_chunk(chunk);
  // --overlap-grad-reduce: the last micro-batch's backward reduces the chunk's buckets as they fill
  // (plan_buckets), each after the item that closes it, the open one at the end.
  const bool reduce = mb == p_.num_microbatches() - 1 && p_.overlap_grad_reduce;
  const ChunkBuckets& cb = buckets_[size_t(chunk)];
  auto reduce_closed = [&](const ChunkBuckets::Item& item) {
    if (!reduce) return;
    for (int b = 0; b < 2; ++b)
      for (int64_t size : item.closes[b]) reduce_bucket(b, item.layer, size);
  };
  if (!last_chunk(chunk)) recv(OpName::kRecvGrad, g + 1, g, 1);
  p2p_wait(Phase::kBackward);
  if (last_chunk(chunk)) {
    mtp_backward();
    head_backward();
    reduce_closed(cb.items.back());
  }
  const auto& layers = st_.chunk_layers[chunk];
  const size_t first_layer_item = first_chunk(chunk) ? 1 : 0;  // items: [embedding,] layers[, head]
  for (size_t k = layers.size(); k-- > 0;) {
    repeated_layer(kBackwardLayer, layers[k], [&] { layer_backward(layers[k]); });
    reduce_closed(cb.items[first_layer_item + k]);
  }
  amax_reduce(Phase::kBackward, chunk);
  if (first_chunk(chunk)) {
    embedding_backward();
    reduce_closed(cb.items.front());
  } else {
    send(OpName::kSendGrad, g - 1, 1);
  }
  if (reduce)
    for (int b = 0; b < 2; ++b) reduce_bucket(b, -1, cb.left[b]);
}

void StageBuilder::optimizer() {
  mb_ = -1, chunk_ = 0;
  // finalize_model_grads and the optimizer run after the schedule's last transfer has completed.
  p2p_wait(Phase::kOptimizer);
  // Without --overlap-grad-reduce Megatron reduces after the stage's last backward
  // (finalize_model_grads → finish_grad_sync, one bucket): every stage on its own, at the end.
  if (!p_.overlap_grad_reduce) grad_reduce(-1, st_.params, st_.expert_params);
  // A tied word embedding lives on the first and the last stage; Megatron sums its two gradient
  // copies after the whole pipeline's backward and the DP reduction (finalize_model_grads), so
  // both end stages meet here, after every send and receive of the step: placed earlier it would
  // deadlock the pipeline.
  const bool holds_embedding = first_chunk(0) || last_chunk(p_.vpp - 1);
  if (m_.tie_embeddings && p_.pp > 1 && holds_embedding) {
    collective(OpName::kEmbeddingGrad, Phase::kBackward, -1, CollKind::kAllReduce, Group::kEmbedding,
               checked_mul(model::embedding_params_per_rank(m_, p_.tp), p_.grad_bytes(), "embedding grad"), Stream::kDp);
    pending_.clear();
  }
  // The optimizer waits for every gradient reduction on this rank (the last op on the dp stream).
  if (ops_.last_dp() >= 0) pending_.push_back(ops_.last_dp());
  // The optimizer step (optimizer_step_bytes), plus under FP8 the once-per-step cast of the
  // layers' weights (kFp8WeightCastBytes; the embedding and the output layer stay bf16). The
  // cast belongs to the next step's first forward; on the compute stream between two steps its
  // place does not change the step.
  const int64_t cast_params = p_.precision == config::Precision::kFp8 ? layer_params_ : 0;
  const int64_t bytes = checked_add(optimizer_step_bytes(p_, st_.params, st_.expert_params),
                                    checked_mul(cast_params, kFp8WeightCastBytes, "weight cast bytes"), "optimizer bytes");
  elementwise(OpName::kOptimizerStep, Phase::kOptimizer, -1, bytes);
  ops_.back().phase = Phase::kOptimizer;
}

void StageBuilder::build() {
  // Which global layers live in each of this stage's chunks.
  st_.chunk_layers.assign(p_.vpp, {});
  int64_t first = 0;
  for (int64_t g = 0; g < p_.pp * p_.vpp; ++g) {
    if (stage_of(g) == st_.pp_rank) {
      for (int64_t l = 0; l < layers_per_chunk_[g]; ++l) st_.chunk_layers[g / p_.pp].push_back(first + l);
    }
    first += layers_per_chunk_[g];
  }
  st_.params = 0;
  st_.expert_params = 0;
  layer_params_ = 0;
  for (int64_t c = 0; c < p_.vpp; ++c) {
    for (int64_t layer : st_.chunk_layers[c]) {
      const int64_t dense = model::layer_params_per_rank(m_, layer, p_.tp);
      const int64_t experts = model::expert_params_per_rank(m_, layer, p_.ep, p_.etp);
      st_.params = checked_add(st_.params, dense, "stage parameters");
      st_.expert_params = checked_add(st_.expert_params, experts, "stage parameters");
      layer_params_ = checked_add(layer_params_, checked_add(dense, experts, "stage parameters"), "stage parameters");
    }
    if (first_chunk(c)) st_.params += model::embedding_params_per_rank(m_, p_.tp);
    if (last_chunk(c)) {
      st_.params += model::head_params_per_rank(m_, p_.tp) + model::mtp_params_per_rank(m_, p_.tp);
      st_.expert_params += m_.mtp_num_layers * model::expert_params_per_rank(m_, m_.num_layers, p_.ep, p_.etp);
    }
  }
  plan_buckets();
  // ZeRO-1 (distributed optimizer): every bf16 parameter this stage holds is all-gathered from its
  // dp shards, bucket by bucket (plan_buckets) in forward order: the embedding, each layer, the
  // output head (and MTP modules). With --overlap-param-gather Megatron overlaps this with the
  // first micro-batch's forward, so in steady state the step starts with these all-gathers on the
  // dp stream, each first forward waiting for its parameters' buckets; the embedding's, needed by
  // the step's first op, is always exposed. Without it the whole all-gather runs after the
  // optimizer step: every first forward waits for the last one (the dp stream is in order), the
  // same exposure at the start of the step.
  if (p_.gathers_params()) {
    for (int64_t c = 0; c < p_.vpp; ++c) {
      const ChunkBuckets& cb = buckets_[size_t(c)];
      // Forward order: gather each bucket before the first item that needs it (its highest-
      // numbered bucket first); an item waits for the last of its own.
      std::array<std::vector<int32_t>, 2> gathered = {std::vector<int32_t>(cb.sizes[0].size(), -1),
                                                      std::vector<int32_t>(cb.sizes[1].size(), -1)};
      std::array<int64_t, 2> next = {int64_t(cb.sizes[0].size()) - 1, int64_t(cb.sizes[1].size()) - 1};
      for (const ChunkBuckets::Item& item : cb.items) {
        int32_t wait = -1;
        for (int b = 0; b < 2; ++b) {
          if (!item.holds[b]) continue;
          for (; next[b] >= item.first_bucket[b]; --next[b]) {
            if (dp_group(b).second == 1) continue;
            Op op = base(OpName::kParamGather, Phase::kForward, item.layer);
            op.kind = OpKind::kCollective;
            op.stream = Stream::kDp;
            op.coll = CollKind::kAllGather;
            op.group = dp_group(b).first;
            op.microbatch = -1;
            op.bytes = checked_mul(cb.sizes[b][size_t(next[b])], kParamBytes, "param gather");
            gathered[b][size_t(next[b])] = emit(op);
          }
          if (item.first_bucket[b] < int64_t(gathered[b].size()))
            wait = std::max(wait, gathered[b][size_t(item.first_bucket[b])]);
        }
        if (item.layer >= 0) param_gather_.push_back(wait);
        else if (first_chunk(c) && &item == &cb.items.front()) embedding_gather_ = wait;
        else head_gather_ = wait;
      }
    }
    if (!p_.overlap_param_gather) {
      const int32_t last = ops_.last_dp();
      for (int32_t& g : param_gather_) g = last;
      if (embedding_gather_ >= 0) embedding_gather_ = last;
      if (head_gather_ >= 0) head_gather_ = last;
    }
  }
  first_layer_ = st_.chunk_layers[0].empty() ? 0 : st_.chunk_layers[0].front();
  // param_gather_ is indexed by (layer - first_layer_) only when chunks are contiguous (vpp == 1);
  // with vpp > 1 build a dense lookup instead.
  if (!param_gather_.empty() && p_.vpp > 1) {
    std::vector<int32_t> dense;
    int64_t lo = INT64_MAX, hi = -1;
    for (const auto& ch : st_.chunk_layers)
      for (int64_t l : ch) lo = std::min(lo, l), hi = std::max(hi, l);
    dense.assign(hi - lo + 1, -1);
    size_t i = 0;
    for (const auto& ch : st_.chunk_layers)
      for (int64_t l : ch) dense[l - lo] = param_gather_[i++];
    param_gather_ = dense;
    first_layer_ = lo;
  }
  // Reserve an upper bound of the op count (≤ 48 ops per layer and unit, ≤ 16 around them) so the
  // list is written once instead of regrown: at 10^5 ops regrowth was a third of the build time.
  const auto order = schedule_order(p_, st_.pp_rank);
  size_t layers = 0;
  for (const auto& ch : st_.chunk_layers) layers = std::max(layers, ch.size());
  ops_.reserve(order.size() * ((m_.is_moe() ? 96 : 48) * layers + 16) + 4 * layers * size_t(p_.vpp) + 16);
  for (const ScheduleItem& item : order) {
    if (item.forward) forward_unit(item.microbatch, item.chunk);
    else backward_unit(item.microbatch, item.chunk);
  }
  optimizer();
  st_.compact_size = ops_.size();
}

}  // namespace

std::vector<ScheduleItem> schedule_order(const ParallelConfig& p, int64_t rank) {
  const int64_t m = p.num_microbatches();
  std::vector<ScheduleItem> out;
  switch (p.schedule()) {
    case config::Schedule::kNoPipelining:
      for (int64_t i = 0; i < m; ++i) out.push_back({i, 0, true}), out.push_back({i, 0, false});
      break;
    case config::Schedule::kOneFOneB: {
      // Narayanan et al. SC21 §2.2.1 / Megatron forward_backward_pipelining_without_interleaving.
      const int64_t warmup = std::min(p.pp - rank - 1, m);
      for (int64_t i = 0; i < warmup; ++i) out.push_back({i, 0, true});
      for (int64_t i = 0; i < m - warmup; ++i) out.push_back({warmup + i, 0, true}), out.push_back({i, 0, false});
      for (int64_t i = m - warmup; i < m; ++i) out.push_back({i, 0, false});
      break;
    }
    case config::Schedule::kInterleaved1F1B: {
      // Megatron forward_backward_pipelining_with_interleaving: virtual micro-batch k runs chunk
      // (k mod pp·vpp) / pp, micro-batch (k / (pp·vpp))·pp + k mod pp; backward visits chunks in
      // reverse.
      const int64_t total = m * p.vpp;
      int64_t warmup = (m == p.pp) ? total : std::min((p.pp - rank - 1) * 2 + (p.vpp - 1) * p.pp, total);
      auto item = [&](int64_t k, bool fwd) {
        const int64_t in_group = k % (p.pp * p.vpp);
        int64_t chunk = in_group / p.pp;
        if (!fwd) chunk = p.vpp - 1 - chunk;
        return ScheduleItem{(k / (p.pp * p.vpp)) * p.pp + k % p.pp, chunk, fwd};
      };
      for (int64_t k = 0; k < warmup; ++k) out.push_back(item(k, true));
      for (int64_t k = 0; k < total - warmup; ++k) out.push_back(item(warmup + k, true)), out.push_back(item(k, false));
      for (int64_t k = total - warmup; k < total; ++k) out.push_back(item(k, false));
      break;
    }
  }
  return out;
}

int64_t optimizer_step_bytes(const ParallelConfig& p, int64_t params, int64_t expert_params) {
  const int64_t shard = p.optimizer_shards(), expert_shard = p.expert_optimizer_shards();
  const int64_t shard_params = (params + shard - 1) / shard + (expert_params + expert_shard - 1) / expert_shard;
  return checked_add(checked_mul(shard_params, kAdamBytesPerParam, "optimizer bytes"),
                     checked_mul(checked_add(params, expert_params, "grad buffer"), p.grad_bytes(), "grad buffer bytes"), "optimizer bytes");
}

Op gemm_op(int64_t m, int64_t n, int64_t k, bool wgrad, int64_t batch) {
  Op op;
  op.kind = OpKind::kGemm;
  op.m = m, op.n = n, op.k = k, op.batch = batch;
  op.wgrad = wgrad;
  op.flops = 2.0 * double(batch) * double(m) * double(n) * double(k);  // 2mnk per group
  op.bytes = checked_mul(checked_mul(checked_add(checked_add(checked_mul(m, k, "gemm"), checked_mul(k, n, "gemm"), "gemm"),
                                                 checked_mul(m, n, "gemm"), "gemm"),
                                     kActBytes, "gemm bytes"),
                         batch, "gemm bytes");
  return op;
}

Gemms linear_gemms(Phase ph, int64_t m, int64_t n, int64_t k, int64_t batch) {
  Gemms g;
  if (ph == Phase::kBackward) {
    g.op[0] = gemm_op(m, k, n, false, batch);  // dgrad: [m×n]·[n×k]
    g.op[1] = gemm_op(k, n, m, true, batch);   // wgrad: [k×m]·[m×n]
    g.size = 2;
  } else {
    g.op[0] = gemm_op(m, n, k, false, batch);
    g.size = 1;
  }
  return g;
}

MoeSizes moe_sizes(const ModelConfig& model, const ParallelConfig& parallel) {
  const int64_t sp_tokens = sp_tokens_per_microbatch(parallel);
  MoeSizes z;
  z.local = model.num_moe_experts / parallel.ep;
  z.f = model.moe_ffn_hidden_size / parallel.etp;
  const int64_t copies = checked_mul(sp_tokens, model.moe_router_topk, "moe tokens");  // routed copies leaving this rank
  const int64_t arriving = int64_t(std::ceil(double(copies) * double(parallel.etp) * parallel.moe_imbalance));  // at the hottest rank
  z.per_expert = (arriving + z.local - 1) / z.local;
  z.a2a = moe_all_to_all(model, parallel).bytes;
  z.permute = checked_mul(checked_mul(sp_tokens, model.hidden_size, "permute bytes"), kActBytes * (1 + model.moe_router_topk),
                          "permute bytes");
  return z;
}

Gemms expert_gemms(const ModelConfig& model, const ParallelConfig& parallel, Phase ph) {
  const MoeSizes z = moe_sizes(model, parallel);
  const int64_t h = model.hidden_size, fc1 = z.f * (model.mlp_matrices() - 1);
  Gemms g;
  if (ph == Phase::kBackward) {
    g.add(linear_gemms(ph, z.per_expert, h, z.f, z.local));
    g.add(linear_gemms(ph, z.per_expert, fc1, h, z.local));
  } else {
    g.add(linear_gemms(ph, z.per_expert, fc1, h, z.local));
    g.add(linear_gemms(ph, z.per_expert, h, z.f, z.local));
  }
  return g;
}

Op moe_all_to_all(const ModelConfig& model, const ParallelConfig& parallel) {
  const int64_t sp_tokens = sp_tokens_per_microbatch(parallel);
  const int64_t copies = checked_mul(sp_tokens, model.moe_router_topk, "moe tokens");  // routed copies leaving this rank
  Op op;
  op.kind = OpKind::kCollective;
  op.coll = CollKind::kAllToAll;
  op.group = Group::kEp;
  op.bytes = int64_t(std::ceil(double(checked_mul(checked_mul(copies, model.hidden_size, "dispatch bytes"), kActBytes, "dispatch bytes")) *
                               parallel.moe_imbalance));
  if (parallel.moe_token_dispatcher == config::Dispatcher::kFlex) {
    op.route_topk = uint8_t(std::min<int64_t>(255, model.moe_router_topk));
    op.route_node_limit = uint8_t(std::min<int64_t>(255, model.moe_router_num_groups > 0 ? model.moe_router_group_topk : 0));
  }
  return op;
}

void build_plan(const ModelConfig& model, const ParallelConfig& parallel, Plan& plan, const BuildOptions& options) {
  plan.model = model;
  plan.parallel = parallel;
  plan.layers_per_chunk = model::chunk_layers(model, parallel);
  plan.stages.resize(parallel.pp);
  for (int64_t s = 0; s < parallel.pp; ++s) {
    plan.stages[s].pp_rank = s;
    plan.stages[s].ops.clear();  // keeps its capacity
    plan.stages[s].copies.clear();
    plan.stages[s].compact = options.compact && options.copy_layers;
    StageBuilder(model, parallel, plan.stages[s], plan.layers_per_chunk, options.copy_layers).build();
  }
}

Plan build_plan(const ModelConfig& model, const ParallelConfig& parallel, const BuildOptions& options) {
  Plan plan;
  build_plan(model, parallel, plan, options);
  return plan;
}

}  // namespace capscale::plan
