// Accounting formulas; see accounting.hpp for citations.
#include "model/accounting.hpp"

#include <algorithm>

#include "common/checked.hpp"

namespace capscale::model {

using config::Activation;
using config::ModelConfig;
using config::Normalization;

namespace {
int64_t norm_params(const ModelConfig& m) {
  return m.normalization == Normalization::kLayerNorm ? 2 * m.hidden_size : m.hidden_size;
}
}  // namespace

int64_t layer_params_per_rank(const ModelConfig& m, int64_t tp) {
  const int64_t h = m.hidden_size, d = m.kv_channels;
  const int64_t q = m.num_attention_heads * d, kv = 2 * m.num_query_groups * d;
  int64_t p = checked_mul(h, q + kv, "layer params") / tp;                            // QKV
  p += checked_mul(q, h, "layer params") / tp;                                          // attention projection
  p += checked_mul(checked_mul(h, m.ffn_hidden_size, "layer params"), m.mlp_matrices(), "layer params") / tp;  // MLP
  p += 2 * norm_params(m);                                                              // two norms
  if (m.add_bias_linear) {
    p += (q + kv) / tp + h;                                          // QKV bias (split), proj bias (replicated)
    p += m.ffn_hidden_size * (m.mlp_matrices() - 1) / tp + h;        // FC1 bias (split), FC2 bias
  }
  return p;
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
  return checked_add(checked_mul(m.num_layers, layer_params_per_rank(m, 1), "total params"),
                     embedding_params_per_rank(m, 1) + head_params_per_rank(m, 1), "total params");
}

double matmul_weights_per_layer(const ModelConfig& m) {
  const double h = double(m.hidden_size), d = double(m.kv_channels);
  const double q = double(m.num_attention_heads) * d, kv = 2.0 * double(m.num_query_groups) * d;
  return h * (q + kv) + q * h + h * double(m.ffn_hidden_size) * double(m.mlp_matrices());
}

double model_flops_per_token(const ModelConfig& m, int64_t s) {
  // Forward FLOPs per token are 2 × (weights each token multiplies) plus attention's QKᵀ and PV,
  // 4·s·(heads·head_dim) per layer; training is 3× forward (backward = 2× forward).
  const double h = double(m.hidden_size);
  const double q = double(m.num_attention_heads) * double(m.kv_channels);
  const double matmul_per_layer = matmul_weights_per_layer(m);
  const double fwd = double(m.num_layers) * (2.0 * matmul_per_layer + 4.0 * double(s) * q) +
                     2.0 * double(m.vocab_size) * h;  // logits
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

double activation_bytes_per_layer(const ModelConfig& m, const config::ParallelConfig& p) {
  const double s = double(p.seq_length) / double(p.cp), b = double(p.micro_batch_size), h = double(m.hidden_size);
  const double a = double(m.num_attention_heads), t = double(p.tp);
  const double attn_term = (p.recompute == config::Recompute::kNone && !p.flash_attention) ? 5.0 * a * s / h : 0.0;
  if (p.recompute == config::Recompute::kFull) return 2.0 * s * b * h / (p.sequence_parallel ? t : 1.0);
  const double bf16 = p.sequence_parallel ? s * b * h / t * (34.0 + attn_term) : s * b * h * (10.0 + 24.0 / t + attn_term / t);
  if (p.precision != config::Precision::kFp8) return bf16;
  // Under FP8 Transformer Engine saves the FP8-cast inputs of its linear layers for the wgrad
  // GEMM (transformer_engine/pytorch/module/layernorm_linear.py, linear.py, layernorm_mlp.py
  // keep ln_out / inputmat / fc2 input as Float8Tensor): 1 byte instead of 2 for the QKV and FC1
  // inputs (the norm outputs, sbh each, sharded over tp under SP), the projection input (s·b·q/t)
  // and the FC2 input (s·b·ffn/t).
  const double q = double(m.num_attention_heads) * double(m.kv_channels), f = double(m.ffn_hidden_size);
  const double norm_out = p.sequence_parallel ? s * b * h / t : s * b * h;
  return bf16 - (2.0 * norm_out + s * b * (q + f) / t);
}

MemoryEstimate memory_per_rank(const ModelConfig& m, const config::ParallelConfig& p) {
  // Stage 0 holds the embedding and, under 1F1B, min(pp, micro-batches) micro-batches in flight;
  // the interleaved schedule needs (1 + (pp−1)/(pp·vpp)) × that (Narayanan et al. SC21 §2.2.2).
  const auto layers = split_layers(m.num_layers, p.pp, p.vpp);
  double params = double(embedding_params_per_rank(m, p.tp));
  int64_t stage_layers = 0;
  for (int64_t c = 0; c < p.vpp; ++c) stage_layers += layers[c * p.pp];
  params += double(stage_layers) * double(layer_params_per_rank(m, p.tp));
  if (p.pp == 1) params += double(head_params_per_rank(m, p.tp));
  MemoryEstimate e;
  e.weights = 2.0 * params;
  e.grads = double(p.grad_bytes()) * params;
  e.optimizer = 12.0 * params / (p.zero ? double(p.dp * p.cp) : 1.0);
  double in_flight = double(std::min<int64_t>(p.pp, p.num_microbatches()));
  if (p.vpp > 1) in_flight *= 1.0 + double(p.pp - 1) / double(p.pp * p.vpp);
  e.activations = in_flight * double(stage_layers) * activation_bytes_per_layer(m, p);
  // Embedding output of the micro-batches in flight (sbh·2 bytes each) sits on stage 0 too.
  e.activations += in_flight * double(p.seq_length / p.cp) * double(p.micro_batch_size) * double(m.hidden_size) * 2.0;
  return e;
}

std::vector<int64_t> split_layers(int64_t num_layers, int64_t pp, int64_t vpp) {
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
