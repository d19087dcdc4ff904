// Search for the best parallel configuration that fits memory, ranked by tokens/s per chip, and,
// when nothing fits, why (each plan shape counted under the first rule it breaks) and the nearest
// chip counts and batch sizes at which something does. Knobs the user fixed are not varied.
// Searched: tp (powers of two up to the NVLink domain), cp (powers of two with seq divisible by
// 2·cp), pp (1..layers, at most 128), vpp (1..layers/pp: the layer split takes any pp·vpp ≤ layers,
// uneven chunks included), micro-batch 1..8 (MoE: 1), ep (MoE), sequence parallelism, ZeRO 0/1,
// recompute none/selective/full.
// Pruning that cannot lose the optimum. The timeline engine is max-plus (an op starts at the max of
// its queue and its dependencies' ends and ends a duration later), so a step never gets shorter
// when an op is added or lengthened; the arguments below rest on that, for the simulated step
// (predict() folds long micro-batch loops, which is exact once the pipeline is in steady state):
// - TP comm overlap is tried on and off under sequence parallelism. It differs by overlap edges,
//   which never make an op later, but a column-parallel backward without it runs its reduction and
//   wgrad all-gather whole beside the GEMMs (async_tp_comm, builder.cpp column_backward) where
//   the overlap pipelines them in chunks with 1/tp exposed, so neither provably wins;
// - recompute none is never slower than selective (one attention op more in the compute queue,
//   depending on nothing but the queue) or full (a forward pass more before each layer's backward),
//   and needs the most memory: when none fits only none is tried; otherwise selective and full
//   (full re-runs attention at another place in the queue, so neither provably wins) or full alone;
// - not pruned, tried on and off: sequence parallelism (saves elementwise time and memory, but adds
//   backward's wgrad all-gathers and trades each all-reduce for a reduce-scatter + all-gather) and
//   ZeRO-1 (the same gradient bytes, but its all-gather half moves to the next step's first forward,
//   where each layer waits for its parameters, and the optimizer step shrinks), the latter only
//   where there is a data-parallel group to shard over (otherwise the plans are the same: ZeRO-1);
// - branch and bound: every candidate gets a lower bound on its step time (lower_bound_s: the work
//   on the average stage's compute chain, times the pipeline fill 1 + (pp−1)/(vpp·m) of an ideal
//   1F1B schedule, Narayanan et al. SC21 §2.2); candidates are timed in order of that bound and
//   the search stops once the bound exceeds the k-th best step found (the global batch is fixed,
//   so a shorter step is more tokens/s per chip). The chain's work: GEMMs at the chip's best
//   sustained rate (plain dense models: with the cost model's thin-GEMM derating; MoE: the routed
//   experts' grouped GEMMs timed exactly), core attention, what the CP K/V exchange pipelined
//   with it adds, the MoE token combines and dispatches (a dispatch less the shared experts beside
//   it), the elementwise kernels and the blocking TP collectives (for other models, those outside
//   an overlap, by layer kind); the optimizer step; as a bound of its own, each stage's
//   data-parallel stream with its optimizer step after it; on more
//   than one node, the slowest node's wait (apply_node_jitter) on the GEMMs, core attention and
//   elementwise kernels of the fewest layers any stage holds; and the host's step-boundary gap (apply_host_step_gap). Those terms mirror
//   plan/builder.cpp; a change there must keep them a bound
//   (BranchAndBoundFindsTheBestOfEveryCandidate holds the pruned search to the unpruned one;
//   SearchBeatsEveryRandomlyDrawnValidPlan checks it against sampled plans). With the old bound
//   (matmul FLOPs only) this space timed ~7,000 plans for 70B on 1,024 H100 (30 s); with these
//   ~450 (1.4 s); once the straggler wait was shipped in every step, ~1,000 (1.7 s) until the bound
//   had it too: ~500 (0.9 s); with the last stage's own chain (its layers and the whole output
//   layer; for every model since 2026-12-03) as a second bound, 165 (0.25 s). What is left is mostly the pipeline's
//   send/receive time, which grows with vpp while the fill term shrinks, and exposed DP traffic.
//   The CP term had counted the K/V exchange whole, as if blocking, which put the bound above the
//   timed step where the cp ring crosses nodes and the exchange outlasts the attention (70B at tp 4
//   · cp 16; SearchLowerBoundIsNeverAboveThePredictedStep): with the pipelined pair's bound the
//   same 70B search times 375 (0.5 s). DeepSeek-V3 on 2,048 H100 (docs/moe.md) timed 5,866 plans
//   (12 s) while the bound left out the dispatches beside its shared expert, 2,394 (8 s) with them,
//   1,048 (3 s) with its routed experts' GEMMs timed whole (at small ep a rank's expert wgrads
//   move every local expert's fp32 gradient per micro-batch: steps of 20–60 s bounded at 3–5 s),
//   239 (0.6 s) with its MTP module on the last stage too. A stage's data-parallel stream (below)
//   takes GPT-OSS-120B on 1,024 H100 from 1,800 to 1,496.
#include <algorithm>
#include <array>
#include <cstdlib>
#include <limits>
#include <map>

#include "common/error.hpp"
#include "predict/predictor.hpp"

namespace capscale::predict {
namespace {

struct Candidate {
  config::ParallelConfig p;
  double lower_bound_s = 0;
};

double lower_bound_s(const config::ModelConfig& m, const config::ChipProfile& chip, const config::ParallelConfig& p,
                     double gemm_efficiency, bool calibrated, const Calibration* calibration, double jitter_factor) {
  // Matmul FLOPs per token (6 per weight; full recompute re-runs the layers' forward: +2).
  const double h = double(m.hidden_size);
  // Per token, over the layers; the routed experts' GEMMs are timed whole below (expert_s).
  auto weights_of = [&](int64_t l) { return model::matmul_weights_per_layer(m, l) - model::routed_weights_per_layer(m, l); };
  double weights = 0;
  for (int64_t l = 0; l < m.num_layers; ++l) weights += weights_of(l);
  const double per_weight = p.recompute == config::Recompute::kFull ? 8.0 : 6.0;
  const double flops_per_token = weights * per_weight + 6.0 * double(m.vocab_size) * h;
  const double tokens = double(p.global_batch_size) * double(p.seq_length);
  // The cost model derates a GEMM by x/(x+64) per dimension (cost_model.cpp, roofline_gemm_time).
  // In a dense model without MLA or MTP every linear's three GEMMs (forward, dgrad, wgrad) have
  // the same three dimensions: a micro-batch's tokens on this rank (T = mbs·seq/cp), the hidden
  // size and the linear's tp-split width (plan/builder.cpp), so each is derated by exactly these.
  // Otherwise no derating is assumed (a calibration's measured fractions carry none either).
  auto fill = [](double x) { return x / (x + 64.0); };
  const int64_t T = p.micro_batch_size * (p.seq_length / p.cp);
  // Plain: every layer alike (no MoE, MLA, MTP or mix of windowed and full attention), so the
  // last-stage bound below may take the average layer's work per layer.
  bool uniform = true;
  for (int64_t l = 1; l < m.num_layers; ++l) uniform = uniform && m.attended_keys(l, p.seq_length) == m.attended_keys(0, p.seq_length);
  const bool plain = !m.is_moe() && !m.multi_latent_attention() && m.mtp_num_layers == 0 && uniform;
  const double eff = std::max(gemm_efficiency, chip.gemm_efficiency(p.precision)) * chip.efficiency.sustained;
  const double rate = chip.peak_flops(p.precision) * eff;
  double compute = flops_per_token * tokens / double(p.world()) / rate;
  // The output layer's share of `compute` (the average stage's 1/pp of it; the last stage runs it all).
  double head = 6.0 * double(m.vocab_size) * h * tokens / double(p.world()) / rate;
  if (plain && !calibrated) {
    const double d = double(m.kv_channels), tp = double(p.tp), mats = double(m.mlp_matrices());
    const double heads = double(m.num_attention_heads / p.tp), groups = double(m.num_query_groups / p.tp);
    const double f = double(m.ffn_hidden_size / p.tp), H = double(m.num_attention_heads) * d;
    const double layer = h * (H + 2.0 * double(m.num_query_groups) * d) / fill((heads + 2.0 * groups) * d) +
                         H * h / fill(heads * d) + h * f * tp * (mats - 1.0) / fill(f * (mats - 1.0)) + h * f * tp / fill(f);
    const double head_flops = 6.0 * double(m.vocab_size) * h / fill(double(m.vocab_size / p.tp));
    const double per_flop = tokens / double(p.world()) / (rate * fill(double(T)) * fill(h));
    compute = (layer * double(m.num_layers) * per_weight + head_flops) * per_flop;
    head = head_flops * per_flop;
  }
  // Core attention (cost_model.cpp, attention_time), never calibrated: per sequence and layer
  // 2·heads·s·keys·(d_qk + d_v) forward, twice that backward, once more under any recompute (core
  // passes); flash attention executes half of it (the causal mask) at the attention fraction,
  // unfused attention all of it at the GEMM fraction; in bf16 under FP8.
  auto attention_flops = [&](int64_t l) {  // forward, one sequence
    return 2.0 * double(m.num_attention_heads) * double(p.seq_length) * double(m.attended_keys(l, p.seq_length)) *
           double(m.qk_dim() + m.v_dim());
  };
  const double core = p.recompute == config::Recompute::kNone ? 3.0 : 4.0;
  double attn = 0;
  for (int64_t l = 0; l < m.num_layers; ++l) attn += attention_flops(l);
  attn *= core;
  const double attn_peak = p.precision == config::Precision::kFp8 && chip.supports(config::Precision::kBf16)
                               ? chip.peak_flops(config::Precision::kBf16)
                               : chip.peak_flops(p.precision);
  const CostModel cost(chip, p.precision, parallel::Layout(p.tp, p.cp, p.dp, p.pp, p.ep, p.etp), calibration, p.grad_bytes(),
                       CommCtas::of(p));
  // The rate CostModel::flash_efficiency gives a flash attention op of this plan (exact, so the
  // bound stays tight); doubled for the causal half it skips.
  plan::Op flash;
  flash.dropout = m.attention_dropout > 0, flash.fa1 = p.flash_attention_v1;
  const double attn_rate = p.flash_attention ? 2.0 * attn_peak * cost.flash_efficiency(flash)
                                             : attn_peak * chip.efficiency.gemm * chip.efficiency.sustained;
  compute += attn * double(p.global_batch_size) / double(p.world()) / attn_rate;
  // An MoE layer's routed experts run as grouped GEMMs over few tokens each (an expert's share of
  // the micro-batch's routed copies), thin in one dimension, and their wgrads read and write the
  // fp32 main gradient of every local expert's weights each micro-batch: often HBM-bound (a
  // rank holding many experts at small ep). So they are timed as the builder's own ops
  // (plan::expert_gemms) by the plan's cost model, exactly; per MoE layer and micro-batch, the
  // forward(s) and the backward.
  const double forwards = p.recompute == config::Recompute::kFull ? 2.0 : 1.0;  // forward passes of a layer
  const double micro = double(p.num_microbatches());
  double expert_s = 0;
  if (m.is_moe()) {
    for (const plan::Op& g : plan::expert_gemms(m, p, plan::Phase::kForward)) expert_s += forwards * cost.duration(g);
    for (const plan::Op& g : plan::expert_gemms(m, p, plan::Phase::kBackward)) expert_s += cost.duration(g);
    compute += expert_s * double(m.num_moe_layers()) / double(p.pp) * micro;
  }
  // The slowest node's wait (apply_node_jitter) is jitter_factor = σ·E[max of the nodes' normals]
  // times the critical stage's compute, elementwise and bubble time; its compute is at least the
  // GEMMs and core attention of the decoder layers it holds, each at least its FLOPs at the best
  // rate (no thin-GEMM derating). Whichever stage is critical holds at least the fewest layers of
  // any stage (model::chunk_layers: uneven chunks and pipeline layouts included), each at least the cheapest layer.
  const auto chunks = model::chunk_layers(m, p);
  auto layers_of = [&](int64_t stage) {
    int64_t held = 0;
    for (int64_t c = 0; c < p.vpp; ++c) held += chunks[size_t(c * p.pp + stage)];
    return held;
  };
  int64_t fewest_layers = m.num_layers;
  for (int64_t s = 0; s < p.pp; ++s) fewest_layers = std::min(fewest_layers, layers_of(s));
  // fn(stage, layer) for every decoder layer: global chunk g, on stage g % pp, holds the chunks[g]
  // layers after those of the chunks before it.
  auto for_each_placed_layer = [&](auto&& fn) {
    int64_t first = 0;
    for (size_t g = 0; g < chunks.size(); ++g) {
      for (int64_t l = first; l < first + chunks[g] && l < m.num_layers; ++l) fn(int64_t(g) % p.pp, l);
      first += chunks[g];
    }
  };
  // A layer's GEMMs at the best rate and its core attention, per rank of its stage (its work is
  // split over the stage's tp·cp·dp ranks, world / pp of them), over the step.
  const double per_rank = double(p.pp) / double(p.world());
  auto layer_work = [&](int64_t l) {
    return (weights_of(l) * per_weight * tokens / rate + core * attention_flops(l) * double(p.global_batch_size) / attn_rate) *
               per_rank +
           (m.is_moe_layer(l) ? expert_s * micro : 0.0);
  };
  double jitter = 0;
  if (jitter_factor > 0) {
    double cheapest = std::numeric_limits<double>::infinity();
    for (int64_t l = 0; l < m.num_layers; ++l) cheapest = std::min(cheapest, layer_work(l));
    jitter = jitter_factor * double(fewest_layers) * cheapest;
  }
  // Context parallelism's K/V all-gather before each layer's attention and its reduce-scatter after
  // attention's backward (plan/builder.cpp) are pipelined with that attention in n = cp pieces
  // (ring attention, an overlap edge: timeline.cpp, overlapped). The pair then takes at least
  // max(a + c/n, c + a/n) of the stage's chain from the op before it, for attention a and
  // collective c (the attention starts a piece after the gather, the reduce-scatter a piece after
  // the attention backward, and each ends a piece after the other), which grows with both: at a's
  // lower bound (the attention term above) it is a bound, and what it adds to that term is
  // max(c/n, c − a(1 − 1/n)). Full recompute gathers once more. Per layer and micro-batch (the
  // average stage holds 1/pp of the layers). (Counted whole, as blocking, until 2026-12-03: above the timed step for plans
  // whose cp ring crosses nodes, e.g. 70B at tp 4 · cp 16.)
  plan::Op op;
  op.kind = plan::OpKind::kCollective;
  auto time_of = [&](plan::CollKind kind, parallel::Group g, int64_t bytes) {
    op.coll = kind, op.group = g, op.bytes = bytes;
    return cost.duration(op);
  };
  const double layers_per_stage = double(m.num_layers) / double(p.pp);
  double a2a_per_moe_layer = 0;  // per micro-batch, on the compute chain
  // Per layer (the decoder's, then the MTP modules' own layers) and micro-batch, on the compute chain.
  const int64_t all_layers = m.num_layers + m.mtp_num_layers;
  std::vector<double> cp_of_layer(size_t(all_layers), 0.0);
  if (p.cp > 1) {
    const int64_t kv = m.multi_latent_attention() ? m.num_attention_heads / p.tp * (m.qk_dim() + m.v_dim())
                                                  : 2 * m.num_query_groups / p.tp * m.kv_channels;
    const double gather = time_of(plan::CollKind::kAllGather, parallel::Group::kCp, T * kv * 2 * p.cp);
    const double scatter = time_of(plan::CollKind::kReduceScatter, parallel::Group::kCp, T * kv * 2 * p.cp);
    const double n = double(p.cp);
    auto beside = [&](double c, double a) { return std::max(c / n, c - a * (1.0 - 1.0 / n)); };
    double sum = 0;
    for (int64_t l = 0; l < all_layers; ++l) {
      // This rank's forward attention per micro-batch: its heads (÷ tp) and queries (÷ cp).
      const double a = attention_flops(l) * double(p.micro_batch_size) / double(p.tp * p.cp) / attn_rate;
      cp_of_layer[size_t(l)] = forwards * beside(gather, a) + beside(scatter, 2.0 * a);
      if (l < m.num_layers) sum += cp_of_layer[size_t(l)];
    }
    compute += sum / double(p.pp) * micro;
  }
  // An MoE layer's token combine is blocking too (builder.cpp, moe_forward / moe_backward): the
  // un-permute after it in the forward and the expert fc2 after it in the backward wait for it,
  // with nothing of theirs beside it; a full recompute's forward runs it once more. So is the
  // dispatch, unless shared experts run beside it: then the pair (dispatch d, shared experts s,
  // both after the permute, the expert GEMMs after both) takes max(d, s) of the chain, which at s's
  // lower bound (its GEMMs at the best rate, already in `compute`) adds max(0, d − s); s is
  // 2·mats·T·h·fs/tp FLOPs forward (the tp-split shared MLP on the micro-batch's T tokens), twice
  // that backward. The op is the builder's own (plan::moe_all_to_all).
  if (m.is_moe() && p.ep > 1) {
    const double a2a = cost.duration(plan::moe_all_to_all(m, p));
    const int64_t fs = m.moe_shared_expert_intermediate_size;
    if (fs > 0) {
      const double shared = 2.0 * double(m.mlp_matrices()) * double(T) * h * double(fs / p.tp) / rate;
      a2a_per_moe_layer = a2a * (forwards + 1.0) + forwards * std::max(0.0, a2a - shared) + std::max(0.0, a2a - 2.0 * shared);
    } else {
      a2a_per_moe_layer = a2a * 2.0 * (forwards + 1.0);
    }
    compute += a2a_per_moe_layer * double(m.num_moe_layers()) / double(p.pp) * micro;
  }
  // Tensor parallelism's collectives are blocking in the same way. Per block (the attention block,
  // or a dense MLP; a plain layer has both): without SP an all-reduce after its row-parallel linear
  // forward and its column-parallel one's backward (1 + 1); with SP an all-gather and a
  // reduce-scatter forward, 2 + 1 backward. Under TP comm overlap an op pipelined with a GEMM in tp
  // chunks still adds at least 1/tp of its time to the chain (timeline.cpp, overlapped: a
  // reduce-scatter ends a chunk after its GEMM; a GEMM after an all-gather starts a chunk after
  // it). With async_tp_comm and no overlap a column-parallel backward's reduction and wgrad
  // all-gather run beside its GEMMs (builder.cpp, column_backward) and may hide whole: only the
  // all-gather before the row-parallel backward stays (1 with SP, none without). Under MLA, whose
  // gathers before the up-projections carry latents, only the projection's h-wide reduction and
  // its backward's gather are counted.
  double block_tp = 0, mla_tp = 0;  // per block and micro-batch, forward(s) and backward
  if (p.tp > 1) {
    const int64_t bytes = T * m.hidden_size * 2;
    double forward = 0, backward = 0;
    if (p.sequence_parallel) {
      const double ag = time_of(plan::CollKind::kAllGather, parallel::Group::kTp, bytes);
      const double rs = time_of(plan::CollKind::kReduceScatter, parallel::Group::kTp, bytes);
      forward = ag + rs, backward = p.async_tp_comm && !p.tp_comm_overlap ? ag : 2 * ag + rs;
      mla_tp = rs * forwards + ag;
      if (p.tp_comm_overlap) forward /= double(p.tp), backward /= double(p.tp), mla_tp /= double(p.tp);
    } else {
      forward = time_of(plan::CollKind::kAllReduce, parallel::Group::kTp, bytes);
      backward = p.async_tp_comm ? 0.0 : forward;
      mla_tp = forward * forwards;
    }
    block_tp = forward * forwards + backward;
  }
  // Elementwise kernels (plan/builder.cpp) run on the compute stream too: every layer's norms and
  // residuals (forward 2 + 5 + 3, backward 3 + 6 + 4 times Ts·h bf16) and a dense MLP's activation.
  const int64_t Ts = p.sequence_parallel ? T / p.tp : T, u = Ts * m.hidden_size * 2, fl = m.ffn_hidden_size / p.tp;
  auto ew = [&](int64_t bytes) { return cost.elementwise_time(bytes); };
  const double common = (ew(2 * u) + ew(5 * u) + ew(3 * u)) * forwards + ew(3 * u) + ew(6 * u) + ew(4 * u);
  const double dense_ew = ew(T * fl * m.activation_passes(false) * 2) * forwards + ew(T * fl * m.activation_passes(true) * 2);
  // Other models' kernels and collectives per layer and micro-batch (for the last stage's bound).
  std::vector<double> layer_ew(size_t(all_layers), 0.0), layer_tp(size_t(all_layers), 0.0);
  if (plain) {
    // A plain layer: both blocks' collectives and kernels; and the output layer's cross entropy (38
    // + 14 bytes per logit) on the last stage (its 1/pp share on the average stage).
    const int64_t logits = T * (m.vocab_size / p.tp);
    const double cross_entropy = (ew(logits * 38) + ew(logits * 14)) / double(p.pp) * micro;
    compute += (2 * block_tp + common + dense_ew) * layers_per_stage * micro + cross_entropy;
    head += cross_entropy;
    // The critical stage's elementwise time (other_s) counts in the slowest node's wait too.
    jitter += jitter_factor * double(fewest_layers) * (common + dense_ew) * micro;
  } else {
    // Other models (MoE, MLA, MTP, mixed attention): the same by the layer's kind, wherever the
    // builder runs them outside an overlap: an MoE block adds its router scores, permute, un-permute
    // and expert activation (at least the mean rank's copies), but not its shared experts' kernels
    // and collectives, which run beside the dispatch and are bounded with it above.
    double moe_ew = 0;
    if (m.is_moe()) {
      const int64_t k = m.moe_router_topk, scores = Ts * m.num_moe_experts * 12, permute = u * (1 + k);
      const int64_t experts = Ts * k * p.etp * (m.moe_ffn_hidden_size / p.etp);  // activation elements, ≥ the mean rank's
      moe_ew = (ew(scores) + 2 * ew(permute) + ew(experts * m.activation_passes(false) * 2)) * forwards + ew(scores) +
               2 * ew(permute) + ew(experts * m.activation_passes(true) * 2);
    }
    double sum = 0, cheapest = std::numeric_limits<double>::infinity();
    for (int64_t l = 0; l < all_layers; ++l) {
      const bool moe = m.is_moe_layer(l);
      layer_ew[size_t(l)] = common + (moe ? moe_ew : dense_ew);
      layer_tp[size_t(l)] = (m.multi_latent_attention() ? mla_tp : block_tp) + (moe ? 0.0 : block_tp);
      if (l >= m.num_layers) continue;
      sum += layer_ew[size_t(l)] + layer_tp[size_t(l)];
      cheapest = std::min(cheapest, layer_ew[size_t(l)]);
    }
    compute += sum / double(p.pp) * micro;
    jitter += jitter_factor * double(fewest_layers) * cheapest * micro;
  }
  // Any one stage's compute stream runs all of its compute ops one after another, so the step is at
  // least the last stage's: its layers (a plain model's are all alike: the average stage's layer
  // work per layer) and the whole output layer with its cross entropy. Where the output layer
  // outweighs the pipeline fill this is the tighter bound (pp 8 with 10 layers a stage: ~10 %).
  double last_stage = 0;
  if (plain) {
    const double per_layer = (compute - head) / (double(m.num_layers) / double(p.pp));
    last_stage = per_layer * double(layers_of(p.pp - 1)) + head * double(p.pp);
  } else {
    // Otherwise (layers of several kinds: dense and MoE, windowed and full) the last stage's own
    // layers, each with the terms `compute` gives it on the average stage: its GEMMs at the best
    // rate, its core attention and its blocking CP and MoE collectives; and the whole output layer.
    // The MTP modules run there too (builder.cpp, mtp_forward): each its own layer (of index
    // num_layers + d, as the builder counts it), its 2h → h projection (12 h² FLOPs per token over
    // forward and backward, split over the stage's ranks) and the shared output layer once more.
    auto stage_layer = [&](int64_t l) {
      const double comm = cp_of_layer[size_t(l)] + (m.is_moe_layer(l) ? a2a_per_moe_layer : 0.0) + layer_tp[size_t(l)];
      return layer_work(l) + (comm + layer_ew[size_t(l)]) * micro;
    };
    for_each_placed_layer([&](int64_t stage, int64_t l) {
      if (stage == p.pp - 1) last_stage += stage_layer(l);
    });
    const double projection = 12.0 * h * h * tokens * per_rank / rate;
    for (int64_t l = m.num_layers; l < all_layers; ++l) last_stage += stage_layer(l) + projection + head * double(p.pp);
    last_stage += head * double(p.pp);
  }
  const double fill_pipe = 1.0 + double(p.pp - 1) / double(p.vpp * p.num_microbatches());
  // Each stage's parameters on one rank, dense and routed experts (builder.cpp, build: its layers,
  // the embedding on the first stage, the output layer and MTP modules on the last). A layer's
  // count depends only on whether it is an MoE layer, so each kind is counted once.
  std::array<int64_t, 2> layer_params{}, layer_experts{};  // [dense layer, MoE layer]
  for (int moe = 0; moe < 2; ++moe) {
    int64_t l = 0;
    while (l < m.num_layers && m.is_moe_layer(l) != bool(moe)) ++l;
    if (l == m.num_layers) continue;
    layer_params[size_t(moe)] = model::layer_params_per_rank(m, l, p.tp);
    layer_experts[size_t(moe)] = model::expert_params_per_rank(m, l, p.ep, p.etp);
  }
  std::vector<int64_t> dense(size_t(p.pp), 0), experts(size_t(p.pp), 0);
  for_each_placed_layer([&](int64_t stage, int64_t l) {
    const size_t kind = m.is_moe_layer(l) ? 1 : 0;
    dense[size_t(stage)] += layer_params[kind], experts[size_t(stage)] += layer_experts[kind];
  });
  dense[0] += model::embedding_params_per_rank(m, p.tp);
  dense[size_t(p.pp - 1)] += model::head_params_per_rank(m, p.tp) + model::mtp_params_per_rank(m, p.tp);
  experts[size_t(p.pp - 1)] += m.mtp_num_layers * model::expert_params_per_rank(m, m.num_layers, p.ep, p.etp);
  // After its last backward each stage runs the optimizer step on the compute stream
  // (plan::optimizer_step_bytes, as the builder emits it). FP8's weight cast is left out (a
  // bound). On the chain: the average stage's (rounded down), after the pipeline.
  auto optimizer_of = [&](int64_t params, int64_t expert_params) {
    return cost.elementwise_time(plan::optimizer_step_bytes(p, params, expert_params));
  };
  int64_t params = 0, expert_params = 0;
  for (size_t st = 0; st < size_t(p.pp); ++st) params += dense[st], expert_params += experts[st];
  const double optimizer = optimizer_of(params / p.pp, expert_params / p.pp);
  // Each stage's data-parallel stream (builder.cpp: reduce_bucket, and under ZeRO-1 the parameter
  // all-gathers at the step's start) runs its gradient reductions and gathers one after another
  // inside the step, and its optimizer step waits for the last of them: the step is at least that
  // stream's time plus the optimizer's, on every stage. Megatron's buckets split them further, but
  // a collective's time is concave in its bytes with a latency ≥ 0 (the min of the ring's and LL's
  // α + β·S forms, capped by its channels' rate), so the buckets take at least the whole. Exposed
  // DP traffic is what makes many plans slow (a rank holding many experts at small ep: ~1 s of
  // fp32 gradients over the NIC), which the chain terms above cannot see. Left out under a
  // calibration (measured bus bandwidths need not be concave).
  double dp_stream = 0;
  if (!calibration) {
    auto stream_of = [&](parallel::Group g, int64_t n) {
      double t = time_of(plan::grad_reduction(p), g, n * p.grad_bytes());
      if (p.gathers_params()) t += time_of(plan::CollKind::kAllGather, g, n * plan::kParamBytes);
      return t;
    };
    for (size_t st = 0; st < size_t(p.pp); ++st)
      dp_stream = std::max(dp_stream, stream_of(parallel::Group::kDpCp, dense[st]) + stream_of(parallel::Group::kEdp, experts[st]) +
                                          optimizer_of(dense[st], experts[st]));
  }
  // The host's step-boundary gap (apply_host_step_gap) follows every step whole.
  return std::max({compute * fill_pipe + optimizer, last_stage, dp_stream}) + jitter + host_step_gap(chip, p);
}

bool is_fixed(const SearchOptions& o, const char* name) {
  return std::find(o.fixed.begin(), o.fixed.end(), name) != o.fixed.end();
}

/// The knob values the search tries: the fixed one, or its list.
std::vector<int64_t> choices(const SearchOptions& o, const char* name, int64_t given, std::vector<int64_t> free) {
  return is_fixed(o, name) ? std::vector<int64_t>{given} : free;
}

/// The shapes (tp, cp, pp, vpp, micro-batch, ep) the search enumerates, whatever the chip count:
/// the same list for search() and for nearest_fitting(), so a suggested size is one search accepts.
/// MoE models also try ep over the powers of two up to the expert count (etp stays as given, 1 by
/// default) with one sequence per micro-batch, as the published MoE recipes run: their plans cost
/// a few ms each to time and lower_bound_s is looser for them (the non-expert GEMMs are not derated).
template <typename Fn>
void for_each_shape(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o, int64_t seq,
                    Fn&& fn) {
  const int64_t max_tp = o.max_tp ? o.max_tp : std::min<int64_t>(chip.nvlink_domain, 8 * chip.chips_per_package);
  std::vector<int64_t> tps;
  for (int64_t tp = 1; tp <= max_tp; tp *= 2) tps.push_back(tp);
  // Ring attention splits the sequence into 2·cp chunks (load balance of the causal mask).
  std::vector<int64_t> cps = {1};
  for (int64_t cp = 2; 2 * cp <= seq && seq % (2 * cp) == 0; cp *= 2) cps.push_back(cp);
  std::vector<int64_t> pps;
  for (int64_t pp = 1; pp <= std::min<int64_t>(128, model.num_layers); ++pp) pps.push_back(pp);
  const config::ParallelConfig& g = o.given;
  std::vector<int64_t> eps = {1};
  for (int64_t ep = 2; model.is_moe() && ep <= model.num_moe_experts; ep *= 2) eps.push_back(ep);
  const std::vector<int64_t> mbss = model.is_moe() ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8};
  for (int64_t tp : choices(o, "tp", g.tp, tps))
    for (int64_t cp : choices(o, "cp", g.cp, cps))
      for (int64_t pp : choices(o, "pp", g.pp, pps)) {
        // Interleaving needs a pipeline, and at least one layer per model chunk (uneven chunks are
        // split as model::split_layers does).
        std::vector<int64_t> vpps = {1};
        for (int64_t vpp = 2; pp > 1 && pp * vpp <= model.num_layers; ++vpp) vpps.push_back(vpp);
        for (int64_t vpp : choices(o, "vpp", g.vpp, vpps)) {
          // More model chunks than layers is no shape at all, unless the user asked for it.
          if (pp * vpp > model.num_layers && !is_fixed(o, "pp") && !is_fixed(o, "vpp")) continue;
          for (int64_t mbs : choices(o, "micro_batch_size", g.micro_batch_size, mbss))
            for (int64_t ep : choices(o, "ep", g.ep, eps)) fn(tp, cp, pp, vpp, mbs, ep);
        }
      }
}

/// The candidate of one shape on `gpus` chips with global batch `gbs`, before recompute is chosen,
/// or the reason it is ruled out (a pointer into Rejections).
struct Shaped {
  config::ParallelConfig p;
  int64_t Rejections::*rejected = nullptr;
};

Shaped shape(const config::ModelConfig& m, const SearchOptions& o, int64_t seq, int64_t gpus, int64_t gbs, int64_t tp,
             int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
  Shaped s;
  // From the user's config, so that a field the search does not choose (a knob added later
  // included) keeps the value given; then the shape and the workload settings.
  s.p = o.given;
  config::ParallelConfig& p = s.p;
  p.tp = tp, p.cp = cp, p.pp = pp, p.vpp = vpp, p.micro_batch_size = mbs, p.ep = ep;
  p.global_batch_size = gbs, p.seq_length = seq;
  p.precision = o.precision;
  p.flash_attention = o.flash_attention;
  p.grad_reduce_in_bf16 = o.grad_reduce_in_bf16;
  p.overlap_grad_reduce = o.overlap_grad_reduce;
  // The shape's lightest form in memory: sequence parallelism where it applies (MoE with tp > 1
  // needs it; TP comm overlap needs it), ZeRO-1. search() also times the variants without them.
  const bool overlap_asked = is_fixed(o, "tp_comm_overlap") && o.given.tp_comm_overlap;
  const bool sp_splits = cp > 0 && seq % cp == 0 && (seq / cp) % tp == 0;
  p.sequence_parallel = is_fixed(o, "sequence_parallel") ? o.given.sequence_parallel
                                                         : tp > 1 && (sp_splits || m.is_moe() || overlap_asked);
  p.tp_comm_overlap = is_fixed(o, "tp_comm_overlap") ? o.given.tp_comm_overlap : p.sequence_parallel;
  p.zero = is_fixed(o, "zero") ? o.given.zero : 1;
  const auto mp = tp * cp * pp;
  if (m.num_attention_heads % tp || m.num_query_groups % tp || m.ffn_hidden_size % tp) s.rejected = &Rejections::heads;
  else if (pp * vpp > m.num_layers) s.rejected = &Rejections::layers;
  else if (gpus % mp) s.rejected = &Rejections::chips;
  else if (gbs % (mbs * (gpus / mp)) || (vpp > 1 && (gbs / (mbs * (gpus / mp))) % pp)) s.rejected = &Rejections::batch;
  else if ((cp > 1 && seq % (2 * cp)) || (p.sequence_parallel && (seq / cp) % tp)) s.rejected = &Rejections::sequence;
  else if (!config::violations(p, m, gpus).empty()) s.rejected = &Rejections::other;
  return s;
}

/// Recompute levels to try, least first (less recompute needs more memory).
std::vector<config::Recompute> recompute_levels(const SearchOptions& o) {
  if (is_fixed(o, "recompute")) return {o.given.recompute};
  return {config::Recompute::kNone, config::Recompute::kSelective, config::Recompute::kFull};
}

/// The variants of a valid shape's lightest form `p` (resolved) that are not provably slower than
/// another (see the top of the file): sequence parallelism on (with TP comm overlap on and off) and
/// off, ZeRO 1 and 0, each once; fixed knobs keep their value.
template <typename Fn>
void for_each_variant(const config::ModelConfig& m, const SearchOptions& o, const config::ParallelConfig& p, Fn&& fn) {
  std::vector<bool> sps = {p.sequence_parallel};
  // Off too for dense models (MoE with tp > 1 needs it), unless the user asked for TP overlap.
  if (p.sequence_parallel && !is_fixed(o, "sequence_parallel") && !m.is_moe() &&
      !(is_fixed(o, "tp_comm_overlap") && o.given.tp_comm_overlap))
    sps.push_back(false);
  // ZeRO-1 changes the plan only where it has replicas to shard over.
  const bool shards = p.dp * p.cp > 1 || (m.is_moe() && p.edp() > 1);
  const std::vector<int64_t> zeros = is_fixed(o, "zero") || !shards ? std::vector<int64_t>{p.zero} : std::vector<int64_t>{1, 0};
  for (bool sp : sps) {
    // TP comm overlap needs SP; with it, on and off (neither provably wins: the top of the file).
    std::vector<bool> overlaps = {is_fixed(o, "tp_comm_overlap") ? o.given.tp_comm_overlap : sp};
    if (sp && !is_fixed(o, "tp_comm_overlap") && p.async_tp_comm) overlaps.push_back(false);
    for (bool tpo : overlaps)
      for (int64_t z : zeros) {
        config::ParallelConfig v = p;
        v.sequence_parallel = sp;
        v.tp_comm_overlap = tpo;
        v.zero = z;
        fn(v);
      }
  }
}

/// Whether some recompute level of this valid shape fits (the search's memory rule).
bool fits_some_level(const config::ModelConfig& m, const config::ChipProfile& chip, const SearchOptions& o,
                     config::ParallelConfig p, int64_t gpus) {
  p = config::resolve(p, m, gpus, "search");
  for (auto rc : recompute_levels(o)) {
    p.recompute = rc;
    if (fits_memory(m, chip, p)) return true;
  }
  return false;
}

int64_t sequence_of(const config::ModelConfig& model, const SearchOptions& o) {
  return o.seq_length ? o.seq_length : model.seq_length;
}

/// What lower_bound_s takes that is the same for every candidate of one search.
struct BoundInputs {
  double best_gemm = 0;
  bool calibrated = false;
  double jitter_factor = 0;
};

BoundInputs bound_inputs(const config::ChipProfile& chip, int64_t gpus, const Calibration* calibration) {
  BoundInputs b;
  // The best GEMM fraction any candidate can get: the profile's, or with a calibration of this
  // architecture the best calibrated one (keeps the bound a bound).
  b.best_gemm = chip.efficiency.gemm;
  b.calibrated = calibration && !calibration->arch.empty() && calibration->arch == chip.arch;
  if (b.calibrated) b.best_gemm = std::max(b.best_gemm, calibration->max_gemm_efficiency());
  // The slowest node's wait per unit of the critical stage's compute: the same for every
  // candidate (the chip count is fixed). Under contention compute time splits into compute and
  // stalls, so the bound leaves it out there.
  const int64_t nodes = node_count(chip, gpus);
  b.jitter_factor =
      chip.node_jitter > 0 && nodes > 1 && chip.comm_contention() <= 0 ? chip.node_jitter * expected_max_of_normals(nodes) : 0.0;
  return b;
}

}  // namespace

double search_lower_bound_s(const config::ModelConfig& model, const config::ChipProfile& chip, const config::ParallelConfig& p,
                            const Calibration* calibration) {
  const BoundInputs b = bound_inputs(chip, p.world(), calibration);
  return lower_bound_s(model, chip, p, b.best_gemm, b.calibrated, calibration, b.jitter_factor);
}

SearchResult search(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o) {
  check_chip_count(o.gpus, "gpus");
  SearchResult result;
  const int64_t seq = sequence_of(model, o);
  const auto [best_gemm, calibrated, jitter_factor] = bound_inputs(chip, o.gpus, o.calibration);
  PredictOptions popt;
  popt.calibration = o.calibration;
  std::vector<Candidate> cands;
  const bool mp_fixed = is_fixed(o, "tp") || is_fixed(o, "cp") || is_fixed(o, "pp");
  for_each_shape(model, chip, o, seq, [&](int64_t tp, int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
    // More model-parallel ranks than chips is no candidate (not counted as one) unless asked for.
    if (tp * cp * pp > o.gpus && !mp_fixed) return;
    ++result.shapes;
    Shaped s = shape(model, o, seq, o.gpus, o.global_batch_size, tp, cp, pp, vpp, mbs, ep);
    if (s.rejected) {
      ++(result.rejected.*s.rejected);
      return;
    }
    const config::ParallelConfig p = config::resolve(s.p, model, o.gpus, "search");
    const size_t before = cands.size();
    for_each_variant(model, o, p, [&](config::ParallelConfig v) {
      if (!config::violations(v, model, o.gpus).empty()) return;  // e.g. a fixed flag that needs another
      // The least recompute that fits; past none, full as well (see the top of the file).
      bool found = false;
      for (auto rc : recompute_levels(o)) {
        v.recompute = rc;
        ++result.candidates;
        if (!fits_memory(model, chip, v)) continue;
        ++result.fitting;
        cands.push_back({v, lower_bound_s(model, chip, v, best_gemm, calibrated, o.calibration, jitter_factor)});
        if (found || rc == config::Recompute::kNone) break;
        found = true;
      }
    });
    if (cands.size() == before) ++result.rejected.memory;
  });
  std::stable_sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) { return a.lower_bound_s < b.lower_bound_s; });
  std::vector<SummaryRow> rows;  // kept sorted, best (shortest step) first, at most o.top
  const size_t top = size_t(std::max(1, o.top));
  for (const auto& c : cands) {
    if (o.branch_and_bound && rows.size() == top && c.lower_bound_s >= rows.back().step_time_s) break;  // nothing left can enter
    ++result.evaluated;
    SummaryRow r = predict(model, chip, c.p, popt).row;
    auto pos = std::upper_bound(rows.begin(), rows.end(), r,
                                [](const SummaryRow& a, const SummaryRow& b) { return a.step_time_s < b.step_time_s; });
    rows.insert(pos, r);
    if (rows.size() > top) rows.pop_back();
  }
  result.ranked = std::move(rows);
  return result;
}

Nearest nearest_fitting(const config::ModelConfig& model, const config::ChipProfile& chip, const SearchOptions& o) {
  // Only sizes that would improve on the nearest found so far are checked, so this stays a few
  // memory checks per shape. Chip counts: tp·cp·pp × every dp that divides the batch (as the search
  // needs); batch sizes: the multiples of micro-batch × dp (× pp when interleaved) next to the asked one.
  Nearest n;
  const int64_t seq = sequence_of(model, o), gbs = o.global_batch_size, gpus = o.gpus;
  auto admits = [&](int64_t g, int64_t b, int64_t tp, int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
    if (g < 1 || g > kMaxChips || b < 1 || b > (int64_t(1) << 40)) return false;
    const Shaped s = shape(model, o, seq, g, b, tp, cp, pp, vpp, mbs, ep);
    return !s.rejected && fits_some_level(model, chip, o, s.p, g);
  };
  auto closer = [](int64_t have, int64_t want, int64_t x) { return have == 0 || std::llabs(x - want) < std::llabs(have - want); };
  // dp must divide the step's micro-batches, gbs / mbs: their divisors, once per micro-batch size
  // (at most ~2^20 trial divisions for the largest batch the flags accept).
  std::map<int64_t, std::vector<int64_t>> divisors;
  auto divisors_of = [&](int64_t x) -> const std::vector<int64_t>& {
    auto [it, added] = divisors.try_emplace(x);
    if (added)
      for (int64_t d = 1; d * d <= x; ++d)
        if (x % d == 0) it->second.push_back(d), it->second.push_back(x / d);
    return it->second;
  };
  for_each_shape(model, chip, o, seq, [&](int64_t tp, int64_t cp, int64_t pp, int64_t vpp, int64_t mbs, int64_t ep) {
    const int64_t mp = tp * cp * pp;
    if (gbs % mbs == 0) {
      for (int64_t dp : divisors_of(gbs / mbs)) {
        if (dp > kMaxChips / mp) continue;
        const int64_t g = mp * dp;
        if (g == gpus) continue;
        int64_t& slot = g < gpus ? n.gpus_below : n.gpus_above;
        if (closer(slot, gpus, g) && admits(g, gbs, tp, cp, pp, vpp, mbs, ep)) slot = g;
      }
    }
    if (gpus % mp == 0) {
      const int64_t q = mbs * (gpus / mp) * (vpp > 1 ? pp : 1);
      const int64_t lo = gbs / q * q, hi = lo == gbs ? gbs + q : lo + q;
      const int64_t below = lo == gbs ? gbs - q : lo;
      if (below > 0 && closer(n.batch_below, gbs, below) && admits(gpus, below, tp, cp, pp, vpp, mbs, ep)) n.batch_below = below;
      if (closer(n.batch_above, gbs, hi) && admits(gpus, hi, tp, cp, pp, vpp, mbs, ep)) n.batch_above = hi;
    }
  });
  return n;
}

}  // namespace capscale::predict
