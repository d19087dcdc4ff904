// Layout against Megatron's 16-GPU docstring example (parallel_state.initialize_model_parallel):
// tp 2, pp 4 → dp 2; the tensor, data and pipeline groups listed there.
#include <gtest/gtest.h>

#include "parallel/layout.hpp"

using capscale::parallel::Group;
using capscale::parallel::Layout;

TEST(Layout, MegatronSixteenGpuExample) {
  const Layout l(/*tp=*/2, /*cp=*/1, /*dp=*/2, /*pp=*/4);
  ASSERT_EQ(l.world(), 16);
  const std::vector<std::vector<int64_t>> tp = {{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}};
  const std::vector<std::vector<int64_t>> dp = {{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}};
  const std::vector<std::vector<int64_t>> pp = {{0, 4, 8, 12}, {1, 5, 9, 13}, {2, 6, 10, 14}, {3, 7, 11, 15}};
  EXPECT_EQ(l.all_groups(Group::kTp), tp);
  EXPECT_EQ(l.all_groups(Group::kDp), dp);
  EXPECT_EQ(l.all_groups(Group::kPp), pp);
  // Embedding group: first and last pipeline stage (Megatron's embedding_group).
  EXPECT_EQ(l.members(Group::kEmbedding, 1), (std::vector<int64_t>{1, 13}));
}

TEST(Layout, CoordsRoundTripAndOrder) {
  const Layout l(4, 2, 3, 5);
  for (int64_t r = 0; r < l.world(); ++r) EXPECT_EQ(l.rank_of(l.coords(r)), r);
  // tp varies fastest, then cp, dp, pp (tp-cp-dp-pp).
  EXPECT_EQ(l.coords(1).tp, 1);
  EXPECT_EQ(l.coords(4).cp, 1);
  EXPECT_EQ(l.coords(8).dp, 1);
  EXPECT_EQ(l.coords(24).pp, 1);
  // The data-parallel group with context parallelism spans dp×cp ranks.
  EXPECT_EQ(l.members(Group::kDpCp, 0).size(), 6u);
  EXPECT_EQ(l.group_rank(Group::kPp, 24 * 3), 3);
}
