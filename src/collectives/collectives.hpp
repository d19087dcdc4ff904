// The collective registry: one entry per kind (nccl-tests' shape: src/all_reduce.cu plugs into
// src/common.cu through a small struct). An entry names the collective, its byte convention, its
// nccl-tests bus-bandwidth factor (doc/PERFORMANCE.md) and its α–β time model over a process
// group that may span scale-up domains (NCCL's ring: NVLink inside the domain and NIC across,
// pipelined, so the slower leg sets the time, with a tree's log-latency across domains; an
// all-reduce inside an NVSwitch domain with NVLink SHARP takes the cheaper of the ring and NVLS,
// as NCCL would pick). The MPI
// and NCCL implementations are per-backend tables indexed by the same kind (exec/cpu, exec/cuda),
// each with a static_assert that it covers every kind: adding a collective is one entry file here,
// one line in each backend table, and its tests.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#include "parallel/layout.hpp"
#include "plan/plan.hpp"

namespace capscale::collectives {

using plan::CollKind;
/// Kinds in the registry (kNone excluded): the count every backend table is checked against.
constexpr int kNumKinds = 4;

/// Where a process group's members sit: how many per scale-up domain, how many domains.
struct GroupSpan {
  int64_t size = 1;
  int64_t per_domain = 1;
  int64_t domains = 1;
};

/// Span of the group of kind g containing rank 0, ranks placed consecutively into domains of
/// `domain` chips (one rank per chip, as with one rank per GPU on consecutive node slots). O(1).
GroupSpan group_span(const parallel::Layout& layout, parallel::Group g, int64_t domain);

/// Achieved link parameters, per direction: scale-up (intra-domain) and scale-out (per chip).
struct LinkParams {
  double intra_Bps = 0, intra_alpha_s = 0;
  double inter_Bps = 0, inter_alpha_s = 0;
  /// NVLink SHARP (NVLS) all-reduce rate inside one NVSwitch domain, per direction, achieved
  /// (intra_Bps × the chip's efficiency.nvls); 0: the domain has no NVLS (all_reduce.cpp).
  double nvls_Bps = 0;
};

/// How an all-to-all's copies are routed (plan::Op::route_topk / route_node_limit): topk 0 is a
/// plain all-to-all; otherwise the flex dispatcher's one copy per remote domain.
struct Routing {
  int topk = 0;
  int node_limit = 0;  ///< domains one token may reach; 0: any
};

/// One registry entry.
struct Collective {
  CollKind kind = CollKind::kNone;
  std::string_view name;   ///< nccl-tests' name, e.g. "all_reduce"
  std::string_view bytes;  ///< what plan::Op::bytes (S) means for this kind
  /// nccl-tests bus-bandwidth factor for n ranks: busbw = S / t · factor.
  double (*bus_factor)(int64_t n) = nullptr;
  /// α–β time (seconds) of S bytes over `span` on `link`; `routing` matters to all-to-all only.
  double (*time_s)(double S, const GroupSpan& span, const LinkParams& link, const Routing& routing) = nullptr;
};

/// The entry of `kind`; throws RuntimeError for kNone (a plan bug).
const Collective& get(CollKind kind);
/// Every entry, in CollKind order.
const std::array<const Collective*, kNumKinds>& all();
/// Index of a kind in backend tables (0 … kNumKinds−1).
constexpr int index(CollKind kind) { return static_cast<int>(kind) - 1; }

/// Shorthands over get(kind).
double bus_factor(CollKind kind, int64_t n);
/// 0 for a group of one or no bytes.
double time_s(CollKind kind, int64_t bytes, const GroupSpan& span, const LinkParams& link, const Routing& routing = {});

// The entries, one file each (all_reduce.cpp, reduce_scatter.cpp, all_gather.cpp, all_to_all.cpp).
extern const Collective kAllReduce;
extern const Collective kReduceScatter;
extern const Collective kAllGather;
extern const Collective kAllToAll;

namespace all_to_all {
/// The all-to-all α–β model (all_to_all.cpp), exposed for its closed-form test. `cross_share`:
/// the share of the copies bound for other domains that cross the NIC (1: all).
double time_s(double S, const GroupSpan& span, const LinkParams& link, double cross_share);
/// The flex dispatcher's cross_share over `domains` scale-up domains (all_to_all.cpp).
double flex_cross_share(const Routing& routing, int64_t domains);
}  // namespace all_to_all

namespace all_reduce {
/// NVLink SHARP all-reduce of S bytes over n ranks of one NVSwitch domain (all_reduce.cpp):
/// (n+1)/n·S/nvls_Bps + 2·intra_alpha_s. Exposed for its closed-form test.
double nvls_time_s(double S, int64_t n, const LinkParams& link);
}  // namespace all_reduce

/// Building blocks of the α–β models (ring.cpp).
namespace ring {
/// One ring phase (a reduce-scatter or an all-gather) of S bytes over n ranks: (n−1)/n·S/B + (n−1)α.
double phase(double S, int64_t n, double B, double alpha);
/// `phases` ring phases over a group: one ring inside a domain; across D domains of L members
/// NCCL's ring, whose channels chain each domain's members over NVLink and leave it through
/// different NICs: per phase each rank forwards (n−1)/n·S, (L−1)/L of it over NVLink and 1/L over
/// its own NIC, pipelined, so max((n−1)/n·S·(L−1)/L / B_intra, (n−1)/n·S/L / B_inter) — bus
/// bandwidth min(B_intra·L/(L−1), L·B_inter), the slowest link, not the legs in series — plus the
/// latency of the ring's n−1 steps per phase, D−1 of them across a NIC: (n−D)·α_intra +
/// (D−1)·α_inter (NCCL src/graph/tuning.cc, nsteps and nInterSteps). An all-reduce may run as a
/// tree instead (`Latency::kRingOrTree`): per phase (L−1)·α_intra + min(D−1, 2⌈log₂D⌉)·α_inter
/// where that is less; a reduce-scatter or all-gather only as a ring, or, with one rank per domain,
/// as NCCL's PAT (≥ 2.23): ⌈log₂D⌉·α_inter where that is less.
enum class Latency { kRing, kRingOrTree };
double time_s(int phases, double S, const GroupSpan& span, const LinkParams& link, Latency latency = Latency::kRing);
/// (n−1)/n: the bus factor of one ring phase.
double phase_factor(int64_t n);
}  // namespace ring

}  // namespace capscale::collectives
