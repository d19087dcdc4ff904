// The collective registry (src/collectives): each entry against nccl-tests' closed forms
// (doc/PERFORMANCE.md) and the ring α–β model written out by hand.
#include <gtest/gtest.h>

#include <set>

#include "collectives/collectives.hpp"
#include "common/error.hpp"

using namespace capscale;
using collectives::GroupSpan;
using collectives::LinkParams;
using plan::CollKind;

TEST(Collectives, RegistryHoldsOneEntryPerKindInKindOrder) {
  std::set<std::string_view> names;
  for (int i = 0; i < collectives::kNumKinds; ++i) {
    const auto* c = collectives::all()[i];
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(collectives::index(c->kind), i) << c->name;
    EXPECT_TRUE(names.insert(c->name).second) << c->name;
    EXPECT_FALSE(c->bytes.empty()) << c->name;
    EXPECT_EQ(&collectives::get(c->kind), c);
  }
  EXPECT_THROW(collectives::get(CollKind::kNone), RuntimeError);
}

TEST(Collectives, BusFactorsAreNcclTests) {
  // nccl-tests doc/PERFORMANCE.md: all-reduce 2(n−1)/n; reduce-scatter, all-gather (n−1)/n.
  for (int64_t n : {2, 4, 8, 72, 1024}) {
    const double f = double(n - 1) / double(n);
    EXPECT_DOUBLE_EQ(collectives::bus_factor(CollKind::kAllReduce, n), 2 * f);
    EXPECT_DOUBLE_EQ(collectives::bus_factor(CollKind::kReduceScatter, n), f);
    EXPECT_DOUBLE_EQ(collectives::bus_factor(CollKind::kAllGather, n), f);
  }
  EXPECT_EQ(collectives::bus_factor(CollKind::kAllReduce, 1), 0);
}

TEST(Collectives, RingTimesInsideOneDomainAreTheClosedForms) {
  LinkParams link;
  link.intra_Bps = 200e9, link.intra_alpha_s = 4e-6, link.inter_Bps = 50e9, link.inter_alpha_s = 10e-6;
  const double S = 1 << 28;
  const GroupSpan node{8, 8, 1};
  // Ring all-reduce 2(n−1)/n·S/B + 2(n−1)α; reduce-scatter / all-gather (n−1)/n·S/B + (n−1)α.
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, node, link), 2 * 7.0 / 8 * S / 200e9 + 14 * 4e-6, 1e-15);
  EXPECT_NEAR(collectives::time_s(CollKind::kReduceScatter, S, node, link), 7.0 / 8 * S / 200e9 + 7 * 4e-6, 1e-15);
  EXPECT_NEAR(collectives::time_s(CollKind::kAllGather, S, node, link), 7.0 / 8 * S / 200e9 + 7 * 4e-6, 1e-15);
  // A group of one, or nothing to send, costs nothing.
  EXPECT_EQ(collectives::time_s(CollKind::kAllReduce, S, GroupSpan{1, 1, 1}, link), 0);
  EXPECT_EQ(collectives::time_s(CollKind::kAllGather, 0, node, link), 0);
}

TEST(Collectives, AcrossDomainsTheCheaperOfFlatAndTwoLevel) {
  LinkParams link;
  link.intra_Bps = 200e9, link.intra_alpha_s = 4e-6, link.inter_Bps = 50e9, link.inter_alpha_s = 10e-6;
  const double S = 1 << 30;
  const GroupSpan two_nodes{16, 8, 2};
  const double flat = 15.0 / 16 * S / 50e9 + 15 * 10e-6;
  // Two-level: ring inside the node, then each of 8 ranks sends its 1/8 slice across 2 domains.
  const double two_level = 7.0 / 8 * S / 200e9 + 7 * 4e-6 + 1.0 / 2 * (S / 8) / 50e9 + 1 * 10e-6;
  EXPECT_NEAR(collectives::time_s(CollKind::kReduceScatter, S, two_nodes, link), std::min(flat, two_level), 1e-12);
}
