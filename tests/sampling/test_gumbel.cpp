// SPDX-License-Identifier: Apache-2.0
// GCC 12 -Wmaybe-uninitialized false positives inside Eigen's AVX-512 reductions (isApprox,
// maxCoeff).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cmath>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/sampling.hpp>

using namespace sparsenm;

TEST(GumbelTopK, InclusionMatchesSamplingWithoutReplacement) {
  // 5-element example, k = 2: exact inclusion probabilities by enumerating ordered draws.
  Eigen::VectorXd logits(5);
  logits << 0.1, -1.2, 0.7, 1.5, -0.3;
  std::vector<double> q(5);
  double z = 0;
  for (int i = 0; i < 5; ++i) z += (q[std::size_t(i)] = std::exp(logits(i)));
  for (double& v : q) v /= z;
  std::vector<double> inc(5, 0.0), first(5, 0.0);
  for (int i = 0; i < 5; ++i) {
    first[std::size_t(i)] = q[std::size_t(i)];
    for (int j = 0; j < 5; ++j)
      if (i != j) {
        const double pij = q[std::size_t(i)] * q[std::size_t(j)] / (1 - q[std::size_t(i)]);
        inc[std::size_t(i)] += pij;
        inc[std::size_t(j)] += pij;
      }
  }
  const int trials = 20000;
  std::vector<double> cnt(5, 0.0), cnt_first(5, 0.0);
  for (int t = 0; t < trials; ++t) {
    const auto idx = gumbel_topk(logits, 2, Philox(77).split(std::uint64_t(t)));
    ASSERT_EQ(idx.size(), 2u);
    ASSERT_NE(idx[0], idx[1]);
    cnt[std::size_t(idx[0])] += 1;
    cnt[std::size_t(idx[1])] += 1;
    cnt_first[std::size_t(idx[0])] += 1;
  }
  for (int i = 0; i < 5; ++i) {
    const double p = inc[std::size_t(i)], sd = std::sqrt(p * (1 - p) / trials);
    EXPECT_NEAR(cnt[std::size_t(i)] / trials, p, 4.5 * sd) << i;
    const double f = first[std::size_t(i)], sdf = std::sqrt(f * (1 - f) / trials);
    EXPECT_NEAR(cnt_first[std::size_t(i)] / trials, f, 4.5 * sdf) << i;
  }
}

TEST(GumbelTopK, OrderAndIndexingAndEdgeCases) {
  Matrix<double> l(2, 3);
  l << 0, 1, 2, 3, 4, 5;
  const Philox rng(1);
  const auto all = gumbel_topk(l, 6, rng);
  ASSERT_EQ(all.size(), 6u);
  // decreasing perturbed values, computed independently
  std::vector<double> key(6);
  for (Index k = 0; k < 6; ++k)
    key[std::size_t(k)] = l(k / 3, k % 3) - std::log(-std::log(rng.uniform(std::uint64_t(k))));
  for (std::size_t t = 1; t < all.size(); ++t)
    EXPECT_GE(key[std::size_t(all[t - 1])], key[std::size_t(all[t])]);
  EXPECT_TRUE(gumbel_topk(l, 0, rng).empty());
  // -Inf logits come last
  Eigen::VectorXf v(4);
  v << -std::numeric_limits<float>::infinity(), 0.f, -std::numeric_limits<float>::infinity(), 1.f;
  const auto r = gumbel_topk(v, 4, rng);
  EXPECT_TRUE((r[0] == 1 || r[0] == 3) && (r[1] == 1 || r[1] == 3));
  EXPECT_EQ(r[2], 0);  // ties between -Inf go to the lower index
  EXPECT_EQ(r[3], 2);
}

TEST(GumbelTopK, BadInputsThrow) {
  Eigen::VectorXd v = Eigen::VectorXd::Zero(4);
  EXPECT_THROW((void)gumbel_topk(v, 5, Philox(0)), Error);
  EXPECT_THROW((void)gumbel_topk(v, -1, Philox(0)), Error);
  v(2) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW((void)gumbel_topk(v, 1, Philox(0)), Error);
  v(2) = std::numeric_limits<double>::infinity();
  EXPECT_THROW((void)gumbel_topk(v, 1, Philox(0)), Error);
}
