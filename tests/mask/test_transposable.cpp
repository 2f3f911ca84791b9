// SPDX-License-Identifier: Apache-2.0
#include <cmath>
#include <atomic>
#include <limits>
#include <map>

#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

namespace {

// Brute force over the pattern library: max sum and whether the maximiser is unique by `margin`.
template <class S>
void brute_best(const Matrix<S>& s, Index bi, Index bj, int m,
                const std::vector<std::uint64_t>& lib, double& best, std::uint64_t& arg,
                bool& unique, double margin) {
  best = -1e300;
  double second = -1e300;
  for (std::uint64_t p : lib) {
    const double v = test::tile_sum(s, bi, bj, m, p);
    if (v > best) {
      second = best;
      best = v;
      arg = p;
    } else if (v > second) {
      second = v;
    }
  }
  unique = best - second > margin;
}

template <class S>
void check_against_library(NM nm, const std::vector<std::uint64_t>& lib, Index tiles_r,
                           Index tiles_c, unsigned seed, bool ties) {
  const int m = nm.m;
  const Matrix<S> s = test::random_scores<S>(tiles_r * m, tiles_c * m, seed, ties);
  const Mask got = project_transposable(s, nm);
  ASSERT_TRUE(is_transposable_legal(got, nm)) << nm;
  int unique_checked = 0;
  for (Index bi = 0; bi < tiles_r; ++bi)
    for (Index bj = 0; bj < tiles_c; ++bj) {
      double best;
      std::uint64_t arg = 0;
      bool unique;
      brute_best(s, bi, bj, m, lib, best, arg, unique, 1e-4);
      const double mine = test::tile_sum(s, bi, bj, m, got);
      ASSERT_NEAR(mine, best, 1e-5 * (1 + std::abs(best))) << nm << " tile " << bi << "," << bj;
      if (unique) {
        ++unique_checked;
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c)
            ASSERT_EQ(got(bi * m + r, bj * m + c), int((arg >> (r * m + c)) & 1u));
      }
    }
  if (!ties) {
    EXPECT_GT(unique_checked, 0);
  }
}

}  // namespace

template <class S>
class TransposableTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(TransposableTyped, Scalars, ::testing::internal::DefaultNameGenerator);

TYPED_TEST(TransposableTyped, FourByFourEqualsBruteForce) {
  using S = TypeParam;
  // 6 x 37 tiles: 37 tiles per band covers two 16-tile SIMD blocks and a scalar tail.
  for (bool ties : {false, true}) {
    check_against_library<S>({1, 4}, TransposablePatterns<4, 1>::all(), 6, 37, 1, ties);
    check_against_library<S>({2, 4}, TransposablePatterns<4, 2>::all(), 6, 37, 2, ties);
    check_against_library<S>({3, 4}, TransposablePatterns<4, 3>::all(), 6, 37, 3, ties);
  }
}

TYPED_TEST(TransposableTyped, SmallMEqualsBruteForce) {
  using S = TypeParam;
  check_against_library<S>({1, 2}, TransposablePatterns<2, 1>::all(), 5, 5, 4, false);
  check_against_library<S>({1, 3}, TransposablePatterns<3, 1>::all(), 5, 5, 5, false);
  check_against_library<S>({2, 3}, TransposablePatterns<3, 2>::all(), 5, 5, 6, true);
  check_against_library<S>({2, 5}, TransposablePatterns<5, 2>::all(), 3, 3, 7, false);
  check_against_library<S>({3, 5}, TransposablePatterns<5, 3>::all(), 2, 3, 8, false);
}

TYPED_TEST(TransposableTyped, LargeMEqualsExhaustiveSearch) {
  using S = TypeParam;
  for (NM nm : {NM{3, 6}, NM{4, 8}, NM{2, 8}, NM{5, 8}, NM{2, 6}, NM{3, 7}}) {
    const int m = nm.m;
    const Matrix<S> s = test::random_scores<S>(3 * m, 2 * m, 40u + unsigned(m * 8 + nm.n));
    const Mask got = project_transposable(s, nm);
    ASSERT_TRUE(is_transposable_legal(got, nm)) << nm;
    for (Index bi = 0; bi < 3; ++bi)
      for (Index bj = 0; bj < 2; ++bj) {
        std::vector<double> w(static_cast<std::size_t>(m * m));
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c)
            w[static_cast<std::size_t>(r * m + c)] = double(s(bi * m + r, bj * m + c));
        const double best = test::exhaustive_best(w, m, nm.n);
        EXPECT_NEAR(test::tile_sum(s, bi, bj, m, got), best, 1e-9 * (1 + std::abs(best))) << nm;
      }
  }
}

TEST(Transposable, ExactSolverOnFourByFourEqualsLibrary) {
  // The b-matching solver (used for m != 4) checked on the m = 4 library too.
  const Matrix<double> s = test::random_scores<double>(40, 40, 77);
  for (int n = 1; n <= 3; ++n) {
    const auto& lib = detail::transposable_library({n, 4});
    Mask out(40, 40);
    std::atomic<bool> bad{false};
    detail::project_transposable_exact<double>(s, {n, 4}, out, bad);
    ASSERT_FALSE(bad.load());
    ASSERT_TRUE(is_transposable_legal(out, {n, 4}));
    for (Index bi = 0; bi < 10; ++bi)
      for (Index bj = 0; bj < 10; ++bj) {
        double best;
        std::uint64_t arg;
        bool unique;
        brute_best(s, bi, bj, 4, lib, best, arg, unique, 0);
        EXPECT_NEAR(test::tile_sum(s, bi, bj, 4, out), best, 1e-12);
      }
  }
}

TEST(Transposable, SimdEqualsScalarReferenceBitForBit) {
  for (bool ties : {false, true}) {
    const Matrix<float> s = test::random_scores<float>(16, 4 * 53, 12, ties);
    for (int n = 1; n <= 3; ++n) {
      Mask ref(s.rows(), s.cols());
      for (Index b = 0; b < 4; ++b) {
        const float* p = s.data() + 4 * b * s.cols();
        std::uint8_t* o = ref.data() + 4 * b * s.cols();
        if (n == 1) detail::scalar::transposable4_band<1>(p, s.cols(), 0, 53, o, s.cols());
        if (n == 2) detail::scalar::transposable4_band<2>(p, s.cols(), 0, 53, o, s.cols());
        if (n == 3) detail::scalar::transposable4_band<3>(p, s.cols(), 0, 53, o, s.cols());
      }
      EXPECT_EQ(project_transposable(s, NM{n, 4}), ref) << n;
    }
  }
}

TEST(Transposable, LegalMaskIndicatorIsFixedPoint) {
  for (NM nm : {NM{1, 4}, NM{2, 4}, NM{3, 4}, NM{4, 8}, NM{3, 6}}) {
    const Mask m = random_transposable(24, 48, nm, Philox(9));
    ASSERT_TRUE(is_transposable_legal(m, nm));
    EXPECT_EQ(project_transposable(m.cast<float>(), nm), m) << nm;
    EXPECT_EQ(project(m.cast<double>(), nm, Layout::Transposable), m) << nm;
  }
}

TEST(Transposable, TiesAreDeterministicAndLegal) {
  const Matrix<float> z = Matrix<float>::Zero(8, 64);
  for (NM nm : {NM{1, 4}, NM{2, 4}, NM{3, 4}, NM{4, 8}}) {
    const Mask a = project_transposable(z, nm);
    EXPECT_TRUE(is_transposable_legal(a, nm));
    EXPECT_EQ(project_transposable(z, nm), a);
    // every tile resolves the all-equal tie the same way
    for (Index bj = 1; bj < 64 / nm.m; ++bj)
      EXPECT_EQ(a.block(0, bj * nm.m, nm.m, nm.m), a.block(0, 0, nm.m, nm.m));
  }
  EXPECT_EQ(project_transposable(z, NM{4, 4}), Mask::Ones(8, 64));
}

TEST(Transposable, NonFiniteThrows) {
  for (NM nm : {NM{2, 4}, NM{1, 4}, NM{4, 8}, NM{4, 4}})
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      Matrix<float> s = test::random_scores<float>(16, 128, 1);
      s(9, 100) = bad;
      try {
        (void)project_transposable(s, nm);
        FAIL() << "no throw for " << nm;
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("scores(9, 100)"), std::string::npos) << e.what();
      }
    }
}

TEST(Transposable, BadInputsThrow) {
  EXPECT_THROW((void)project_transposable(Matrix<float>::Ones(6, 8), NM{2, 4}), Error);  // rows
  EXPECT_THROW((void)project_transposable(Matrix<float>::Ones(8, 6), NM{2, 4}), Error);  // cols
  EXPECT_THROW((void)project_transposable(Matrix<float>::Ones(8, 8), NM{5, 4}), Error);
  EXPECT_THROW((void)project_transposable(Matrix<float>::Ones(8, 8), NM{0, 4}), Error);
  EXPECT_THROW((void)is_transposable_legal(Mask::Zero(6, 8), NM{2, 4}), Error);
  EXPECT_THROW((void)random_transposable(6, 8, NM{2, 4}, Philox(0)), Error);
  EXPECT_THROW((void)random_transposable(16, 16, NM{2, 16}, Philox(0)), Error);  // m > 12
  EXPECT_EQ(project_transposable(Matrix<float>(0, 0), NM{2, 4}).size(), 0);
  EXPECT_EQ(random_transposable(0, 8, NM{2, 4}, Philox(0)).size(), 0);
}

TEST(Transposable, IsLegal) {
  Mask m = TransposablePatterns<4, 2>::tile(0);
  EXPECT_TRUE(is_transposable_legal(m, {2, 4}));
  EXPECT_TRUE(is_rowwise_legal(m, {2, 4}));
  // row-wise legal but column sums broken
  Mask r(4, 4);
  r << 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0;
  EXPECT_TRUE(is_rowwise_legal(r, {2, 4}));
  EXPECT_FALSE(is_transposable_legal(r, {2, 4}));
  EXPECT_TRUE(is_legal(r, {2, 4}, Layout::RowWise));
  EXPECT_FALSE(is_legal(r, {2, 4}, Layout::Transposable));
}

TEST(Transposable, RandomUniformOverNinetyPatterns) {
  // 90 patterns, 28800 tiles: expected 320 per pattern; chi-square 89 dof, p = 0.001 at 134.6.
  const Mask m = random_transposable(480, 960, NM{2, 4}, Philox(31));
  ASSERT_TRUE(is_transposable_legal(m, {2, 4}));
  const PatternHistogram h = pattern_histogram(m, {2, 4}, Layout::Transposable);
  ASSERT_EQ(h.patterns.size(), 90u);
  EXPECT_EQ(h.illegal, 0);
  EXPECT_EQ(h.patterns, (TransposablePatterns<4, 2>::all()));
  const double e = double(h.total) / 90;
  double chi2 = 0;
  for (Index c : h.counts) chi2 += (double(c) - e) * (double(c) - e) / e;
  EXPECT_LT(chi2, 134.6);
}

TEST(Transposable, SamplerUniformOnFourByFour) {
  // The completion-count sampler used for m > 6, checked where the library is known.
  detail::TransposableSampler sampler(4, 2);
  const Philox rng(77);
  std::map<std::uint64_t, int> hist;
  const int trials = 18000;
  Mask t(4, 4);
  for (int k = 0; k < trials; ++k) {
    sampler.sample(
        rng, [&](int r) { return std::uint64_t(k) * 4 + std::uint64_t(r); }, t.data(), 4);
    ASSERT_TRUE(is_transposable_legal(t, {2, 4}));
    std::uint64_t bits = 0;
    for (int i = 0; i < 16; ++i) bits |= std::uint64_t(t.data()[i]) << i;
    ++hist[bits];
  }
  ASSERT_EQ(hist.size(), 90u);
  const double e = trials / 90.0;
  double chi2 = 0;
  for (const auto& kv : hist) chi2 += (kv.second - e) * (kv.second - e) / e;
  EXPECT_LT(chi2, 134.6);
}

TEST(Transposable, RandomLargeMIsLegal) {
  for (NM nm : {NM{4, 8}, NM{2, 8}, NM{3, 7}}) {
    const Mask m = random_transposable(3 * nm.m, 5 * nm.m, nm, Philox(4));
    EXPECT_TRUE(is_transposable_legal(m, nm)) << nm;
  }
}

TEST(Transposable, OneAndTwoThreadsBitIdentical) {
  const Matrix<float> s = test::random_scores<float>(256, 512, 21, true);
  const Matrix<double> s8 = test::random_scores<double>(64, 128, 22);
  set_thread_count(1);
  const Mask a1 = project_transposable(s, NM{2, 4}), b1 = project_transposable(s8, NM{4, 8});
  const Mask r1 = random_transposable(256, 512, NM{2, 4}, Philox(3));
  const Mask q1 = random_transposable(64, 128, NM{4, 8}, Philox(3));
  set_thread_count(2);
  EXPECT_EQ(project_transposable(s, NM{2, 4}), a1);
  EXPECT_EQ(project_transposable(s8, NM{4, 8}), b1);
  EXPECT_EQ(random_transposable(256, 512, NM{2, 4}, Philox(3)), r1);
  EXPECT_EQ(random_transposable(64, 128, NM{4, 8}, Philox(3)), q1);
}

TEST(Transposable, BlocksAndColumnMajorInputs) {
  const Matrix<float> big = test::random_scores<float>(40, 160, 61);
  for (NM nm : {NM{2, 4}, NM{1, 4}, NM{4, 8}}) {
    const Matrix<float> sub = big.block(4, 8, 32, 128);
    const Mask expect = project_transposable(sub, nm);
    EXPECT_EQ(project_transposable(big.block(4, 8, 32, 128), nm), expect) << nm;
    const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic> cm = sub;
    EXPECT_EQ(project_transposable(cm, nm), expect) << nm;
    EXPECT_EQ(project_transposable(sub.cwiseAbs(), nm),
              project_transposable(Matrix<float>(sub.cwiseAbs()), nm))
        << nm;
  }
}

TEST(Transposable, IntoReusesStorage) {
  const Matrix<float> s = test::random_scores<float>(16, 32, 5);
  Mask out(16, 32);
  const std::uint8_t* p = out.data();
  project_transposable_into(s, NM{2, 4}, out);
  EXPECT_EQ(out.data(), p);
  EXPECT_EQ(out, project_transposable(s, NM{2, 4}));
  project_rowwise_into(s, NM{1, 4}, out);
  EXPECT_EQ(out.data(), p);
  EXPECT_EQ(out, project_rowwise(s, NM{1, 4}));
  Mask other;
  project_transposable_into(s, NM{3, 4}, other);
  EXPECT_EQ(other, project_transposable(s, NM{3, 4}));
}
