// The transformer being trained: Megatron-Core TransformerConfig names, read from a capscale model
// YAML (configs/models/*.yaml) or a HuggingFace config.json. Plain validated struct; no behaviour.
#pragma once
#include <yaml-cpp/yaml.h>

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
  double published_params = 0;  ///< 0 when unknown
  std::string origin;           ///< file it came from
  std::map<std::string, std::string> sources;

  /// Weight matrices in the MLP: 3 for gated (SwiGLU), 2 otherwise.
  int64_t mlp_matrices() const { return activation == Activation::kSwiglu ? 3 : 2; }
};

/// Resolves --model: a name in configs/models, a path to a .yaml, or a HuggingFace config.json.
ModelConfig load_model(const std::string& name_or_path);
ModelConfig load_model_yaml(const std::string& path);
ModelConfig load_model_hf_json(const std::string& path);
/// A model map already parsed from YAML (inline models in sweep or validation files).
ModelConfig parse_model_node(const YAML::Node& node, const std::string& where);

inline std::string to_string(Activation a) { return enum_name(a); }

}  // namespace capscale::config
