// Accounting formulas; see accounting.hpp for citations.
#include "model/accounting.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "common/checked.hpp"
#include "common/error.hpp"

namespace capscale::model {

using config::Activation;
using config::ModelConfig;
using config::Normalization;

namespace {
int64_t norm_params(const ModelConfig& m) {
  return m.normalization == Normalization::kLayerNorm ? 2 * m.hidden_size : m.hidden_size;
}
}  // namespace

int64_t attention_params_per_rank(const ModelConfig& m, int64_t tp) {
  const int64_t h = m.hidden_size, H = m.num_attention_heads;
  if (m.multi_latent_attention()) {
    // DeepSeek-V2 §2.1 / Megatron MLASelfAttention: the down-projections (and their norms) are
    // replicated over tp; the up-projections split heads (column-parallel), the output projection
    // splits its input (row-parallel).
    const int64_t ql = m.q_lora_rank, kvl = m.kv_lora_rank, rope = m.qk_pos_emb_head_dim;
    int64_t p = checked_mul(h, kvl + rope, "mla params") + kvl;                                  // kv down + norm
    if (ql > 0) p += checked_mul(h, ql, "mla params") + ql;                                      // q down + norm
    p += checked_mul(ql > 0 ? ql : h, H * m.qk_dim(), "mla params") / tp;                        // q up
    p += checked_mul(kvl, H * (m.qk_head_dim + m.v_head_dim), "mla params") / tp;                // kv up
    p += checked_mul(H * m.v_head_dim, h, "mla params") / tp;                                    // output projection
    return p;
  }
  const int64_t d = m.kv_channels;
  const int64_t q = H * d, kv = 2 * m.num_query_groups * d;
  int64_t p = checked_mul(h, q + kv, "layer params") / tp;  // QKV
  p += checked_mul(q, h, "layer params") / tp;              // attention projection
  if (m.add_bias_linear) p += (q + kv) / tp + h;            // QKV bias (split), proj bias (replicated)
  return p;
}

namespace {
// One MLP of width f split over `split` ranks (column-parallel FC1, row-parallel FC2).
int64_t mlp_params(const ModelConfig& m, int64_t f, int64_t split) {
  int64_t p = checked_mul(checked_mul(m.hidden_size, f, "mlp params"), m.mlp_matrices(), "mlp params") / split;
  if (m.add_bias_linear) p += f * (m.mlp_matrices() - 1) / split + m.hidden_size;  // FC1 bias (split), FC2 bias
  return p;
}
}  // namespace

int64_t layer_params_per_rank(const ModelConfig& m, int64_t layer, int64_t tp) {
  int64_t p = attention_params_per_rank(m, tp) + 2 * norm_params(m);
  if (!m.is_moe_layer(layer)) return p + mlp_params(m, m.ffn_hidden_size, tp);
  // MoE layer outside the routed experts: the router (replicated, Megatron TopKRouter) and the
  // shared experts (a tp-split MLP of their summed width, Megatron SharedExpertMLP).
  p += checked_mul(m.hidden_size, m.num_moe_experts, "router params");
  if (m.moe_shared_expert_intermediate_size > 0) p += mlp_params(m, m.moe_shared_expert_intermediate_size, tp);
  return p;
}

int64_t expert_params_per_rank(const ModelConfig& m, int64_t layer, int64_t ep, int64_t etp) {
  if (!m.is_moe_layer(layer)) return 0;
  // ep ranks hold E/ep experts each; etp splits every expert's FFN width.
  return checked_mul(m.num_moe_experts / ep, mlp_params(m, m.moe_ffn_hidden_size, etp), "expert params");
}

std::vector<int64_t> layer_param_groups(const ModelConfig& m, int64_t layer, int64_t tp) {
  const int64_t total = layer_params_per_rank(m, layer, tp);
  const int64_t attention = attention_params_per_rank(m, tp) + norm_params(m);  // with the input norm
  if (m.is_moe_layer(layer) || m.multi_latent_attention()) return {total - attention, attention};
  const int64_t h = m.hidden_size, f = m.ffn_hidden_size, q = m.num_attention_heads * m.kv_channels;
  const int64_t bias = m.add_bias_linear ? 1 : 0;
  const int64_t fc2 = checked_mul(h, f, "layer params") / tp + bias * h;
  const int64_t proj = checked_mul(q, h, "layer params") / tp + bias * h;
  const int64_t fc1 = total - attention - fc2;  // FC1 (gated or not) with its bias and the pre-MLP norm
  return {fc2, fc1, proj, attention - proj};
}

int64_t mtp_params_per_rank(const ModelConfig& m, int64_t tp) {
  // Per module (DeepSeek-V3 §2.2): two RMSNorms on the inputs, the [2h → h] projection (Megatron
  // builds it column-parallel) and one transformer layer; embedding and output head are shared.
  const int64_t last = m.num_layers;  // MTP layers take the kind of the last decoder layer
  const int64_t one = 2 * norm_params(m) + checked_mul(2 * m.hidden_size, m.hidden_size, "mtp params") / tp +
                      layer_params_per_rank(m, last, tp);
  return checked_mul(one, m.mtp_num_layers, "mtp params");
}

int64_t embedding_params_per_rank(const ModelConfig& m, int64_t tp) {
  int64_t p = checked_mul(m.vocab_size, m.hidden_size, "embedding params") / tp;
  if (m.position_embedding == config::PositionEmbedding::kLearned) p += m.seq_length * m.hidden_size;
  return p;
}

int64_t head_params_per_rank(const ModelConfig& m, int64_t tp) {
  int64_t p = norm_params(m);
  if (!m.tie_embeddings) p += checked_mul(m.vocab_size, m.hidden_size, "head params") / tp;
  return p;
}

int64_t total_params(const ModelConfig& m) {
  int64_t p = embedding_params_per_rank(m, 1) + head_params_per_rank(m, 1);
  for (int64_t l = 0; l < m.num_layers; ++l) {
    p = checked_add(p, layer_params_per_rank(m, l, 1) + expert_params_per_rank(m, l, 1, 1), "total params");
  }
  return p;
}

int64_t active_params(const ModelConfig& m) {
  // All but the routed experts a token does not visit: top-k of num_moe_experts per MoE layer.
  int64_t p = total_params(m);
  for (int64_t l = 0; l < m.num_layers; ++l) {
    const int64_t experts = expert_params_per_rank(m, l, 1, 1);
    if (experts > 0) p -= experts / m.num_moe_experts * (m.num_moe_experts - m.moe_router_topk);
  }
  return p;
}

double matmul_weights_per_layer(const ModelConfig& m, int64_t layer) {
  const double h = double(m.hidden_size), H = double(m.num_attention_heads);
  double attn;
  if (m.multi_latent_attention()) {
    const double ql = double(m.q_lora_rank), kvl = double(m.kv_lora_rank), rope = double(m.qk_pos_emb_head_dim);
    attn = h * (kvl + rope) + (ql > 0 ? h * ql + ql * H * double(m.qk_dim()) : h * H * double(m.qk_dim())) +
           kvl * H * double(m.qk_head_dim + m.v_head_dim) + H * double(m.v_head_dim) * h;
  } else {
    const double d = double(m.kv_channels);
    const double q = H * d, kv = 2.0 * double(m.num_query_groups) * d;
    attn = h * (q + kv) + q * h;
  }
  const double mats = double(m.mlp_matrices());
  if (!m.is_moe_layer(layer)) return attn + h * double(m.ffn_hidden_size) * mats;
  return attn + h * double(m.num_moe_experts) +  // router
         h * mats * double(m.moe_shared_expert_intermediate_size) + routed_weights_per_layer(m, layer);
}

double routed_weights_per_layer(const ModelConfig& m, int64_t layer) {
  if (!m.is_moe_layer(layer)) return 0;
  return double(m.hidden_size) * double(m.mlp_matrices()) * double(m.moe_router_topk) * double(m.moe_ffn_hidden_size);
}

double model_flops_per_token(const ModelConfig& m, int64_t s) {
  // Forward FLOPs per token are 2 × (weights each token multiplies) plus attention's QKᵀ and PV,
  // 2·keys·heads·(qk_dim + v_dim) per layer (4·s·heads·head_dim for standard attention over the
  // whole sequence; a sliding window attends to its window); training is 3× forward. MoE layers
  // count the router and the top-k routed experts a token visits; each MTP module adds its
  // projection, one layer and the shared output head (DeepSeek-V3 §2.2).
  const double h = double(m.hidden_size);
  const double per_head = double(m.num_attention_heads) * double(m.qk_dim() + m.v_dim());
  auto layer_fwd = [&](int64_t l) { return 2.0 * matmul_weights_per_layer(m, l) + 2.0 * double(m.attended_keys(l, s)) * per_head; };
  double fwd = 2.0 * double(m.vocab_size) * h;  // logits
  for (int64_t l = 0; l < m.num_layers; ++l) fwd += layer_fwd(l);
  fwd += double(m.mtp_num_layers) * (layer_fwd(m.num_layers) + 2.0 * 2.0 * h * h + 2.0 * double(m.vocab_size) * h);
  return 3.0 * fwd;
}

double sc21_eq3_flops(const ModelConfig& m, int64_t B, int64_t s) {
  const double l = double(m.num_layers), h = double(m.hidden_size), V = double(m.vocab_size);
  return 96.0 * double(B) * double(s) * l * h * h * (1.0 + double(s) / (6.0 * h) + V / (16.0 * l * h));
}

double sc21_no_recompute_flops(const ModelConfig& m, int64_t B, int64_t s) {
  const double l = double(m.num_layers), h = double(m.hidden_size), V = double(m.vocab_size);
  return 72.0 * double(B) * double(s) * l * h * h * (1.0 + double(s) / (6.0 * h) + V / (12.0 * l * h));
}

namespace {
// What one token keeps for its backward in one layer, in bytes, term by term as Korthikanti et al.
// 2022 (§4.1) count a GPT layer, with the widths taken from the layer's GEMM shapes instead of GPT's
// (MHA, a 4h GELU MLP, dropout on). `replicated`: what tensor parallelism without sequence
// parallelism keeps whole on every rank; `split`: what it splits over tp (sequence parallelism
// splits both); `scores`: what unfused attention keeps per token over its score matrix (split over
// tp by heads).
//   norms: the inputs of the two norms, 2h + 2h (replicated);
//   attention: the QKV input (the norm's output, 2h, replicated), the hidden-dropout mask after the
//     projection (h bytes when hidden_dropout > 0, replicated); Q, K and V as the core attention
//     saves them (2q + 2k + 2v) and the projection's input (2o), split; MLA adds its latents, the
//     inputs and outputs of the two latent norms (4·(q_lora + kv_lora)), replicated (its
//     down-projections are not split over tp); unfused attention keeps the softmax output (2 bytes
//     per score) and, with attention dropout, its mask and output (1 + 2);
//   dense MLP: the FC1 input (2h, replicated) and the second dropout mask (h); FC1's output, the
//     activation's input (2f·(mats − 1)), and the FC2 input (2f), split.
// A GPT layer (q = k = v = o = h, f = 4h, two matrices, dropout on) gives replicated 10h and split
// 24h: Korthikanti's sbh(10 + 24/t + 5as/(ht)), and 34 sbh/t under sequence parallelism.
struct TokenBytes {
  double replicated = 0, split = 0, scores = 0;
};

// `scores_kept`: unfused attention without recompute, whose batched GEMMs save K and V after
// Megatron's repeat_interleave to every head (GQA's groups expanded); flash attention and a
// recomputed core attention keep them groups·d wide.
TokenBytes attention_and_norm_bytes(const ModelConfig& m, double s, bool scores_kept) {
  const double h = double(m.hidden_size), heads = double(m.num_attention_heads);
  const double groups = scores_kept ? heads : double(m.num_query_groups);
  const double q = heads * double(m.qk_dim()), k = groups * double(m.qk_dim());
  const double v = groups * double(m.v_dim()), o = heads * double(m.v_dim());
  TokenBytes t;
  t.replicated = 4.0 * h + 2.0 * h + (m.hidden_dropout > 0 ? h : 0.0);
  if (m.multi_latent_attention()) t.replicated += 4.0 * double(m.q_lora_rank + m.kv_lora_rank);
  t.split = 2.0 * (q + k + v + o);
  t.scores = scores_kept ? heads * s * (m.attention_dropout > 0 ? 5.0 : 2.0) : 0.0;
  return t;
}
}  // namespace

double activation_bytes_per_layer(const ModelConfig& m, const config::ParallelConfig& p, int64_t layer) {
  const double s = double(p.seq_length) / double(p.cp), b = double(p.micro_batch_size), h = double(m.hidden_size);
  const double t = double(p.tp);
  if (p.recompute == config::Recompute::kFull) return 2.0 * s * b * h / (p.sequence_parallel ? t : 1.0);
  const bool scores_kept = p.recompute == config::Recompute::kNone && !p.flash_attention;
  TokenBytes a = attention_and_norm_bytes(m, s, scores_kept);
  if (!m.is_moe_layer(layer)) {
    const double f = double(m.ffn_hidden_size);
    a.replicated += 2.0 * h + (m.hidden_dropout > 0 ? h : 0.0);
    a.split += 2.0 * f * double(m.mlp_matrices() - 1) + 2.0 * f;
    const double bf16 = p.sequence_parallel ? s * b / t * (a.replicated + a.split + a.scores)
                                            : s * b * (a.replicated + (a.split + a.scores) / t);
    if (p.precision != config::Precision::kFp8) return bf16;
    // Under FP8 Transformer Engine saves the FP8-cast inputs of its linear layers for the wgrad
    // GEMM (transformer_engine/pytorch/module/layernorm_linear.py, linear.py, layernorm_mlp.py
    // keep ln_out / inputmat / fc2 input as Float8Tensor): 1 byte instead of 2 for the QKV and FC1
    // inputs (the norm outputs, sbh each, sharded over tp under SP) and the FC2 input (s·b·ffn/t,
    // whose bf16 original nothing else keeps). The projection's FP8 input is a copy: the attention
    // keeps its bf16 output for its own backward, so that tensor costs one byte more (s·b·o/t).
    const double o = double(m.num_attention_heads) * double(m.v_dim());
    const double norm_out = p.sequence_parallel ? s * b * h / t : s * b * h;
    return bf16 - (2.0 * norm_out + s * b * f / t) + s * b * o / t;
  }
  // An MoE layer keeps the attention block and norms above (MoE with tp > 1 runs
  // sequence-parallel, so all of it is split over tp) and replaces the dense MLP with what
  // Megatron-Core's MoELayer saves per token entering it (bytes): the router's input (2h) and fp32
  // logits (4E); per routed copy (top-k of them, ×etp after the expert-tensor all-gather for the
  // input) the expert input (2h), FC1's output (2f·(mats−1)), the activation's output (2f) and the
  // expert output before the combine (2h); the shared experts' outputs (2f_s·mats; their input is
  // the router's); the hidden-dropout mask after the layer (h, with dropout). The hottest rank
  // holds moe_imbalance × the mean of the routed part. (Kept in bf16 under FP8 too: a
  // conservative reading.)
  const double f = double(m.moe_ffn_hidden_size), fs = double(m.moe_shared_expert_intermediate_size);
  const double mats = double(m.mlp_matrices()), k = double(m.moe_router_topk);
  const double routed = k * (2.0 * h * double(p.etp) + 2.0 * f * (mats - 1.0) + 2.0 * f + 2.0 * h) * p.moe_imbalance;
  const double shared = fs > 0 ? 2.0 * fs * mats : 0.0;
  const double mask = m.hidden_dropout > 0 ? h : 0.0;
  const double per_token = 2.0 * h + 4.0 * double(m.num_moe_experts) + routed + shared + mask;
  return s * b / t * (a.replicated + a.split + a.scores + per_token);
}

double peak_stage_activations(const std::vector<double>& chunk, int64_t pp, int64_t stage, int64_t m) {
  const int64_t vpp = int64_t(chunk.size());
  if (vpp == 1) return double(std::min(pp - stage, m)) * chunk[0];
  // Megatron-Core schedules.py (get_pp_rank_microbatches, get_schedule_table,
  // forward_backward_pipelining_with_interleaving): W = 2(pp − stage − 1) + (vpp − 1)·pp warm-up
  // forwards (all m·vpp of them when that is not fewer), then one forward and one backward at a
  // time. Virtual micro-batches run in groups of pp micro-batches (the last group takes the
  // rest), each group through chunk 0, 1, …, vpp − 1; the k-th backward runs chunk vpp − 1 − c
  // where the k-th forward ran chunk c. Each chunk's activations live from its forward to its
  // backward; the peak is right after a forward.
  const int64_t total = m * vpp, group = pp;
  const int64_t warmup = std::min(2 * (pp - stage - 1) + (vpp - 1) * pp, total);
  // Equal chunks: any W + 1 of them.
  if (std::all_of(chunk.begin(), chunk.end(), [&](double c) { return c == chunk.front(); })) {
    return double(std::min(warmup + 1, total)) * chunk.front();
  }
  auto chunk_of = [&](int64_t k) {
    const int64_t g = k / (group * vpp), start = g * group * vpp;
    const int64_t size = (g + 1) * group <= m ? group : m - g * group;
    return (k - start) / size;
  };
  const int64_t period = group * vpp, steady = total - warmup;
  double held = 0, peak = 0;
  if (m % group == 0) {
    // Whole groups: the k-th forward runs chunk (k mod pp·vpp) div pp, so the warm-up's whole
    // periods run every chunk pp times, and the steady state's held set repeats every period (the
    // forward and the backward each run every chunk pp times per period): one period holds its peak.
    double sum = 0;
    for (double c : chunk) sum += c;
    const int64_t rest = warmup % period;  // the last, partial period: chunks 0 … rest/pp
    held = double(warmup / period) * double(group) * sum;
    for (int64_t c = 0; c < rest / group; ++c) held += double(group) * chunk[size_t(c)];
    if (rest % group) held += double(rest % group) * chunk[size_t(rest / group)];
    peak = held;
    // The next forward's chunk and place in its run of pp, and the next backward's.
    int64_t fc = rest / group, fr = rest % group, bc = 0, br = 0;
    for (int64_t i = 0; i < std::min(steady, period); ++i) {
      held += chunk[size_t(fc)];
      peak = std::max(peak, held);
      held -= chunk[size_t(vpp - 1 - bc)];
      if (++fr == group) fr = 0, fc = fc + 1 == vpp ? 0 : fc + 1;
      if (++br == group) br = 0, ++bc;
    }
    return peak;
  }
  for (int64_t k = 0; k < warmup; ++k) held += chunk[size_t(chunk_of(k))];
  peak = held;
  for (int64_t i = 0; i < steady; ++i) {
    held += chunk[size_t(chunk_of(warmup + i))];
    peak = std::max(peak, held);
    held -= chunk[size_t(vpp - 1 - chunk_of(i))];
  }
  return peak;
}

std::vector<MemoryEstimate> memory_per_stage(const ModelConfig& m, const config::ParallelConfig& p) {
  // Stage 0 holds the embedding, the last stage the output head and the MTP modules; each stage holds
  // the activations of the micro-batches its schedule has in flight at its peak
  // (peak_stage_activations). Expert weights are ÷ ep·etp (in their per-rank counts); under ZeRO-1
  // dense optimizer state is ÷ dp·cp and expert optimizer state ÷ edp.
  const auto layers = chunk_layers(m, p);
  std::vector<int64_t> first(layers.size(), 0);
  for (size_t g = 1; g < layers.size(); ++g) first[g] = first[g - 1] + layers[g - 1];
  // A layer's parameters and activations depend only on its kind (dense or MoE): one of each.
  // Under full recompute a layer's backward first reruns its forward, holding that one layer's
  // whole activations beside the checkpoints: the largest rerun among the kinds the stage holds
  // (`rerun`, the layer's activations without recompute).
  struct Kind {
    double dense = -1, experts = 0, acts = 0, rerun = 0;
  };
  std::array<Kind, 2> kinds;
  const bool full = p.recompute == config::Recompute::kFull;
  config::ParallelConfig no_recompute = p;
  no_recompute.recompute = config::Recompute::kNone;
  auto kind = [&](int64_t l) -> const Kind& {
    Kind& k = kinds[m.is_moe_layer(l) ? 1 : 0];
    if (k.dense < 0) {
      k.dense = double(layer_params_per_rank(m, l, p.tp));
      k.experts = double(expert_params_per_rank(m, l, p.ep, p.etp));
      k.acts = activation_bytes_per_layer(m, p, l);
      k.rerun = full ? activation_bytes_per_layer(m, no_recompute, l) : 0.0;
    }
    return k;
  };
  auto stage = [&](int64_t s) {
    double dense = 0, experts = 0, recomputed = 0;
    std::vector<double> chunk(size_t(p.vpp), 0.0);
    for (int64_t c = 0; c < p.vpp; ++c) {
      const size_t g = size_t(c * p.pp + s);
      for (int64_t l = first[g]; l < first[g] + layers[g]; ++l) {
        const Kind& k = kind(l);
        dense += k.dense, experts += k.experts, chunk[size_t(c)] += k.acts;
        recomputed = std::max(recomputed, k.rerun);
      }
    }
    // Korthikanti et al. 2022 §4.3: the embedding's output is the first layer's input (counted
    // there); its dropout keeps a 1-byte mask, sbh (/t under sequence parallelism), per micro-batch
    // of the first chunk. The output layer keeps the final norm's input and its own input (4sbh)
    // and the fp32 logits the vocab-parallel cross entropy works on (4sbV/t), once per output head
    // (each MTP module runs one more), for the one micro-batch between the last chunk's forward and
    // its backward.
    const double sb = double(p.seq_length / p.cp) * double(p.micro_batch_size);
    const double t = double(p.tp), h = double(m.hidden_size);
    double once = recomputed;
    if (s == 0) {
      dense += double(embedding_params_per_rank(m, p.tp));
      if (m.hidden_dropout > 0) chunk.front() += sb * h / (p.sequence_parallel ? t : 1.0);
    }
    if (s == p.pp - 1) {
      dense += double(head_params_per_rank(m, p.tp) + mtp_params_per_rank(m, p.tp));
      experts += double(m.mtp_num_layers * expert_params_per_rank(m, m.num_layers, p.ep, p.etp));
      chunk.back() += double(m.mtp_num_layers) * activation_bytes_per_layer(m, p, m.num_layers);
      once += double(1 + m.mtp_num_layers) * sb * (4.0 * h / (p.sequence_parallel ? t : 1.0) + 4.0 * double(m.vocab_size) / t);
    }
    MemoryEstimate e;
    e.weights = 2.0 * (dense + experts);
    // DeepSpeed's BF16_Optimizer (grad_all_reduce) keeps the bf16 .grad of every parameter beside
    // its fp32 accumulation buffer (it zeroes them, never frees them): 2 bytes more.
    e.grads = double(p.grad_bytes() + (p.grad_all_reduce ? 2 : 0)) * (dense + experts);
    e.optimizer = 12.0 * dense / double(p.optimizer_shards()) + 12.0 * experts / double(p.expert_optimizer_shards());
    e.activations = peak_stage_activations(chunk, p.pp, s, p.num_microbatches()) + once;
    return e;
  };
  std::vector<MemoryEstimate> out;
  out.reserve(size_t(p.pp));
  for (int64_t s = 0; s < p.pp; ++s) out.push_back(stage(s));
  return out;
}

MemoryEstimate memory_per_rank(const ModelConfig& m, const config::ParallelConfig& p) {
  // The most loaded stage is the estimate, over every stage: with uneven chunks a middle stage can
  // hold the most (Llama 3.1 405B on pp 8 · vpp 8: stage 1 has 16 layers and 138 layer-micro-batches
  // in flight, stage 0 15 and 127).
  const auto stages = memory_per_stage(m, p);
  if (stages.empty()) throw RuntimeError("memory_per_rank: a plan without pipeline stages (pp < 1); this is a bug");
  return *std::max_element(stages.begin(), stages.end(),
                           [](const MemoryEstimate& a, const MemoryEstimate& b) { return a.total() < b.total(); });
}

std::vector<int64_t> chunk_layers(const config::ModelConfig& m, const config::ParallelConfig& p) {
  if (p.pipeline_layout.empty()) {
    return split_layers(m.num_layers, p.pp, p.vpp, p.account_for_embedding_in_pipeline_split, p.account_for_loss_in_pipeline_split);
  }
  std::string error;
  const auto chunks = config::parse_pipeline_layout(p.pipeline_layout, &error);
  if (chunks.empty()) throw InputError("parallel config", "pipeline_layout", "'" + p.pipeline_layout + "' " + error);
  std::vector<int64_t> out;
  for (const auto& c : chunks) out.push_back(c.decoder);
  return out;
}

std::vector<int64_t> split_layers(int64_t num_layers, int64_t pp, int64_t vpp, bool embedding_as_layer, bool loss_as_layer) {
  if (embedding_as_layer || loss_as_layer) {
    // Megatron --account-for-embedding/loss-in-pipeline-split: split num_layers + 1 (+ 1) virtual
    // layers, then the first (last) chunk gives its virtual one back to the embedding (the loss).
    auto out = split_layers(num_layers + int64_t(embedding_as_layer) + int64_t(loss_as_layer), pp, vpp, false, false);
    if (embedding_as_layer && out.front() > 0) --out.front();
    if (loss_as_layer && out.back() > 0) --out.back();
    return out;
  }
  const int64_t chunks = pp * vpp;
  const int64_t base = (num_layers + chunks - 1) / chunks;
  std::vector<int64_t> out(chunks, base);
  int64_t deficit = base * chunks - num_layers;
  // Take one layer from the first chunk, the last, the second, the second-to-last, …
  for (int64_t i = 0; deficit > 0; ++i, --deficit) {
    const int64_t idx = (i % 2 == 0) ? i / 2 : chunks - 1 - i / 2;
    out[idx] -= 1;
  }
  return out;
}

}  // namespace capscale::model
