// The timeline engine: given a Plan and one duration per op, computes when every op runs and the
// step time. Streams are in-order queues (as CUDA streams); an op starts when its stream is free
// and its dependencies have finished; a receive finishes when its matching send (on the peer
// stage) has. Collectives inside one stage need no rendezvous: by symmetry all members of a TP, CP
// or DP group run the same stage plan and arrive together, so one representative rank per stage
// is exact and the cost grows with pp × micro-batches × layers, not with the number of chips.
#pragma once
#include <vector>

#include "plan/plan.hpp"

namespace capscale::timeline {

struct Breakdown {
  double compute_s = 0;       ///< GEMMs and attention on the compute stream
  double exposed_comm_s = 0;  ///< compute stream idle waiting for TP/CP/DP communication
  double bubble_s = 0;        ///< compute stream idle waiting for pipeline receives
  double other_s = 0;         ///< elementwise kernels, the optimizer step, the host's step-boundary gap
  double total() const { return compute_s + exposed_comm_s + bubble_s + other_s; }
};

struct OpTiming {
  double start_s = 0, end_s = 0;
};

struct TimelineOptions {
  /// Run every op of a stage on one queue in list order (the CPU executor's behaviour).
  bool serialize = false;
  /// Keep every op's start/end (for traces); off for fast prediction.
  bool keep_timings = false;
  /// Run an overlap edge's op pipelined in pieces behind its partner (plan::Overlap). Off: the op
  /// waits for its partner to finish and runs whole, as the CPU executor's concurrent streams run it.
  bool chunked_overlap = true;
  /// Share of the compute stream's rate a running collective on another stream takes (its NCCL
  /// kernel holds SMs the GEMMs beside it would use: ChipProfile::comm_contention). While k such
  /// collectives run, a compute-stream op progresses at 1 − k·share (at least kMinComputeRate);
  /// the time it loses is charged to exposed communication. 0: overlapped communication is free.
  double comm_contention = 0;
};

/// The least rate a compute-stream op keeps however many collectives run beside it (a guard: at
/// H100's 24 of 132 SMs per collective it binds only with four or more at once).
inline constexpr double kMinComputeRate = 0.25;

struct TimelineResult {
  double step_time_s = 0;
  int64_t critical_stage = 0;
  Breakdown breakdown;  ///< of the critical stage; adds up to step_time_s
  std::vector<double> stage_end_s;
  std::vector<std::vector<OpTiming>> timings;  ///< per stage, per op (keep_timings)
};

/// durations[stage][op]. Throws RuntimeError if the plan cannot make progress (a builder bug).
TimelineResult simulate(const plan::Plan& plan, const std::vector<std::vector<double>>& durations,
                        const TimelineOptions& options = {});

}  // namespace capscale::timeline
