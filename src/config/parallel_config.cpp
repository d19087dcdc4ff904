// Validation of the parallel/batch configuration against a model and world size.
#include "config/parallel_config.hpp"

#include "common/error.hpp"
#include "config/fields.hpp"

namespace capscale::config {

const FieldTable<ParallelConfig>& parallel_fields() {
  using P = ParallelConfig;
  // A knob is one entry here. Ranges bound every product the plan forms (checked_mul guards the rest).
  static const FieldTable<P> table = [] {
    FieldTable<P> t;
    auto add = [&](Field<P> f, std::string flag, std::string text, TextWhen when, bool key) -> Field<P>& {
      f.flag = std::move(flag), f.text = std::move(text), f.text_when = when, f.in_key = key;
      t.push_back(std::move(f));
      return t.back();
    };
    auto range = [](Field<P>& f, int64_t lo, int64_t hi) { f.min = lo, f.max = hi; };
    // A switch that is off by default: its flag and its text name it when on.
    auto add_switch_on = [&](Field<P> f, std::string flag, std::string text) -> Field<P>& {
      return add(std::move(f), std::move(flag), std::move(text), TextWhen::kNonDefault, true);
    };
    // A switch that is on by default: its flag (--no-...) and its text name it when off.
    auto add_switch_off = [&](Field<P> f, std::string flag, std::string text) {
      add_switch_on(std::move(f), std::move(flag), std::move(text)).flag_negates = true;
    };
    range(add(member("tp", &P::tp, "tensor_model_parallel_size"), "tp", "tp", TextWhen::kAlways, true), 1, 1 << 20);
    range(add(member("pp", &P::pp, "pipeline_model_parallel_size"), "pp", "pp", TextWhen::kAlways, true), 1, 1 << 20);
    auto& dp = add(member("dp", &P::dp, "data_parallel_size: world / (tp·pp·cp), derived from the chip count"), "", "dp",
                   TextWhen::kAlways, false);
    dp.user_input = false;
    range(dp, 1, int64_t(1) << 40);
    range(add(member("cp", &P::cp, "context_parallel_size"), "cp", "cp", TextWhen::kAlways, true), 1, 1 << 20);
    range(add(member("ep", &P::ep, "expert_model_parallel_size (MoE: ranks the experts of a layer are spread over)"), "ep",
              "ep", TextWhen::kNonDefault, true), 1, 1 << 20);
    t.back().key_omits_default = true;
    range(add(member("etp", &P::etp, "expert_tensor_parallel_size (MoE: ranks each expert's FFN is split over)"), "etp",
              "etp", TextWhen::kNonDefault, true), 1, 1 << 20);
    t.back().key_omits_default = true;
    range(add(member("moe_imbalance", &P::moe_imbalance,
                     "MoE: hottest expert's token load over the mean (1 = force-balanced routing)"),
              "moe-imbalance", "imb", TextWhen::kNonDefault, true), 1, 1 << 16);
    t.back().key_omits_default = true;
    add(member("moe_token_dispatcher", &P::moe_token_dispatcher,
               "MoE token dispatcher: alltoall (NCCL) or flex (DeepEP/HybridEP: one copy per remote node, NVLink forwarding)"),
        "moe-token-dispatcher", "", TextWhen::kNever, true);
    t.back().key_omits_default = true;
    add_switch_on(member("account_for_embedding_in_pipeline_split", &P::account_for_embedding_in_pipeline_split,
                         "the embedding counts as a layer in the pipeline split (first stage: one decoder layer fewer)"),
                  "account-for-embedding-in-pipeline-split", "ae");
    t.back().key_omits_default = true;
    add_switch_on(member("account_for_loss_in_pipeline_split", &P::account_for_loss_in_pipeline_split,
                         "the output head and loss count as a layer in the pipeline split (last stage: one decoder layer fewer)"),
                  "account-for-loss-in-pipeline-split", "al");
    t.back().key_omits_default = true;
    auto& layout = add(member("pipeline_layout", &P::pipeline_layout,
                              "Megatron-Core --pipeline-model-parallel-layout: the layers of each model chunk in global "
                              "chunk order, '|' between chunks, E embedding, t decoder layer, m MTP layer, L loss, x*n and "
                              "(...)*n repeat (e.g. Et*4|(t*4|)*14tmL on pp 8 x vpp 2); replaces the even split"),
                       "pipeline-layout", "layout:", TextWhen::kNonDefault, true);
    layout.key_omits_default = true;
    layout.max_chars = 256;
    range(add(member("vpp", &P::vpp, "virtual_pipeline_model_parallel_size (model chunks per pipeline rank)"), "vpp", "vpp",
              TextWhen::kNonDefault, true), 1, 1 << 10);
    range(add(member("micro_batch_size", &P::micro_batch_size, "sequences per micro-batch"), "micro-batch-size", "mbs",
              TextWhen::kAlways, true), 1, 1 << 20);
    range(add(member("global_batch_size", &P::global_batch_size, "sequences per step (0: micro-batch x dp)"),
              "global-batch-size", "", TextWhen::kNever, false), 0, int64_t(1) << 40);
    t.back().unit = "sequences";
    range(add(member("seq_length", &P::seq_length, "sequence length (0: the model's)"), "seq-length", "", TextWhen::kNever,
              false), 0, 1 << 24);
    t.back().unit = "tokens";
    add(member("recompute", &P::recompute, "activation recompute"), "recompute", "", TextWhen::kAlways, true);
    range(add(member("zero", &P::zero, "1 = distributed optimizer (ZeRO-1), 0 = plain all-reduce"), "zero", "z",
              TextWhen::kNonDefault, true), 0, 1);
    add_switch_on(member("sequence_parallel", &P::sequence_parallel, "sequence parallelism (needs tp > 1)"),
                  "sequence-parallel", "sp");
    add_switch_on(member("tp_comm_overlap", &P::tp_comm_overlap,
                         "overlap TP communication with GEMMs in chunks (needs sequence parallelism)"),
                  "tp-comm-overlap", "tpo");
    add_switch_off(member("flash_attention", &P::flash_attention, "fused (flash) attention; off: scores stored in HBM"),
                   "no-flash-attention", "nofa");
    add_switch_on(member("flash_attention_v1", &P::flash_attention_v1,
                         "flash attention runs FlashAttention-1 (Megatron-LM --use-flash-attn before FlashAttention-2, mid-2023) "
                         "at the chip's efficiency.attention_fa1; needs flash attention"),
                  "flash-attention-v1", "fa1");
    add_switch_on(member("full_iteration_cuda_graph", &P::full_iteration_cuda_graph,
                         "each step's forward and backward replay as one CUDA graph (Megatron-Core --cuda-graph-scope "
                         "full_iteration): no host gap at the step boundary (the chip's host_step_gap_s)"),
                  "full-iteration-cuda-graph", "fcg");
    add_switch_on(member("grad_reduce_in_bf16", &P::grad_reduce_in_bf16,
                         "reduce DP gradients in bf16 (Megatron --grad-reduce-in-bf16; default fp32, fp16 under --precision fp16)"),
                  "grad-reduce-in-bf16", "gbf16");
    add_switch_off(member("overlap_grad_reduce", &P::overlap_grad_reduce,
                          "DP gradient reduction overlaps the last micro-batch's backward (Megatron --overlap-grad-reduce); "
                          "off: each stage reduces after its last backward"),
                   "no-overlap-grad-reduce", "noogr");
    add_switch_off(member("overlap_param_gather", &P::overlap_param_gather,
                          "ZeRO-1 parameter all-gather overlaps the first micro-batch's forward (Megatron --overlap-param-gather); "
                          "off: it runs before the step's first forward"),
                   "no-overlap-param-gather", "noopg");
    add_switch_off(member("overlap_p2p_comm", &P::overlap_p2p_comm,
                          "pipeline sends and receives overlap compute under the interleaved schedule (Megatron "
                          "--overlap-p2p-communication; Megatron turns it off without interleaving); off: batched and "
                          "waited for, the next compute behind them"),
                   "no-overlap-p2p-comm", "noop2p");
    add_switch_on(member("p2p_scatter_gather", &P::p2p_scatter_gather,
                         "without sequence parallelism each tp rank sends 1/tp of a pipeline message and the receiver all-gathers "
                         "it (Megatron-LM 2021-2023 --scatter-gather-tensors-in-pipeline; Megatron-Core sends it whole)"),
                  "p2p-scatter-gather", "p2psg");
    add_switch_off(member("async_tp_comm", &P::async_tp_comm,
                          "a column-parallel linear's backward runs its TP all-gather beside the dgrad GEMM and its "
                          "all-reduce / reduce-scatter beside the wgrad GEMM (Megatron-LM since 2021-08, Megatron-Core, "
                          "Transformer Engine); off: in series (Megatron-LM before it)"),
                   "no-async-tp-comm", "noatp");
    add_switch_on(member("grad_all_reduce", &P::grad_all_reduce,
                         "ZeRO-1 reduces gradients with an all-reduce (fp32), then all-gathers the parameters (DeepSpeed's "
                         "BF16_Optimizer, BLOOM; it overlaps neither: add --no-overlap-grad-reduce --no-overlap-param-gather); off: "
                         "reduce-scatter (Megatron's distributed optimizer). Needs zero 1"),
                  "grad-all-reduce", "gar");
    for (auto [name, field, flag, tag, group] :
         {std::tuple{"dp_max_ctas", &P::dp_max_ctas, "dp-max-ctas", "dpcta", "data parallel's (dp and dp·cp groups)"},
          std::tuple{"cp_max_ctas", &P::cp_max_ctas, "cp-max-ctas", "cpcta", "context parallel's K/V exchange"},
          std::tuple{"pp_max_ctas", &P::pp_max_ctas, "pp-max-ctas", "ppcta", "the pipeline transfers'"}}) {
      range(add(member(name, field,
                       std::string("NCCL thread blocks (channels) ") + group +
                           " communicator may use (ncclConfig_t maxCTAs, NeMo's nccl_communicator_config_path); 0: NCCL's choice"),
                flag, tag, TextWhen::kNonDefault, true),
            0, 1024);
      t.back().key_omits_default = true;
    }
    auto& prec = add(member("precision", &P::precision, "training precision of the GEMMs"), "precision", "", TextWhen::kNever, false);
    prec.allowed = {"bf16", "fp16", "fp8"};
    t.push_back(derived<P>("schedule", FieldType::kEnum, "pipeline schedule (from pp and vpp)",
                           [](const P& p) { return FieldValue(enum_name(p.schedule())); }));
    t.back().max_chars = 20;
    return t;
  }();
  return table;
}

std::vector<LayoutChunk> parse_pipeline_layout(const std::string& text, std::string* error) {
  // Bounds on the unrolled text, so that a typo such as t*99999999 is an error, not a hang.
  constexpr size_t kMaxUnrolled = size_t(1) << 20;
  auto fail = [&](const std::string& why) {
    *error = why;
    return std::vector<LayoutChunk>{};
  };
  // The repeat count after a '*' at `i` (i points at the '*'); advances i past the digits.
  auto count_at = [&](const std::string& s, size_t& i, int64_t* n) {
    size_t j = i + 1;
    int64_t v = 0;
    while (j < s.size() && s[j] >= '0' && s[j] <= '9' && v <= int64_t(kMaxUnrolled)) v = v * 10 + (s[j++] - '0');
    if (j == i + 1) return false;
    i = j, *n = v;
    return true;
  };
  std::string s;
  for (char ch : text)
    if (ch != ',') s += ch;  // commas are cosmetic
  // (group)*n first, as Megatron's first pattern, then x*n.
  std::string grouped;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == ')') return fail("has a ')' without its '('");
    if (s[i] != '(') {
      grouped += s[i++];
      continue;
    }
    const size_t close = s.find(')', i + 1);
    if (close == std::string::npos) return fail("has a '(' without its ')'");
    const std::string group = s.substr(i + 1, close - i - 1);
    if (group.empty() || group.find('(') != std::string::npos) return fail("has an empty or nested group; groups are (...)*n, not nested");
    size_t at = close + 1;
    int64_t n = 0;
    if (at >= s.size() || s[at] != '*' || !count_at(s, at, &n)) return fail("has a group (" + group + ") without *n after it");
    if (group.size() * size_t(n) + grouped.size() > kMaxUnrolled) return fail("unrolls to more than 2^20 layers");
    for (int64_t k = 0; k < n; ++k) grouped += group;
    i = at;
  }
  std::string flat;
  for (size_t i = 0; i < grouped.size();) {
    if (grouped[i] == '*') return fail("has a '*' with nothing to repeat before it");
    const char ch = grouped[i];
    size_t at = i + 1;
    int64_t n = 1;
    if (at < grouped.size() && grouped[at] == '*' && !count_at(grouped, at, &n)) return fail(std::string("has ") + ch + "* without a count");
    if (size_t(n) + flat.size() > kMaxUnrolled) return fail("unrolls to more than 2^20 layers");
    flat.append(size_t(n), ch);
    i = at;
  }
  std::vector<LayoutChunk> chunks(1);
  for (char ch : flat) {
    LayoutChunk& c = chunks.back();
    switch (ch) {
      case '|': chunks.emplace_back(); break;
      case 't': ++c.decoder; break;
      case 'm': ++c.mtp; break;
      case 'E':
        if (c.embedding) return fail("names the embedding (E) twice");
        c.embedding = true;
        break;
      case 'L':
        if (c.loss) return fail("names the loss (L) twice");
        c.loss = true;
        break;
      default: return fail(std::string("has '") + ch + "', not a layer: E (embedding), t (decoder layer), m (MTP layer), L (loss), | between chunks");
    }
  }
  return chunks;
}

namespace {

/// The problems of p.pipeline_layout for this model and pp × vpp (Megatron's
/// validate_layer_layout, plus capscale's placement of the MTP modules with the loss).
void layout_violations(const ParallelConfig& p, const ModelConfig& m, std::vector<std::string>& v) {
  auto add = [&](const std::string& problem) { v.push_back("pipeline-layout '" + p.pipeline_layout + "' " + problem); };
  auto s = [](int64_t x) { return std::to_string(x); };
  std::string error;
  const auto chunks = parse_pipeline_layout(p.pipeline_layout, &error);
  if (chunks.empty()) return add(error);
  if (int64_t(chunks.size()) != p.pp * p.vpp) {
    return add("has " + s(int64_t(chunks.size())) + " chunks; it needs pp x vpp = " + s(p.pp * p.vpp) + " (Megatron derives vpp from it)");
  }
  int64_t decoder = 0, mtp = 0, embeddings = 0, losses = 0;
  for (const auto& c : chunks) decoder += c.decoder, mtp += c.mtp, embeddings += c.embedding, losses += c.loss;
  if (embeddings != 1 || !chunks.front().embedding) add("must name the embedding (E) once, in the first chunk");
  if (losses != 1 || !chunks.back().loss) add("must name the loss (L) once, in the last chunk");
  if (decoder != m.num_layers) add("has " + s(decoder) + " decoder layers (t); " + m.name + " has num_layers " + s(m.num_layers));
  if (mtp != m.mtp_num_layers) add("has " + s(mtp) + " MTP layers (m); " + m.name + " has mtp_num_layers " + s(m.mtp_num_layers));
  else if (mtp > 0 && chunks.back().mtp != mtp) add("places MTP layers outside the last chunk; capscale keeps them with the loss (Megatron's standalone MTP stages are not modelled)");
  if (p.account_for_embedding_in_pipeline_split || p.account_for_loss_in_pipeline_split) {
    add("replaces account-for-embedding/loss-in-pipeline-split; give one or the other (Megatron refuses both)");
  }
}

}  // namespace

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
  if (p.ep < 1) add("ep", "must be >= 1, got " + s(p.ep));
  if (p.etp < 1) add("etp", "must be >= 1, got " + s(p.etp));
  if (!(p.moe_imbalance >= 1.0)) add("moe-imbalance", "must be >= 1 (1 = balanced routing)");
  if (!v.empty()) return v;  // the checks below divide by these
  if (!m.is_moe()) {
    if (p.ep > 1) add("ep", "must be 1 for a dense model (" + m.name + " has no experts: num_moe_experts = 0), got " + s(p.ep));
    if (p.etp > 1) add("etp", "must be 1 for a dense model (" + m.name + " has no experts), got " + s(p.etp));
  } else {
    if (m.num_moe_experts % p.ep != 0) add("ep", "must divide num_moe_experts (" + s(m.num_moe_experts) + "), got " + s(p.ep));
    if (m.moe_ffn_hidden_size % p.etp != 0) add("etp", "must divide moe_ffn_hidden_size (" + s(m.moe_ffn_hidden_size) + "), got " + s(p.etp));
    const double hottest = double(m.num_moe_experts) / double(m.moe_router_topk);
    if (p.moe_imbalance > hottest) {
      add("moe-imbalance", "must be <= num_moe_experts / moe_router_topk (" + std::to_string(hottest) + ": every token on one expert)");
    }
    if (p.tp > 1 && !p.sequence_parallel) add("sequence-parallel", "is required for MoE with tp > 1 (as in Megatron-Core)");
    if (m.moe_shared_expert_intermediate_size % p.tp != 0) {
      add("tp", "must divide moe_shared_expert_intermediate_size (" + s(m.moe_shared_expert_intermediate_size) + "), got " + s(p.tp));
    }
  }
  if (p.moe_imbalance != 1.0 && !m.is_moe()) add("moe-imbalance", "applies to MoE models only");
  if (p.moe_token_dispatcher != Dispatcher::kAllToAll && !m.is_moe()) add("moe-token-dispatcher", "applies to MoE models only");
  if (m.num_attention_heads % p.tp != 0) add("tp", "must divide num_attention_heads (" + s(m.num_attention_heads) + "), got " + s(p.tp));
  if (m.num_query_groups % p.tp != 0) add("tp", "must divide num_query_groups (" + s(m.num_query_groups) + "), got " + s(p.tp));
  if (m.ffn_hidden_size % p.tp != 0) add("tp", "must divide ffn_hidden_size (" + s(m.ffn_hidden_size) + "), got " + s(p.tp));
  if (!p.pipeline_layout.empty()) layout_violations(p, m, v);
  else if (m.num_layers < p.pp * p.vpp) add("pp", "x vpp (" + s(p.pp * p.vpp) + ") must not exceed num_layers (" + s(m.num_layers) + ")");
  if ((p.account_for_embedding_in_pipeline_split || p.account_for_loss_in_pipeline_split) && p.pp == 1) {
    add("account-for-embedding/loss-in-pipeline-split", "needs pp > 1");
  }
  if (p.vpp > 1 && p.pp == 1) add("vpp", "needs pp > 1");
  if (p.sequence_parallel && p.tp == 1) add("sequence-parallel", "needs tp > 1");
  if (p.tp_comm_overlap && !p.sequence_parallel) add("tp-comm-overlap", "needs sequence-parallel");
  if (p.flash_attention_v1 && !p.flash_attention) add("flash-attention-v1", "needs flash attention (drop --no-flash-attention)");
  if (p.grad_all_reduce && p.zero != 1) add("grad-all-reduce", "needs zero 1 (without ZeRO-1 gradients are all-reduced anyway)");
  const int64_t seq = p.seq_length ? p.seq_length : m.seq_length;
  if (seq % (2 * p.cp) != 0 && p.cp > 1) add("cp", "needs seq-length divisible by 2·cp (" + s(2 * p.cp) + "), seq-length is " + s(seq));
  if (p.sequence_parallel && (seq / p.cp) % p.tp != 0) add("sequence-parallel", "needs seq-length/cp divisible by tp");
  if (world > 0) {
    if (world % p.model_parallel() != 0) {
      add("world size", "(" + s(world) + ") must be a multiple of tp·pp·cp (" + s(p.model_parallel()) + ")");
    } else if ((world / p.pp) % (p.ep * p.etp) != 0) {
      add("ep", "x etp x pp (" + s(p.ep) + " x " + s(p.etp) + " x " + s(p.pp) + ") must divide the world size (" + s(world) + ")");
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
