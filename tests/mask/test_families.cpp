// SPDX-License-Identifier: Apache-2.0
// One conformance suite for every pattern family (STYLE.md section 3.5, manif's MANIF_TEST idea):
// adding a family is one line in the type list at the bottom.
#include <limits>
#include <map>

#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

namespace {

/// Every legal tile of the family as a bit pattern (bit r * gc + c), by direct enumeration of
/// all 2^(gr*gc) tiles when that is small, else nothing (the suite then uses branch and bound).
template <class F>
std::vector<std::uint64_t> all_legal_tiles() {
  constexpr int bits = F::group_rows * F::group_cols;
  std::vector<std::uint64_t> out;
  if (bits > 20) return out;
  Mask tile(F::group_rows, F::group_cols);
  const std::uint64_t end = std::uint64_t(1) << (bits > 20 ? 0 : bits);
  for (std::uint64_t p = 0; p < end; ++p) {
    for (int k = 0; k < bits; ++k) tile.data()[k] = std::uint8_t((p >> k) & 1u);
    if (F::legal(tile)) out.push_back(p);
  }
  return out;
}

template <class F>
Mask tile_of(const Mask& m, Index ti, Index tj) {
  return m.block(ti * F::group_rows, tj * F::group_cols, F::group_rows, F::group_cols);
}

template <class F>
double tile_score(const Matrix<double>& s, Index ti, Index tj, std::uint64_t bits) {
  double acc = 0;
  for (int r = 0; r < F::group_rows; ++r)
    for (int c = 0; c < F::group_cols; ++c)
      if ((bits >> (r * F::group_cols + c)) & 1u)
        acc += s(ti * F::group_rows + r, tj * F::group_cols + c);
  return acc;
}

}  // namespace

template <class F>
class PatternFamily : public ::testing::Test {
 protected:
  static constexpr int gr = F::group_rows, gc = F::group_cols;
  static constexpr int kTilesR = F::group_rows == 1 ? 12 : 3, kTilesC = 4;
  static Index rows() { return kTilesR * gr; }
  static Index cols() { return kTilesC * gc * (gr == 1 ? 2 : 1); }
};

TYPED_TEST_SUITE_P(PatternFamily);

TYPED_TEST_P(PatternFamily, IsAPatternFamily) {
  static_check_pattern_family<TypeParam>();
  EXPECT_TRUE(detail::is_pattern_family<TypeParam>::value);
  EXPECT_FALSE(detail::is_pattern_family<int>::value);
}

TYPED_TEST_P(PatternFamily, CountMatchesEnumeration) {
  const auto tiles = all_legal_tiles<TypeParam>();
  if (!tiles.empty()) {
    EXPECT_EQ(TypeParam::count(), (long long)tiles.size());
  }
  EXPECT_GT(TypeParam::count(), 0);
}

TYPED_TEST_P(PatternFamily, ProjectionIsLegalAndOptimal) {
  using F = TypeParam;
  const Matrix<double> s = test::random_scores<double>(this->rows(), this->cols(), 17);
  const Mask m = F::project(s);
  ASSERT_EQ(m.rows(), s.rows());
  const auto tiles = all_legal_tiles<F>();
  for (Index ti = 0; ti < s.rows() / F::group_rows; ++ti)
    for (Index tj = 0; tj < s.cols() / F::group_cols; ++tj) {
      const Mask t = tile_of<F>(m, ti, tj);
      ASSERT_TRUE(F::legal(t));
      std::uint64_t bits = 0;
      for (int k = 0; k < F::group_rows * F::group_cols; ++k)
        bits |= std::uint64_t(t.data()[k]) << k;
      const double mine = tile_score<F>(s, ti, tj, bits);
      double best = -1e300;
      if (!tiles.empty()) {
        for (std::uint64_t p : tiles) best = std::max(best, tile_score<F>(s, ti, tj, p));
      } else {
        std::vector<double> w(std::size_t(F::group_rows * F::group_cols));
        for (int r = 0; r < F::group_rows; ++r)
          for (int c = 0; c < F::group_cols; ++c)
            w[std::size_t(r * F::group_cols + c)] =
                s(ti * F::group_rows + r, tj * F::group_cols + c);
        best = test::exhaustive_best(w, F::group_cols, F::nm().n);
      }
      EXPECT_NEAR(mine, best, 1e-9);
    }
}

TYPED_TEST_P(PatternFamily, LegalIndicatorIsFixedPoint) {
  using F = TypeParam;
  const Mask m = F::random(this->rows(), this->cols(), Philox(3));
  EXPECT_EQ(F::project(m.template cast<double>()), m);
  EXPECT_EQ(F::project(m.template cast<float>()), m);
}

TYPED_TEST_P(PatternFamily, TiesDeterministic) {
  using F = TypeParam;
  const Matrix<float> z = Matrix<float>::Zero(this->rows(), this->cols());
  const Mask a = F::project(z);
  EXPECT_EQ(F::project(z), a);
  for (Index ti = 0; ti < z.rows() / F::group_rows; ++ti)
    for (Index tj = 0; tj < z.cols() / F::group_cols; ++tj) {
      EXPECT_TRUE(F::legal(tile_of<F>(a, ti, tj)));
      EXPECT_EQ(tile_of<F>(a, ti, tj), tile_of<F>(a, 0, 0));
    }
}

TYPED_TEST_P(PatternFamily, NaNThrows) {
  using F = TypeParam;
  Matrix<double> s = test::random_scores<double>(this->rows(), this->cols(), 2);
  s(s.rows() - 1, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW((void)F::project(s), Error);
}

TYPED_TEST_P(PatternFamily, FloatAndDoubleAgree) {
  using F = TypeParam;
  const Matrix<double> s = test::random_scores<double>(this->rows(), this->cols(), 4);
  // float rounding could only flip near-ties; random continuous scores have none at 1e-7
  EXPECT_EQ(F::project(s), F::project(Matrix<float>(s.cast<float>())));
}

TYPED_TEST_P(PatternFamily, RandomIsLegalAndUniform) {
  using F = TypeParam;
  const long long count = F::count();
  if (count > 100) GTEST_SKIP() << "chi-square only for small libraries";
  const Index per = 200 * count;  // tiles drawn
  const Index tc = F::group_rows == 1 ? 64 : 16;
  const Index tr = (per + tc - 1) / tc;
  const Mask m = F::random(tr * F::group_rows, tc * F::group_cols, Philox(11));
  std::map<std::uint64_t, double> hist;
  for (Index ti = 0; ti < tr; ++ti)
    for (Index tj = 0; tj < tc; ++tj) {
      const Mask t = tile_of<F>(m, ti, tj);
      ASSERT_TRUE(F::legal(t));
      std::uint64_t bits = 0;
      for (int k = 0; k < F::group_rows * F::group_cols; ++k)
        bits |= std::uint64_t(t.data()[k]) << k;
      hist[bits] += 1;
    }
  EXPECT_EQ((long long)hist.size(), count);
  const double e = double(tr * tc) / double(count);
  double chi2 = 0;
  for (const auto& kv : hist) chi2 += (kv.second - e) * (kv.second - e) / e;
  // p = 0.001 critical value, Wilson-Hilferty approximation for dof = count - 1
  const double k = double(count - 1);
  const double z = 3.09, c = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  EXPECT_LT(chi2, k * c * c * c + 1e-9) << "dof " << k;
}

REGISTER_TYPED_TEST_SUITE_P(PatternFamily, IsAPatternFamily, CountMatchesEnumeration,
                            ProjectionIsLegalAndOptimal, LegalIndicatorIsFixedPoint,
                            TiesDeterministic, NaNThrows, FloatAndDoubleAgree,
                            RandomIsLegalAndUniform);

using Families = ::testing::Types<
    RowWiseFamily<4, 1>, RowWiseFamily<4, 2>, RowWiseFamily<4, 3>, RowWiseFamily<8, 2>,
    RowWiseFamily<8, 4>, RowWiseFamily<6, 3>, TransposableTableFamily<4, 1>,
    TransposableTableFamily<4, 2>, TransposableTableFamily<4, 3>, TransposableTableFamily<3, 1>,
    TransposableTableFamily<5, 2>, TransposableExactFamily<4, 2>, TransposableExactFamily<6, 3>,
    TransposableExactFamily<8, 4>, TransposableExactFamily<8, 2>>;
INSTANTIATE_TYPED_TEST_SUITE_P(All, PatternFamily, Families,
                               ::testing::internal::DefaultNameGenerator);

TEST(PatternFamilyCounts, KnownValues) {
  EXPECT_EQ((TransposableExactFamily<8, 4>::count()), 116963796250LL);
  EXPECT_EQ((TransposableExactFamily<8, 2>::count()), 187530840LL);
  EXPECT_EQ((TransposableTableFamily<6, 3>::count()), 297200LL);
  EXPECT_EQ((RowWiseFamily<8, 4>::count()), 70LL);
  EXPECT_EQ((TransposableExactFamily<16, 8>::count()), -1LL);
}
