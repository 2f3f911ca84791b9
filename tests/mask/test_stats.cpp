// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

TEST(MaskStats, HandComputed) {
  Mask a(2, 4), b(2, 4);
  a << 1, 1, 0, 0, 0, 1, 0, 1;
  b << 1, 0, 1, 0, 0, 1, 0, 1;
  const MaskStats st = mask_stats(a, b);
  EXPECT_DOUBLE_EQ(st.density, 0.5);
  EXPECT_EQ(st.changed, 2);
  EXPECT_DOUBLE_EQ(st.flip_rate, 2.0 / 8.0);
  const MaskStats same = mask_stats(a, a);
  EXPECT_EQ(same.changed, 0);
  EXPECT_DOUBLE_EQ(same.flip_rate, 0.0);
  const MaskStats empty = mask_stats(Mask(0, 4), Mask(0, 4));
  EXPECT_EQ(empty.changed, 0);
  EXPECT_DOUBLE_EQ(empty.density, 0.0);
}

TEST(MaskStats, BadInputsThrow) {
  EXPECT_THROW((void)mask_stats(Mask::Zero(2, 4), Mask::Zero(2, 8)), Error);
  Mask bad = Mask::Zero(2, 4);
  bad(1, 1) = 3;
  EXPECT_THROW((void)mask_stats(bad, Mask::Zero(2, 4)), Error);
}

TEST(PatternHistogram, RowWiseAndTransposable) {
  Mask m(2, 8);
  m << 1, 1, 0, 0, 1, 1, 0, 0,  //
      0, 0, 1, 1, 1, 1, 1, 0;
  const PatternHistogram h = pattern_histogram(m, {2, 4}, Layout::RowWise);
  ASSERT_EQ(h.total, 4);
  EXPECT_EQ(h.illegal, 1);  // 1110
  ASSERT_EQ(h.patterns.size(), 3u);
  EXPECT_EQ(h.patterns[0], 0x3u);  // 1100 (cols 0, 1)
  EXPECT_EQ(h.counts[0], 2);
  EXPECT_EQ(h.patterns[1], 0x7u);
  EXPECT_EQ(h.patterns[2], 0xCu);

  const Mask t = TransposablePatterns<4, 2>::tile(5);
  Mask two(4, 8);
  two << t, t;
  const PatternHistogram ht = pattern_histogram(two, {2, 4}, Layout::Transposable);
  ASSERT_EQ(ht.patterns.size(), 1u);
  EXPECT_EQ(ht.patterns[0], (TransposablePatterns<4, 2>::all()[5]));
  EXPECT_EQ(ht.counts[0], 2);
  EXPECT_EQ(ht.illegal, 0);
  EXPECT_THROW((void)pattern_histogram(Mask::Zero(2, 6), {2, 4}, Layout::RowWise), Error);
  EXPECT_THROW((void)pattern_histogram(Mask::Zero(6, 8), {2, 4}, Layout::Transposable), Error);
}

TEST(ApplyMask, ZeroesInactiveOnlyAndChecksShape) {
  Matrix<float> w = Matrix<float>::Constant(4, 8, 2.5f);
  const Mask m = random_rowwise(4, 8, NM{1, 4}, Philox(2));
  apply_mask(w, m);
  for (Index i = 0; i < 4; ++i)
    for (Index j = 0; j < 8; ++j) EXPECT_EQ(w(i, j), m(i, j) ? 2.5f : 0.0f);
  Matrix<double> big = Matrix<double>::Ones(6, 8);
  apply_mask(big.block(1, 0, 4, 8), m);
  for (Index j = 0; j < 8; ++j) {
    EXPECT_EQ(big(0, j), 1.0);
    EXPECT_EQ(big(5, j), 1.0);
    for (Index i = 0; i < 4; ++i) EXPECT_EQ(big(1 + i, j), double(m(i, j)));
  }
  EXPECT_THROW(apply_mask(w, Mask(Mask::Ones(4, 4))), Error);
}

TEST(Project, DispatchesOnLayout) {
  const Matrix<float> s = test::random_scores<float>(8, 16, 4);
  EXPECT_EQ(project(s, {2, 4}, Layout::RowWise), project_rowwise(s, {2, 4}));
  EXPECT_EQ(project(s, {2, 4}, Layout::Transposable), project_transposable(s, {2, 4}));
  EXPECT_TRUE(is_legal(random_mask(8, 16, {2, 4}, Layout::Transposable, Philox(1)), {2, 4},
                       Layout::Transposable));
  EXPECT_TRUE(
      is_legal(random_mask(8, 16, {1, 4}, Layout::RowWise, Philox(1)), {1, 4}, Layout::RowWise));
}
