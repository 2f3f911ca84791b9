// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

template <class S>
class RowwiseTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(RowwiseTyped, Scalars, ::testing::internal::DefaultNameGenerator);

TYPED_TEST(RowwiseTyped, EqualsSortReferenceAllNM) {
  using S = TypeParam;
  const int ms[] = {1, 2, 3, 4, 5, 7, 8, 16, 32};
  unsigned seed = 1;
  for (int m : ms)
    for (int n = 1; n <= m; n += (m > 8 ? 5 : 1))
      for (bool ties : {false, true}) {
        // 37 rows x (m * 9) cols: exercises SIMD bodies and scalar tails
        const Matrix<S> s = test::random_scores<S>(37, Index(m) * 9, seed++, ties);
        const Mask got = project_rowwise(s, NM{n, m});
        ASSERT_EQ(got, test::rowwise_reference(s, NM{n, m})) << "n=" << n << " m=" << m;
        ASSERT_TRUE(is_rowwise_legal(got, NM{n, m}));
      }
}

TYPED_TEST(RowwiseTyped, SimdEqualsScalarReference) {
  using S = TypeParam;
  for (NM nm : {NM{1, 4}, NM{2, 4}, NM{3, 4}, NM{2, 8}, NM{4, 8}, NM{1, 8}, NM{7, 8}})
    for (bool ties : {false, true}) {
      const Matrix<S> s = test::random_scores<S>(13, 8 * 40, 99u + unsigned(nm.n * 8 + nm.m), ties);
      Mask ref(s.rows(), s.cols());
      for (Index i = 0; i < s.rows(); ++i)
        detail::scalar::rowwise_run(s.data() + i * s.cols(), s.cols(), nm.m, nm.n,
                                    ref.data() + i * s.cols());
      EXPECT_EQ(project_rowwise(s, nm), ref) << nm;
    }
}

TYPED_TEST(RowwiseTyped, TiesGoToLowerIndexAndInfinities) {
  using S = TypeParam;
  const S inf = std::numeric_limits<S>::infinity();
  Matrix<S> s(3, 4);
  s << 1, 1, 1, 1,          //
      -inf, 5, -inf, -inf,  //
      inf, 0, inf, 2;
  Mask expect(3, 4);
  expect << 1, 1, 0, 0,  //
      1, 1, 0, 0,        //
      1, 0, 1, 0;
  EXPECT_EQ(project_rowwise(s, NM{2, 4}), expect);
  Matrix<S> z = Matrix<S>::Zero(2, 16);
  Mask z_expect = Mask::Zero(2, 16);
  for (Index i = 0; i < 2; ++i)
    for (Index g = 0; g < 4; ++g) z_expect(i, 4 * g) = 1;
  EXPECT_EQ(project_rowwise(z, NM{1, 4}), z_expect);
}

TYPED_TEST(RowwiseTyped, NaNThrowsNamingEntry) {
  using S = TypeParam;
  Matrix<S> s = test::random_scores<S>(8, 64, 3);
  s(5, 37) = std::numeric_limits<S>::quiet_NaN();
  try {
    (void)project_rowwise(s, NM{2, 4});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("scores(5, 37)"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)project_rowwise(s, NM{3, 8}), Error);
  EXPECT_THROW((void)project_rowwise(s, NM{2, 16}), Error);
}

TYPED_TEST(RowwiseTyped, BlocksAndColumnMajorInputs) {
  using S = TypeParam;
  const Matrix<S> big = test::random_scores<S>(20, 48, 11);
  const Matrix<S> sub = big.block(3, 8, 10, 32);
  EXPECT_EQ(project_rowwise(big.block(3, 8, 10, 32), NM{2, 4}), project_rowwise(sub, NM{2, 4}));
  const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic> cm = sub;
  EXPECT_EQ(project_rowwise(cm, NM{1, 4}), test::rowwise_reference(sub, NM{1, 4}));
  EXPECT_EQ(project_rowwise(sub.cwiseAbs(), NM{2, 8}),
            test::rowwise_reference(Matrix<S>(sub.cwiseAbs()), NM{2, 8}));
}

TEST(Rowwise, LegalMaskIndicatorIsFixedPoint) {
  for (NM nm : {NM{1, 4}, NM{2, 4}, NM{3, 8}}) {
    const Mask m = random_rowwise(16, 64, nm, Philox(5));
    EXPECT_EQ(project_rowwise(m.cast<float>(), nm), m);
  }
}

TEST(Rowwise, BadInputsThrow) {
  const Matrix<float> s = Matrix<float>::Ones(4, 10);
  EXPECT_THROW((void)project_rowwise(s, NM{2, 4}), Error);                            // 10 % 4
  EXPECT_THROW((void)project_rowwise(s, NM{5, 4}), Error);                            // n > m
  EXPECT_THROW((void)project_rowwise(s, NM{0, 4}), Error);                            // n < 1
  EXPECT_THROW((void)project_rowwise(s, NM{-1, 2}), Error);                           // n < 1
  EXPECT_THROW((void)project_rowwise(Matrix<float>::Ones(2, 64), NM{2, 64}), Error);  // m > 32
  EXPECT_THROW((void)project_rowwise(s, NM{1, 0}), Error);
  EXPECT_THROW((void)is_rowwise_legal(Mask::Zero(2, 6), NM{2, 4}), Error);
  EXPECT_THROW((void)random_rowwise(-1, 8, NM{2, 4}, Philox(0)), Error);
  EXPECT_THROW((void)random_rowwise(2, 7, NM{2, 4}, Philox(0)), Error);
}

TEST(Rowwise, EmptyInputs) {
  EXPECT_EQ(project_rowwise(Matrix<float>(0, 8), NM{2, 4}).rows(), 0);
  EXPECT_EQ(project_rowwise(Matrix<double>(3, 0), NM{2, 4}).rows(), 3);
  EXPECT_TRUE(is_rowwise_legal(Mask(0, 0), NM{2, 4}));
  EXPECT_EQ(random_rowwise(0, 0, NM{2, 4}, Philox(1)).size(), 0);
}

TEST(Rowwise, IsLegal) {
  Mask m(1, 8);
  m << 1, 1, 0, 0, 0, 1, 0, 1;
  EXPECT_TRUE(is_rowwise_legal(m, NM{2, 4}));
  m(0, 0) = 0;
  EXPECT_FALSE(is_rowwise_legal(m, NM{2, 4}));
  m(0, 0) = 2;
  EXPECT_FALSE(is_rowwise_legal(m, NM{2, 4}));
}

TEST(Rowwise, RandomIsLegalAndUniformChiSquare) {
  // 2:4 has 6 group patterns; 60000 groups, chi-square with 5 dof: 20.5 is p = 0.001.
  const Mask m = random_rowwise(600, 400, NM{2, 4}, Philox(2024));
  ASSERT_TRUE(is_rowwise_legal(m, NM{2, 4}));
  const PatternHistogram h = pattern_histogram(m, NM{2, 4}, Layout::RowWise);
  ASSERT_EQ(h.patterns.size(), 6u);
  EXPECT_EQ(h.illegal, 0);
  const double expect = double(h.total) / 6;
  double chi2 = 0;
  for (Index c : h.counts) chi2 += (double(c) - expect) * (double(c) - expect) / expect;
  EXPECT_LT(chi2, 20.5);
  // different seeds differ, same seed reproduces
  EXPECT_EQ(random_rowwise(600, 400, NM{2, 4}, Philox(2024)), m);
  EXPECT_NE(random_rowwise(600, 400, NM{2, 4}, Philox(2025)), m);
}

TEST(Rowwise, OneAndTwoThreadsBitIdentical) {
  const Matrix<float> s = test::random_scores<float>(512, 512, 8, true);
  const Matrix<double> sd = test::random_scores<double>(300, 96, 9);
  set_thread_count(1);
  const Mask a1 = project_rowwise(s, NM{2, 4}), b1 = project_rowwise(s, NM{3, 8});
  const Mask c1 = project_rowwise(sd, NM{5, 12});
  const Mask r1 = random_rowwise(512, 512, NM{1, 4}, Philox(3));
  set_thread_count(2);
  EXPECT_EQ(project_rowwise(s, NM{2, 4}), a1);
  EXPECT_EQ(project_rowwise(s, NM{3, 8}), b1);
  EXPECT_EQ(project_rowwise(sd, NM{5, 12}), c1);
  EXPECT_EQ(random_rowwise(512, 512, NM{1, 4}, Philox(3)), r1);
}

TEST(Rowwise, MagnitudeMaskKeepsLargestAbsoluteValuesNotLargestSigned) {
  // Brute force: per group of 4, the 2 entries of largest |w| (distinct magnitudes). The signed
  // projection of the raw weights keeps the most positive ones instead, which differs here.
  Matrix<float> w(2, 8);
  w << -9, 1, 2, -8, 5, -6, 7, -0.5f,  //
      3, -4, 0.25f, 1, -2, -3, 4, 5;
  Mask expect = Mask::Zero(2, 8);
  for (Index r = 0; r < 2; ++r)
    for (Index g = 0; g < 8; g += 4) {
      std::vector<Index> k{g, g + 1, g + 2, g + 3};
      std::sort(k.begin(), k.end(),
                [&](Index a, Index b) { return std::abs(w(r, a)) > std::abs(w(r, b)); });
      expect(r, k[0]) = expect(r, k[1]) = 1;
    }
  EXPECT_EQ(magnitude_mask(w, NM{2, 4}), expect);
  EXPECT_EQ(magnitude_mask(w, NM{2, 4}, Layout::RowWise), project_rowwise(w.cwiseAbs(), NM{2, 4}));
  EXPECT_NE(project_rowwise(w, NM{2, 4}), expect);  // the signed convention
  Matrix<float> t(4, 4);
  t << 1, -9, 2, 3, -8, 1, 1, 2, 0.5f, 1, -7, 2, 1, 2, 3, -6;
  EXPECT_EQ(magnitude_mask(t, NM{1, 4}, Layout::Transposable),
            project_transposable(t.cwiseAbs(), NM{1, 4}));
}

TEST(Rowwise, CheckRowwiseLegalNamesTheFirstBadGroup) {
  Mask m = random_rowwise(3, 8, NM{1, 4}, Philox(2));
  EXPECT_NO_THROW(check_rowwise_legal(m, NM{1, 4}));
  m(2, 5) = m(2, 5) ? 0 : 1;  // row 2, group 1 now has 0 or 2 ones
  try {
    check_rowwise_legal(m, NM{1, 4}, "weights");
    ADD_FAILURE() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weights is not a legal NM{1,4} mask: row 2 group 1"),
              std::string::npos)
        << e.what();
  }
  m(2, 5) = 2;
  EXPECT_THROW(check_rowwise_legal(m, NM{1, 4}), Error);
  EXPECT_THROW(check_rowwise_legal(m, NM{1, 3}), Error);  // 8 % 3 != 0
}
