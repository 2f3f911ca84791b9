// DenseLinear + Relu: gradients against central finite differences (double), the STE forward mask
// against an explicit W ⊙ M, init bounds, and bit-identical results for 1 and 2 threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <sparsenm/core/parallel.hpp>
#include <sparsenm/train/dense_linear.hpp>
#include <sparsenm/train/loss.hpp>

using namespace sparsenm;

namespace {

// Loss of a 2-layer net: softmax CE of relu(x W1ᵀ + b1) W2ᵀ + b2.
double net_loss(DenseLinear<double>& l1, DenseLinear<double>& l2, const Matrix<double>& x,
                const std::vector<int>& y, bool backward) {
  Relu<double> relu;
  Matrix<double> h = l1.forward(x);
  relu.forward(h);
  const Matrix<double> z = l2.forward(h);
  Matrix<double> g;
  const double loss = softmax_cross_entropy(z, y, &g);
  if (backward) {
    Matrix<double> gh = l2.backward(g);
    relu.backward(gh);
    l1.backward(gh);
  }
  return loss;
}

}  // namespace

TEST(DenseLinear, InitWithinPyTorchBounds) {
  const DenseLinear<float> l(16, 8, Philox(2));
  float wmax = 0, bmax = 0;
  double sum = 0;
  for (Index i = 0; i < l.weight().size(); ++i) {
    wmax = std::max(wmax, std::abs(l.weight().data()[i]));
    sum += l.weight().data()[i];
  }
  for (Index i = 0; i < l.bias().size(); ++i) bmax = std::max(bmax, std::abs(l.bias()(i)));
  EXPECT_LE(wmax, 0.25f);
  EXPECT_LE(bmax, 0.25f);
  EXPECT_GT(wmax, 0.2f);  // the range is actually used
  EXPECT_NEAR(sum / double(l.weight().size()), 0.0, 0.05);
}

TEST(DenseLinear, GradientsMatchFiniteDifferences) {
  for (bool masked : {false, true}) {
    DenseLinear<double> l1(24, 20, Philox(3)), l2(20, 3, Philox(4));
    Mask mask(20, 24);
    for (Index i = 0; i < mask.size(); ++i) mask.data()[i] = std::uint8_t(i % 3 != 0);
    if (masked) l1.set_forward_mask(&mask);
    Matrix<double> x(4, 24);
    const Philox r(9);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = 2 * r.uniform(i) - 1;
    const std::vector<int> y = {0, 2, 1, 2};
    net_loss(l1, l2, x, y, true);
    const Matrix<double> g1 = l1.grad_weight();
    const Vector<double> gb1 = l1.grad_bias();
    const Matrix<double> g2 = l2.grad_weight();
    const double h = 1e-6;
    for (Index i = 0; i < l1.weight().size(); ++i) {
      const double w = l1.weight().data()[i];
      l1.weight().data()[i] = w + h;
      const double fp = net_loss(l1, l2, x, y, false);
      l1.weight().data()[i] = w - h;
      const double fm = net_loss(l1, l2, x, y, false);
      l1.weight().data()[i] = w;
      // With a mask the STE gradient of a masked-out weight is the gradient it would have if it
      // were active, which finite differences on the masked loss cannot see: compare only
      // active entries there, and check the passed-through value is nonzero in general.
      if (!masked || mask.data()[i]) {
        EXPECT_NEAR(g1.data()[i], (fp - fm) / (2 * h), 1e-7) << i;
      }
    }
    for (Index i = 0; i < l1.bias().size(); ++i) {
      const double b = l1.bias()(i);
      l1.bias()(i) = b + h;
      const double fp = net_loss(l1, l2, x, y, false);
      l1.bias()(i) = b - h;
      const double fm = net_loss(l1, l2, x, y, false);
      l1.bias()(i) = b;
      EXPECT_NEAR(gb1(i), (fp - fm) / (2 * h), 1e-7);
    }
    for (Index i = 0; i < l2.weight().size(); ++i) {
      const double w = l2.weight().data()[i];
      l2.weight().data()[i] = w + h;
      const double fp = net_loss(l1, l2, x, y, false);
      l2.weight().data()[i] = w - h;
      const double fm = net_loss(l1, l2, x, y, false);
      l2.weight().data()[i] = w;
      EXPECT_NEAR(g2.data()[i], (fp - fm) / (2 * h), 1e-7);
    }
    if (masked) {
      double off_mask = 0;
      for (Index i = 0; i < g1.size(); ++i) off_mask += mask.data()[i] ? 0 : std::abs(g1.data()[i]);
      EXPECT_GT(off_mask, 0);
    }
  }
}

TEST(DenseLinear, ForwardMaskEqualsExplicitProduct) {
  DenseLinear<float> l(8, 4, Philox(6));
  Mask mask(4, 8);
  for (Index i = 0; i < mask.size(); ++i) mask.data()[i] = std::uint8_t(i % 4 == 2);
  Matrix<float> x = Matrix<float>::Ones(3, 8);
  l.set_forward_mask(&mask);
  const Matrix<float> y = l.forward(x);
  const Matrix<float> wm = l.weight().cwiseProduct(mask.cast<float>());
  const Matrix<float> ref = x * wm.transpose();
  for (Index i = 0; i < y.rows(); ++i)
    for (Index j = 0; j < y.cols(); ++j) EXPECT_NEAR(y(i, j), ref(i, j) + l.bias()(j), 1e-5f);
  EXPECT_EQ(l.effective_weight(), wm);
  Mask bad = mask;
  bad(0, 0) = 2;
  EXPECT_THROW(l.set_forward_mask(&bad), Error);
  EXPECT_THROW(l.set_forward_mask(&(const Mask&)Mask(3, 8)), Error);
  l.set_forward_mask(nullptr);
  EXPECT_FALSE(l.has_forward_mask());
  EXPECT_THROW(l.forward(Matrix<float>::Ones(3, 7)), Error);
  EXPECT_THROW(l.backward(Matrix<float>::Ones(2, 4)), Error);
}

// backward_params (first layer, no dL/dx): the same gradients, bit for bit, as backward(), and
// the closed form dW = gᵀ x, db = column sums of g.
TEST(DenseLinear, BackwardParamsEqualsBackwardWithoutDx) {
  DenseLinear<double> a(8, 4, Philox(6)), b(8, 4, Philox(6));
  const Matrix<double> x = Matrix<double>::Random(3, 8), g = Matrix<double>::Random(3, 4);
  a.forward(x);
  b.forward(x);
  a.backward(g);
  b.backward_params(g);
  EXPECT_TRUE(a.grad_weight() == b.grad_weight());
  EXPECT_TRUE(a.grad_bias() == b.grad_bias());
  EXPECT_LT((b.grad_weight() - g.transpose() * x).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_LT((b.grad_bias() - g.colwise().sum().transpose()).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_THROW(b.backward_params(Matrix<double>::Ones(2, 4)), Error);
}

TEST(DenseLinear, BitIdenticalForOneAndTwoThreads) {
  std::vector<Matrix<float>> out;
  for (int threads : {1, 2}) {
    set_thread_count(threads);
    DenseLinear<float> l(64, 32, Philox(8));
    Matrix<float> x(16, 64);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = Philox(1).uniform_float(i);
    Matrix<float> y = l.forward(x);
    l.backward(y);
    out.push_back(l.grad_weight());
  }
  set_thread_count(2);
  EXPECT_EQ(out[0], out[1]);
}
