// Loading and validating model configs (capscale YAML or HuggingFace config.json).
#include "config/model_config.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/error.hpp"
#include "config/fields.hpp"
#include "config/paths.hpp"

namespace capscale::config {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 24;  // 16M: larger than any real hidden size or vocab

void check_consistency(const ModelConfig& m, const std::string& where) {
  if (m.num_attention_heads % m.num_query_groups != 0) {
    throw InputError(where, "num_query_groups",
                     "must divide num_attention_heads (" + std::to_string(m.num_attention_heads) +
                         "), got " + std::to_string(m.num_query_groups));
  }
  if (m.kv_channels * m.num_attention_heads != m.hidden_size && m.kv_channels == 0) {
    throw InputError(where, "hidden_size", "must be divisible by num_attention_heads");
  }
}

// Until the plan builds expert layers, a mixture-of-experts config.json must not be predicted as
// the dense model its attention and shared fields describe. Expert counts as transformers names
// them: Mixtral / Granite-MoE / PhiMoE `num_local_experts`, DeepSeek-V2/V3 and GLM-4-MoE
// `n_routed_experts`, Qwen2/3-MoE, OLMoE and Jamba `num_experts`, DBRX-style `moe_num_experts`. A
// count that is null or 0 says "dense" (DeepseekV2Config defaults n_routed_experts to null), and
// then the other MoE fields are leftovers; without any count, a positive top-k, expert FFN width or
// shared-expert count still marks an MoE config whose count key we do not know.
void reject_moe(const nlohmann::json& j, const std::string& path) {
  // nullopt when absent or null; otherwise a non-negative integer.
  const auto count = [&](const char* key) -> std::optional<uint64_t> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    if (it->is_number_unsigned()) return it->get<uint64_t>();
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw InputError(path, key, "must be a non-negative integer (a mixture-of-experts field), got " + it->dump().substr(0, 40));
    }
    return uint64_t(it->get<int64_t>());
  };
  const auto reject = [&](const char* key, uint64_t v) {
    throw InputError(path, key, "= " + std::to_string(v) +
                                    ": mixture-of-experts models are not supported yet (capscale predicts dense models only)");
  };
  bool dense_said = false;
  for (const char* key : {"num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts"}) {
    const auto v = count(key);
    if (v && *v > 0) reject(key, *v);
    dense_said |= j.contains(key);
  }
  if (dense_said) return;
  for (const char* key : {"num_experts_per_tok", "moe_intermediate_size", "n_shared_experts"}) {
    if (const auto v = count(key); v && *v > 0) reject(key, *v);
  }
}

}  // namespace

ModelConfig load_model_yaml(const std::string& path) { return parse_model_node(load_yaml_file(path), path); }

ModelConfig parse_model_node(const YAML::Node& node, const std::string& path) {
  const Fields f(node, path);
  ModelConfig m;
  m.origin = path;
  m.name = f.get_string("name");
  m.description = f.get_string("description", "");
  m.num_layers = f.get_int("num_layers", 1, 100000);
  m.hidden_size = f.get_int("hidden_size", 1, kMaxDim);
  m.ffn_hidden_size = f.get_int("ffn_hidden_size", 1, kMaxDim);
  m.num_attention_heads = f.get_int("num_attention_heads", 1, 65536);
  m.num_query_groups = f.get_int("num_query_groups", 1, 65536, m.num_attention_heads);
  if (m.hidden_size % m.num_attention_heads != 0 && !f.has("kv_channels")) {
    throw InputError(path, "hidden_size", "must be divisible by num_attention_heads (" +
                                              std::to_string(m.num_attention_heads) + ") or kv_channels given");
  }
  m.kv_channels = f.get_int("kv_channels", 1, kMaxDim, m.hidden_size / m.num_attention_heads);
  m.vocab_size = f.get_int("vocab_size", 1, kMaxDim);
  m.seq_length = f.get_int("seq_length", 1, kMaxDim);
  m.activation = parse_enum<Activation>(f.get_enum("activation", enum_names<Activation>(), "gelu"), path, "activation");
  m.normalization =
      parse_enum<Normalization>(f.get_enum("normalization", enum_names<Normalization>(), "layernorm"), path, "normalization");
  m.add_bias_linear = f.get_bool("add_bias_linear", false);
  m.position_embedding = parse_enum<PositionEmbedding>(
      f.get_enum("position_embedding", enum_names<PositionEmbedding>(), "learned"), path, "position_embedding");
  m.tie_embeddings = f.get_bool("tie_embeddings", false);
  m.published_params = f.get_double("published_params", 1, 1e16, 0);
  m.sources = f.get_string_map("sources");
  f.finish({"name", "description", "num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads",
            "num_query_groups", "kv_channels", "vocab_size", "seq_length", "activation", "normalization",
            "add_bias_linear", "position_embedding", "tie_embeddings", "published_params", "sources"});
  check_consistency(m, path);
  return m;
}

ModelConfig load_model_hf_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot be opened (missing or unreadable)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path, "", std::string("is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw InputError(path, "", "must be a JSON object (a HuggingFace config.json)");
  reject_moe(j, path);
  // HuggingFace's field names (transformers' PretrainedConfig subclasses); other keys are ignored.
  auto get_int = [&](const char* key, int64_t min, int64_t max, bool required, int64_t fallback) -> int64_t {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) throw InputError(path, key, "is required in a HuggingFace config.json");
      return fallback;
    }
    if (!it->is_number_integer() && !it->is_number_unsigned()) {
      throw InputError(path, key, "must be an integer, got " + it->dump().substr(0, 40));
    }
    const auto v = it->get<int64_t>();
    if (v < min || v > max) {
      throw InputError(path, key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) +
                                      "], got " + std::to_string(v));
    }
    return v;
  };
  ModelConfig m;
  m.origin = path;
  // The model's name: HuggingFace's own `_name_or_path` ("meta-llama/Llama-3.1-8B"; a local path
  // keeps its last component), else the file's stem, or for a file called config.json its folder
  // (as HuggingFace checkouts are laid out), resolved so that ./config.json names its folder too.
  {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path file = fs::absolute(path, ec).lexically_normal();
    const fs::path folder = (ec ? fs::path(path) : file).parent_path().filename();
    m.name = fs::path(path).stem().string();
    if (m.name == "config" && !folder.empty()) m.name = folder.string();
    if (auto it = j.find("_name_or_path"); it != j.end() && it->is_string() && !it->get<std::string>().empty()) {
      std::string n = it->get<std::string>();
      while (n.size() > 1 && n.back() == '/') n.pop_back();
      if (n.front() == '/' || n.front() == '.') n = fs::path(n).filename().string();  // a local path
      if (!n.empty()) m.name = n;
    }
    if (m.name.empty()) m.name = "config";
  }
  m.num_layers = get_int("num_hidden_layers", 1, 100000, true, 0);
  m.hidden_size = get_int("hidden_size", 1, kMaxDim, true, 0);
  m.ffn_hidden_size = get_int("intermediate_size", 1, kMaxDim, false, 4 * m.hidden_size);
  m.num_attention_heads = get_int("num_attention_heads", 1, 65536, true, 0);
  m.num_query_groups = get_int("num_key_value_heads", 1, 65536, false, m.num_attention_heads);
  if (m.hidden_size % m.num_attention_heads != 0 && !j.contains("head_dim")) {
    throw InputError(path, "hidden_size", "must be divisible by num_attention_heads");
  }
  m.kv_channels = get_int("head_dim", 1, kMaxDim, false, m.hidden_size / m.num_attention_heads);
  m.vocab_size = get_int("vocab_size", 1, kMaxDim, true, 0);
  m.seq_length = get_int("max_position_embeddings", 1, kMaxDim, false, 4096);
  std::string act = "silu";
  for (const char* key : {"hidden_act", "hidden_activation", "activation_function"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) throw InputError(path, key, "must be a string (silu, swish, gelu*, relu2), got " + it->dump().substr(0, 40));
    act = it->get<std::string>();
  }
  if (act == "silu" || act == "swish") m.activation = Activation::kSwiglu;  // Llama/Mistral/Qwen gate_proj
  else if (act.rfind("gelu", 0) == 0) m.activation = Activation::kGelu;
  else if (act == "relu2") m.activation = Activation::kSquaredRelu;
  else throw InputError(path, "hidden_act", "must be one of: silu, swish, gelu*, relu2; got '" + act + "'");
  m.normalization = j.contains("rms_norm_eps") ? Normalization::kRmsNorm : Normalization::kLayerNorm;
  m.position_embedding = j.contains("rope_theta") || j.contains("rope_scaling") ? PositionEmbedding::kRope
                                                                                 : PositionEmbedding::kLearned;
  if (auto it = j.find("tie_word_embeddings"); it != j.end()) {
    if (!it->is_boolean()) throw InputError(path, "tie_word_embeddings", "must be true or false");
    m.tie_embeddings = it->get<bool>();
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (auto it = j.find(key); it != j.end() && it->is_boolean()) m.add_bias_linear |= it->get<bool>();
  }
  check_consistency(m, path);
  return m;
}

ModelConfig load_model(const std::string& name_or_path) {
  namespace fs = std::filesystem;
  if (name_or_path.empty()) throw InputError("--model", "", "is empty; give a name (capscale list models) or a file");
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) {
    const auto ext = fs::path(name_or_path).extension().string();
    if (ext == ".json") return load_model_hf_json(name_or_path);
    return load_model_yaml(name_or_path);
  }
  if (const std::string p = find_config("models", name_or_path); !p.empty()) return load_model_yaml(p);
  throw InputError("--model", "", "'" + name_or_path + "' is neither a file nor a known model; known: " +
                                     join(list_configs("models")));
}

}  // namespace capscale::config
