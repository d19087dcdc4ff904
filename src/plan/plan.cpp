// Names and small helpers of the Plan data types.
#include "plan/plan.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace capscale::plan {

void Op::add_dep(int32_t idx, const std::vector<Op>& stage_ops) {
  for (uint8_t i = 0; i < ndeps; ++i)
    if (deps[i] == idx) return;
  if (ndeps < deps.size()) {
    deps[ndeps++] = idx;
    return;
  }
  // Full: merge with a held producer on the same stream, keeping the later of the two (in-order
  // streams: it ends after the earlier one). Dropping a producer on another stream would let this
  // op start before that producer ends, so that is a builder bug, not something to paper over.
  const auto valid = [&](int32_t i) { return i >= 0 && size_t(i) < stage_ops.size(); };
  if (valid(idx)) {
    for (auto& d : deps) {
      if (valid(d) && stage_ops[d].stream == stage_ops[idx].stream) {
        d = std::max(d, idx);
        return;
      }
    }
  }
  std::string msg = "plan builder bug: op ";
  msg.append(label()).append(" gets a fifth producer (op ").append(std::to_string(idx));
  if (valid(idx)) msg.append(" on stream ").append(to_string(stage_ops[idx].stream));
  msg.append(") but none of its four producers is on that stream, so none can be dropped soundly");
  throw RuntimeError(msg);
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
                                "mla_down", "mla_up", "mtp_proj"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<int>(OpName::kMtpProj) + 1, "one name per OpName");
  return names[static_cast<int>(n)];
}

Op gemm_op(int64_t m, int64_t n, int64_t k) {
  Op op;
  op.kind = OpKind::kGemm;
  op.m = m, op.n = n, op.k = k;
  op.flops = 2.0 * double(m) * double(n) * double(k);
  return op;
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
  for (const auto& s : stages) n += int64_t(s.ops.size());
  return n;
}

}  // namespace capscale::plan
