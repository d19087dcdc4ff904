// Cost model scale paths: the closed-form group span against the enumeration of the group's ranks
// it replaced (the slow, obviously-right reference), over many small layouts and domain sizes.
#include <gtest/gtest.h>

#include <set>

#include "parallel/layout.hpp"
#include "predict/cost_model.hpp"

using namespace capscale;

namespace {
// The pre-closed-form group_span: list rank 0's group and count the domains it touches.
collectives::GroupSpan enumerated_span(const parallel::Layout& layout, parallel::Group g, int64_t domain) {
  const auto members = layout.members(g, 0);
  std::set<int64_t> domains;
  for (int64_t r : members) domains.insert(r / domain);
  collectives::GroupSpan s;
  s.size = int64_t(members.size());
  s.domains = int64_t(domains.size());
  s.per_domain = std::max<int64_t>(1, s.size / s.domains);
  return s;
}
}  // namespace

TEST(CostModel, ClosedFormGroupSpanMatchesEnumeration) {
  int checked = 0;
  for (int64_t tp : {1, 2, 3, 4, 8})
    for (int64_t cp : {1, 2, 3})
      for (int64_t dp : {1, 2, 5, 8, 16})
        for (int64_t pp : {1, 2, 3, 4})
          for (int64_t domain : {1, 2, 3, 4, 6, 8, 16, 18, 32, 64, 72, 1000}) {
            const parallel::Layout layout(tp, cp, dp, pp);
            for (auto g : {parallel::Group::kTp, parallel::Group::kCp, parallel::Group::kDp, parallel::Group::kPp,
                           parallel::Group::kDpCp, parallel::Group::kEmbedding}) {
              const auto want = enumerated_span(layout, g, domain);
              const auto got = collectives::group_span(layout, g, domain);
              ASSERT_EQ(got.size, want.size) << parallel::to_string(g) << " tp" << tp << " cp" << cp << " dp" << dp << " pp" << pp << " D" << domain;
              ASSERT_EQ(got.domains, want.domains) << parallel::to_string(g) << " tp" << tp << " cp" << cp << " dp" << dp << " pp" << pp << " D" << domain;
              ASSERT_EQ(got.per_domain, want.per_domain) << parallel::to_string(g) << " tp" << tp << " cp" << cp << " dp" << dp << " pp" << pp << " D" << domain;
              ++checked;
            }
          }
  EXPECT_GT(checked, 5000);
}

TEST(CostModel, GroupSpanOfABillionChipsIsImmediate) {
  // dp = 1.25·10^8: the enumeration would allocate a gigabyte; the closed form answers at once.
  const parallel::Layout layout(8, 1, 125'000'000, 1);
  const auto dp = collectives::group_span(layout, parallel::Group::kDp, 72);
  EXPECT_EQ(dp.size, 125'000'000);
  EXPECT_EQ(dp.domains, (125'000'000 - 1) * 8 / 72 + 1);
  const auto tp = collectives::group_span(layout, parallel::Group::kTp, 72);
  EXPECT_EQ(tp.domains, 1);
}
