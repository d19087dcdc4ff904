// Loading and validating model configs (capscale YAML or HuggingFace config.json).
#include "config/model_config.hpp"

#include <algorithm>
#include <array>
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

// The mixture-of-experts, latent-attention, window and MTP fields, checked together wherever a model
// comes from (YAML or config.json): every violation names the field and what is allowed.
void check_moe(const ModelConfig& m, const std::string& where) {
  const auto fail = [&](const char* field, const std::string& problem) { throw InputError(where, field, problem); };
  const std::string L = std::to_string(m.num_layers);
  if (m.window_size < 0) fail("window_size", "must be >= 0 (0 = full attention)");
  if (m.window_attn_skip_freq < 0 || m.window_attn_skip_freq > m.num_layers) {
    fail("window_attn_skip_freq", "must be in [0, num_layers = " + L + "]");
  }
  if (m.mtp_num_layers < 0 || m.mtp_num_layers > 16) fail("mtp_num_layers", "must be in [0, 16]");
  if (m.multi_latent_attention()) {
    if (m.q_lora_rank < 0) fail("q_lora_rank", "must be >= 0 (0 = no query compression)");
    if (m.qk_head_dim < 1) fail("qk_head_dim", "must be >= 1 with multi-head latent attention (kv_lora_rank > 0)");
    if (m.qk_pos_emb_head_dim < 1) fail("qk_pos_emb_head_dim", "must be >= 1 with multi-head latent attention (kv_lora_rank > 0)");
    if (m.v_head_dim < 1) fail("v_head_dim", "must be >= 1 with multi-head latent attention (kv_lora_rank > 0)");
  } else if (m.kv_lora_rank < 0) {
    fail("kv_lora_rank", "must be >= 0 (0 = standard attention)");
  } else if (m.q_lora_rank != 0 || m.qk_head_dim != 0 || m.qk_pos_emb_head_dim != 0 || m.v_head_dim != 0) {
    fail("kv_lora_rank", "must be > 0 when q_lora_rank, qk_head_dim, qk_pos_emb_head_dim or v_head_dim is given");
  }
  if (m.num_moe_experts < 0) fail("num_moe_experts", "must be >= 0 (0 = dense)");
  if (!m.is_moe()) {
    if (m.moe_router_topk != 0 || m.moe_ffn_hidden_size != 0 || m.moe_shared_expert_intermediate_size != 0 ||
        m.moe_first_k_dense != 0 || m.moe_router_num_groups != 0 || m.moe_router_group_topk != 0 || m.moe_layer_freq != 1) {
      fail("num_moe_experts", "must be > 0 when other moe_* fields are given (0 = a dense model)");
    }
    return;
  }
  const std::string E = std::to_string(m.num_moe_experts);
  if (m.moe_router_topk < 1 || m.moe_router_topk > m.num_moe_experts) fail("moe_router_topk", "must be in [1, num_moe_experts = " + E + "]");
  if (m.moe_ffn_hidden_size < 1) fail("moe_ffn_hidden_size", "must be >= 1");
  if (m.moe_shared_expert_intermediate_size < 0) fail("moe_shared_expert_intermediate_size", "must be >= 0 (0 = no shared expert)");
  if (m.moe_layer_freq < 1 || m.moe_layer_freq > m.num_layers) fail("moe_layer_freq", "must be in [1, num_layers = " + L + "]");
  if (m.moe_first_k_dense < 0 || m.moe_first_k_dense >= m.num_layers) fail("moe_first_k_dense", "must be in [0, num_layers - 1 = " + std::to_string(m.num_layers - 1) + "]");
  if (m.num_moe_layers() == 0) fail("moe_layer_freq", "leaves no MoE layer after the first moe_first_k_dense layers");
  if (m.moe_router_num_groups != 0 || m.moe_router_group_topk != 0) {
    if (m.moe_router_num_groups < 1 || m.num_moe_experts % m.moe_router_num_groups != 0) {
      fail("moe_router_num_groups", "must divide num_moe_experts = " + E + " (0 = no group-limited routing)");
    }
    if (m.moe_router_group_topk < 1 || m.moe_router_group_topk > m.moe_router_num_groups) {
      fail("moe_router_group_topk", "must be in [1, moe_router_num_groups = " + std::to_string(m.moe_router_num_groups) + "]");
    }
    if (m.moe_router_topk > m.moe_router_group_topk * (m.num_moe_experts / m.moe_router_num_groups)) {
      fail("moe_router_topk", "exceeds the experts of moe_router_group_topk groups");
    }
  }
}

// A HuggingFace config.json's integer field: nullopt when absent or null.
std::optional<int64_t> json_int(const nlohmann::json& j, const char* key, int64_t min, int64_t max, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() && !it->is_number_unsigned()) {
    throw InputError(path, key, "must be an integer, got " + it->dump().substr(0, 40));
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)) {
    throw InputError(path, key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + it->dump().substr(0, 40));
  }
  const auto v = it->get<int64_t>();
  if (v < min || v > max) {
    throw InputError(path, key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(v));
  }
  return v;
}

// A HuggingFace config.json's real-valued field: nullopt when absent or null.
std::optional<double> json_double(const nlohmann::json& j, const char* key, double min, double max, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  std::ostringstream range;  // as Fields::get_double prints it
  range << "[" << min << ", " << max << "]";
  if (!it->is_number()) throw InputError(path, key, "must be a number in " + range.str() + ", got " + it->dump().substr(0, 40));
  const auto v = it->get<double>();
  if (!(v >= min && v <= max)) throw InputError(path, key, "must be in " + range.str() + ", got " + it->dump().substr(0, 40));
  return v;
}

// Mixture-of-experts keys of the config.json families capscale reads (transformers' MixtralConfig,
// Qwen2MoeConfig / Qwen3MoeConfig, DeepseekV2Config / DeepseekV3Config, GptOssConfig). Keys that
// only steer training losses or routing numerics leave the step's work unchanged and are ignored;
// any other key naming experts or routing exits 2 naming it rather than being guessed at.
constexpr std::string_view kIgnoredMoeKeys[] = {
    "router_aux_loss_coef", "output_router_logits", "norm_topk_prob", "routed_scaling_factor", "scoring_func",
    "topk_method", "aux_loss_alpha", "seq_aux", "ep_size", "router_jitter_noise", "moe_layer_freq",
    "first_k_dense_replace", "n_group", "topk_group", "experts_per_token"};
constexpr std::string_view kReadMoeKeys[] = {
    "num_local_experts", "n_routed_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
    "n_shared_experts", "shared_expert_intermediate_size", "decoder_sparse_step", "mlp_only_layers"};

bool moe_like(const std::string& k) {
  for (const char* w : {"expert", "moe", "router", "topk", "n_group", "sparse"})
    if (k.find(w) != std::string::npos) return true;
  return false;
}

void read_hf_moe(const nlohmann::json& j, ModelConfig& m, const std::string& path) {
  for (const auto& item : j.items()) {
    const std::string& key = item.key();  // a plain reference: clang < 16 cannot capture a structured binding
    if (!moe_like(key)) continue;
    const auto known = [&](const auto& list) { return std::find(std::begin(list), std::end(list), key) != std::end(list); };
    if (!known(kIgnoredMoeKeys) && !known(kReadMoeKeys)) {
      throw InputError(path, key, "is a mixture-of-experts field capscale does not understand; it reads " +
                                      std::string("Mixtral, Qwen2/Qwen3-MoE, DeepSeek-V2/V3 and GPT-OSS configs"));
    }
  }
  int64_t experts = 0;
  for (const char* key : {"num_local_experts", "n_routed_experts", "num_experts"}) {
    if (auto v = json_int(j, key, 0, 65536, path)) experts = std::max(experts, *v);
  }
  m.num_moe_experts = experts;
  if (experts == 0) {
    // A count of 0 or null says dense (DeepseekV2Config's default is null) and the other MoE
    // fields are leftovers; without any count key, a positive top-k, expert width or shared
    // expert count marks an MoE config whose count key capscale does not know.
    const bool count_given = j.contains("num_local_experts") || j.contains("n_routed_experts") || j.contains("num_experts");
    for (const char* key : {"num_experts_per_tok", "moe_intermediate_size", "n_shared_experts"}) {
      if (auto v = json_int(j, key, 0, kMaxDim, path); !count_given && v && *v > 0) {
        throw InputError(path, key, "= " + std::to_string(*v) + " describes experts, but no expert count is given (num_local_experts, "
                                    "n_routed_experts or num_experts)");
      }
    }
    return;
  }
  m.moe_router_topk = json_int(j, "num_experts_per_tok", 1, experts, path).value_or(0);
  if (m.moe_router_topk == 0) throw InputError(path, "num_experts_per_tok", "is required for a mixture-of-experts config");
  // Mixtral and GPT-OSS size experts with intermediate_size; Qwen-MoE and DeepSeek with
  // moe_intermediate_size (their intermediate_size is the dense layers' width).
  m.moe_ffn_hidden_size = json_int(j, "moe_intermediate_size", 1, kMaxDim, path).value_or(m.ffn_hidden_size);
  if (auto shared = json_int(j, "shared_expert_intermediate_size", 0, kMaxDim, path)) m.moe_shared_expert_intermediate_size = *shared;
  if (auto n = json_int(j, "n_shared_experts", 0, 1024, path)) m.moe_shared_expert_intermediate_size = *n * m.moe_ffn_hidden_size;
  m.moe_first_k_dense = json_int(j, "first_k_dense_replace", 0, m.num_layers - 1, path).value_or(0);
  m.moe_layer_freq = json_int(j, "moe_layer_freq", 1, m.num_layers, path).value_or(1);
  // Qwen-MoE: layer i is sparse when (i + 1) % decoder_sparse_step == 0 and i is not in
  // mlp_only_layers. Read are the forms capscale's layer rule expresses: step 1 and a dense prefix.
  if (auto step = json_int(j, "decoder_sparse_step", 1, m.num_layers, path); step && *step != 1) {
    throw InputError(path, "decoder_sparse_step", "= " + std::to_string(*step) + ": only 1 (every layer sparse) is supported");
  }
  if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw InputError(path, "mlp_only_layers", "must be a list of layer indices");
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_number_integer() || (*it)[i].get<int64_t>() != int64_t(i)) {
        throw InputError(path, "mlp_only_layers", "must be a prefix [0, 1, …, k−1] (dense first layers); got " + it->dump().substr(0, 60));
      }
    }
    m.moe_first_k_dense = std::max<int64_t>(m.moe_first_k_dense, int64_t(it->size()));
  }
  const auto groups = json_int(j, "n_group", 1, experts, path), group_topk = json_int(j, "topk_group", 1, experts, path);
  if (groups && *groups > 1) {
    m.moe_router_num_groups = *groups;
    m.moe_router_group_topk = group_topk.value_or(*groups);
  }
}

// GPT-OSS's layer_types ("sliding_attention" / "full_attention" per layer) as Megatron's
// window_attn_skip_freq: the N for which layer i is full exactly when (i + 1) % N == 0.
void read_hf_window(const nlohmann::json& j, ModelConfig& m, const std::string& path) {
  const auto window = json_int(j, "sliding_window", 0, kMaxDim, path);
  auto types = j.find("layer_types");
  const bool any_sliding = types != j.end() && types->is_array() &&
                           std::any_of(types->begin(), types->end(), [](const auto& t) { return t == "sliding_attention"; });
  if (!window || *window == 0) return;
  if (j.contains("use_sliding_window") && j["use_sliding_window"] == false) return;  // Qwen: declared, unused
  if (types == j.end() || types->is_null()) {  // Mistral's form: every layer windowed
    m.window_size = *window;
    return;
  }
  if (!types->is_array() || int64_t(types->size()) != m.num_layers) {
    throw InputError(path, "layer_types", "must list one entry per layer (num_hidden_layers = " + std::to_string(m.num_layers) + ")");
  }
  if (!any_sliding) return;
  for (int64_t n = 1; n <= m.num_layers + 1; ++n) {
    bool match = true;
    for (int64_t i = 0; i < m.num_layers && match; ++i) {
      const auto& t = (*types)[i];
      if (t != "sliding_attention" && t != "full_attention") {
        throw InputError(path, "layer_types", "entries must be sliding_attention or full_attention, got " + t.dump().substr(0, 40));
      }
      match = (t == "full_attention") == (n <= m.num_layers && (i + 1) % n == 0);
    }
    if (match) {
      m.window_size = *window;
      m.window_attn_skip_freq = n <= m.num_layers ? n : 0;
      return;
    }
  }
  throw InputError(path, "layer_types", "must be periodic (a full-attention layer every N layers) to be read");
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
  m.window_size = f.get_int("window_size", 0, kMaxDim, 0);
  m.window_attn_skip_freq = f.get_int("window_attn_skip_freq", 0, m.num_layers, 0);
  m.num_moe_experts = f.get_int("num_moe_experts", 0, 65536, 0);
  m.moe_router_topk = f.get_int("moe_router_topk", 0, 65536, 0);
  m.moe_ffn_hidden_size = f.get_int("moe_ffn_hidden_size", 0, kMaxDim, m.is_moe() ? m.ffn_hidden_size : 0);
  m.moe_shared_expert_intermediate_size = f.get_int("moe_shared_expert_intermediate_size", 0, kMaxDim, 0);
  m.moe_layer_freq = f.get_int("moe_layer_freq", 1, m.num_layers, 1);
  m.moe_first_k_dense = f.get_int("moe_first_k_dense", 0, m.num_layers, 0);
  m.moe_router_num_groups = f.get_int("moe_router_num_groups", 0, 65536, 0);
  m.moe_router_group_topk = f.get_int("moe_router_group_topk", 0, 65536, 0);
  m.q_lora_rank = f.get_int("q_lora_rank", 0, kMaxDim, 0);
  m.kv_lora_rank = f.get_int("kv_lora_rank", 0, kMaxDim, 0);
  m.qk_head_dim = f.get_int("qk_head_dim", 0, kMaxDim, 0);
  m.qk_pos_emb_head_dim = f.get_int("qk_pos_emb_head_dim", 0, kMaxDim, 0);
  m.v_head_dim = f.get_int("v_head_dim", 0, kMaxDim, 0);
  m.mtp_num_layers = f.get_int("mtp_num_layers", 0, 16, 0);
  m.hidden_dropout = f.get_double("hidden_dropout", 0.0, 0.99, 0.0);
  m.attention_dropout = f.get_double("attention_dropout", 0.0, 0.99, 0.0);
  m.published_params = f.get_double("published_params", 1, 1e16, 0);
  m.published_active_params = f.get_double("published_active_params", 1, 1e16, 0);
  m.sources = f.get_string_map("sources");
  f.finish({"name", "description", "num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads",
            "num_query_groups", "kv_channels", "vocab_size", "seq_length", "activation", "normalization",
            "add_bias_linear", "position_embedding", "tie_embeddings", "window_size", "window_attn_skip_freq",
            "num_moe_experts", "moe_router_topk", "moe_ffn_hidden_size", "moe_shared_expert_intermediate_size",
            "moe_layer_freq", "moe_first_k_dense", "moe_router_num_groups", "moe_router_group_topk", "q_lora_rank",
            "kv_lora_rank", "qk_head_dim", "qk_pos_emb_head_dim", "v_head_dim", "mtp_num_layers", "hidden_dropout",
            "attention_dropout", "published_params",
            "published_active_params", "sources"});
  check_consistency(m, path);
  check_moe(m, path);
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
  // DeepSeek-V2/V3 multi-head latent attention (q_lora_rank null: queries projected directly).
  if (auto kv = json_int(j, "kv_lora_rank", 0, kMaxDim, path); kv && *kv > 0) {
    m.kv_lora_rank = *kv;
    m.q_lora_rank = json_int(j, "q_lora_rank", 0, kMaxDim, path).value_or(0);
    m.qk_head_dim = json_int(j, "qk_nope_head_dim", 1, kMaxDim, path).value_or(0);
    m.qk_pos_emb_head_dim = json_int(j, "qk_rope_head_dim", 1, kMaxDim, path).value_or(0);
    m.v_head_dim = json_int(j, "v_head_dim", 1, kMaxDim, path).value_or(0);
    m.num_query_groups = m.num_attention_heads;  // MLA up-projects a key and a value per head
  }
  m.mtp_num_layers = json_int(j, "num_nextn_predict_layers", 0, 16, path).value_or(0);
  // Dropout under the names transformers' configs use (Llama/Qwen/DeepSeek: attention_dropout;
  // GPT-2/NeoX-style: resid_pdrop / attn_pdrop, hidden_dropout(_prob)); absent means none.
  const auto dropout = [&](std::initializer_list<const char*> keys) {
    for (const char* key : keys)
      if (auto p = json_double(j, key, 0.0, 0.99, path)) return *p;
    return 0.0;
  };
  m.hidden_dropout = dropout({"hidden_dropout", "hidden_dropout_prob", "resid_pdrop"});
  m.attention_dropout = dropout({"attention_dropout", "attention_probs_dropout_prob", "attn_pdrop"});
  read_hf_window(j, m, path);
  read_hf_moe(j, m, path);
  check_consistency(m, path);
  check_moe(m, path);
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

namespace capscale::config {
int64_t ModelConfig::num_moe_layers() const {
  if (!is_moe()) return 0;
  int64_t n = 0;
  for (int64_t i = moe_first_k_dense; i < num_layers; ++i) n += i % moe_layer_freq == 0;
  return n;
}
}  // namespace capscale::config
