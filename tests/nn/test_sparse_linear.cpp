// SPDX-License-Identifier: Apache-2.0
// SparseLinear: forward against the dense product on dense_weight(); gradients against central
// finite differences in double; topology refresh keeps surviving values; shape errors throw;
// 1 and 2 threads give identical results.
#include <gtest/gtest.h>

#include <sparsenm/nn.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using sparsenm::Index;
using sparsenm::Layout;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;
using sparsenm::SparseLinear;
using sparsenm::Vector;

template <class S>
Matrix<S> random_matrix(Index rows, Index cols, std::uint64_t seed) {
  const Philox rng(seed);
  Matrix<S> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = S(2 * rng.uniform(std::uint64_t(i)) - 1);
  return m;
}

/// L = sum(forward(x) ⊙ r): dL/dy = r.
double loss(SparseLinear<double>& layer, const Matrix<double>& x, const Matrix<double>& r) {
  return layer.forward(x).cwiseProduct(r).sum();
}

double rel(double a, double b) { return std::abs(a - b) / std::max(1.0, std::abs(b)); }

TEST(SparseLinear, ForwardMatchesDenseProduct) {
  for (const Layout layout : {Layout::RowWise, Layout::Transposable})
    for (const NM nm : {NM{1, 4}, NM{2, 4}, NM{2, 8}}) {
      SparseLinear<float> layer(32, 24, nm, layout, Philox(3), true);
      EXPECT_TRUE(sparsenm::is_legal(layer.mask(), nm, layout));
      const Matrix<float> x = random_matrix<float>(13, 32, 5);
      const Matrix<float> y = layer.forward(x);
      Matrix<float> ref = x * layer.dense_weight().transpose();
      ref.rowwise() += layer.bias().transpose();
      EXPECT_LT((y - ref).cwiseAbs().maxCoeff(), 1e-5f);
      // dense_weight is zero exactly where the mask is.
      EXPECT_TRUE(((layer.dense_weight().array() != 0.f).cast<std::uint8_t>().matrix().array() <=
                   layer.mask().array())
                      .all());
    }
}

TEST(SparseLinear, GradientsMatchFiniteDifferences) {
  for (const Layout layout : {Layout::RowWise, Layout::Transposable})
    for (const bool bias : {false, true}) {
      SCOPED_TRACE(::testing::Message() << layout << " bias " << bias);
      SparseLinear<double> layer(16, 12, NM{2, 4}, layout, Philox(9), bias);
      const Matrix<double> x = random_matrix<double>(7, 16, 1);
      const Matrix<double> r = random_matrix<double>(7, 12, 2);
      layer.forward(x);
      const Matrix<double> dx = layer.backward(r);
      const Matrix<double> gv = layer.grad_values();
      const Vector<double> gb = layer.grad_bias();
      const double h = 1e-6;
      double worst = 0;
      for (Index i = 0; i < layer.values().size(); ++i) {
        double& w = layer.values().data()[i];
        const double w0 = w;
        w = w0 + h;
        const double lp = loss(layer, x, r);
        w = w0 - h;
        const double lm = loss(layer, x, r);
        w = w0;
        worst = std::max(worst, rel(gv.data()[i], (lp - lm) / (2 * h)));
      }
      Matrix<double> xp = x;
      for (Index i = 0; i < x.size(); ++i) {
        const double x0 = xp.data()[i];
        xp.data()[i] = x0 + h;
        const double lp = loss(layer, xp, r);
        xp.data()[i] = x0 - h;
        const double lm = loss(layer, xp, r);
        xp.data()[i] = x0;
        worst = std::max(worst, rel(dx.data()[i], (lp - lm) / (2 * h)));
      }
      if (bias)
        for (Index i = 0; i < gb.size(); ++i) {
          double& b = layer.bias()(i);
          const double b0 = b;
          b = b0 + h;
          const double lp = loss(layer, x, r);
          b = b0 - h;
          const double lm = loss(layer, x, r);
          b = b0;
          worst = std::max(worst, rel(gb(i), (lp - lm) / (2 * h)));
        }
      EXPECT_LT(worst, 1e-6);
      // The active gradient is the dense gradient dYᵀ X restricted to the mask.
      const Matrix<double> dense_dw = r.transpose() * x;
      const Matrix<double> masked = dense_dw.cwiseProduct(layer.mask().cast<double>());
      EXPECT_LT((layer.dense_grad() - masked).cwiseAbs().maxCoeff(), 1e-12);
    }
}

TEST(SparseLinear, RefreshKeepsSurvivingValuesAndZeroesRegrown) {
  for (const Layout layout : {Layout::RowWise, Layout::Transposable}) {
    const NM nm{2, 4};
    SparseLinear<double> layer(16, 8, nm, layout, Philox(4));
    const Mask old_mask = layer.mask();
    const Matrix<double> old_w = layer.dense_weight();
    const Mask new_mask = layout == Layout::RowWise
                              ? sparsenm::random_rowwise(8, 16, nm, Philox(77))
                              : sparsenm::random_transposable(8, 16, nm, Philox(77));
    layer.set_mask(new_mask);
    EXPECT_EQ(layer.mask(), new_mask);
    const Matrix<double> w = layer.dense_weight();
    Index kept = 0, regrown = 0;
    for (Index o = 0; o < 8; ++o)
      for (Index k = 0; k < 16; ++k) {
        if (new_mask(o, k) && old_mask(o, k)) {
          EXPECT_EQ(w(o, k), old_w(o, k));
          ++kept;
        } else if (new_mask(o, k)) {
          EXPECT_EQ(w(o, k), 0.0);
          ++regrown;
        } else {
          EXPECT_EQ(w(o, k), 0.0);
        }
      }
    EXPECT_GT(kept, 0);
    EXPECT_GT(regrown, 0);
    // The backward pass runs on the new structure.
    const Matrix<double> x = random_matrix<double>(5, 16, 8), r = random_matrix<double>(5, 8, 9);
    layer.forward(x);
    const Matrix<double> dx = layer.backward(r);
    EXPECT_LT((dx - r * w).cwiseAbs().maxCoeff(), 1e-12);
  }
}

// backward_params (a first layer: no dX) leaves the same parameter gradients, bit for bit, as
// backward(), for both layouts, with a bias, after the values changed since the last backward;
// checked against the dense closed form dW = rᵀ x on the active entries.
TEST(SparseLinear, BackwardParamsEqualsBackwardWithoutDx) {
  for (const Layout layout : {Layout::RowWise, Layout::Transposable}) {
    SparseLinear<double> a(16, 8, NM{2, 4}, layout, Philox(3), true);
    SparseLinear<double> b(16, 8, NM{2, 4}, layout, Philox(3), true);
    const Matrix<double> x = random_matrix<double>(5, 16, 4), r = random_matrix<double>(5, 8, 5);
    for (int step = 0; step < 2; ++step) {
      a.forward(x);
      b.forward(x);
      a.backward(r);
      b.backward_params(r);
      EXPECT_TRUE(a.grad_values() == b.grad_values()) << to_string(layout);
      EXPECT_TRUE(a.grad_bias() == b.grad_bias());
      const Matrix<double> dw = r.transpose() * x;
      const sparsenm::NMCompressed<double>& w = b.weight();
      for (Index o = 0; o < 8; ++o)
        for (Index j = 0; j < w.values.cols(); ++j) {
          const Index k = (j / 2) * 4 + w.indices(o, j);
          EXPECT_NEAR(b.grad_values()(o, j), dw(o, k), 1e-12);
        }
      a.values().array() += 0.25;  // an optimizer step between the passes
      b.values().array() += 0.25;
    }
  }
  SparseLinear<float> fresh(16, 8, NM{2, 4}, Layout::RowWise, Philox(1));
  EXPECT_THROW(fresh.backward_params(Matrix<float>::Zero(3, 8)), sparsenm::Error);  // no forward
  fresh.forward(Matrix<float>::Zero(3, 16));
  EXPECT_THROW(fresh.backward_params(Matrix<float>::Zero(3, 7)), sparsenm::Error);
}

TEST(SparseLinear, ShapeAndMaskErrorsThrow) {
  EXPECT_THROW(SparseLinear<float>(10, 8, NM{2, 4}, Layout::RowWise, Philox(1)), sparsenm::Error);
  EXPECT_THROW(SparseLinear<float>(16, 6, NM{2, 4}, Layout::Transposable, Philox(1)),
               sparsenm::Error);
  EXPECT_THROW(SparseLinear<float>(16, 8, NM{5, 4}, Layout::RowWise, Philox(1)), sparsenm::Error);
  SparseLinear<float> layer(16, 8, NM{2, 4}, Layout::Transposable, Philox(1));
  EXPECT_THROW(layer.backward(Matrix<float>::Zero(3, 8)), sparsenm::Error);  // before forward
  EXPECT_THROW(layer.forward(Matrix<float>::Zero(3, 12)), sparsenm::Error);
  layer.forward(Matrix<float>::Zero(3, 16));
  EXPECT_THROW(layer.backward(Matrix<float>::Zero(4, 8)), sparsenm::Error);
  EXPECT_THROW(layer.backward(Matrix<float>::Zero(3, 7)), sparsenm::Error);
  EXPECT_THROW(layer.set_mask(Mask::Ones(8, 16)), sparsenm::Error);  // not 2:4
  EXPECT_THROW(layer.set_mask(Mask::Zero(8, 12)), sparsenm::Error);  // shape
  // Row-wise legal but not transposable.
  Mask rowwise = Mask::Zero(8, 16);
  for (Index o = 0; o < 8; ++o)
    for (Index g = 0; g < 4; ++g) rowwise(o, 4 * g) = rowwise(o, 4 * g + 1) = 1;
  EXPECT_THROW(layer.set_mask(rowwise), sparsenm::Error);
}

TEST(SparseLinear, NonFiniteInputsPropagate) {
  SparseLinear<float> layer(8, 4, NM{1, 4}, Layout::RowWise, Philox(2));
  Matrix<float> x = Matrix<float>::Ones(2, 8);
  x(0, 0) = std::numeric_limits<float>::quiet_NaN();
  const Mask mask = layer.mask();
  const Matrix<float> y = layer.forward(x);
  for (Index o = 0; o < 4; ++o) EXPECT_EQ(std::isnan(y(0, o)), mask(o, 0) == 1) << o;
  EXPECT_TRUE(y.row(1).allFinite());
}

TEST(SparseLinear, OneAndTwoThreadsBitIdentical) {
  SparseLinear<float> layer(512, 320, NM{2, 4}, Layout::Transposable, Philox(6), true);
  const Matrix<float> x = random_matrix<float>(133, 512, 3);
  const Matrix<float> r = random_matrix<float>(133, 320, 4);
  Matrix<float> y[2], dx[2], gv[2];
  for (int t = 0; t < 2; ++t) {
    sparsenm::set_thread_count(t + 1);
    y[t] = layer.forward(x);
    dx[t] = layer.backward(r);
    gv[t] = layer.grad_values();
  }
  sparsenm::set_thread_count(2);
  EXPECT_TRUE(y[0] == y[1]);
  EXPECT_TRUE(dx[0] == dx[1]);
  EXPECT_TRUE(gv[0] == gv[1]);
}

}  // namespace
