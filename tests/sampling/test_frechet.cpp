// SPDX-License-Identifier: Apache-2.0
// GCC 12 -Wmaybe-uninitialized false positives inside Eigen's AVX-512 reductions (isApprox,
// maxCoeff).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/mask.hpp>
#include <sparsenm/sampling.hpp>

using namespace sparsenm;

namespace {
// Exact probability that element i is among the k = 2 draws without replacement, P ∝ p.
std::vector<double> inclusion_k2(const std::vector<double>& p) {
  double sum = 0;
  for (double v : p) sum += v;
  std::vector<double> q(p.size()), inc(p.size(), 0.0);
  for (std::size_t i = 0; i < p.size(); ++i) q[i] = p[i] / sum;
  for (std::size_t i = 0; i < p.size(); ++i)
    for (std::size_t j = 0; j < p.size(); ++j)
      if (i != j) {
        const double pij = q[i] * q[j] / (1 - q[i]);  // i first, then j
        inc[i] += pij;
        inc[j] += pij;
      }
  return inc;
}
}  // namespace

TEST(Frechet, MatchesFormulaWithSameUniforms) {
  Matrix<double> w(3, 5);
  w << 0.5, -1.0, 2.0, 0.0, -0.25, 1, 2, 3, 4, 5, -6, 7, -8, 9, 1e-3;
  const Philox rng(42, 7);
  const double t = 2.5;
  const Matrix<double> f = frechet_scores(w, t, rng);
  for (Index i = 0; i < 3; ++i)
    for (Index j = 0; j < 5; ++j) {
      const double u = rng.uniform(std::uint64_t(i * 5 + j));
      const double expect = std::abs(w(i, j)) * std::pow(-std::log(u), -1.0 / t);
      EXPECT_NEAR(f(i, j), expect, 1e-12 * (1 + expect));
    }
  EXPECT_EQ(f(0, 3), 0.0);
  // float: U = uniform_float(k), computed in float (vectorised); compare with the formula in double
  const Matrix<float> ff = frechet_scores(w.cast<float>(), 2.5f, rng);
  for (Index i = 0; i < 3; ++i)
    for (Index j = 0; j < 5; ++j) {
      const double u = double(rng.uniform_float(std::uint64_t(i * 5 + j)));
      const double expect = std::abs(w(i, j)) * std::pow(-std::log(u), -1.0 / t);
      EXPECT_NEAR(double(ff(i, j)), expect, 2e-6 * (1 + expect));
    }
}

TEST(Frechet, VectorisedFloatMatchesDoubleReference) {
  // 10,000 entries per temperature, every SIMD body and the scalar tail; relative error of the
  // float log2/exp2 pipeline against the formula in double on the same float uniforms.
  Matrix<float> w(100, 100);
  const Philox wr(5);
  for (Index k = 0; k < w.size(); ++k) w.data()[k] = float(wr.uniform(std::uint64_t(k)) - 0.5) * 4;
  w(3, 7) = 0.0f;
  w(50, 99) = -0.0f;
  for (float t : {0.5f, 1.0f, 3.0f, 9.0f}) {
    const Philox rng(8, 1);
    const Matrix<float> f = frechet_scores(w, t, rng);
    double worst = 0;
    for (Index k = 0; k < w.size(); ++k) {
      const double u = double(rng.uniform_float(std::uint64_t(k)));
      const double e = std::abs(double(w.data()[k])) * std::pow(-std::log(u), -1.0 / double(t));
      if (e == 0) {
        EXPECT_EQ(f.data()[k], 0.0f);
        continue;
      }
      worst = std::max(worst, std::abs(double(f.data()[k]) - e) / e);
    }
    EXPECT_LT(worst, 1e-5) << "T = " << t;
  }
}

namespace {
// Distance in units of the float spacing at the reference value.
double ulps(float got, long double ref) {
  const float r = float(ref);
  const double spacing =
      double(std::nextafter(std::abs(r), std::numeric_limits<float>::infinity()) - std::abs(r));
  return double(std::abs((long double)got - ref)) / spacing;
}
}  // namespace

TEST(Frechet, FloatPolynomialsWithinStatedUlps) {
  // log2 on every 61st float of [2^-40, 64] (~3.7e5 values, all mantissa ranges and exponents)
  // against long double log2l: <= 3 ulp (the header states ~2).
  double worst = 0;
  std::uint32_t b0, b1;
  const float lo = 0x1p-40f, hi = 64.0f;
  std::memcpy(&b0, &lo, 4);
  std::memcpy(&b1, &hi, 4);
  for (std::uint32_t b = b0; b <= b1; b += 61) {
    float x;
    std::memcpy(&x, &b, 4);
    if (x == 1.0f) continue;
    worst = std::max(worst, ulps(detail::frechet_log2(x), std::log2((long double)x)));
  }
  EXPECT_LE(worst, 3.0);
  EXPECT_EQ(detail::frechet_log2(1.0f), 0.0f);
  EXPECT_EQ(detail::frechet_log2(0.25f), -2.0f);
  // exp2 on [-20, 20] (< 1 ulp), both paths, and the checked path's ends: correctly rounded
  // subnormals, 0 and +Inf.
  worst = 0;
  for (int i = -20 * 4096; i <= 20 * 4096; ++i) {
    const float x = float(i) / 4096.0f + 1.0f / 8192.0f;
    const float y = detail::frechet_exp2(x);
    EXPECT_EQ(y, detail::frechet_exp2<false>(x));
    worst = std::max(worst, ulps(y, std::exp2((long double)x)));
  }
  EXPECT_LT(worst, 1.0);
  EXPECT_EQ(detail::frechet_exp2(3.0f), 8.0f);
  for (const float x : {-126.5f, -130.25f, -140.0f, -149.0f}) {
    const float y = detail::frechet_exp2(x);
    EXPECT_GT(y, 0.0f) << x;
    EXPECT_LE(std::abs(double(y) - double(std::exp2((long double)x))), 0x1p-149) << x;
  }
  EXPECT_EQ(detail::frechet_exp2(-151.0f), 0.0f);
  EXPECT_EQ(detail::frechet_exp2(-1000.0f), 0.0f);
  EXPECT_EQ(detail::frechet_exp2(128.5f), std::numeric_limits<float>::infinity());
  EXPECT_EQ(detail::frechet_exp2(1000.0f), std::numeric_limits<float>::infinity());
}

TEST(Frechet, FloatVectorPathEqualsScalarReferenceBitForBit) {
  // 1,000 columns: 62 vector bodies and an 8-entry scalar tail per row; temperatures on both
  // sides of the exp2 range test, including overflow to +Inf at T = 0.05.
  Matrix<float> w = Matrix<float>::Random(3, 1000);
  w(1, 17) = 0.0f;
  for (const float t : {0.05f, 0.5f, 1.0f, 9.0f}) {
    const Philox rng(12, 3);
    const Matrix<float> f = frechet_scores(w, t, rng);
    const detail::FrechetConstants c = detail::frechet_constants(float(1.0 / double(t)));
    for (Index k = 0; k < w.size(); ++k) {
      const Index i = k / w.cols(), j = k % w.cols();
      const float want =
          detail::frechet_score(std::abs(w(i, j)), rng.uniform_float(std::uint64_t(k)), c);
      ASSERT_EQ(f(i, j), want) << "T = " << t << " at (" << i << ", " << j << ")";
    }
    EXPECT_EQ(f(1, 17), 0.0f);
  }
}

TEST(Frechet, TopOneFrequenciesFollowPowerLawChiSquare) {
  // P(argmax W~ = i) = |w_i|^T / Σ |w|^T (chts24 App. A). 20000 trials, 4 dof: p = 0.001 at 18.47.
  Matrix<double> w(1, 5);
  w << 0.3, -1.0, 0.6, 0.8, -0.45;
  const double t = 2.0;
  std::vector<double> p(5), counts(5, 0.0);
  double z = 0;
  for (int i = 0; i < 5; ++i) z += (p[std::size_t(i)] = std::pow(std::abs(w(0, i)), t));
  const int trials = 20000;
  const Philox base(123);
  for (int k = 0; k < trials; ++k) {
    const Matrix<double> f = frechet_scores(w, t, base.split(std::uint64_t(k)));
    Index arg;
    f.row(0).maxCoeff(&arg);
    counts[std::size_t(arg)] += 1;
  }
  double chi2 = 0;
  for (int i = 0; i < 5; ++i) {
    const double e = trials * p[std::size_t(i)] / z;
    chi2 += (counts[std::size_t(i)] - e) * (counts[std::size_t(i)] - e) / e;
  }
  EXPECT_LT(chi2, 18.47);
}

TEST(Frechet, TopTwoInclusionMatchesSamplingWithoutReplacement) {
  Matrix<float> w(1, 5);
  w << 0.2f, 0.9f, -0.5f, 0.35f, 0.7f;
  const float t = 3.0f;
  std::vector<double> p(5);
  for (int i = 0; i < 5; ++i) p[std::size_t(i)] = std::pow(std::abs(double(w(0, i))), 3.0);
  const std::vector<double> inc = inclusion_k2(p);
  std::vector<double> counts(5, 0.0);
  const int trials = 20000;
  for (int k = 0; k < trials; ++k) {
    const Matrix<float> f = frechet_scores(w, t, Philox(9, std::uint64_t(k)));
    const Mask keep = project_rowwise(Matrix<float>(f.leftCols(4)), NM{4, 4});  // smoke
    (void)keep;
    std::vector<int> idx{0, 1, 2, 3, 4};
    std::partial_sort(idx.begin(), idx.begin() + 2, idx.end(),
                      [&](int a, int b) { return f(0, a) > f(0, b); });
    counts[std::size_t(idx[0])] += 1;
    counts[std::size_t(idx[1])] += 1;
  }
  for (int i = 0; i < 5; ++i) {
    const double pi = inc[std::size_t(i)];
    const double sd = std::sqrt(pi * (1 - pi) / trials);
    EXPECT_NEAR(counts[std::size_t(i)] / trials, pi, 4.5 * sd) << i;
  }
}

TEST(Frechet, BadInputsThrow) {
  const Matrix<float> w = Matrix<float>::Ones(2, 2);
  EXPECT_THROW((void)frechet_scores(w, 0.0f, Philox(1)), Error);
  EXPECT_THROW((void)frechet_scores(w, -1.0f, Philox(1)), Error);
  EXPECT_THROW((void)frechet_scores(w, std::numeric_limits<float>::quiet_NaN(), Philox(1)), Error);
  EXPECT_THROW((void)frechet_scores(w, std::numeric_limits<float>::infinity(), Philox(1)), Error);
  Matrix<float> bad = w;
  bad(1, 0) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW((void)frechet_scores(bad, 1.0f, Philox(1)), Error);
  bad(1, 0) = std::numeric_limits<float>::infinity();
  EXPECT_THROW((void)frechet_scores(bad, 1.0f, Philox(1)), Error);
  EXPECT_EQ(frechet_scores(Matrix<double>(0, 3), 1.0, Philox(1)).size(), 0);
}

TEST(UniformPerturb, IsScoresTimesPhiloxUniform) {
  Matrix<double> s(2, 3);
  s << 1, -2, 0, 4, 5.5, 1e10;
  const Philox rng(5);
  const Matrix<double> out = uniform_perturb(s, rng);
  for (Index i = 0; i < 2; ++i)
    for (Index j = 0; j < 3; ++j)
      EXPECT_EQ(out(i, j), s(i, j) * rng.uniform(std::uint64_t(i * 3 + j)));
  const Matrix<float> of = uniform_perturb<float>(s, rng);
  EXPECT_TRUE(of.cast<double>().isApprox(out, 1e-6));
  Matrix<float> inf = Matrix<float>::Constant(1, 2, std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isinf(uniform_perturb(inf, rng)(0, 1)));
  inf(0, 0) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW((void)uniform_perturb(inf, rng), Error);
}

TEST(Sampling, UniformPerturbIntoReusesAndResizesTheOutput) {
  const Matrix<float> s = Matrix<float>::Random(17, 24);
  const Philox rng(11);
  Matrix<float> out = Matrix<float>::Constant(3, 5, 7.0f);  // wrong shape: resized
  uniform_perturb_into(s, rng, out);
  ASSERT_EQ(out.rows(), 17);
  ASSERT_EQ(out.cols(), 24);
  for (Index i = 0; i < s.rows(); ++i)  // the formula, element by element (counter = index)
    for (Index j = 0; j < s.cols(); ++j)
      EXPECT_EQ(out(i, j), s(i, j) * rng.uniform_float(std::uint64_t(i * 24 + j)));
  const float* storage = out.data();
  uniform_perturb_into(s, Philox(12), out);  // same shape: storage reused
  EXPECT_EQ(out.data(), storage);
  EXPECT_EQ(out, uniform_perturb(s, Philox(12)));
}

TEST(Sampling, OneAndTwoThreadsBitIdentical) {
  Matrix<float> w = Matrix<float>::Random(300, 200);
  set_thread_count(1);
  const Matrix<float> f1 = frechet_scores(w, 1.5f, Philox(3));
  const Matrix<float> u1 = uniform_perturb(w, Philox(3));
  set_thread_count(2);
  EXPECT_EQ(frechet_scores(w, 1.5f, Philox(3)), f1);
  EXPECT_EQ(uniform_perturb(w, Philox(3)), u1);
  // a block gives the same values as the matrix it was copied into (counter = its own index)
  const Matrix<float> blk = w.block(10, 20, 30, 40);
  EXPECT_EQ(frechet_scores(w.block(10, 20, 30, 40), 1.5f, Philox(3)),
            frechet_scores(blk, 1.5f, Philox(3)));
}
