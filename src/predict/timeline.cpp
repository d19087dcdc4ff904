// Timeline engine; see timeline.hpp.
#include "predict/timeline.hpp"

#include <algorithm>
#include <array>

#include "common/error.hpp"

namespace capscale::predict {

using plan::OpKind;
using plan::Stream;

namespace {

enum class Wait : uint8_t { kNone, kComm, kRecv };

struct StageState {
  size_t next = 0;
  std::array<double, plan::kNumStreams> stream_free{};
  double serial_free = 0;
  std::vector<OpTiming> t;
  std::vector<Wait> bound;  // what the op's start waited for last
  std::vector<double> ready;
};

}  // namespace

TimelineResult simulate(const plan::Plan& plan, const std::vector<std::vector<double>>& durations,
                        const TimelineOptions& options) {
  const size_t P = plan.stages.size();
  std::vector<StageState> st(P);
  int64_t max_tag = 0;
  for (size_t s = 0; s < P; ++s) {
    const size_t n = plan.stages[s].ops.size();
    if (durations.at(s).size() != n) throw RuntimeError("timeline: durations do not match the plan's stage " + std::to_string(s));
    st[s].t.resize(n);
    st[s].bound.resize(n, Wait::kNone);
    st[s].ready.resize(n, 0);
    for (const auto& op : plan.stages[s].ops)
      if (op.kind == OpKind::kSendRecv) max_tag = std::max(max_tag, op.tag + 1);
  }
  // A tag names the (micro-batch, receiving chunk, direction) uniquely across the whole plan.
  std::vector<double> send_end(size_t(max_tag), -1.0);

  size_t done = 0;
  while (done < P) {
    bool progressed = false;
    done = 0;
    for (size_t s = 0; s < P; ++s) {
      auto& S = st[s];
      const auto& ops = plan.stages[s].ops;
      const auto& dur = durations[s];
      while (S.next < ops.size()) {
        const plan::Op& op = ops[S.next];
        const bool is_recv = op.kind == OpKind::kSendRecv && !op.is_send;
        if (is_recv && send_end[op.tag] < 0) break;  // its send has not been simulated yet
        const int si = static_cast<int>(op.stream);
        double ready = options.serialize ? S.serial_free : S.stream_free[si];
        Wait bound = Wait::kNone;
        for (uint8_t d = 0; d < op.ndeps; ++d) {
          const auto& dep_op = ops[op.deps[d]];
          const double e = S.t[op.deps[d]].end_s;
          if (e > ready) {
            ready = e;
            bound = dep_op.kind == OpKind::kSendRecv ? Wait::kRecv
                    : dep_op.stream == Stream::kCompute ? Wait::kNone : Wait::kComm;
          }
        }
        OpTiming t;
        t.start_s = ready;
        if (op.overlap_partner >= 0 && op.kind == OpKind::kCollective && op.overlap_partner < int32_t(S.next)) {
          // Reduce-scatter pipelined with the GEMM that produces it (chunks = tp): it starts once the
          // first chunk is computed and ends one chunk after whichever of the two is slower.
          const auto& g = S.t[op.overlap_partner];
          const double gd = dur[op.overlap_partner], n = std::max(1, op.chunks);
          t.start_s = std::max(options.serialize ? S.serial_free : S.stream_free[si], g.start_s + gd / n);
          t.end_s = std::max(t.start_s + dur[S.next], g.end_s + dur[S.next] / n);
        } else if (op.overlap_partner >= 0 && op.kind == OpKind::kGemm && op.overlap_partner < int32_t(S.next)) {
          // GEMM pipelined with the all-gather that feeds it: starts after the first chunk arrives.
          const auto& ag = S.t[op.overlap_partner];
          const double ad = dur[op.overlap_partner], n = std::max(1, op.chunks);
          double own = options.serialize ? S.serial_free : S.stream_free[si];
          for (uint8_t d = 0; d < op.ndeps; ++d)
            if (op.deps[d] != op.overlap_partner) own = std::max(own, S.t[op.deps[d]].end_s);
          t.start_s = std::max(own, ag.start_s + ad / n);
          t.end_s = std::max(t.start_s + dur[S.next], ag.end_s + dur[S.next] / n);
          if (ag.end_s > own + dur[S.next]) bound = Wait::kComm;
        } else if (is_recv) {
          t.end_s = std::max(ready, send_end[op.tag]) + dur[S.next];
        } else if (!(op.overlap_partner >= 0 && op.overlap_partner < int32_t(S.next))) {
          t.end_s = ready + dur[S.next];
        }
        if (op.kind == OpKind::kSendRecv && op.is_send) send_end[op.tag] = t.end_s;
        S.t[S.next] = t;
        S.bound[S.next] = bound;
        S.ready[S.next] = ready;
        if (options.serialize) S.serial_free = t.end_s;
        else S.stream_free[si] = t.end_s;
        ++S.next;
        progressed = true;
      }
      if (S.next == ops.size()) ++done;
    }
    if (!progressed && done < P) throw RuntimeError("timeline: the plan deadlocks (a receive has no send); this is a bug");
  }

  TimelineResult r;
  r.stage_end_s.resize(P, 0);
  for (size_t s = 0; s < P; ++s)
    for (const auto& t : st[s].t) r.stage_end_s[s] = std::max(r.stage_end_s[s], t.end_s);
  r.critical_stage = std::max_element(r.stage_end_s.begin(), r.stage_end_s.end()) - r.stage_end_s.begin();
  r.step_time_s = r.stage_end_s[r.critical_stage];

  // Breakdown of the critical stage: walk its compute queue (or its one queue when serialized),
  // charge busy time by op kind and idle gaps by what the next op waited for.
  const auto& ops = plan.stages[r.critical_stage].ops;
  const auto& S = st[r.critical_stage];
  Breakdown& b = r.breakdown;
  double cursor = 0;
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (!options.serialize && op.stream != Stream::kCompute) continue;
    const double gap = S.t[i].start_s - cursor;
    if (gap > 0) (S.bound[i] == Wait::kRecv ? b.bubble_s : b.exposed_comm_s) += gap;
    const double busy = S.t[i].end_s - std::max(cursor, S.t[i].start_s);
    switch (op.kind) {
      case OpKind::kGemm:
      case OpKind::kAttention: b.compute_s += busy; break;
      case OpKind::kElementwise: b.other_s += busy; break;
      case OpKind::kCollective: b.exposed_comm_s += busy; break;
      case OpKind::kSendRecv: {
        const double wait = op.is_send ? 0 : std::max(0.0, S.t[i].end_s - S.t[i].start_s - durations[r.critical_stage][i]);
        b.bubble_s += wait;
        b.exposed_comm_s += busy - wait;
        break;
      }
    }
    cursor = std::max(cursor, S.t[i].end_s);
  }
  if (r.step_time_s > cursor) b.exposed_comm_s += r.step_time_s - cursor;  // trailing DP reduction
  if (options.keep_timings) {
    r.timings.resize(P);
    for (size_t s = 0; s < P; ++s) r.timings[s] = std::move(st[s].t);
  }
  return r;
}

}  // namespace capscale::predict
