// Names and small helpers of the Plan data types.
#include "plan/plan.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace capscale::plan {

void Op::fifth_producer(int32_t idx, const Stream* producer_stream) const {
  std::string msg = "plan builder bug: op ";
  msg.append(label()).append(" gets a fifth producer (op ").append(std::to_string(idx));
  if (producer_stream) msg.append(" on stream ").append(to_string(*producer_stream));
  msg.append(") but none of its four producers is on that stream, so none can be dropped soundly");
  throw RuntimeError(msg);
}

Op StagePlan::op(int32_t i) const {
  if (i < 0 || i >= size()) throw RuntimeError("plan: op " + std::to_string(i) + " is out of range");
  // The last range starting at or before i.
  auto r = std::upper_bound(copies.begin(), copies.end(), i, [](int32_t x, const CopyRange& c) { return x < c.begin; });
  int32_t skipped = 0;  // copied ops before i that a compact stage does not store
  if (compact)
    for (auto c = copies.begin(); c != r; ++c) skipped += std::min(i, c->end) - c->begin;
  if (r == copies.begin() || i >= std::prev(r)->end) return ops[size_t(i - skipped)];
  const CopyRange& c = *std::prev(r);
  if (!compact) return ops[size_t(i)];
  return c.copy(ops[size_t(c.stored + (i - c.begin))]);
}

std::string to_string(OpKind k) {
  switch (k) {
    case OpKind::kGemm: return "gemm";
    case OpKind::kAttention: return "attention";
    case OpKind::kElementwise: return "elementwise";
    case OpKind::kCollective: return "collective";
    case OpKind::kSendRecv: return "sendrecv";
  }
  return "?";
}

std::string to_string(Stream s) {
  switch (s) {
    case Stream::kCompute: return "compute";
    case Stream::kTp: return "tp";
    case Stream::kCp: return "cp";
    case Stream::kDp: return "dp";
    case Stream::kPpSend: return "pp_send";
    case Stream::kPpRecv: return "pp_recv";
    case Stream::kEp: return "ep";
  }
  return "?";
}

std::string to_string(CollKind c) {
  switch (c) {
    case CollKind::kNone: return "none";
    case CollKind::kAllReduce: return "all_reduce";
    case CollKind::kReduceScatter: return "reduce_scatter";
    case CollKind::kAllGather: return "all_gather";
    case CollKind::kAllToAll: return "all_to_all";
  }
  return "?";
}

std::string to_string(Phase p) {
  switch (p) {
    case Phase::kForward: return "fwd";
    case Phase::kBackward: return "bwd";
    case Phase::kRecompute: return "recompute";
    case Phase::kOptimizer: return "optimizer";
  }
  return "?";
}

std::string to_string(OpName n) {
  static const char* names[] = {"embedding", "input_norm", "qkv", "core_attention", "attn_proj", "post_attn_norm",
                                "fc1", "activation", "fc2", "residual", "final_norm", "logits", "cross_entropy",
                                "sp_all_gather", "tp_reduce", "cp_kv", "grad_reduce", "param_gather",
                                "embedding_grad", "optimizer_step", "send_activation", "recv_activation",
                                "send_grad", "recv_grad", "wgrad_all_gather", "router", "permute", "dispatch",
                                "expert_fc1", "expert_activation", "expert_fc2", "combine", "unpermute", "shared_fc1",
                                "shared_activation", "shared_fc2", "expert_all_gather", "expert_reduce_scatter",
                                "mla_down", "mla_up", "mtp_proj", "amax_reduce", "p2p_gather", "p2p_wait"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<int>(OpName::kP2pWait) + 1, "one name per OpName");
  return names[static_cast<int>(n)];
}

std::string Op::label() const {
  // Plain appends: GCC 12 reports a bogus -Wrestrict on chained `"/" + std::string` temporaries.
  std::string s = to_string(phase);
  if (microbatch >= 0) s.append("/mb").append(std::to_string(microbatch));
  if (layer >= 0) s.append("/L").append(std::to_string(layer));
  s.append("/").append(to_string(name));
  if (kind == OpKind::kGemm && phase != Phase::kForward) s.append(wgrad ? ".wgrad" : ".dgrad");
  return s;
}

int64_t Plan::num_ops() const {
  int64_t n = 0;
  for (const auto& s : stages) n += s.size();
  return n;
}

}  // namespace capscale::plan
