// SPDX-License-Identifier: Apache-2.0
// Hessian-vector products: gradients against finite differences of the loss, exact HVPs against
// finite differences of the gradient, the closed-form diagonals against basis-vector HVPs.
#include <cmath>
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

using test::uniform_matrix;

// ∂L/∂W by central differences of the scalar loss, one entry at a time (independent reference).
template <class Loss>
Matrix<double> numeric_gradient(Loss&& loss, const Matrix<double>& w) {
  Matrix<double> g(w.rows(), w.cols());
  const double h = 1e-5;
  for (Index i = 0; i < w.size(); ++i) {
    Matrix<double> wp = w, wm = w;
    wp.data()[i] += h;
    wm.data()[i] -= h;
    g.data()[i] = (loss(wp) - loss(wm)) / (2 * h);
  }
  return g;
}

double rel_err(const Matrix<double>& a, const Matrix<double>& b) {
  return (a - b).norm() / std::max(1e-300, b.norm());
}

std::vector<int> labels_for(Index batch, Index classes) {
  std::vector<int> y(static_cast<std::size_t>(batch));
  for (Index b = 0; b < batch; ++b) y[std::size_t(b)] = int((b * 7 + 3) % classes);
  return y;
}

TEST(LinearHvp, SquaredLossGradientMatchesFiniteDifferences) {
  const Matrix<double> x = uniform_matrix<double>(9, 6, 1), w = uniform_matrix<double>(4, 6, 2),
                       y = uniform_matrix<double>(9, 4, 3);
  const Matrix<double> g = linear_squared_loss_gradient(x, w, y);
  const Matrix<double> num =
      numeric_gradient([&](const Matrix<double>& ww) { return linear_squared_loss(x, ww, y); }, w);
  EXPECT_LT(rel_err(g, num), 1e-8);
}

TEST(LinearHvp, SquaredLossHvpMatchesFiniteDifferences) {
  const Matrix<double> x = uniform_matrix<double>(9, 6, 1), w = uniform_matrix<double>(4, 6, 2),
                       y = uniform_matrix<double>(9, 4, 3);
  const LinearSquaredLossHvp<double> hvp(x);
  auto grad = [&](const Matrix<double>& ww) { return linear_squared_loss_gradient(x, ww, y); };
  for (std::uint64_t s = 0; s < 3; ++s) {
    const Matrix<double> v = uniform_matrix<double>(4, 6, 10 + s);
    EXPECT_LT(rel_err(hvp(v), finite_difference_hvp<double>(grad, w, v)), 1e-8);
  }
  // Closed form: H[V] = V XᵀX / B, diag = diag(XᵀX)/B per row.
  const Matrix<double> v = uniform_matrix<double>(4, 6, 99);
  const Matrix<double> expect = v * (x.transpose() * x) / 9.0;
  EXPECT_LT(rel_err(hvp(v), expect), 1e-14);
}

TEST(LinearHvp, SoftmaxCeGradientMatchesFiniteDifferences) {
  const Matrix<double> x = uniform_matrix<double>(7, 5, 4), w = uniform_matrix<double>(3, 5, 5);
  const auto y = labels_for(7, 3);
  const Matrix<double> g = linear_softmax_ce_gradient(x, w, y);
  const Matrix<double> num = numeric_gradient(
      [&](const Matrix<double>& ww) { return linear_softmax_ce_loss(x, ww, y); }, w);
  EXPECT_LT(rel_err(g, num), 1e-8);
}

TEST(LinearHvp, SoftmaxCeHvpExactAndGaussNewtonMatchFiniteDifferences) {
  const Matrix<double> x = uniform_matrix<double>(7, 5, 4),
                       w = 2.0 * uniform_matrix<double>(3, 5, 5);
  const auto y = labels_for(7, 3);
  auto grad = [&](const Matrix<double>& ww) { return linear_softmax_ce_gradient(x, ww, y); };
  const LinearSoftmaxCeHvp<double> exact(x, w, CeHessian::Exact);
  const LinearSoftmaxCeHvp<double> gn(x, w, CeHessian::GaussNewton);
  for (std::uint64_t s = 0; s < 4; ++s) {
    const Matrix<double> v = uniform_matrix<double>(3, 5, 20 + s);
    const Matrix<double> fd = finite_difference_hvp<double>(grad, w, v);
    EXPECT_LT(rel_err(exact(v), fd), 1e-7) << "probe " << s;
    EXPECT_LT(rel_err(gn(v), fd), 1e-7) << "probe " << s;
    // Logits linear in W: Gauss–Newton = true Hessian (to rounding).
    EXPECT_LT(rel_err(gn(v), exact(v)), 1e-13);
  }
}

TEST(LinearHvp, SoftmaxCeExactDiagonalMatchesBasisProducts) {
  const Matrix<double> x = uniform_matrix<double>(6, 4, 7), w = uniform_matrix<double>(3, 4, 8);
  const auto y = labels_for(6, 3);
  const LinearSoftmaxCeHvp<double> hvp(x, w);
  auto grad = [&](const Matrix<double>& ww) { return linear_softmax_ce_gradient(x, ww, y); };
  const Matrix<double> d = hvp.exact_diagonal();
  for (Index i = 0; i < w.size(); ++i) {
    Matrix<double> e = Matrix<double>::Zero(3, 4);
    e.data()[i] = 1.0;
    EXPECT_NEAR(d.data()[i], hvp(e).data()[i], 1e-14);
    EXPECT_NEAR(d.data()[i], finite_difference_hvp<double>(grad, w, e).data()[i], 1e-7);
  }
  // And Hutchinson converges to it (unbiased estimator, many probes in one update).
  HutchinsonDiagonal<double> est(3, 4, 0.0);
  est.update(hvp, Philox(3), 4000);
  EXPECT_LT((est.diagonal() - d).cwiseAbs().maxCoeff(), 0.1 * d.maxCoeff());
}

TEST(LinearHvp, FiniteDifferenceInFloatUsesAUsableStep) {
  // float CE HVP by finite differences vs the double exact product: the cbrt(eps) step keeps the
  // error near eps^(2/3) ≈ 2.5e-5 relative (we allow 1e-2 for the gradient's own rounding).
  const Matrix<double> xd = uniform_matrix<double>(8, 6, 31), wd = uniform_matrix<double>(4, 6, 32);
  const auto y = labels_for(8, 4);
  const Matrix<float> xf = xd.cast<float>(), wf = wd.cast<float>();
  const Matrix<double> v = uniform_matrix<double>(4, 6, 33);
  const Matrix<float> vf = v.cast<float>();
  auto gradf = [&](const Matrix<float>& ww) { return linear_softmax_ce_gradient(xf, ww, y); };
  const Matrix<float> fdf = finite_difference_hvp<float>(gradf, wf, vf);
  const LinearSoftmaxCeHvp<double> exact(xd, wd);
  EXPECT_LT(rel_err(fdf.cast<double>(), exact(v)), 1e-2);
  // Callable wrapper gives the same numbers.
  const auto fd = make_fd_hvp(gradf, wf);
  EXPECT_EQ(fd(vf), fdf);
}

TEST(LinearHvp, BadInputThrows) {
  const Matrix<double> x = uniform_matrix<double>(5, 4, 1), w = uniform_matrix<double>(3, 4, 2);
  auto grad = [&](const Matrix<double>& ww) { return Matrix<double>(ww); };
  EXPECT_THROW(finite_difference_hvp<double>(grad, w, Matrix<double>::Ones(4, 3)), Error);
  EXPECT_THROW(finite_difference_hvp<double>(grad, w, Matrix<double>::Ones(3, 4), 0.0), Error);
  EXPECT_THROW(finite_difference_hvp<double>(grad, w, Matrix<double>::Ones(3, 4), std::nan("")),
               Error);
  // H · 0 = 0 without evaluating a step of size 0 / 0.
  EXPECT_EQ(finite_difference_hvp<double>(grad, w, Matrix<double>::Zero(3, 4)),
            Matrix<double>::Zero(3, 4));
  std::vector<int> bad = {0, 1, 2, 3, 0};  // 3 is not a class of a 3-row W
  EXPECT_THROW(linear_softmax_ce_gradient(x, w, bad), Error);
  EXPECT_THROW(linear_softmax_ce_loss(x, w, std::vector<int>{0, 1}), Error);
  EXPECT_THROW(LinearSoftmaxCeHvp<double>(x, Matrix<double>::Ones(3, 5)), Error);
  const LinearSoftmaxCeHvp<double> ce(x, w);
  EXPECT_THROW(ce(Matrix<double>::Ones(4, 4)), Error);
  const LinearSquaredLossHvp<double> sq(x);
  EXPECT_THROW(sq(Matrix<double>::Ones(3, 5)), Error);
  Matrix<double> xn = x;
  xn(2, 1) = std::nan("");
  EXPECT_THROW(LinearSquaredLossHvp<double>{xn}, Error);
  const Matrix<double> y52 = Matrix<double>::Ones(5, 2);
  EXPECT_THROW(linear_squared_loss_gradient(x, w, y52), Error);
}

}  // namespace
}  // namespace sparsenm
