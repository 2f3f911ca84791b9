// SPDX-License-Identifier: Apache-2.0
// HutchinsonDiagonal: probe contract, exactness on diagonal H, unbiasedness and 1/sqrt(P) error on
// dense SPD and least-squares quadratics, EMA/bias-correction algebra, bad input, thread
// invariance.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/hessian.hpp>

#include "hessian/helpers.hpp"

// GCC 12 false positives in AVX-512 intrinsics inlined from Eigen reductions (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace sparsenm {
namespace {

using test::dense_hvp;
using test::dense_spd;
using test::uniform_matrix;

TEST(HutchinsonFill, SimdFillMatchesScalarReference) {
  const Philox rng(0x1234abcdULL, 77);
  for (Index n : {1, 3, 4, 5, 31, 32, 33, 64, 100, 257}) {
    for (Index begin : {0, 1, 2, 3, 4, 29}) {
      if (begin > n) continue;
      std::vector<float> a(std::size_t(n), 0.f), b(std::size_t(n), 0.f);
      std::vector<double> c(std::size_t(n), 0.0), d(std::size_t(n), 0.0);
      detail::fill_rademacher(rng, a.data(), begin, n);
      detail::scalar::fill_rademacher(rng, b.data(), begin, n);
      detail::fill_rademacher(rng, c.data(), begin, n);
      detail::scalar::fill_rademacher(rng, d.data(), begin, n);
      for (Index k = 0; k < n; ++k) {
        ASSERT_EQ(a[std::size_t(k)], b[std::size_t(k)]) << "n " << n << " begin " << begin;
        ASSERT_EQ(c[std::size_t(k)], d[std::size_t(k)]) << "n " << n << " begin " << begin;
        if (k >= begin) {
          ASSERT_EQ(std::abs(c[std::size_t(k)]), 1.0);
        }
      }
    }
  }
}

TEST(HutchinsonDiagonal, ProbesFollowTheDocumentedCounters) {
  // Probe k is v(i, j) = rng.split(k).rademacher(i * cols + j), k counted over the whole life.
  const Index rows = 5, cols = 7;
  const Philox rng(42);
  std::vector<Matrix<double>> seen;
  auto hvp = [&](const Matrix<double>& v) {
    seen.push_back(v);
    return Matrix<double>(v);
  };
  HutchinsonDiagonal<double> est(rows, cols);
  est.update(hvp, rng);
  est.update(hvp, rng, 3);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(est.samples(), 4);
  EXPECT_EQ(est.updates(), 2);
  for (std::size_t k = 0; k < seen.size(); ++k) {
    const Philox stream = rng.split(k);
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < cols; ++j)
        ASSERT_EQ(seen[k](i, j), double(stream.rademacher(std::uint64_t(i * cols + j))))
            << "probe " << k;
  }
  EXPECT_NE(seen[0], seen[1]);  // a fresh stream per sample even with the same rng
}

TEST(HutchinsonDiagonal, OnesBeforeTheFirstSample) {
  HutchinsonDiagonal<float> est(3, 8);
  EXPECT_EQ(est.samples(), 0);
  EXPECT_TRUE((est.diagonal().array() == 1.0f).all());
  est.update([](const Matrix<float>& v) { return Matrix<float>(2.0f * v); }, Philox(1));
  EXPECT_TRUE((est.diagonal().array() == 2.0f).all());
  est.reset();
  EXPECT_EQ(est.samples(), 0);
  EXPECT_TRUE((est.diagonal().array() == 1.0f).all());
}

TEST(HutchinsonDiagonal, AcceptsExpressionAndReferenceReturningCallables) {
  // An Eigen expression is evaluated; a returned reference is used without a copy. Both must give
  // the same estimate as a callable returning a Matrix by value.
  const Matrix<double> d = uniform_matrix<double>(3, 5, 4, 0.5, 2.0);
  HutchinsonDiagonal<double> by_value(3, 5), by_expr(3, 5), by_ref(3, 5);
  by_value.update([&](const Matrix<double>& v) { return Matrix<double>(d.cwiseProduct(v)); },
                  Philox(2));
  by_expr.update([&](const Matrix<double>& v) { return d.cwiseProduct(v); }, Philox(2));
  Matrix<double> buffer;
  by_ref.update(
      [&](const Matrix<double>& v) -> const Matrix<double>& {
        buffer = d.cwiseProduct(v);
        return buffer;
      },
      Philox(2));
  EXPECT_LT((by_value.diagonal() - d).cwiseAbs().maxCoeff(), 1e-13);
  EXPECT_EQ(by_expr.diagonal(), by_value.diagonal());
  EXPECT_EQ(by_ref.diagonal(), by_value.diagonal());
}

TEST(HutchinsonDiagonal, DiagonalHessianIsRecoveredExactly) {
  // (D v) ⊙ v = d ⊙ v² = d: zero variance, and the bias-corrected EMA of a constant is the
  // constant at every step (up to rounding of the correction factor).
  const Matrix<double> d = uniform_matrix<double>(6, 8, 3, 0.1, 3.0);
  HutchinsonDiagonal<double> est(6, 8, 0.99);
  for (int t = 0; t < 5; ++t) {
    est.update([&](const Matrix<double>& v) { return Matrix<double>(d.cwiseProduct(v)); },
               Philox(9), t + 1);
    EXPECT_LT((est.diagonal() - d).cwiseAbs().maxCoeff(), 1e-13 * 3.0) << "update " << t;
  }
}

TEST(HutchinsonDiagonal, EmaAndBiasCorrectionMatchClosedForm) {
  // Two updates with P = 3 and P = 2 probes, β = 0.5: e1 = 0.5 x1, e2 = 0.25 x1 + 0.5 x2,
  // diag = e2 / (1 − 0.25); x_t = mean of (Hv) ⊙ v over that update's probes (plain loops).
  const Index rows = 4, cols = 6, d = rows * cols;
  const Eigen::MatrixXd h = dense_spd(d, 5);
  const Philox rng(2024);
  auto hvp = [&](const Matrix<double>& v) { return dense_hvp(h, v); };
  HutchinsonDiagonal<double> est(rows, cols, 0.5);
  est.update(hvp, rng, 3);
  est.update(hvp, rng, 2);
  Matrix<double> x1 = Matrix<double>::Zero(rows, cols), x2 = x1;
  for (long k = 0; k < 5; ++k) {
    Matrix<double> v(rows, cols);
    for (Index i = 0; i < d; ++i) v.data()[i] = rng.split(k).rademacher(std::uint64_t(i));
    Matrix<double> hv = dense_hvp(h, v);
    for (Index i = 0; i < d; ++i) {
      const double s = hv.data()[i] * v.data()[i];
      if (k < 3)
        x1.data()[i] += s / 3.0;
      else
        x2.data()[i] += s / 2.0;
    }
  }
  const Matrix<double> expect = (0.25 * x1 + 0.5 * x2) / 0.75;
  EXPECT_LT((est.diagonal() - expect).cwiseAbs().maxCoeff(), 1e-12);

  // ema = 0 keeps only the last update.
  HutchinsonDiagonal<double> last(rows, cols, 0.0);
  last.update(hvp, rng, 3);
  last.update(hvp, rng, 2);
  EXPECT_LT((last.diagonal() - x2).cwiseAbs().maxCoeff(), 1e-12);
}

// Mean over seeds of the estimate after a few EMA updates vs diag(H): every entry within 3
// standard errors (the estimate is a convex combination of unbiased samples, so unbiased).
template <class Hvp>
void expect_unbiased(Index rows, Index cols, Hvp&& hvp, const Matrix<double>& truth,
                     const char* what) {
  const int seeds = 400;
  Matrix<double> sum = Matrix<double>::Zero(rows, cols), sum2 = sum;
  for (int s = 0; s < seeds; ++s) {
    HutchinsonDiagonal<double> est(rows, cols, 0.99);
    const Philox rng(1000 + std::uint64_t(s));
    for (int t = 0; t < 3; ++t) est.update(hvp, rng);
    sum += est.diagonal();
    sum2 += est.diagonal().cwiseAbs2();
  }
  const Matrix<double> mean = sum / seeds;
  const Matrix<double> var = (sum2 / seeds - mean.cwiseAbs2()) * (double(seeds) / (seeds - 1));
  double max_z = 0;
  for (Index i = 0; i < truth.size(); ++i) {
    const double se = std::sqrt(var.data()[i] / seeds);
    ASSERT_GT(se, 0.0) << what << ": the test problem must have non-zero variance";
    const double z = std::abs(mean.data()[i] - truth.data()[i]) / se;
    max_z = std::max(max_z, z);
    EXPECT_LT(z, 3.0) << what << " entry " << i << " mean " << mean.data()[i] << " truth "
                      << truth.data()[i] << " se " << se;
  }
  ::testing::Test::RecordProperty(std::string(what) + "_max_z", std::to_string(max_z));
}

// RMS error of one update with P probes falls like P^-1/2: log-log slope in [-0.6, -0.4].
template <class Hvp>
double error_slope(Index rows, Index cols, Hvp&& hvp, const Matrix<double>& truth) {
  std::vector<double> ps, errs;
  for (int p : {4, 16, 64, 256}) {
    double se = 0;
    const int seeds = 24;
    for (int s = 0; s < seeds; ++s) {
      HutchinsonDiagonal<double> est(rows, cols, 0.99);
      est.update(hvp, Philox(77 + std::uint64_t(s), 3), p);
      se += (est.diagonal() - truth).squaredNorm();
    }
    ps.push_back(p);
    errs.push_back(std::sqrt(se / (seeds * double(truth.size()))));
  }
  return test::loglog_slope(ps, errs);
}

TEST(HutchinsonDiagonal, UnbiasedAndSqrtRateOnDenseSpdQuadratic) {
  // L(w) = ½ wᵀHw: ∇²L = H, HVP = H v.
  const Index rows = 4, cols = 6, d = rows * cols;
  const Eigen::MatrixXd h = dense_spd(d, 11);
  Matrix<double> truth(rows, cols);
  for (Index i = 0; i < d; ++i) truth.data()[i] = h(i, i);
  auto hvp = [&](const Matrix<double>& v) { return dense_hvp(h, v); };
  expect_unbiased(rows, cols, hvp, truth, "dense_spd");
  const double slope = error_slope(rows, cols, hvp, truth);
  EXPECT_GE(slope, -0.6);
  EXPECT_LE(slope, -0.4);
}

TEST(HutchinsonDiagonal, UnbiasedAndSqrtRateOnLeastSquaresLayer) {
  // L(W) = 1/(2B) ‖X Wᵀ − Y‖²: H = I_out ⊗ XᵀX / B, diag(H)(o, i) = Σ_b x_bi² / B.
  const Index batch = 10, in = 8, out = 3;
  const Matrix<double> x = uniform_matrix<double>(batch, in, 21);
  const LinearSquaredLossHvp<double> hvp(x);
  Matrix<double> truth(out, in);
  for (Index o = 0; o < out; ++o)
    for (Index i = 0; i < in; ++i) truth(o, i) = x.col(i).squaredNorm() / double(batch);
  ASSERT_LT((hvp.exact_diagonal(out) - truth).cwiseAbs().maxCoeff(), 1e-14);
  expect_unbiased(out, in, hvp, truth, "least_squares");
  const double slope = error_slope(out, in, hvp, truth);
  EXPECT_GE(slope, -0.6);
  EXPECT_LE(slope, -0.4);
}

TEST(HutchinsonDiagonal, BadInputThrowsAndKeepsState) {
  EXPECT_THROW(HutchinsonDiagonal<float>(0, 4), Error);
  EXPECT_THROW(HutchinsonDiagonal<float>(4, 0), Error);
  EXPECT_THROW(HutchinsonDiagonal<float>(4, 4, 1.0), Error);
  EXPECT_THROW(HutchinsonDiagonal<float>(4, 4, -0.1), Error);
  EXPECT_THROW(HutchinsonDiagonal<float>(4, 4, std::nan("")), Error);
  try {
    HutchinsonDiagonal<float>(4, 4, 1.5);
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ema"), std::string::npos) << e.what();
  }

  HutchinsonDiagonal<double> est(3, 4);
  auto ok = [](const Matrix<double>& v) { return Matrix<double>(3.0 * v); };
  est.update(ok, Philox(1));
  const Matrix<double> before = est.diagonal();
  EXPECT_THROW(est.update(ok, Philox(1), 0), Error);
  EXPECT_THROW(est.update([](const Matrix<double>&) { return Matrix<double>::Zero(4, 3).eval(); },
                          Philox(1)),
               Error);
  auto nan_hvp = [](const Matrix<double>& v) {
    Matrix<double> r = v;
    r(1, 2) = std::nan("");
    return r;
  };
  try {
    est.update(nan_hvp, Philox(1));
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(1, 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(est.update(nan_hvp, Philox(1), 3), Error);
  EXPECT_EQ(est.samples(), 1);
  EXPECT_EQ(est.diagonal(), before);
}

TEST(HutchinsonDiagonal, OneAndTwoThreadsBitIdentical) {
  // Large enough that the element-wise passes split into several parallel chunks.
  const Index rows = 160, cols = 256;
  const Matrix<float> d = uniform_matrix<float>(rows, cols, 8);
  auto hvp = [&](const Matrix<float>& v) {
    // Diagonal part plus a coupling to the next row, so the sample is not constant.
    Matrix<float> r = d.cwiseProduct(v);
    r.topRows(rows - 1) += 0.5f * v.bottomRows(rows - 1);
    return r;
  };
  Matrix<float> out[2];
  const int prev = thread_count();
  for (int t = 1; t <= 2; ++t) {
    set_thread_count(t);
    HutchinsonDiagonal<float> est(rows, cols, 0.9);
    est.update(hvp, Philox(5));
    est.update(hvp, Philox(5), 3);
    out[t - 1] = est.diagonal();
  }
  set_thread_count(prev);
  ASSERT_EQ(0,
            std::memcmp(out[0].data(), out[1].data(), sizeof(float) * std::size_t(out[0].size())));
}

}  // namespace
}  // namespace sparsenm
