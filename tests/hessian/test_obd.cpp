// SPDX-License-Identifier: Apache-2.0
// obd_scores: the plain formula s = (max(H, 0) + ε) W², entry by entry; bad input.
#include <cmath>
#include <string>

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

using test::uniform_matrix;

TEST(ObdScores, MatchesThePlainFormulaWithNegativeCurvatureClamped) {
  const Matrix<double> h = uniform_matrix<double>(5, 8, 1, -1.0, 2.0);  // some H < 0
  const Matrix<double> w = uniform_matrix<double>(5, 8, 2);
  ASSERT_LT(h.minCoeff(), 0.0);
  const double eps = 1e-3;
  const Matrix<double> s = obd_scores(h, w, eps);
  for (Index i = 0; i < 5; ++i)
    for (Index j = 0; j < 8; ++j) {
      const double hh = h(i, j) > 0 ? h(i, j) : 0.0;
      EXPECT_DOUBLE_EQ(s(i, j), (hh + eps) * w(i, j) * w(i, j));
    }
  // Zero curvature and ε = 0 give zero; ε > 0 with H = 0 ranks by magnitude.
  EXPECT_TRUE((obd_scores(Matrix<double>::Zero(5, 8), w, 0.0).array() == 0).all());
  EXPECT_DOUBLE_EQ(obd_scores(Matrix<double>::Zero(5, 8), w, 0.5)(2, 3), 0.5 * w(2, 3) * w(2, 3));
}

TEST(ObdScores, AcceptsExpressionsAndFloat) {
  const Matrix<float> h = uniform_matrix<float>(4, 4, 3, 0.0, 1.0);
  const Matrix<float> w = uniform_matrix<float>(4, 4, 4);
  const Matrix<float> s = obd_scores(2.0f * h, w.array().abs().matrix(), 1e-8f);
  EXPECT_FLOAT_EQ(s(1, 2), (2.0f * h(1, 2) + 1e-8f) * w(1, 2) * w(1, 2));
}

TEST(ObdScores, BadInputThrows) {
  const Matrix<double> h = Matrix<double>::Ones(3, 4), w = Matrix<double>::Ones(3, 4);
  EXPECT_THROW(obd_scores(h, Matrix<double>::Ones(4, 3), 1e-8), Error);
  EXPECT_THROW(obd_scores(h, w, -1e-8), Error);
  EXPECT_THROW(obd_scores(h, w, std::nan("")), Error);
  Matrix<double> hn = h;
  hn(2, 1) = std::nan("");
  try {
    obd_scores(hn, w, 1e-8);
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hdiag(2, 1)"), std::string::npos) << e.what();
  }
  Matrix<double> wi = w;
  wi(0, 0) = INFINITY;
  EXPECT_THROW(obd_scores(h, wi, 1e-8), Error);
}

}  // namespace
}  // namespace sparsenm
