// The transformer being trained: Megatron-Core TransformerConfig names, read from a capscale model
// YAML (configs/models/*.yaml) or a HuggingFace config.json. Plain validated struct; no behaviour.
#pragma once
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>

#include "config/enum_names.hpp"

namespace capscale::config {

enum class Activation { kGelu, kSwiglu, kSquaredRelu };
enum class Normalization { kLayerNorm, kRmsNorm };
enum class PositionEmbedding { kLearned, kRope };
template <>
struct EnumNames<Activation> {
  static constexpr std::array<std::pair<Activation, std::string_view>, 3> kNames{
      {{Activation::kGelu, "gelu"}, {Activation::kSwiglu, "swiglu"}, {Activation::kSquaredRelu, "squared_relu"}}};
};
template <>
struct EnumNames<Normalization> {
  static constexpr std::array<std::pair<Normalization, std::string_view>, 2> kNames{
      {{Normalization::kLayerNorm, "layernorm"}, {Normalization::kRmsNorm, "rmsnorm"}}};
};
template <>
struct EnumNames<PositionEmbedding> {
  static constexpr std::array<std::pair<PositionEmbedding, std::string_view>, 2> kNames{
      {{PositionEmbedding::kLearned, "learned"}, {PositionEmbedding::kRope, "rope"}}};
};

struct ModelConfig {
  std::string name;
  std::string description;
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  int64_t ffn_hidden_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_query_groups = 0;
  int64_t kv_channels = 0;  ///< head dim; hidden_size / heads unless the model says otherwise
  int64_t vocab_size = 0;
  int64_t seq_length = 0;
  Activation activation = Activation::kGelu;
  Normalization normalization = Normalization::kLayerNorm;
  bool add_bias_linear = false;
  PositionEmbedding position_embedding = PositionEmbedding::kLearned;
  bool tie_embeddings = false;
  /// Sliding-window attention (Megatron window_size / window_attn_skip_freq): each query sees the
  /// last window_size keys; 0 = full attention. Every window_attn_skip_freq-th layer (1-based) keeps
  /// full attention (GPT-OSS: 2, alternating); 0 = every layer windowed.
  int64_t window_size = 0;
  int64_t window_attn_skip_freq = 0;

  // Mixture of experts (Megatron-Core TransformerConfig names). num_moe_experts 0: a dense model.
  int64_t num_moe_experts = 0;
  int64_t moe_router_topk = 0;                      ///< routed experts per token
  int64_t moe_ffn_hidden_size = 0;                  ///< one routed expert's FFN width
  int64_t moe_shared_expert_intermediate_size = 0;  ///< all shared experts together; 0: none
  /// Layer i (0-based) is an MoE layer when i ≥ moe_first_k_dense and i % moe_layer_freq == 0
  /// (HuggingFace DeepSeek-V2/V3: first_k_dense_replace, moe_layer_freq); the others are dense.
  int64_t moe_layer_freq = 1;
  int64_t moe_first_k_dense = 0;
  /// Node-limited (group-limited) routing, DeepSeek-V3 §2.1.2: experts in moe_router_num_groups
  /// groups, each token routed to experts of at most moe_router_group_topk groups; 0: off.
  int64_t moe_router_num_groups = 0;
  int64_t moe_router_group_topk = 0;

  // Multi-head latent attention (DeepSeek-V2 §2.1; Megatron MLATransformerConfig). kv_lora_rank 0:
  // standard (grouped-query) attention and the four fields below are unused.
  int64_t q_lora_rank = 0;  ///< 0: queries projected directly from the hidden state
  int64_t kv_lora_rank = 0;
  int64_t qk_head_dim = 0;          ///< per-head query/key width without RoPE
  int64_t qk_pos_emb_head_dim = 0;  ///< per-head RoPE width shared by keys
  int64_t v_head_dim = 0;
  /// Multi-token prediction modules (DeepSeek-V3 §2.2): each one more transformer layer, a 2h→h
  /// projection and two norms on the last stage, sharing the embedding and output head.
  int64_t mtp_num_layers = 0;
  /// Dropout probabilities in training (Megatron --hidden-dropout / --attention-dropout). They
  /// decide what a layer keeps for its backward: each hidden dropout (after the attention
  /// projection and after FC2) keeps a 1-byte mask per element when p > 0; attention dropout keeps
  /// a mask and its output over the score matrix when attention is unfused (flash attention
  /// regenerates its mask from the RNG state). Megatron's default is 0.1 for both; Llama, Qwen,
  /// DeepSeek, Mixtral and Nemotron-4 train with 0.
  double hidden_dropout = 0.0;
  double attention_dropout = 0.0;

  double published_params = 0;  ///< 0 when unknown
  double published_active_params = 0;  ///< MoE: parameters active per token; 0 when unknown
  std::string origin;           ///< file it came from
  std::map<std::string, std::string> sources;

  /// Weight matrices in the MLP: 3 for gated (SwiGLU), 2 otherwise.
  int64_t mlp_matrices() const { return activation == Activation::kSwiglu ? 3 : 2; }
  /// Elements the MLP activation moves per element of its output, read + written: SwiGLU reads
  /// gate and up and writes one (3), GeLU reads one and writes one (2); its backward reads the
  /// output gradient and the saved inputs and writes their gradients (SwiGLU 3 + 2, GeLU 2 + 1).
  int64_t activation_passes(bool backward) const {
    return activation == Activation::kSwiglu ? (backward ? 5 : 3) : (backward ? 3 : 2);
  }
  bool is_moe() const { return num_moe_experts > 0; }
  /// Layers past the last (the MTP modules' layers) take the last layer's kind.
  bool is_moe_layer(int64_t layer) const {
    if (layer >= num_layers) layer = num_layers - 1;
    return is_moe() && layer >= moe_first_k_dense && layer % moe_layer_freq == 0;
  }
  int64_t num_moe_layers() const;
  bool multi_latent_attention() const { return kv_lora_rank > 0; }
  /// Keys one query attends to in layer `layer` (the window, or the whole sequence of length s).
  int64_t attended_keys(int64_t layer, int64_t s) const {
    const bool full = window_size == 0 || (window_attn_skip_freq > 0 && (layer + 1) % window_attn_skip_freq == 0);
    return full ? s : std::min(s, window_size);
  }
  /// Per-head widths of the attention core: query/key (with RoPE part under MLA) and value.
  int64_t qk_dim() const { return multi_latent_attention() ? qk_head_dim + qk_pos_emb_head_dim : kv_channels; }
  int64_t v_dim() const { return multi_latent_attention() ? v_head_dim : kv_channels; }
};

/// Resolves --model: a name in configs/models, a path to a .yaml, or a HuggingFace config.json.
ModelConfig load_model(const std::string& name_or_path);
ModelConfig load_model_yaml(const std::string& path);
ModelConfig load_model_hf_json(const std::string& path);
/// A model map already parsed from YAML (inline models in sweep or validation files).
ModelConfig parse_model_node(const YAML::Node& node, const std::string& where);

inline std::string to_string(Activation a) { return enum_name(a); }

}  // namespace capscale::config
