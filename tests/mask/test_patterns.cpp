// SPDX-License-Identifier: Apache-2.0
#include <set>

#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

namespace {

template <int M, int N>
void check_library(int expected) {
  const auto& all = TransposablePatterns<M, N>::all();
  ASSERT_EQ((TransposablePatterns<M, N>::size()), expected);
  ASSERT_EQ(int(all.size()), expected);
  // distinct (strictly ascending) and every pattern legal
  for (std::size_t p = 1; p < all.size(); ++p) ASSERT_LT(all[p - 1], all[p]);
  for (std::uint64_t bits : all) {
    ASSERT_EQ(bits >> (M * M), 0u);
    for (int r = 0; r < M; ++r) {
      int rc = 0, cc = 0;
      for (int c = 0; c < M; ++c) {
        rc += int((bits >> (r * M + c)) & 1u);
        cc += int((bits >> (c * M + r)) & 1u);
      }
      ASSERT_EQ(rc, N);
      ASSERT_EQ(cc, N);
    }
  }
}

// Brute-force count over all 2^(M*M) tiles for small M.
int brute_count(int m, int n) {
  int count = 0;
  for (std::uint32_t bits = 0; bits < (1u << (m * m)); ++bits) {
    bool ok = true;
    for (int r = 0; r < m && ok; ++r) {
      int rc = 0, cc = 0;
      for (int c = 0; c < m; ++c) {
        rc += int((bits >> (r * m + c)) & 1u);
        cc += int((bits >> (c * m + r)) & 1u);
      }
      ok = rc == n && cc == n;
    }
    count += ok;
  }
  return count;
}

}  // namespace

TEST(TransposablePatterns, CountsLegalDistinct) {
  check_library<4, 1>(24);
  check_library<4, 2>(90);
  check_library<4, 3>(24);
  check_library<4, 4>(1);
  check_library<3, 1>(6);
  check_library<5, 2>(2040);
  check_library<6, 3>(297200);
}

TEST(TransposablePatterns, MatchBruteForceEnumeration) {
  // Independent count over all 65536 4x4 tiles and all 512 3x3 tiles.
  EXPECT_EQ(brute_count(4, 1), (TransposablePatterns<4, 1>::size()));
  EXPECT_EQ(brute_count(4, 2), (TransposablePatterns<4, 2>::size()));
  EXPECT_EQ(brute_count(4, 3), (TransposablePatterns<4, 3>::size()));
  EXPECT_EQ(brute_count(3, 2), (TransposablePatterns<3, 2>::size()));
  // <4,3> are the complements of the <4,1> permutation matrices
  std::set<std::uint64_t> comp;
  for (std::uint64_t b : TransposablePatterns<4, 1>::all()) comp.insert(~b & 0xFFFFu);
  const auto& l43 = TransposablePatterns<4, 3>::all();
  EXPECT_EQ(comp, std::set<std::uint64_t>(l43.begin(), l43.end()));
}

TEST(TransposablePatterns, TileAndRuntimeLibrary) {
  const Mask t = TransposablePatterns<4, 2>::tile(7);
  EXPECT_TRUE(is_transposable_legal(t, {2, 4}));
  EXPECT_THROW((TransposablePatterns<4, 2>::tile(90)), Error);
  EXPECT_EQ(&detail::transposable_library({2, 4}), (&TransposablePatterns<4, 2>::all()));
  EXPECT_THROW(detail::transposable_library({2, 8}), Error);
}

TEST(TransposableSampler, CountsMatchTablesAndKnownValues) {
  // Column-sum DP counts vs the tables and the values quoted in STYLE.md (OEIS A001499/A058527).
  auto count = [](int m, int n) {
    detail::TransposableSampler s(m, n);
    return s.count(std::vector<int>(static_cast<std::size_t>(m), n), m);
  };
  EXPECT_EQ(count(4, 2), 90.0);
  EXPECT_EQ(count(4, 1), 24.0);
  EXPECT_EQ(count(5, 2), 2040.0);
  EXPECT_EQ(count(6, 3), 297200.0);
  EXPECT_EQ(count(6, 2), 67950.0);
  EXPECT_EQ(count(8, 2), 187530840.0);
  EXPECT_EQ(count(8, 4), 116963796250.0);
}

TEST(TransposablePatterns, CompileTimeFourByFourTablesMatch) {
  static_assert(kTransposable4<2>[0] == 0x33CC,
                "first 2:4 tile (cols 0..3): rows 0011, 0011, 1100, 1100");
  const auto check = [](const auto& table, const std::vector<std::uint64_t>& lib) {
    ASSERT_EQ(table.size(), lib.size());
    for (std::size_t k = 0; k < lib.size(); ++k) EXPECT_EQ(std::uint64_t(table[k]), lib[k]);
  };
  check(kTransposable4<1>, TransposablePatterns<4, 1>::all());
  check(kTransposable4<2>, TransposablePatterns<4, 2>::all());
  check(kTransposable4<3>, TransposablePatterns<4, 3>::all());
}
