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
        if (is_recv) {
          t.end_s = std::max(ready, send_end[op.tag]) + dur[S.next];
        } else {
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
