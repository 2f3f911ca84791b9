// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <sparsenm/optim/adams.hpp>

#include "optim/optim_test_utils.hpp"

namespace {

using sparsenm::AdamS;
using sparsenm::AdamSConfig;
using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
namespace t = sparsenm::test;
using t::LD;

// A worked example of docs/algorithms.md "AdamS and weight scaling", reproduced to the printed
// digits.
template <class S>
void worked_example(double tol) {
  AdamSConfig c;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.eps = 1e-8;
  c.lr = 1e-3;
  c.lambda = 0.004;
  c.total_steps = 4;
  c.scaling_groups = 0;
  AdamS<S> opt(1, 4, c);
  Matrix<S> W = Matrix<S>::Constant(1, 4, S(0.01));
  const Matrix<S> G = Matrix<S>::Constant(1, 4, S(0.002));
  const double kept[3] = {5.0e-7, -0.006585000, -0.011593135};
  const double pruned[3] = {5.0e-7, -0.007352349, -0.002246215};
  for (int k = 0; k < 3; ++k) {
    opt.step(W, G);
    // All four magnitudes tie at step 1: ties go to the lower index, so columns 0, 1 are kept.
    ASSERT_EQ(opt.mask()(0, 0), 1);
    ASSERT_EQ(opt.mask()(0, 1), 1);
    ASSERT_EQ(opt.mask()(0, 2), 0);
    ASSERT_EQ(opt.mask()(0, 3), 0);
    EXPECT_NEAR(double(W(0, 0)), kept[k], tol) << "step " << k + 1;
    EXPECT_NEAR(double(W(0, 1)), kept[k], tol) << "step " << k + 1;
    EXPECT_NEAR(double(W(0, 2)), pruned[k], tol) << "step " << k + 1;
    EXPECT_NEAR(double(W(0, 3)), pruned[k], tol) << "step " << k + 1;
  }
}

TEST(AdamS, WorkedExampleDouble) { worked_example<double>(6e-10); }
TEST(AdamS, WorkedExampleFloat) { worked_example<float>(2e-8); }

/// Independent magnitude top-n per group (ties to the lower index) by sorting indices.
Mask ref_topn(const t::RefMat& s, int n, int m) {
  Mask out = Mask::Zero(s.rows, s.cols);
  for (Index r = 0; r < s.rows; ++r)
    for (Index g = 0; g < s.cols / m; ++g) {
      std::vector<int> idx(static_cast<std::size_t>(m));
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int a, int b) { return s(r, g * m + a) > s(r, g * m + b); });
      for (int k = 0; k < n; ++k) out(r, g * m + idx[static_cast<std::size_t>(k)]) = 1;
    }
  return out;
}

/// CAST Algorithm 1 (as docs/algorithms.md states it) with the learnable scaling, in long double.
struct RefAdamS {
  AdamSConfig c;
  Index R, C;
  t::RefMat mu, v, A, Am, Av;
  Mask mask;
  long t = 0;
  RefAdamS(Index r, Index cc, AdamSConfig k)
      : c(k),
        R(r),
        C(cc),
        mu(r, cc),
        v(r, cc),
        A(r, k.scaling_groups),
        Am(r, k.scaling_groups),
        Av(r, k.scaling_groups) {
    for (LD& a : A.v) a = 1;
  }
  LD scale(Index r, Index j) const { return A(r, j / (C / c.scaling_groups)); }
  void step(t::RefMat& th, const t::RefMat& gW) {
    if (t % c.mask_interval == 0) {
      t::RefMat s(R, C);
      for (Index r = 0; r < R; ++r)
        for (Index j = 0; j < C; ++j) s(r, j) = std::fabs(th(r, j) * scale(r, j));
      mask = ref_topn(s, c.nm.n, c.nm.m);
    }
    const LD alpha = std::min(LD(1), LD(t) / LD(c.total_steps));
    ++t;
    const LD b1 = c.beta1, b2 = c.beta2;
    t::RefMat gA(R, c.scaling_groups);
    for (Index r = 0; r < R; ++r)
      for (Index j = 0; j < C; ++j) {
        gA(r, j / (C / c.scaling_groups)) += gW(r, j) * th(r, j);  // dL/dA
        const LD g = gW(r, j) * scale(r, j);                       // dL/dTheta
        mu(r, j) = b1 * mu(r, j) + (1 - b1) * g;
        const LD sg = th(r, j) > 0 ? 1 : (th(r, j) < 0 ? -1 : 0);
        const LD mt = mask(r, j) ? mu(r, j) : (1 - alpha) * mu(r, j) + alpha * LD(c.lambda) * sg;
        v(r, j) = b2 * v(r, j) + (1 - b2) * mt * mt;
        th(r, j) -= LD(c.lr) * (mt / (1 - std::pow(b1, LD(t)))) /
                    (std::sqrt(v(r, j) / (1 - std::pow(b2, LD(t)))) + LD(c.eps));
      }
    for (std::size_t i = 0; i < A.v.size(); ++i) {
      Am.v[i] = b1 * Am.v[i] + (1 - b1) * gA.v[i];
      Av.v[i] = b2 * Av.v[i] + (1 - b2) * gA.v[i] * gA.v[i];
      A.v[i] -= LD(c.scaling_lr) * (Am.v[i] / (1 - std::pow(b1, LD(t)))) /
                (std::sqrt(Av.v[i] / (1 - std::pow(b2, LD(t)))) + LD(c.eps));
    }
  }
};

// 25 steps (mask recomputed at steps 1, 11, 21) with scaling on, against the transcription.
TEST(AdamS, MatchesScalarTranscriptionWithScaling) {
  const Index R = 4, C = 16;
  AdamSConfig cfg;
  cfg.lr = 1e-2;
  cfg.lambda = 0.05;
  cfg.total_steps = 20;
  cfg.scaling_groups = 2;
  cfg.scaling_lr = 1e-2;
  AdamS<double> opt(R, C, cfg);
  RefAdamS ref(R, C, cfg);
  Matrix<double> W = t::uniform_matrix<double>(R, C, 1);
  t::RefMat Wr = t::to_ref(W);
  const Matrix<double> T = t::uniform_matrix<double>(R, C, 2);
  for (int k = 0; k < 25; ++k) {
    const Matrix<double> gW = opt.scaled_weight(W) - T;  // L = 1/2 ||Theta . A - T||^2
    opt.step(W, gW);
    ref.step(Wr, t::to_ref(gW));
    ASSERT_TRUE(opt.mask() == ref.mask) << "step " << k;
  }
  EXPECT_LT(t::max_rel_err(W, t::to_double(Wr)), 1e-11);
  EXPECT_LT(t::max_rel_err(opt.scaling(), t::to_double(ref.A)), 1e-11);
  EXPECT_TRUE((opt.scaling().array() != 1.0).all());
}

// dL/dA against central finite differences of L(A) = 1/2 sum c (Theta . A - T)^2.
TEST(AdamS, ScalingGradientMatchesFiniteDifferences) {
  const Index R = 3, C = 8;
  AdamSConfig cfg;
  cfg.scaling_groups = 2;
  cfg.scaling_lr = 0.05;
  AdamS<double> opt(R, C, cfg);
  Matrix<double> W = t::uniform_matrix<double>(R, C, 5);
  const Matrix<double> T = t::uniform_matrix<double>(R, C, 6);
  const Matrix<double> Cw = (t::uniform_matrix<double>(R, C, 7).array() + 2.0).matrix();
  for (int k = 0; k < 3; ++k) {
    const Matrix<double> A = opt.scaling();
    const Matrix<double> th = W;
    auto L = [&](const Matrix<double>& a) {
      double l = 0;
      for (Index r = 0; r < R; ++r)
        for (Index j = 0; j < C; ++j)
          l += 0.5 * Cw(r, j) * std::pow(th(r, j) * a(r, j / (C / 2)) - T(r, j), 2);
      return l;
    };
    const Matrix<double> gW = (Cw.array() * (opt.scaled_weight(W) - T).array()).matrix();
    opt.step(W, gW);
    for (Index r = 0; r < R; ++r)
      for (Index b = 0; b < 2; ++b) {
        Matrix<double> ap = A, am = A;
        ap(r, b) += 1e-5;
        am(r, b) -= 1e-5;
        EXPECT_NEAR(opt.scaling_gradient()(r, b), (L(ap) - L(am)) / 2e-5, 1e-7);
      }
  }
}

// Quadratic with a clear N:M structure in the optimum: pruned weights decay to ~0 while the kept
// ones converge to the target; finalize() returns the legal mask of the large entries.
TEST(AdamS, PrunedDecayToZeroKeptConverge) {
  for (int groups : {0, 2}) {
    const Index R = 4, C = 16;
    Matrix<double> T(R, C);
    Mask big = Mask::Zero(R, C);
    const sparsenm::Philox rng(3);
    for (Index r = 0; r < R; ++r)
      for (Index g = 0; g < C / 4; ++g) {
        const int a = int(rng.bits(std::uint64_t(r * 64 + g)) % 4);
        const int b = (a + 1 + int(rng.bits(std::uint64_t(r * 64 + g + 1000)) % 3)) % 4;
        for (int k = 0; k < 4; ++k) {
          const double u = rng.uniform(std::uint64_t(5000 + r * C + g * 4 + k));
          const bool is_big = k == a || k == b;
          T(r, g * 4 + k) = (is_big ? 0.5 + 0.5 * u : 0.05 + 0.1 * u) * (u < 0.5 ? -1 : 1);
          big(r, g * 4 + k) = is_big;
        }
      }
    AdamSConfig cfg;
    cfg.lr = 1e-2;
    cfg.lambda = 0.01;
    cfg.total_steps = 300;
    cfg.scaling_groups = groups;
    AdamS<double> opt(R, C, cfg);
    Matrix<double> W = T + 0.1 * t::uniform_matrix<double>(R, C, 9);
    for (int k = 0; k < 500; ++k) {
      if (k == 400) opt.set_lr(1e-3);
      const Matrix<double> gW = opt.scaled_weight(W) - T;
      opt.step(W, gW);
    }
    EXPECT_TRUE(opt.mask() == big);
    const Matrix<double> Wf = opt.scaled_weight(W);
    double worst_pruned = 0, worst_kept = 0;
    for (Index i = 0; i < W.size(); ++i) {
      if (big.data()[i])
        worst_kept = std::max(worst_kept, std::abs(Wf.data()[i] - T.data()[i]));
      else
        worst_pruned = std::max(worst_pruned, std::abs(Wf.data()[i]));
    }
    EXPECT_LT(worst_pruned, 5e-3) << groups;  // from |T| >= 0.05
    EXPECT_LT(worst_kept, 2e-2) << groups;
    const Mask final_mask = opt.finalize(W);
    EXPECT_TRUE(final_mask == big);
    EXPECT_TRUE(sparsenm::is_rowwise_legal(final_mask, {2, 4}));
    for (Index i = 0; i < W.size(); ++i) {
      if (big.data()[i])
        EXPECT_DOUBLE_EQ(W.data()[i], Wf.data()[i]);
      else
        EXPECT_EQ(W.data()[i], 0.0);
    }
    EXPECT_TRUE((opt.scaling().array() == 1.0).all());
  }
}

TEST(AdamS, FoldScalingKeepsForwardWeight) {
  AdamSConfig cfg;
  cfg.scaling_lr = 0.1;
  AdamS<float> opt(2, 8, cfg);
  Matrix<float> W = t::uniform_matrix<float>(2, 8, 1);
  for (int k = 0; k < 3; ++k) opt.step(W, t::uniform_matrix<float>(2, 8, 2 + k));
  const Matrix<float> before = opt.scaled_weight(W);
  opt.fold_scaling(W);
  EXPECT_TRUE(W == before);
  EXPECT_TRUE(opt.scaled_weight(W) == before);
}

TEST(AdamS, BadConfigsThrow) {
  auto make = [](auto edit, Index cols = 8) {
    AdamSConfig c;
    edit(c);
    return AdamS<float>(2, cols, c);
  };
  EXPECT_THROW(make([](AdamSConfig& c) { c.lambda = -1; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamSConfig& c) { c.total_steps = 0; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamSConfig& c) { c.mask_interval = 0; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamSConfig& c) { c.nm = {5, 4}; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamSConfig& c) { c.scaling_groups = 3; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamSConfig& c) { c.lr = std::nan(""); }), sparsenm::Error);
  EXPECT_THROW(make([](AdamSConfig&) {}, 6), sparsenm::Error);  // cols % m != 0
  AdamS<float> opt(2, 8);
  Matrix<float> W = Matrix<float>::Ones(2, 8);
  Matrix<float> G = Matrix<float>::Ones(2, 8);
  G(1, 7) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(opt.step(W, G), sparsenm::Error);
  EXPECT_TRUE((W.array() == 1.0f).all());
  EXPECT_EQ(opt.steps(), 0);
}

TEST(AdamS, ThreadCountDoesNotChangeResult) {
  auto run = [](int threads) {
    sparsenm::set_thread_count(threads);
    AdamS<float> opt(64, 256);
    Matrix<float> W = t::uniform_matrix<float>(64, 256, 1);
    for (int k = 0; k < 12; ++k) opt.step(W, t::uniform_matrix<float>(64, 256, 5 + k));
    sparsenm::set_thread_count(2);
    return Matrix<float>(opt.scaled_weight(W));
  };
  EXPECT_TRUE(run(1) == run(2));
}

}  // namespace
