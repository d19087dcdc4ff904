// The CUDA executor's enqueue rule (exec/enqueue_throttle.hpp) replayed on real interleaved plans,
// no GPU: one host and one GPU per pipeline stage (a stage's tp/dp peers run the same list in
// lockstep), the host enqueueing ops in list order under the rule, the GPU running each stream in
// order after an op's dependencies, and an NCCL send/recv (or the embedding all-reduce between the
// first and last stage) finishing only when both sides have reached it. The old rule (wait for op
// i − 128, whatever it is) deadlocks on llama3.1-70b tp8 pp4 vpp2 (and, at pp 2, happens not to);
// the compute-only rule runs every plan to the end, at its window and at windows of 16 and 1.
#include <gtest/gtest.h>

#include <array>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "config/model_config.hpp"
#include "config/parallel_config.hpp"
#include "exec/enqueue_throttle.hpp"
#include "plan/plan.hpp"

namespace capscale {
namespace {

using exec::EnqueueThrottle;
using exec::ThrottleRule;
using plan::Op;
using plan::OpKind;

struct Replay {
  bool finished = false;
  int64_t ops_done = 0, ops_total = 0;
  std::string stuck;  // where each host stood when nothing could move
};

bool cross_stage(const Op& op) {
  return op.kind == OpKind::kSendRecv || (op.kind == OpKind::kCollective && op.group == parallel::Group::kEmbedding);
}

Replay replay(const plan::Plan& plan, ThrottleRule rule, size_t window) {
  const size_t ns = plan.stages.size();
  struct Stage {
    const std::vector<Op>* ops;
    EnqueueThrottle throttle;
    size_t next = 0;              // host: next op to enqueue
    int64_t pending_wait = -2;    // host: the wait computed for op `next` (−2: not yet asked)
    std::vector<char> done;
    std::array<std::vector<size_t>, plan::kNumStreams> stream_ops;
    std::array<size_t, plan::kNumStreams> head{};
    std::vector<int64_t> partner_stage, partner_op;  // cross-stage ops: the matching op
  };
  std::vector<Stage> st;
  st.reserve(ns);
  for (const auto& sp : plan.stages) {
    Stage s{&sp.ops, EnqueueThrottle(window, rule)};
    s.done.assign(sp.ops.size(), 0);
    s.partner_stage.assign(sp.ops.size(), -1), s.partner_op.assign(sp.ops.size(), -1);
    for (size_t i = 0; i < sp.ops.size(); ++i) s.stream_ops[int(sp.ops[i].stream)].push_back(i);
    st.push_back(std::move(s));
  }
  // Match sends with receives by (from, to, tag), and the k-th embedding all-reduce of the first
  // stage with the k-th of the last.
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::pair<size_t, size_t>> sends;
  std::array<std::vector<size_t>, 2> emb;
  for (size_t s = 0; s < ns; ++s) {
    const auto& ops = *st[s].ops;
    for (size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      if (op.kind == OpKind::kSendRecv && op.is_send) sends[{int64_t(s), op.peer, op.tag}] = {s, i};
      if (op.kind == OpKind::kCollective && op.group == parallel::Group::kEmbedding) {
        if (s == 0) emb[0].push_back(i);
        else if (s == ns - 1) emb[1].push_back(i);
      }
    }
  }
  for (size_t s = 0; s < ns; ++s) {
    const auto& ops = *st[s].ops;
    for (size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      if (op.kind != OpKind::kSendRecv || op.is_send) continue;
      const auto it = sends.find({op.peer, int64_t(s), op.tag});
      if (it == sends.end()) {
        ADD_FAILURE() << "stage " << s << " op " << i << " receives a message nobody sends";
        return {};
      }
      const auto [ps, pi] = it->second;
      st[s].partner_stage[i] = int64_t(ps), st[s].partner_op[i] = int64_t(pi);
      st[ps].partner_stage[pi] = int64_t(s), st[ps].partner_op[pi] = int64_t(i);
    }
  }
  if (ns > 1) {
    EXPECT_EQ(emb[0].size(), emb[1].size());
    for (size_t k = 0; k < std::min(emb[0].size(), emb[1].size()); ++k) {
      st[0].partner_stage[emb[0][k]] = int64_t(ns - 1), st[0].partner_op[emb[0][k]] = int64_t(emb[1][k]);
      st[ns - 1].partner_stage[emb[1][k]] = 0, st[ns - 1].partner_op[emb[1][k]] = int64_t(emb[0][k]);
    }
  }

  Replay r;
  for (const auto& s : st) r.ops_total += int64_t(s.ops->size());
  // Whether op i of stage s could start on its GPU: enqueued, first unfinished op of its stream,
  // its dependencies done.
  auto can_start = [&](size_t s, size_t i) {
    const Stage& x = st[s];
    const Op& op = (*x.ops)[i];
    const auto& so = x.stream_ops[int(op.stream)];
    const size_t h = x.head[int(op.stream)];
    if (i >= x.next || h >= so.size() || so[h] != i) return false;
    for (uint8_t d = 0; d < op.ndeps; ++d)
      if (!x.done[size_t(op.deps[d])]) return false;
    return true;
  };
  auto finish = [&](size_t s, size_t i) {
    st[s].done[i] = 1;
    ++st[s].head[int((*st[s].ops)[i].stream)];
    ++r.ops_done;
  };
  for (bool moved = true; moved;) {
    moved = false;
    // Hosts: enqueue as far as the rule lets them.
    for (size_t s = 0; s < ns; ++s) {
      Stage& x = st[s];
      while (x.next < x.ops->size()) {
        if (x.pending_wait == -2) x.pending_wait = x.throttle.wait_before((*x.ops)[x.next], x.next);
        if (x.pending_wait >= 0 && !x.done[size_t(x.pending_wait)]) break;
        ++x.next, x.pending_wait = -2, moved = true;
      }
    }
    // GPUs: run every stream head that can finish; a cross-stage op finishes with its partner.
    for (size_t s = 0; s < ns; ++s) {
      for (int q = 0; q < plan::kNumStreams; ++q) {
        for (;;) {
          const auto& so = st[s].stream_ops[q];
          const size_t h = st[s].head[q];
          if (h >= so.size()) break;
          const size_t i = so[h];
          if (!can_start(s, i)) break;
          if (cross_stage((*st[s].ops)[i]) && st[s].partner_op[i] >= 0) {
            const size_t ps = size_t(st[s].partner_stage[i]), pi = size_t(st[s].partner_op[i]);
            if (!can_start(ps, pi)) break;
            finish(ps, pi);
          }
          finish(s, i);
          moved = true;
        }
      }
    }
  }
  r.finished = r.ops_done == r.ops_total;
  for (size_t s = 0; s < ns && !r.finished; ++s) {
    r.stuck += "stage " + std::to_string(s) + ": host at op " + std::to_string(st[s].next) + "/" +
               std::to_string(st[s].ops->size());
    if (st[s].pending_wait >= 0) r.stuck += " waiting for op " + std::to_string(st[s].pending_wait) + " (" +
                                            (*st[s].ops)[size_t(st[s].pending_wait)].label() + ")";
    r.stuck += "; ";
  }
  return r;
}

plan::Plan interleaved_plan(const std::string& model_name, int64_t tp, int64_t pp, int64_t vpp, int64_t gbs) {
  const config::ModelConfig m = config::load_model(model_name);
  config::ParallelConfig p;
  p.tp = tp, p.pp = pp, p.vpp = vpp, p.global_batch_size = gbs;
  p = config::resolve(p, m, tp * pp, "test");
  return plan::build_plan(m, p);
}

struct Case {
  const char* model;
  int64_t tp, pp, vpp, gbs;
  bool old_rule_hangs;  // what the replay of the old rule gives on this plan
};

class EnqueueThrottleReplay : public ::testing::TestWithParam<Case> {};

TEST_P(EnqueueThrottleReplay, OldRuleDeadlocksComputeOnlyRuleFinishes) {
  const Case c = GetParam();
  const plan::Plan plan = interleaved_plan(c.model, c.tp, c.pp, c.vpp, c.gbs);
  ASSERT_EQ(int64_t(plan.stages.size()), c.pp);
  // Each stage has far more than 128 ops, so the window matters.
  for (const auto& s : plan.stages) ASSERT_GT(s.ops.size(), 4 * exec::kMaxOpsInFlight);

  const Replay old_rule = replay(plan, ThrottleRule::kAnyOp, exec::kMaxOpsInFlight);
  EXPECT_EQ(old_rule.finished, !c.old_rule_hangs);
  EXPECT_EQ(old_rule.stuck.empty(), !c.old_rule_hangs);
  std::cout << "[ old rule ] " << old_rule.ops_done << "/" << old_rule.ops_total << " ops, then stuck: " << old_rule.stuck << "\n";

  // The executor's rule, at its window and at much smaller ones (less lookahead, same verdict).
  for (size_t window : {exec::kMaxOpsInFlight, size_t(16), size_t(1)}) {
    const Replay r = replay(plan, ThrottleRule::kComputeOnly, window);
    EXPECT_TRUE(r.finished) << "window " << window << ": " << r.ops_done << "/" << r.ops_total << " ops; " << r.stuck;
  }
  // Without any throttle the plan runs through (the plan itself is deadlock-free).
  EXPECT_TRUE(replay(plan, ThrottleRule::kComputeOnly, size_t(1) << 40).finished);
}

INSTANTIATE_TEST_SUITE_P(RealPlans, EnqueueThrottleReplay,
                         // pp 2 happens to fit the old 128-op window; pp 4 does not (4 stages each
                         // blocked on a send whose receive its neighbour has not enqueued yet).
                         ::testing::Values(Case{"llama3.1-8b", 4, 2, 2, 16, false}, Case{"llama3.1-8b", 4, 2, 2, 64, false},
                                           Case{"llama3.1-70b", 8, 4, 2, 16, true}),
                         [](const auto& test_info) {
                           const Case& c = test_info.param;
                           std::string n = std::string(c.model) + "_tp" + std::to_string(c.tp) + "_pp" + std::to_string(c.pp) + "_vpp" +
                                           std::to_string(c.vpp) + "_gbs" + std::to_string(c.gbs);
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// Pipeline transfers that block (Megatron without --overlap-p2p-communication, and always without
// interleaving): the next unit waits for the previous unit's send as well as its own receive. An
// NCCL send finishes only when its peer's receive runs, so a receive must never wait for a send of
// its own stage (stage s's receive waiting for its send, which waits for stage s+1's receive,
// which would wait for stage s+1's send, which waits for stage s's receive): the plan makes the
// compute stream wait instead, as Megatron's batch_isend_irecv + wait + synchronize does.
TEST(EnqueueThrottle, BlockingPipelineTransfersRunThrough) {
  struct Blocking {
    int64_t pp, vpp, gbs;
    bool overlap_p2p_comm;
  };
  const config::ModelConfig m = config::load_model("llama3.1-8b");
  for (const Blocking b : {Blocking{4, 1, 16, true}, Blocking{2, 1, 16, true}, Blocking{4, 2, 16, false}}) {
    config::ParallelConfig p;
    p.tp = 2, p.pp = b.pp, p.vpp = b.vpp, p.global_batch_size = b.gbs, p.overlap_p2p_comm = b.overlap_p2p_comm;
    p = config::resolve(p, m, 2 * b.pp, "test");
    ASSERT_TRUE(p.p2p_blocking());
    const plan::Plan plan = plan::build_plan(m, p);
    for (size_t window : {exec::kMaxOpsInFlight, size_t(1) << 40}) {
      const Replay r = replay(plan, ThrottleRule::kComputeOnly, window);
      EXPECT_TRUE(r.finished) << "pp " << b.pp << " vpp " << b.vpp << " window " << window << ": " << r.ops_done << "/"
                              << r.ops_total << " ops; " << r.stuck;
    }
  }
}

}  // namespace
}  // namespace capscale
