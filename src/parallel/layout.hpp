// Rank → (tp, cp, dp, pp) coordinates and process groups, in Megatron's order tp-cp-ep-dp-pp
// (megatron/core/parallel_state.py, RankGenerator): tp varies fastest, pp slowest. Experts use a
// second generator over the same ranks, etp-ep-edp-pp (parallel folding, Megatron-Core ≥ 0.10:
// `expert_decoder_rank_generator`), so ep never changes a dense model's rank numbering.
// An explicit object instead of Megatron's module globals.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace capscale::parallel {

/// The process groups, defined once: every per-group table (communicators, spans) is sized by
/// kNumGroups and walks kAllGroups. kEp, kEtp and kEdp are the expert groups of Megatron-Core's
/// MoE parallel folding: inside one pipeline stage's tp·cp·dp ranks, experts are laid out
/// etp-ep-edp (etp fastest), independent of attention's tp-cp-dp.
/// kTpCpDp ("stage"): every rank of one pipeline stage (Megatron's tensor-and-data-parallel group with
/// context parallelism, over which Transformer Engine reduces its FP8 amaxes).
enum class Group : uint8_t { kTp, kCp, kDp, kPp, kDpCp, kEmbedding, kEp, kEtp, kEdp, kTpCpDp };
constexpr int kNumGroups = 10;
constexpr std::array<Group, kNumGroups> kAllGroups = {Group::kTp,        Group::kCp, Group::kDp,  Group::kPp,  Group::kDpCp,
                                                      Group::kEmbedding, Group::kEp, Group::kEtp, Group::kEdp, Group::kTpCpDp};
std::string to_string(Group g);

struct Coords {
  int64_t tp = 0, cp = 0, dp = 0, pp = 0;
};

/// A rank's place in the expert layout: ep = expert-parallel index, etp = expert-tensor index,
/// edp = expert-data-parallel index, pp as for attention.
struct ExpertCoords {
  int64_t etp = 0, ep = 0, edp = 0, pp = 0;
};

class Layout {
 public:
  /// ep·etp must divide tp·cp·dp (the ranks of one pipeline stage).
  Layout(int64_t tp, int64_t cp, int64_t dp, int64_t pp, int64_t ep = 1, int64_t etp = 1);

  int64_t world() const { return tp_ * cp_ * dp_ * pp_; }
  int64_t size(Group g) const;
  Coords coords(int64_t rank) const;
  int64_t rank_of(const Coords& c) const;
  ExpertCoords expert_coords(int64_t rank) const;
  int64_t rank_of(const ExpertCoords& c) const;
  /// Ranks in `rank`'s group of kind g, in increasing order of the group-local index.
  std::vector<int64_t> members(Group g, int64_t rank) const;
  /// All groups of kind g, each a list of ranks (what Megatron's RankGenerator.get_ranks returns).
  std::vector<std::vector<int64_t>> all_groups(Group g) const;
  /// A stable colour for MPI_Comm_split: equal for ranks in the same group.
  int64_t group_id(Group g, int64_t rank) const;
  /// Index of `rank` inside its group of kind g.
  int64_t group_rank(Group g, int64_t rank) const;

 private:
  int64_t tp_, cp_, dp_, pp_, ep_, etp_, edp_;
};

}  // namespace capscale::parallel
