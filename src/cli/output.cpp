// Tables and JSON; see output.hpp.
#include "cli/output.hpp"

#include <cstdio>
#include <iomanip>
#include <sstream>

#include "cli/commands.hpp"
#include "config/record_json.hpp"
#include "model/accounting.hpp"

namespace capscale::cli {

std::string fmt(double v, int precision) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

std::string one_line(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else out += char(c);
  }
  return out;
}

nlohmann::json to_json(const config::ParallelConfig& p) { return config::record_to_json(p, config::parallel_fields()); }

config::ParallelConfig parallel_from_json(const nlohmann::json& j) {
  return config::record_from_json(j, config::parallel_fields(), "parallel config JSON");
}

nlohmann::json to_json(const config::ModelConfig& m) {
  return {{"name", m.name}, {"num_layers", m.num_layers}, {"hidden_size", m.hidden_size},
          {"ffn_hidden_size", m.ffn_hidden_size}, {"num_attention_heads", m.num_attention_heads},
          {"num_query_groups", m.num_query_groups}, {"kv_channels", m.kv_channels}, {"vocab_size", m.vocab_size},
          {"seq_length", m.seq_length}, {"activation", config::to_string(m.activation)},
          {"normalization", config::enum_name(m.normalization)},
          {"add_bias_linear", m.add_bias_linear},
          {"position_embedding", config::enum_name(m.position_embedding)},
          {"tie_embeddings", m.tie_embeddings}, {"hidden_dropout", m.hidden_dropout},
          {"attention_dropout", m.attention_dropout}, {"params", model::total_params(m)}, {"origin", m.origin}};
}

config::ModelConfig model_from_json(const nlohmann::json& j) {
  config::ModelConfig m;
  m.name = j.at("name"), m.num_layers = j.at("num_layers"), m.hidden_size = j.at("hidden_size");
  m.ffn_hidden_size = j.at("ffn_hidden_size"), m.num_attention_heads = j.at("num_attention_heads");
  m.num_query_groups = j.at("num_query_groups"), m.kv_channels = j.at("kv_channels"), m.vocab_size = j.at("vocab_size");
  m.seq_length = j.at("seq_length");
  m.activation = config::parse_enum<config::Activation>(j.at("activation"), "model JSON", "activation");
  m.normalization = config::parse_enum<config::Normalization>(j.at("normalization"), "model JSON", "normalization");
  m.add_bias_linear = j.at("add_bias_linear");
  m.position_embedding = config::parse_enum<config::PositionEmbedding>(j.at("position_embedding"), "model JSON", "position_embedding");
  m.tie_embeddings = j.at("tie_embeddings");
  // Files written before the dropout fields modelled every layer's activations as Korthikanti's
  // GPT layer, with Megatron's default dropout (0.1) on.
  m.hidden_dropout = j.value("hidden_dropout", 0.1);
  m.attention_dropout = j.value("attention_dropout", 0.1);
  return m;
}

nlohmann::json to_json(const config::ChipProfile& c) {
  return {{"name", c.name}, {"description", c.description}, {"arch", c.arch}, {"peak_tflops", c.peak_tflops},
          {"hbm_gb", c.hbm_gb}, {"hbm_tbps", c.hbm_tbps}, {"nvlink_gbyte_s", c.nvlink_gbyte_s},
          {"nvlink_domain", c.nvlink_domain}, {"nic_gbit_s", c.nic_gbit_s},
          {"full_mesh", c.full_mesh}, {"nvls", c.nvls}, {"sm_count", c.sm_count}, {"comm_ctas", c.comm_ctas},
          {"nccl_channel_gbyte_s", c.nccl_channel_gbyte_s}, {"node_jitter", c.node_jitter},
          {"host_step_gap_s", c.host_step_gap_s},
          {"efficiency", {{"gemm", c.efficiency.gemm}, {"gemm_fp8", c.efficiency.gemm_fp8}, {"attention", c.efficiency.attention},
                          {"attention_fa1", c.efficiency.attention_fa1}, {"attention_dropout", c.efficiency.attention_dropout},
                          {"hbm", c.efficiency.hbm}, {"nvlink", c.efficiency.nvlink}, {"nic", c.efficiency.nic},
                          {"sustained", c.efficiency.sustained}, {"nvls", c.efficiency.nvls}}},
          {"reserved_gb", c.reserved_gb}, {"origin", c.origin}};
}

nlohmann::json to_json(const predict::SummaryRow& r) {
  nlohmann::json j = config::record_to_json(r, predict::summary_fields());
  j["nvlink_convention"] = "datasheet bidirectional GB/s";
  return j;
}

void print_config(std::ostream& os, const config::ModelConfig& m, const config::ParallelConfig& p, const std::string& extra) {
  os << "# capscale: model " << m.name << " (" << fmt(double(model::total_params(m)) / 1e9, 2) << " B params: "
     << m.num_layers << " layers, h " << m.hidden_size << ", ffn " << m.ffn_hidden_size << ", heads "
     << m.num_attention_heads << "/" << m.num_query_groups << " kv, vocab " << m.vocab_size << ", "
     << config::to_string(m.activation) << ")\n";
  os << "# parallel: " << parallel_text(p) << ", seq " << p.seq_length << ", global batch " << p.global_batch_size
     << " (" << p.num_microbatches() << " micro-batches), " << config::to_string(p.precision) << ", schedule "
     << config::to_string(p.schedule()) << "\n";
  if (!extra.empty()) os << extra;
}

void print_summary_table(std::ostream& os, const std::vector<predict::SummaryRow>& rows) {
  const auto& fields = predict::summary_fields();
  os << config::table_header(fields) << "\n";
  for (const auto& r : rows) os << config::table_row(r, fields) << "\n";
  os << "# TFLOP/s and MFU count model FLOPs (no recompute, PaLM App. B); HFU counts recompute. "
        "NVLink caps use datasheet bidirectional GB/s.\n";
}

}  // namespace capscale::cli
