// CAST's distillation loss against its definition and central finite differences; the warm-up +
// cosine schedule against its closed form.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <sparsenm/core/philox.hpp>
#include <sparsenm/train/distill.hpp>
#include <sparsenm/train/loss.hpp>
#include <sparsenm/train/schedule.hpp>

using namespace sparsenm;

namespace {
Matrix<double> logits(std::uint64_t seed) {
  const Philox rng(seed);
  Matrix<double> z(3, 5);
  for (Index i = 0; i < z.size(); ++i) z.data()[i] = 6 * rng.uniform(i) - 3;
  return z;
}
}  // namespace

TEST(Distill, MatchesDefinitionAndFiniteDifferences) {
  Matrix<double> s = logits(1);
  const Matrix<double> t = logits(2);
  const std::vector<int> y = {4, 0, 2};
  for (double temp : {1.0, 2.0}) {
    const double eta = 0.7;
    Matrix<double> g;
    const DistillLoss l = distillation_loss(s, t, y, eta, &g, temp);
    // Plain definition: CE + eta T² Σ p_t (log p_t − log p_s), softmax at temperature T.
    double kl = 0;
    for (Index i = 0; i < 3; ++i) {
      const Eigen::VectorXd pt = (t.row(i).transpose() / temp).array().exp();
      const Eigen::VectorXd ps = (s.row(i).transpose() / temp).array().exp();
      for (Index c = 0; c < 5; ++c) {
        const double a = pt(c) / pt.sum(), b = ps(c) / ps.sum();
        kl += a * std::log(a / b) / 3;
      }
    }
    EXPECT_NEAR(l.kl, kl, 1e-12);
    EXPECT_NEAR(l.ce, softmax_cross_entropy(s, y), 1e-12);
    EXPECT_NEAR(l.total, l.ce + eta * temp * temp * kl, 1e-12);
    const double h = 1e-6;
    for (Index i = 0; i < s.size(); ++i) {
      const double saved = s.data()[i];
      s.data()[i] = saved + h;
      const double lp = distillation_loss(s, t, y, eta, nullptr, temp).total;
      s.data()[i] = saved - h;
      const double lm = distillation_loss(s, t, y, eta, nullptr, temp).total;
      s.data()[i] = saved;
      EXPECT_NEAR(g.data()[i], (lp - lm) / (2 * h), 1e-8);
    }
  }
  // Student = teacher: the KL part vanishes.
  EXPECT_NEAR(distillation_loss(s, Matrix<double>(s), y, 1.0).kl, 0.0, 1e-14);
  EXPECT_THROW(distillation_loss(s, t, y, -1.0), Error);
  EXPECT_THROW(distillation_loss(s, t, y, 1.0, nullptr, 0.0), Error);
  EXPECT_THROW(distillation_loss(s, t, {0, 1}, 1.0), Error);
  EXPECT_THROW(distillation_loss(s, t, {0, 1, 5}, 1.0), Error);
  EXPECT_THROW(distillation_loss(s, Matrix<double>(3, 4), y, 1.0), Error);
}

TEST(Schedule, WarmupCosineClosedForm) {
  WarmupCosine s{2e-3, 10, 110, 0.1};
  s.validate();
  EXPECT_DOUBLE_EQ(s(1), 2e-4);
  EXPECT_DOUBLE_EQ(s(10), 2e-3);
  EXPECT_NEAR(s(60), 2e-3 * (0.1 + 0.9 * 0.5), 1e-15);  // half-way: cos = 0
  EXPECT_NEAR(s(110), 2e-4, 1e-15);
  EXPECT_NEAR(s(500), 2e-4, 1e-15);  // clamped
  for (long k = 11; k < 110; ++k) EXPECT_LE(s(k + 1), s(k));
  EXPECT_THROW((WarmupCosine{2e-3, 200, 110, 0.1}.validate()), Error);
  EXPECT_THROW((WarmupCosine{0.0, 0, 110, 0.1}.validate()), Error);
  EXPECT_THROW((WarmupCosine{1e-3, 0, 110, 1.5}.validate()), Error);
}
