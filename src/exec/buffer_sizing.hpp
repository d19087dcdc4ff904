// How much scratch memory the CUDA executor allocates for a stage, as a pure function of the plan
// (tests/unit/test_buffer_sizing.cpp checks it on the largest shipped plans, no GPU needed).
// GEMM and attention buffers hold the largest op's operands (an op needs them whole). Elementwise
// passes and collectives do not: they run in rotating chunks over bounded buffers and move the same
// bytes (Megatron's DP grad reduction is bucketed the same way), so the optimizer step's tens of GB
// of traffic need no tens of GB of scratch (it used to: 59 GiB for 8 Llama 3.1 8B layers).
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

#include "plan/plan.hpp"

namespace capscale::exec {

/// Elementwise x and y buffers: at most this many bytes each (6 bytes per element moved: read x,
/// read y, write y; chunks this large run at full HBM bandwidth).
inline constexpr size_t kElementwiseBufferBytes = size_t(256) << 20;
/// Per communication stream: collectives and send/recv larger than this run as several NCCL calls
/// on consecutive chunks (512 MiB is far past NCCL's bandwidth plateau, nccl-tests curves).
inline constexpr size_t kCommBufferBytes = size_t(512) << 20;
/// Attention keeps each chunk's score matrix under this (the unfused path stores scores).
inline constexpr size_t kAttnScoresCapBytes = size_t(512) << 20;
/// GEMM and attention operands rotate through their buffers (Device::rotating): each op starts
/// where the previous one of its role ended, so back-to-back ops read fresh addresses instead of
/// what the last op left in L2, as a real step's ops read different tensors. A ring this much
/// larger than the largest operand keeps well over twice the L2 of an H100/H200 (50 MB, NVIDIA
/// H100 whitepaper) between two uses of one address.
inline constexpr size_t kL2RotationBytes = size_t(256) << 20;

/// Scratch buffers by role; kComm0 + s is plan stream s's (concurrent NCCL ops must not share one).
enum BufferRole : int {
  kGemmA, kGemmW, kGemmC, kAttnQ, kAttnK, kAttnV, kAttnS, kAttnO, kAttnX, kEwX, kEwY, kComm0,
  kNumBufferRoles = kComm0 + plan::kNumStreams
};

/// Element sizes the executor runs with.
struct BufferTypes {
  size_t gemm_in_bytes = 2;     ///< 1 for fp8 inputs
  size_t gemm_out_bytes = 2;    ///< bf16/fp16 out (forward, dgrad)
  size_t wgrad_out_bytes = 4;   ///< fp32 main_grad (Megatron's gradient_accumulation_fusion)
  size_t attn_bytes = 2;
};

/// Whether a role's buffer is a rotation ring (kL2RotationBytes beyond its largest operand).
inline bool rotating_role(int role) { return role <= kAttnO && role != kAttnS; }

/// Attention (micro-batch × heads) rows per chunk: all of them for fused attention (it stores no
/// scores); for the unfused form, as many as keep the scores under kAttnScoresCapBytes.
inline int64_t attention_chunk(const plan::Op& op, size_t attn_bytes) {
  if (op.fused) return std::max<int64_t>(op.batch, 1);
  const size_t per = size_t(std::max<int64_t>(op.m, 1)) * size_t(std::max<int64_t>(op.n, 1)) * attn_bytes;
  return std::clamp<int64_t>(int64_t(kAttnScoresCapBytes / std::max<size_t>(per, 1)), 1, std::max<int64_t>(op.batch, 1));
}

/// Elementwise elements per chunk (bf16) and the number of chunks of an op of `bytes`.
inline int64_t elementwise_chunk_elems() { return int64_t(kElementwiseBufferBytes / 2); }
/// Communication bytes per NCCL call; a multiple of 2·`group_size` so bf16 shards stay whole.
inline int64_t comm_chunk_bytes(int64_t group_size) {
  const int64_t unit = 2 * std::max<int64_t>(group_size, 1);
  return std::max<int64_t>(unit, int64_t(kCommBufferBytes) / unit * unit);
}

/// Fused attention's scratch (role kAttnX), byte offsets of each part, 256-byte aligned: the fp32
/// row statistics forward writes and backward reads (lse), and for backward Δ (fp32 per row), the
/// fp32 dQ accumulator, dO, dQ, dK and dV (attention type). `end` is the bytes the role needs.
struct FusedAttentionScratch {
  size_t lse = 0, delta = 0, dq_acc = 0, dout = 0, dq = 0, dk = 0, dv = 0, end = 0;
};
inline FusedAttentionScratch fused_attention_scratch(const plan::Op& op, size_t attn_bytes) {
  const size_t b = size_t(std::max<int64_t>(op.batch, 1)), m = size_t(std::max<int64_t>(op.m, 0)), n = size_t(std::max<int64_t>(op.n, 0)),
               d = size_t(std::max<int64_t>(op.k, 0));
  FusedAttentionScratch f;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t off = at;
    at += (bytes + 255) / 256 * 256;
    return off;
  };
  f.lse = take(b * m * 4);
  if (op.phase == plan::Phase::kBackward) {
    f.delta = take(b * m * 4);
    f.dq_acc = take(b * m * d * 4);
    f.dout = take(b * m * d * attn_bytes);
    f.dq = take(b * m * d * attn_bytes);
    f.dk = take(b * n * d * attn_bytes);
    f.dv = take(b * n * d * attn_bytes);
  }
  f.end = at;
  return f;
}

using BufferBytes = std::array<size_t, kNumBufferRoles>;

/// The bytes each role's buffer must hold to run every op of `ops`.
inline BufferBytes size_buffers(const std::vector<plan::Op>& ops, const BufferTypes& t) {
  BufferBytes need{};
  auto grow = [&](int b, size_t bytes) { need[size_t(b)] = std::max(need[size_t(b)], bytes); };
  for (const plan::Op& op : ops) {
    switch (op.kind) {
      case plan::OpKind::kGemm: {
        if (op.m < 1 || op.n < 1 || op.k < 1) break;
        const size_t b = size_t(std::max<int64_t>(op.batch, 1));
        grow(kGemmA, b * size_t(op.m) * size_t(op.k) * t.gemm_in_bytes);
        grow(kGemmW, b * size_t(op.n) * size_t(op.k) * t.gemm_in_bytes);
        grow(kGemmC, b * size_t(op.m) * size_t(op.n) * (op.wgrad ? t.wgrad_out_bytes : t.gemm_out_bytes));
        break;
      }
      case plan::OpKind::kAttention: {
        if (op.m < 1 || op.n < 1 || op.k < 1 || op.batch < 1) break;
        const size_t c = size_t(attention_chunk(op, t.attn_bytes)), es = t.attn_bytes;
        grow(kAttnQ, c * op.m * op.k * es), grow(kAttnO, c * op.m * op.k * es);
        grow(kAttnK, c * op.n * op.k * es), grow(kAttnV, c * op.n * op.k * es);
        // Scores only for the unfused form (the SC21-era runs); fused attention stores none but
        // keeps row statistics and, in backward, the gradients (fused_attention_scratch).
        if (!op.fused) grow(kAttnS, c * op.m * op.n * es);
        else grow(kAttnX, fused_attention_scratch(op, es).end);
        break;
      }
      case plan::OpKind::kElementwise: {
        const size_t elems = size_t(std::min<int64_t>(op.bytes / 6, elementwise_chunk_elems()));
        grow(kEwX, elems * 2), grow(kEwY, elems * 2);
        break;
      }
      case plan::OpKind::kCollective:
      case plan::OpKind::kSendRecv: {
        // The group size is not in the op; a chunk of comm_chunk_bytes(n) ≤ kCommBufferBytes.
        // All-to-all runs out of place: its chunk and the received chunk (exec/cuda/ops.cpp).
        const size_t chunk = std::min(size_t(std::max<int64_t>(op.bytes, 0)), kCommBufferBytes);
        const bool out_of_place = op.kind == plan::OpKind::kCollective && op.coll == plan::CollKind::kAllToAll;
        grow(kComm0 + int(op.stream), out_of_place ? 2 * chunk : chunk);
        break;
      }
    }
  }
  for (int b = 0; b < kNumBufferRoles; ++b)
    if (rotating_role(b) && need[size_t(b)] > 0) need[size_t(b)] += kL2RotationBytes;
  return need;
}

inline size_t total_bytes(const BufferBytes& b) {
  size_t s = 0;
  for (size_t x : b) s += x;
  return s;
}

}  // namespace capscale::exec
