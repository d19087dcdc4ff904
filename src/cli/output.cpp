// Tables and JSON; see output.hpp.
#include "cli/output.hpp"

#include <cstdio>
#include <iomanip>
#include <sstream>

#include "model/accounting.hpp"

namespace capscale::cli {

std::string fmt(double v, int precision) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

std::string parallel_text(const config::ParallelConfig& p) {
  return "tp" + std::to_string(p.tp) + " pp" + std::to_string(p.pp) + " dp" + std::to_string(p.dp) + " cp" +
         std::to_string(p.cp) + (p.vpp > 1 ? " vpp" + std::to_string(p.vpp) : "") + " mbs" +
         std::to_string(p.micro_batch_size) + " " + config::to_string(p.recompute).substr(0, 3) +
         (p.zero ? " z1" : "") + (p.sequence_parallel ? " sp" : "") + (p.grad_reduce_in_bf16 ? " gbf16" : "");
}

nlohmann::json to_json(const config::ParallelConfig& p) {
  return {{"tp", p.tp}, {"pp", p.pp}, {"dp", p.dp}, {"cp", p.cp}, {"vpp", p.vpp},
          {"micro_batch_size", p.micro_batch_size}, {"global_batch_size", p.global_batch_size},
          {"seq_length", p.seq_length}, {"sequence_parallel", p.sequence_parallel},
          {"recompute", config::to_string(p.recompute)}, {"zero", p.zero},
          {"precision", config::to_string(p.precision)}, {"schedule", config::to_string(p.schedule())},
          {"tp_comm_overlap", p.tp_comm_overlap}, {"flash_attention", p.flash_attention},
          {"grad_reduce_in_bf16", p.grad_reduce_in_bf16}};
}

config::ParallelConfig parallel_from_json(const nlohmann::json& j) {
  config::ParallelConfig p;
  p.tp = j.at("tp"), p.pp = j.at("pp"), p.dp = j.at("dp"), p.cp = j.at("cp"), p.vpp = j.at("vpp");
  p.micro_batch_size = j.at("micro_batch_size"), p.global_batch_size = j.at("global_batch_size");
  p.seq_length = j.at("seq_length"), p.sequence_parallel = j.at("sequence_parallel");
  p.recompute = config::parse_recompute(j.at("recompute").get<std::string>(), "json");
  p.zero = j.at("zero");
  p.precision = config::parse_precision(j.at("precision").get<std::string>(), "json");
  p.tp_comm_overlap = j.value("tp_comm_overlap", false);
  p.flash_attention = j.value("flash_attention", true);
  p.grad_reduce_in_bf16 = j.value("grad_reduce_in_bf16", false);
  return p;
}

nlohmann::json to_json(const config::ModelConfig& m) {
  return {{"name", m.name}, {"num_layers", m.num_layers}, {"hidden_size", m.hidden_size},
          {"ffn_hidden_size", m.ffn_hidden_size}, {"num_attention_heads", m.num_attention_heads},
          {"num_query_groups", m.num_query_groups}, {"kv_channels", m.kv_channels}, {"vocab_size", m.vocab_size},
          {"seq_length", m.seq_length}, {"activation", config::to_string(m.activation)},
          {"normalization", m.normalization == config::Normalization::kRmsNorm ? "rmsnorm" : "layernorm"},
          {"add_bias_linear", m.add_bias_linear},
          {"position_embedding", m.position_embedding == config::PositionEmbedding::kRope ? "rope" : "learned"},
          {"tie_embeddings", m.tie_embeddings}, {"params", model::total_params(m)}, {"origin", m.origin}};
}

config::ModelConfig model_from_json(const nlohmann::json& j) {
  config::ModelConfig m;
  m.name = j.at("name"), m.num_layers = j.at("num_layers"), m.hidden_size = j.at("hidden_size");
  m.ffn_hidden_size = j.at("ffn_hidden_size"), m.num_attention_heads = j.at("num_attention_heads");
  m.num_query_groups = j.at("num_query_groups"), m.kv_channels = j.at("kv_channels"), m.vocab_size = j.at("vocab_size");
  m.seq_length = j.at("seq_length");
  const std::string act = j.at("activation");
  m.activation = act == "swiglu" ? config::Activation::kSwiglu
                 : act == "squared_relu" ? config::Activation::kSquaredRelu : config::Activation::kGelu;
  m.normalization = j.at("normalization") == "rmsnorm" ? config::Normalization::kRmsNorm : config::Normalization::kLayerNorm;
  m.add_bias_linear = j.at("add_bias_linear");
  m.position_embedding = j.at("position_embedding") == "rope" ? config::PositionEmbedding::kRope : config::PositionEmbedding::kLearned;
  m.tie_embeddings = j.at("tie_embeddings");
  return m;
}

nlohmann::json to_json(const config::ChipProfile& c) {
  return {{"name", c.name}, {"description", c.description}, {"arch", c.arch}, {"peak_tflops", c.peak_tflops},
          {"hbm_gb", c.hbm_gb}, {"hbm_tbps", c.hbm_tbps}, {"nvlink_gbyte_s", c.nvlink_gbyte_s},
          {"nvlink_domain", c.nvlink_domain}, {"nic_gbit_s", c.nic_gbit_s},
          {"efficiency", {{"gemm", c.efficiency.gemm}, {"attention", c.efficiency.attention}, {"hbm", c.efficiency.hbm},
                          {"nvlink", c.efficiency.nvlink}, {"nic", c.efficiency.nic}}},
          {"reserved_gb", c.reserved_gb}, {"origin", c.origin}};
}

nlohmann::json to_json(const predict::SummaryRow& r) {
  const auto& p = r.parallel;
  return {{"model", r.model}, {"target", r.target}, {"gpus", r.gpus},
          {"parallel", {{"tp", p.tp}, {"pp", p.pp}, {"dp", p.dp}, {"cp", p.cp}, {"vpp", p.vpp},
                        {"micro_batch_size", p.micro_batch_size}, {"global_batch_size", p.global_batch_size},
                        {"seq_length", p.seq_length}, {"sequence_parallel", p.sequence_parallel},
                        {"recompute", config::to_string(p.recompute)}, {"zero", p.zero},
                        {"precision", config::to_string(p.precision)}, {"tp_comm_overlap", p.tp_comm_overlap},
                        {"flash_attention", p.flash_attention}, {"grad_reduce_in_bf16", p.grad_reduce_in_bf16}}},
          {"step_time_s", r.step_time_s}, {"tokens_per_s", r.tokens_per_s},
          {"tokens_per_s_per_chip", r.tokens_per_s_per_chip}, {"tflops_per_chip", r.tflops_per_chip},
          {"mfu", r.mfu}, {"hfu", r.hfu}, {"memory_gb_per_chip", r.memory_gb_per_chip},
          {"memory_capacity_gb", r.memory_capacity_gb}, {"fits", r.fits},
          {"breakdown_s", {{"compute", r.breakdown.compute_s}, {"exposed_comm", r.breakdown.exposed_comm_s},
                           {"bubble", r.breakdown.bubble_s}, {"other", r.breakdown.other_s}}},
          {"source", r.source}, {"nvlink_convention", "datasheet bidirectional GB/s"}};
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
  char line[512];
  std::snprintf(line, sizeof line, "#%-22s %6s %-24s %10s %12s %8s %6s %6s %9s %9s %9s %9s %8s %4s %-9s\n", " target", "gpus",
                "parallel", "step [s]", "tok/s/chip", "TFLOP/s", "MFU", "HFU", "comp [s]", "comm [s]", "bubble[s]",
                "other[s]", "mem [GB]", "fits", "source");
  os << line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, " %-22s %6lld %-24s %10.4g %12.4g %8.2f %6.3f %6.3f %9.4g %9.4g %9.4g %9.4g %8.1f %4s %-9s\n",
                  r.target.c_str(), static_cast<long long>(r.gpus), parallel_text(r.parallel).c_str(), r.step_time_s,
                  r.tokens_per_s_per_chip, r.tflops_per_chip, r.mfu, r.hfu, r.breakdown.compute_s,
                  r.breakdown.exposed_comm_s, r.breakdown.bubble_s, r.breakdown.other_s, r.memory_gb_per_chip,
                  r.fits ? "yes" : "NO", r.source.c_str());
    os << line;
  }
  os << "# TFLOP/s and MFU count model FLOPs (no recompute, PaLM App. B); HFU counts recompute. "
        "NVLink caps use datasheet bidirectional GB/s.\n";
}

}  // namespace capscale::cli
