// Timeline engine; see timeline.hpp. Round-robin over the stages, each advanced in op order until
// a receive meets a send not simulated yet (advance). An op starts when its queue is free and its
// dependencies have ended (ready); two cases extend that rule, each in one place: an explicit
// overlap edge (plan::Overlap, tp_comm_overlap; overlapped) and a receive, which ends no earlier
// than its send.
#include "timeline/timeline.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "common/error.hpp"

namespace capscale::timeline {

using plan::OpKind;
using plan::Stream;

namespace {

/// What an op's start waited for last: its queue or a compute op (kNone), a communication op
/// (kComm), a pipeline receive (kRecv). The breakdown charges idle compute time by it.
enum class Wait : uint8_t { kNone, kComm, kRecv };

/// What an op is as a producer, for the Wait of the ops that wait for it: a receive is the
/// pipeline's (bubble), a send waited for is this rank's own transfer (exposed communication).
Wait producer_wait(const plan::Op& op) {
  if (op.kind == OpKind::kSendRecv) return op.is_send ? Wait::kComm : Wait::kRecv;
  return op.stream == Stream::kCompute ? Wait::kNone : Wait::kComm;
}

/// A collective running on a stream beside the compute stream, holding SMs (comm_contention).
struct Busy {
  double start_s, end_s;
  int32_t op;
};

/// No collective slowed the op.
constexpr int32_t kNoContender = std::numeric_limits<int32_t>::max();

struct StageState {
  size_t next = 0;    ///< first op not yet simulated
  size_t stored = 0;  ///< index in StagePlan::ops of op `next` (a compact stage stores no copies)
  size_t range = 0;   ///< first copy range not yet reached
  std::array<double, plan::kNumStreams> stream_free{};
  double serial_free = 0;
  std::vector<OpTiming> t;
  std::vector<Wait> bound;     ///< what the op's start waited for
  std::vector<Wait> producer;  ///< producer_wait of the op
  std::vector<Busy> side;      ///< collectives beside the compute stream, in simulation order
  size_t side_head = 0;        ///< side[< side_head] ended before the compute stream's last start
  std::vector<double> stall;   ///< time the op lost to collectives beside it (empty without comm_contention)
  std::vector<int32_t> contender;  ///< lowest index of a collective that slowed it, or kNoContender (same)
};

/// Calls fn(i, op) for every op of a stage in issue order; a copy of a compact stage is given as
/// its source op (the fields the engine reads besides dependencies are the same).
template <typename Fn>
void for_each_op(const plan::StagePlan& stage, Fn&& fn) {
  size_t i = 0, stored = 0;
  for (const plan::CopyRange& c : stage.copies) {
    if (!stage.compact) break;
    for (; i < size_t(c.begin); ++i) fn(i, stage.ops[stored++]);
    for (; i < size_t(c.end); ++i) fn(i, stage.ops[size_t(c.stored) + (i - size_t(c.begin))]);
  }
  for (; i < size_t(stage.size()); ++i) fn(i, stage.ops[stored++]);
}

/// The engine's per-op state, kept per thread between simulations for its memory: faulting in
/// fresh pages for 10^5 timings on every prediction cost more than simulating them. Every call
/// resets what it reads; only capacity carries over.
struct Workspace {
  std::vector<StageState> st;
  std::vector<double> send_end;
};

struct Engine {
  const plan::Plan& plan;
  const std::vector<std::vector<double>>& dur;
  bool serialize, chunked;
  double share;  ///< TimelineOptions::comm_contention
  std::vector<StageState>& st;
  /// A tag names the (micro-batch, receiving chunk, direction) uniquely across the whole plan;
  /// < 0 until its send has been simulated.
  std::vector<double>& send_end;

  double& queue_free(StageState& S, const plan::Op& op) const {
    return serialize ? S.serial_free : S.stream_free[static_cast<int>(op.stream)];
  }

  /// Earliest start from the op's queue and dependencies (all but `skip`), and what bound it.
  double ready(const StageState& S, const plan::Op& op, double queue, int32_t skip, Wait* bound) const {
    double at = queue;
    for (uint8_t d = 0; d < op.ndeps; ++d) {
      const int32_t i = op.deps[d];
      if (i == skip) continue;
      const double e = S.t[i].end_s;
      if (e > at) {
        at = e;
        if (bound) *bound = S.producer[i];
      }
    }
    return at;
  }

  /// An op pipelined chunk by chunk behind an earlier op (overlap edge: a reduce-scatter behind the
  /// GEMM producing it, a GEMM behind the all-gather feeding it, `chunks` = tp pieces): it starts
  /// once the partner's first chunk is done and its own inputs are ready, and ends one of its own
  /// chunks after the slower of the two. Waiting on the partner's tail counts as communication.
  OpTiming overlapped(const StageState& S, const plan::Op& op, const std::vector<double>& dur_s, size_t i, double queue,
                      Wait* bound) const {
    const int32_t p = op.overlap.partner;
    const double d = dur_s[i], pd = dur_s[size_t(p)], n = std::max(1, op.overlap.chunks);
    const double own = ready(S, op, queue, p, nullptr);
    const OpTiming& partner = S.t[p];
    OpTiming t;
    t.start_s = std::max(own, partner.start_s + pd / n);
    t.end_s = std::max(t.start_s + d, partner.end_s + d / n);
    if (partner.end_s > own + d) *bound = Wait::kComm;
    return t;
  }

  /// A collective on a stream beside the compute stream: its kernel holds SMs while it runs. Under
  /// tp_comm_overlap the TP collectives are userbuffer transfers (copy engines and a few SMs, not
  /// NCCL's channels) and are left out; otherwise they are NCCL kernels like the rest.
  bool holds_sms(const plan::Op& op) const {
    return share > 0 && !serialize && op.kind == OpKind::kCollective && op.stream != Stream::kCompute &&
           !(op.stream == Stream::kTp && plan.parallel.tp_comm_overlap);
  }
  /// A kernel on the compute stream, slowed while collectives run beside it.
  bool slowed(const plan::Op& op) const {
    return share > 0 && !serialize && op.stream == Stream::kCompute &&
           (op.kind == OpKind::kGemm || op.kind == OpKind::kAttention || op.kind == OpKind::kElementwise);
  }

  /// When an op of `d` seconds started at t0 ends, running at 1 − k·share while k collectives run
  /// beside it (processor sharing with the comm kernels' SMs; the collectives' own times are
  /// their links' and do not change). `first`: the lowest index of a collective that slowed it.
  // Out of line: kept out of step(), the engine's hot path, which runs it only under contention.
  [[gnu::noinline]] double contended_end(StageState& S, double t0, double d, int32_t* first) const {
    // The compute stream starts its ops in time order, so a collective that ended before this
    // op's start ended before every later one's.
    while (S.side_head < S.side.size() && S.side[S.side_head].end_s <= t0) ++S.side_head;
    double t = t0, left = d;
    *first = kNoContender;
    for (;;) {
      int k = 0;
      double next = std::numeric_limits<double>::infinity();
      for (size_t j = S.side_head; j < S.side.size(); ++j) {
        const Busy& b = S.side[j];
        if (b.end_s <= t) continue;
        if (b.start_s <= t) {
          ++k;
          next = std::min(next, b.end_s);
          *first = std::min(*first, b.op);
        } else {
          next = std::min(next, b.start_s);
        }
      }
      const double rate = std::max(kMinComputeRate, 1.0 - double(k) * share);
      if (t + left / rate <= next) return t + left / rate;
      left -= (next - t) * rate;
      t = next;
    }
  }

  /// Simulates op i of stage s (`op`: its dependencies as they are for i). False, and nothing
  /// changed, when it is a receive whose send is not simulated yet.
  // Inlined into advance(): the engine spends most of its time here (out of line it cost ~10 %).
  [[gnu::always_inline]] bool step(StageState& S, size_t s, size_t i, const plan::Op& op) {
    const bool is_recv = op.kind == OpKind::kSendRecv && !op.is_send;
    if (is_recv && (size_t(op.tag) >= send_end.size() || send_end[op.tag] < 0)) return false;
    // The overlap edge points back to an earlier op (the builder guarantees it; a forward edge
    // would read a timing not yet computed).
    if (op.overlap.partner >= 0 && size_t(op.overlap.partner) >= i)
      throw RuntimeError("timeline: an overlap edge points forward; this is a bug");
    const auto& dur_s = dur[s];
    double& queue = queue_free(S, op);
    Wait bound = Wait::kNone;
    double at = ready(S, op, queue, -1, &bound);
    if (op.overlap.partner >= 0 && !chunked && S.t[size_t(op.overlap.partner)].end_s > at) {
      at = S.t[size_t(op.overlap.partner)].end_s;  // run whole, after the partner
      bound = S.producer[size_t(op.overlap.partner)];
    }
    OpTiming t;
    if (op.overlap.partner >= 0 && chunked) {
      t = overlapped(S, op, dur_s, i, queue, &bound);
    } else {
      t.start_s = at;
      // A receive completes when its message has arrived (its send ended) and it has run.
      t.end_s = (is_recv ? std::max(at, send_end[op.tag]) : at) + dur_s[i];
    }
    double stall = 0;
    int32_t contender = kNoContender;
    if (slowed(op)) {
      stall = contended_end(S, t.start_s, dur_s[i], &contender) - (t.start_s + dur_s[i]);
      t.end_s += stall;
    }
    if (holds_sms(op)) S.side.push_back({t.start_s, t.end_s, int32_t(i)});
    if (op.kind == OpKind::kSendRecv && op.is_send) {
      if (size_t(op.tag) >= send_end.size()) send_end.resize(size_t(op.tag) + 1, -1.0);
      send_end[op.tag] = t.end_s;
    }
    S.t[i] = t;
    if (share > 0) S.stall[i] = stall, S.contender[i] = contender;  // sized only under contention
    S.bound[i] = bound;
    S.producer[i] = producer_wait(op);
    queue = t.end_s;
    return true;
  }

  /// A copied layer of a compact stage (plan::CopyRange): its source's timings shifted by the
  /// difference of their entries' ends; its DP-stream ops, which queue behind earlier DP traffic,
  /// and a copy that waits for a receive are simulated op by op. A layer holds no receive.
  void shift_copy(StageState& S, size_t s, const plan::CopyRange& c) {
    const auto& ops = plan.stages[s].ops;
    const double delta = S.t[size_t(c.entry)].end_s - S.t[size_t(c.source_entry)].end_s;
    if (!contention_shifts(S, ops, c, delta)) {
      for (int32_t j = c.begin; j < c.end; ++j) step(S, s, size_t(j), c.copy(ops[size_t(c.stored + (j - c.begin))]));
      return;
    }
    for (int32_t j = c.begin; j < c.end; ++j) {
      const plan::Op& src = ops[size_t(c.stored + (j - c.begin))];
      if (src.stream == Stream::kDp || c.pending >= 0) {  // not a shift of the source: simulated
        step(S, s, size_t(j), c.copy(src));
        continue;
      }
      const size_t from = size_t(j - c.shift);
      S.t[size_t(j)] = {S.t[from].start_s + delta, S.t[from].end_s + delta};
      S.bound[size_t(j)] = S.bound[from];
      S.producer[size_t(j)] = S.producer[from];
      if (share > 0) {
        S.stall[size_t(j)] = S.stall[from];
        S.contender[size_t(j)] = S.contender[from] == kNoContender ? kNoContender : S.contender[from] + c.shift;
      }
      if (holds_sms(src)) S.side.push_back({S.t[size_t(j)].start_s, S.t[size_t(j)].end_s, j});
      queue_free(S, src) = S.t[size_t(j)].end_s;
    }
  }

  /// Whether a copy's slowdowns are its source's (so shifting its timings stays exact): no op of the
  /// source was slowed by a collective from outside the source, no collective running now would
  /// overlap a shifted compute op, and the copy holds no DP collective (simulated op by op, its
  /// time is not the source's).
  bool contention_shifts(const StageState& S, const std::vector<plan::Op>& ops, const plan::CopyRange& c, double delta) const {
    if (share <= 0) return true;
    const int32_t source = c.begin - c.shift;
    for (int32_t j = c.begin; j < c.end; ++j) {
      const plan::Op& src = ops[size_t(c.stored + (j - c.begin))];
      const size_t from = size_t(j - c.shift);
      if (src.stream == Stream::kDp && holds_sms(src)) return false;
      if (S.contender[from] != kNoContender && S.contender[from] < source) return false;
      if (!slowed(src)) continue;
      const double a = S.t[from].start_s + delta, b = S.t[from].end_s + delta;
      for (size_t k = S.side_head; k < S.side.size(); ++k)
        if (S.side[k].start_s < b && S.side[k].end_s > a) return false;
    }
    return true;
  }

  /// Simulates stage s's ops until a receive waits for an unsimulated send. Returns ops simulated.
  size_t advance(size_t s) {
    StageState& S = st[s];
    const plan::StagePlan& stage = plan.stages[s];
    const size_t n = size_t(stage.size()), first = S.next;
    while (S.next < n) {
      if (stage.compact && S.range < stage.copies.size() && S.next == size_t(stage.copies[S.range].begin)) {
        const plan::CopyRange& c = stage.copies[S.range++];
        shift_copy(S, s, c);
        S.next = size_t(c.end);
        continue;
      }
      if (!step(S, s, S.next, stage.ops[S.stored])) break;
      ++S.next, ++S.stored;
    }
    return S.next - first;
  }

  /// Breakdown of one stage: walk its compute queue (or its one queue when serialized), charge
  /// busy time by op kind and idle gaps by what the next op waited for.
  Breakdown breakdown(size_t s, double step_time_s) const {
    const auto& S = st[s];
    Breakdown b;
    double cursor = 0;
    for_each_op(plan.stages[s], [&](size_t i, const plan::Op& op) {
      if (!serialize && op.stream != Stream::kCompute) return;
      const double gap = S.t[i].start_s - cursor;
      if (gap > 0) (S.bound[i] == Wait::kRecv ? b.bubble_s : b.exposed_comm_s) += gap;
      double busy = S.t[i].end_s - std::max(cursor, S.t[i].start_s);
      // Time lost to collectives beside it is communication's, not compute's.
      const double stalled = share > 0 ? std::min(std::max(busy, 0.0), S.stall[i]) : 0.0;
      b.exposed_comm_s += stalled;
      busy -= stalled;
      switch (op.kind) {
        case OpKind::kGemm:
        case OpKind::kAttention: b.compute_s += busy; break;
        case OpKind::kElementwise: b.other_s += busy; break;
        case OpKind::kCollective: b.exposed_comm_s += busy; break;
        case OpKind::kSendRecv: {
          const double wait = op.is_send ? 0 : std::max(0.0, S.t[i].end_s - S.t[i].start_s - dur[s][i]);
          b.bubble_s += wait;
          b.exposed_comm_s += busy - wait;
          break;
        }
      }
      cursor = std::max(cursor, S.t[i].end_s);
    });
    if (step_time_s > cursor) b.exposed_comm_s += step_time_s - cursor;  // trailing DP reduction
    return b;
  }
};

}  // namespace

TimelineResult simulate(const plan::Plan& plan, const std::vector<std::vector<double>>& durations,
                        const TimelineOptions& options) {
  const size_t P = plan.stages.size();
  thread_local Workspace w;
  w.st.resize(P);
  w.send_end.clear();
  Engine e{plan, durations, options.serialize, options.chunked_overlap, options.comm_contention, w.st, w.send_end};
  // No pass over the ops before simulating: at 10^5 ops of a plan larger than the caches, a
  // separate pass cost a quarter of the simulation. send_end grows as sends are simulated.
  for (size_t s = 0; s < P; ++s) {
    const plan::StagePlan& stage = plan.stages[s];
    const size_t n = size_t(stage.size());
    if (durations.at(s).size() != n) throw RuntimeError("timeline: durations do not match the plan's stage " + std::to_string(s));
    if (stage.compact && options.serialize) throw RuntimeError("timeline: a compact plan cannot be serialized; this is a bug");
    StageState& S = e.st[s];
    S.next = 0, S.stored = 0, S.range = 0, S.stream_free = {}, S.serial_free = 0;
    S.t.resize(n);  // every op's entry is written before it is read (deps point back)
    S.bound.resize(n);
    S.producer.resize(n);
    // Per-op stalls exist only under contention: without it they would be zeros written and read
    // for every op.
    S.stall.resize(options.comm_contention > 0 ? n : 0);
    S.contender.resize(options.comm_contention > 0 ? n : 0);
    S.side.clear();
    S.side_head = 0;
  }

  // Round-robin over the stages until all are done; a full pass without progress is a deadlock.
  for (size_t done = 0; done < P;) {
    bool progressed = false;
    done = 0;
    for (size_t s = 0; s < P; ++s) {
      progressed |= e.advance(s) > 0;
      if (e.st[s].next == size_t(plan.stages[s].size())) ++done;
    }
    if (!progressed && done < P) throw RuntimeError("timeline: the plan deadlocks (a receive has no send); this is a bug");
  }

  TimelineResult r;
  r.stage_end_s.resize(P, 0);
  // A stage ends with the last op on any of its queues: each queue's ops end in order, and its
  // free time is the end of its last op.
  for (size_t s = 0; s < P; ++s) {
    const StageState& S = e.st[s];
    r.stage_end_s[s] = std::max(S.serial_free, *std::max_element(S.stream_free.begin(), S.stream_free.end()));
  }
  r.critical_stage = std::max_element(r.stage_end_s.begin(), r.stage_end_s.end()) - r.stage_end_s.begin();
  r.step_time_s = r.stage_end_s[r.critical_stage];
  r.breakdown = e.breakdown(size_t(r.critical_stage), r.step_time_s);
  if (options.keep_timings) {
    r.timings.resize(P);
    for (size_t s = 0; s < P; ++s) r.timings[s] = std::move(e.st[s].t);
  }
  return r;
}

}  // namespace capscale::timeline
