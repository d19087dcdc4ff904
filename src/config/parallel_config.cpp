// Validation of the parallel/batch configuration against a model and world size.
#include "config/parallel_config.hpp"

#include "common/error.hpp"
#include "config/fields.hpp"

namespace capscale::config {

std::string to_string(Recompute r) {
  switch (r) {
    case Recompute::kNone: return "none";
    case Recompute::kSelective: return "selective";
    case Recompute::kFull: return "full";
  }
  return "?";
}

std::string to_string(Schedule s) {
  switch (s) {
    case Schedule::kNoPipelining: return "no_pipelining";
    case Schedule::kOneFOneB: return "one_f_one_b";
    case Schedule::kInterleaved1F1B: return "interleaved_1f1b";
  }
  return "?";
}

Recompute parse_recompute(const std::string& s, const std::string& where) {
  if (s == "none") return Recompute::kNone;
  if (s == "selective") return Recompute::kSelective;
  if (s == "full") return Recompute::kFull;
  throw InputError(where, "recompute", "must be one of: none, selective, full; got '" + s + "'");
}

Precision parse_precision(const std::string& s, const std::string& where) {
  if (s == "bf16") return Precision::kBf16;
  if (s == "fp16") return Precision::kFp16;
  if (s == "fp8") return Precision::kFp8;
  throw InputError(where, "precision", "must be one of: bf16, fp16, fp8; got '" + s + "'");
}

std::vector<std::string> violations(const ParallelConfig& p, const ModelConfig& m, int64_t world) {
  std::vector<std::string> v;
  auto add = [&](const std::string& field, const std::string& problem) { v.push_back(field + " " + problem); };
  auto s = [](int64_t x) { return std::to_string(x); };
  if (p.tp < 1) add("tp", "must be >= 1, got " + s(p.tp));
  if (p.pp < 1) add("pp", "must be >= 1, got " + s(p.pp));
  if (p.cp < 1) add("cp", "must be >= 1, got " + s(p.cp));
  if (p.vpp < 1) add("vpp", "must be >= 1, got " + s(p.vpp));
  if (p.micro_batch_size < 1) add("micro-batch-size", "must be >= 1, got " + s(p.micro_batch_size));
  if (p.global_batch_size < 0) add("global-batch-size", "must be >= 1, got " + s(p.global_batch_size));
  if (p.seq_length < 0) add("seq-length", "must be >= 1, got " + s(p.seq_length));
  if (p.zero != 0 && p.zero != 1) add("zero", "must be 0 or 1, got " + s(p.zero));
  if (!v.empty()) return v;  // the checks below divide by these
  if (m.num_attention_heads % p.tp != 0) add("tp", "must divide num_attention_heads (" + s(m.num_attention_heads) + "), got " + s(p.tp));
  if (m.num_query_groups % p.tp != 0) add("tp", "must divide num_query_groups (" + s(m.num_query_groups) + "), got " + s(p.tp));
  if (m.ffn_hidden_size % p.tp != 0) add("tp", "must divide ffn_hidden_size (" + s(m.ffn_hidden_size) + "), got " + s(p.tp));
  if (m.num_layers < p.pp * p.vpp) add("pp", "x vpp (" + s(p.pp * p.vpp) + ") must not exceed num_layers (" + s(m.num_layers) + ")");
  if (p.vpp > 1 && p.pp == 1) add("vpp", "needs pp > 1");
  if (p.sequence_parallel && p.tp == 1) add("sequence-parallel", "needs tp > 1");
  if (p.tp_comm_overlap && !p.sequence_parallel) add("tp-comm-overlap", "needs sequence-parallel");
  const int64_t seq = p.seq_length ? p.seq_length : m.seq_length;
  if (seq % (2 * p.cp) != 0 && p.cp > 1) add("cp", "needs seq-length divisible by 2·cp (" + s(2 * p.cp) + "), seq-length is " + s(seq));
  if (p.sequence_parallel && (seq / p.cp) % p.tp != 0) add("sequence-parallel", "needs seq-length/cp divisible by tp");
  if (world > 0) {
    if (world % p.model_parallel() != 0) {
      add("world size", "(" + s(world) + ") must be a multiple of tp·pp·cp (" + s(p.model_parallel()) + ")");
    } else {
      const int64_t dp = world / p.model_parallel();
      const int64_t gbs = p.global_batch_size ? p.global_batch_size : p.micro_batch_size * dp;
      if (gbs % (p.micro_batch_size * dp) != 0) {
        add("global-batch-size", "(" + s(gbs) + ") must be divisible by micro-batch-size x dp (" + s(p.micro_batch_size) + " x " + s(dp) + ")");
      } else if (p.schedule() == Schedule::kInterleaved1F1B && (gbs / (p.micro_batch_size * dp)) % p.pp != 0) {
        add("global-batch-size", "gives " + s(gbs / (p.micro_batch_size * dp)) + " micro-batches; the interleaved schedule needs a multiple of pp (" + s(p.pp) + ")");
      }
    }
  }
  return v;
}

ParallelConfig resolve(ParallelConfig p, const ModelConfig& m, int64_t world, const std::string& where) {
  const auto v = violations(p, m, world);
  if (!v.empty()) throw InputError(where, "", join(v));
  p.dp = world / p.model_parallel();
  if (p.seq_length == 0) p.seq_length = m.seq_length;
  if (p.global_batch_size == 0) p.global_batch_size = p.micro_batch_size * p.dp;
  return p;
}

}  // namespace capscale::config
