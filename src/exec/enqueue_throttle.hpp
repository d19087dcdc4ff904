// How far a host may run ahead of its GPU when it enqueues a stage's ops, as a pure rule the CUDA
// executor applies and tests/unit/test_enqueue_throttle.cpp replays on real plans without a GPU.
// Why it matters: an NCCL send or receive does not finish until the peer stage has enqueued its
// matching call, so a host that blocks on one before enqueuing its own later sends can wait for a
// peer that waits for it (interleaved pipelines did: the rule used to wait for op i−128 whatever
// its kind). The window counts compute-stream ops only and the host only ever waits on one of them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "plan/plan.hpp"

namespace capscale::exec {

/// Compute-stream ops enqueued ahead of the GPU at most. Bounds the CUDA launch queue, so a hung
/// peer leaves the host in the executor's watchdog loop rather than blocked inside a launch; 128
/// compute ops are many layers of lookahead, far more than the GPU needs to stay busy.
inline constexpr size_t kMaxOpsInFlight = 128;

enum class ThrottleRule {
  kAnyOp,        ///< the old rule: before op i, wait for op i − window, whatever it is (hangs vpp > 1)
  kComputeOnly,  ///< count and wait on compute-stream ops only; never wait before a comm op
};

/// The host's enqueue rule for one step. Call wait_before(op, i) for each op in list order, before
/// enqueuing it; it returns the index of an earlier op the host must wait for first, or −1.
class EnqueueThrottle {
 public:
  explicit EnqueueThrottle(size_t window = kMaxOpsInFlight, ThrottleRule rule = ThrottleRule::kComputeOnly)
      : window_(window), rule_(rule) {}

  int64_t wait_before(const plan::Op& op, size_t i) {
    if (rule_ == ThrottleRule::kAnyOp) return i >= window_ ? int64_t(i - window_) : -1;
    // Communication ops are never held back: a peer may be waiting for them.
    if (op.stream != plan::Stream::kCompute) return -1;
    counted_.push_back(int64_t(i));
    return counted_.size() > window_ ? counted_[counted_.size() - 1 - window_] : -1;
  }

 private:
  size_t window_;
  ThrottleRule rule_;
  std::vector<int64_t> counted_;  // compute-stream ops enqueued so far this step
};

}  // namespace capscale::exec
