// Softmax cross-entropy against closed forms and central finite differences; accuracy counting.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <sparsenm/core/philox.hpp>
#include <sparsenm/train/loss.hpp>

using namespace sparsenm;

TEST(Loss, UniformLogitsGiveLogClasses) {
  const Matrix<double> z = Matrix<double>::Constant(4, 10, 3.7);
  Matrix<double> g;
  const double l = softmax_cross_entropy(z, {0, 3, 9, 5}, &g);
  EXPECT_NEAR(l, std::log(10.0), 1e-12);
  EXPECT_NEAR(g(0, 0), (0.1 - 1.0) / 4, 1e-12);
  EXPECT_NEAR(g(0, 1), 0.1 / 4, 1e-12);
}

TEST(Loss, GradientMatchesFiniteDifferences) {
  const Philox rng(5);
  Matrix<double> z(3, 5);
  for (Index i = 0; i < z.size(); ++i) z.data()[i] = 6 * rng.uniform(i) - 3;
  const std::vector<int> y = {4, 0, 2};
  Matrix<double> g;
  softmax_cross_entropy(z, y, &g);
  const double h = 1e-6;
  for (Index i = 0; i < z.rows(); ++i)
    for (Index c = 0; c < z.cols(); ++c) {
      Matrix<double> zp = z, zm = z;
      zp(i, c) += h;
      zm(i, c) -= h;
      const double fd = (softmax_cross_entropy(zp, y) - softmax_cross_entropy(zm, y)) / (2 * h);
      EXPECT_NEAR(g(i, c), fd, 1e-8);
    }
}

TEST(Loss, LargeLogitsDoNotOverflow) {
  Matrix<float> z(1, 3);
  z << 1000.f, 0.f, -1000.f;
  Matrix<float> g;
  EXPECT_NEAR(softmax_cross_entropy(z, {0}, &g), 0.0f, 1e-6f);
  EXPECT_NEAR(softmax_cross_entropy(z, {1}), 1000.0f, 1e-3f);
  EXPECT_TRUE(g.allFinite());
  z(0, 1) = std::nanf("");
  EXPECT_TRUE(std::isnan(softmax_cross_entropy(z, {0})));  // documented: NaN in, NaN out
}

TEST(Loss, BadLabelsThrow) {
  const Matrix<float> z = Matrix<float>::Zero(2, 3);
  EXPECT_THROW(softmax_cross_entropy(z, {0, 3}), Error);
  EXPECT_THROW(softmax_cross_entropy(z, {0, -1}), Error);
  EXPECT_THROW(softmax_cross_entropy(z, {0}), Error);
  EXPECT_THROW(count_correct(z, {0}), Error);
}

TEST(Loss, ArgmaxAndAccuracy) {
  Matrix<float> z(3, 3);
  z << 0, 2, 1,  //
      5, 5, 1,   // tie -> first
      -1, -2, -3;
  EXPECT_EQ(argmax_rows(z), (std::vector<int>{1, 0, 0}));
  EXPECT_EQ(count_correct(z, {1, 1, 0}), 2);
}
