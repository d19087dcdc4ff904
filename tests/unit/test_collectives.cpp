// The collective registry (src/collectives): each entry against nccl-tests' closed forms
// (doc/PERFORMANCE.md) and the ring α–β model written out by hand.
#include <gtest/gtest.h>

#include <algorithm>
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

TEST(Collectives, AcrossDomainsTheRingRunsAtItsSlowestLink) {
  // NCCL's ring over 2 nodes of 8: per phase each rank forwards 15/16·S, 7/8 of it over NVLink
  // and 1/8 over its own NIC, the two legs pipelined. Written out with the numbers:
  LinkParams link;
  link.intra_Bps = 200e9, link.intra_alpha_s = 4e-6, link.inter_Bps = 50e9, link.inter_alpha_s = 10e-6;
  const double S = 1 << 30;
  const GroupSpan two_nodes{16, 8, 2};
  const double wire = 15.0 / 16.0 * S;
  // NVLink leg wire·7/8 / 200 GB/s = wire / 228.6 GB/s; NIC leg wire / (8 · 50 GB/s) = wire / 400.
  const double nvlink_leg = wire * 7.0 / 8.0 / 200e9, nic_leg = wire / 400e9;
  ASSERT_GT(nvlink_leg, nic_leg);
  // Latency per phase: the ring's n−1 = 15 steps, D−1 = 1 of them through a NIC (NCCL tuning.cc),
  // for reduce-scatter and all-gather; an all-reduce takes the tree's 7 NVLink steps and
  // min(D−1, 2⌈log₂D⌉) = 1 NIC step where that is less.
  const double latency = 14 * 4e-6 + 1 * 10e-6, tree_latency = 7 * 4e-6 + 1 * 10e-6;
  EXPECT_NEAR(collectives::time_s(CollKind::kReduceScatter, S, two_nodes, link), nvlink_leg + latency, 1e-12);
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, two_nodes, link), 2 * (nvlink_leg + tree_latency), 1e-12);
  // Not the legs in series (the old two-level model, and what a ring that waited at each hop would give).
  EXPECT_LT(collectives::time_s(CollKind::kReduceScatter, S, two_nodes, link), nvlink_leg + nic_leg);
  // A slow NIC (12.5 GB/s, 100 Gb/s) makes the NIC the bound: wire / (8 · 12.5 GB/s) = wire / 100 GB/s.
  link.inter_Bps = 12.5e9;
  EXPECT_NEAR(collectives::time_s(CollKind::kAllGather, S, two_nodes, link), wire / 100e9 + latency, 1e-12);
  // One member per domain (a dp group across nodes at tp 8): a flat ring over the NICs,
  // 3/4·S / 12.5 GB/s, with NCCL's PAT latency, ⌈log₂4⌉ = 2 NIC steps, under the ring's 3.
  EXPECT_NEAR(collectives::time_s(CollKind::kAllGather, S, GroupSpan{4, 1, 4}, link), 0.75 * S / 12.5e9 + 2 * 10e-6, 1e-12);
}

TEST(Collectives, SmallMessagesTakeNcclsLowLatencyProtocol) {
  // NCCL's LL protocol (src/graph/tuning.cc): hops of 0.6 µs on NVLink (Simple 3.4), 2.7 µs
  // through a NIC in a ring and 5.0 in a tree (Simple 14), at 1/3 of Simple's bus bandwidth inside
  // a node and 1/4 across nodes. NCCL picks the cheaper per message.
  LinkParams link;
  link.intra_Bps = 369e9, link.intra_alpha_s = 3.4e-6, link.inter_Bps = 46e9, link.inter_alpha_s = 14e-6;
  const GroupSpan node{8, 8, 1};
  // 4 KB all-reduce in one node: 2 phases of 7 hops at 0.6 µs, 7/8·4096 B at 123 GB/s.
  const double S = 4096;
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, node, link), 2 * (7.0 / 8 * S / (369e9 / 3) + 7 * 0.6e-6), 1e-12);
  // 1 GiB: Simple, unchanged.
  const double G = 1 << 30;
  EXPECT_NEAR(collectives::time_s(CollKind::kAllGather, G, node, link), 7.0 / 8 * G / 369e9 + 7 * 3.4e-6, 1e-12);
  // A 4 KB all-reduce over 1,344 ranks, 8 on each of 168 nodes (an FP8 amax reduction at tp 4,
  // dp 336): the tree's 7 NVLink and 2⌈log2 168⌉ = 16 NIC hops per phase, as LL.
  const GroupSpan stage{1344, 8, 168};
  const double wire = 1343.0 / 1344 * S;
  const double ll_transfer = std::max(wire * 7.0 / 8 / 369e9, wire / 8 / 46e9) * 4;
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, stage, link), 2 * (ll_transfer + 7 * 0.6e-6 + 16 * 5.0e-6), 1e-12);
}

TEST(Collectives, NvlsAllReduceIsTheCheaperInsideOneDomain) {
  // NVLS moves (n+1)/n·S each way at nvls_Bps; the ring 2(n−1)/n·S at intra_Bps.
  LinkParams link;
  link.intra_Bps = 369e9, link.intra_alpha_s = 3.4e-6, link.nvls_Bps = 300e9;
  const double S = 1 << 30;
  // n = 8: NVLS 9/8·S/300 GB/s = S/266.7 GB/s beats the ring's 14/8·S/369 = S/210.9.
  const double nvls8 = 9.0 / 8.0 * S / 300e9 + 2 * 3.4e-6;
  EXPECT_NEAR(collectives::all_reduce::nvls_time_s(S, 8, link), nvls8, 1e-12);
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, GroupSpan{8, 8, 1}, link), nvls8, 1e-12);
  // n = 2: NVLS 3/2·S/300 = S/200 loses to the ring's S/369.
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, GroupSpan{2, 2, 1}, link), S / 369e9 + 2 * 3.4e-6, 1e-12);
  // No NVLS on the link, or a group across domains: the ring.
  LinkParams ring_only = link;
  ring_only.nvls_Bps = 0;
  EXPECT_NEAR(collectives::time_s(CollKind::kAllReduce, S, GroupSpan{8, 8, 1}, ring_only), 14.0 / 8 * S / 369e9 + 14 * 3.4e-6,
              1e-12);
  link.inter_Bps = 46e9, link.inter_alpha_s = 14e-6;
  ring_only.inter_Bps = 46e9, ring_only.inter_alpha_s = 14e-6;
  EXPECT_EQ(collectives::time_s(CollKind::kAllReduce, S, GroupSpan{16, 8, 2}, link),
            collectives::time_s(CollKind::kAllReduce, S, GroupSpan{16, 8, 2}, ring_only));
  // Reduce-scatter and all-gather gain nothing from the switch: ring only.
  EXPECT_NEAR(collectives::time_s(CollKind::kReduceScatter, S, GroupSpan{8, 8, 1}, link), 7.0 / 8 * S / 369e9 + 7 * 3.4e-6, 1e-12);
}
