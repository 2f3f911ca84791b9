// SPDX-License-Identifier: Apache-2.0
#include <cmath>
#include <limits>

#include <sparsenm/optim/adam.hpp>

#include "optim/optim_test_utils.hpp"

namespace {

using sparsenm::Adam;
using sparsenm::AdamConfig;
using sparsenm::AdamW;
using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
namespace t = sparsenm::test;
using t::LD;

/// Kingma & Ba Algorithm 1 (+ L2 or decoupled decay) in long double, per entry.
struct RefAdam {
  AdamConfig c;
  std::vector<LD> m, v;
  long t = 0;
  RefAdam(Index n, AdamConfig k)
      : c(k), m(static_cast<std::size_t>(n)), v(static_cast<std::size_t>(n)) {}
  void step(t::RefMat& W, const t::RefMat& G, const Mask* mask) {
    ++t;
    for (std::size_t i = 0; i < W.v.size(); ++i) {
      if (mask && !mask->data()[i]) continue;
      LD w = W.v[i];
      LD g = G.v[i];
      if (c.decoupled_weight_decay)
        w *= (1 - LD(c.lr) * LD(c.weight_decay));
      else
        g += LD(c.weight_decay) * W.v[i];
      m[i] = LD(c.beta1) * m[i] + (1 - LD(c.beta1)) * g;
      v[i] = LD(c.beta2) * v[i] + (1 - LD(c.beta2)) * g * g;
      const LD bc1 = c.bias_correction ? 1 - std::pow(LD(c.beta1), LD(t)) : 1;
      const LD bc2 = c.bias_correction ? 1 - std::pow(LD(c.beta2), LD(t)) : 1;
      const LD mhat = m[i] / bc1, vhat = v[i] / bc2;
      W.v[i] = w - LD(c.lr) * mhat / (std::sqrt(vhat) + LD(c.eps));
    }
  }
};

template <class S>
class AdamTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(AdamTyped, Scalars, ::testing::internal::DefaultNameGenerator);

TYPED_TEST(AdamTyped, MatchesScalarReference) {
  using S = TypeParam;
  for (int variant = 0; variant < 4; ++variant) {
    AdamConfig cfg;
    cfg.lr = 1e-2;
    cfg.weight_decay = variant == 0 ? 0.0 : 0.1;
    cfg.decoupled_weight_decay = variant >= 2;
    cfg.bias_correction = variant != 3;
    const bool masked = variant % 2 == 1;
    const Index R = 6, C = 12;
    Adam<S> opt(R, C, cfg);
    RefAdam ref(R * C, cfg);
    Matrix<S> W = t::uniform_matrix<S>(R, C, 1);
    const Matrix<S> W0 = W;
    t::RefMat Wr = t::to_ref(W);
    const Mask M = t::random_nm_mask(R, C, 1, 4, 2);
    for (int k = 0; k < 15; ++k) {
      const Matrix<S> G = t::uniform_matrix<S>(R, C, 30 + k);
      if (masked)
        opt.step(W, G, M);
      else
        opt.step(W, G);
      ref.step(Wr, t::to_ref(G), masked ? &M : nullptr);
    }
    const Eigen::MatrixXd dg = W.template cast<double>() - W0.template cast<double>();
    const Eigen::MatrixXd dr = t::to_double(Wr) - W0.template cast<double>();
    const double tol = std::is_same<S, float>::value ? 1e-5 : 1e-12;
    EXPECT_LT(t::max_rel_err(dg, dr), tol) << variant;
    if (masked) {
      for (Index i = 0; i < W.size(); ++i)
        if (!M.data()[i]) {
          EXPECT_EQ(W.data()[i], W0.data()[i]);
          EXPECT_EQ(opt.exp_avg().data()[i], S(0));
        }
    }
  }
}

TYPED_TEST(AdamTyped, AdamWIsDecoupled) {
  using S = TypeParam;
  AdamW<S> opt(3, 4);
  EXPECT_TRUE(opt.config().decoupled_weight_decay);
  EXPECT_DOUBLE_EQ(opt.config().weight_decay, 0.01);
  // Zero gradient: AdamW only decays (W <- (1 - lr wd) W); Adam with L2 would move by ~lr.
  Matrix<S> W = Matrix<S>::Constant(3, 4, S(2));
  opt.step(W, Matrix<S>::Zero(3, 4));
  EXPECT_NEAR(double(W(0, 0)), 2.0 * (1 - 1e-3 * 0.01), 1e-6);
}

TYPED_TEST(AdamTyped, MinimisesConvexQuadratic) {
  using S = TypeParam;
  const Index R = 8, C = 16;
  AdamConfig cfg;
  cfg.lr = 5e-2;
  Adam<S> opt(R, C, cfg);
  // f(W) = 1/2 sum d_ij (W - T)^2 with a spread of curvatures d in [0.5, 4].
  const Matrix<S> T = t::uniform_matrix<S>(R, C, 3);
  const Matrix<S> D = (t::uniform_matrix<S>(R, C, 4).array() * S(1.75) + S(2.25)).matrix();
  Matrix<S> W = Matrix<S>::Zero(R, C);
  auto loss = [&] {
    double l = 0;  // plain loop (Eigen's AVX-512 double redux trips a GCC 12 false warning)
    for (Index i = 0; i < W.size(); ++i)
      l += 0.5 * double(D.data()[i]) * std::pow(double(W.data()[i] - T.data()[i]), 2);
    return l;
  };
  const double l0 = loss();
  for (int k = 0; k < 600; ++k) {
    if (k == 400) opt.set_lr(5e-3);
    const Matrix<S> G = (D.array() * (W - T).array()).matrix();
    opt.step(W, G);
  }
  EXPECT_LT(loss(), 1e-4 * l0);
}

TEST(Adam, BadConfigsAndInputsThrow) {
  auto make = [](auto edit) {
    AdamConfig c;
    edit(c);
    return Adam<float>(2, 4, c);
  };
  EXPECT_THROW(make([](AdamConfig& c) { c.lr = -1; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamConfig& c) { c.lr = std::numeric_limits<double>::infinity(); }),
               sparsenm::Error);
  EXPECT_THROW(make([](AdamConfig& c) { c.beta1 = 1; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamConfig& c) { c.beta2 = 2; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamConfig& c) { c.eps = -1e-8; }), sparsenm::Error);
  EXPECT_THROW(make([](AdamConfig& c) { c.weight_decay = -0.1; }), sparsenm::Error);
  EXPECT_THROW(Adam<float>(2, 0), sparsenm::Error);
  Adam<float> opt(2, 4);
  Matrix<float> W = Matrix<float>::Zero(2, 4);
  EXPECT_THROW(opt.step(W, Matrix<float>::Zero(4, 2)), sparsenm::Error);
  EXPECT_THROW(opt.step(W, Matrix<float>::Zero(2, 4), Mask::Ones(2, 2)), sparsenm::Error);
  Matrix<float> G = Matrix<float>::Zero(2, 4);
  G(1, 3) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(opt.step(W, G), sparsenm::Error);
  EXPECT_EQ(opt.steps(), 0);
  EXPECT_TRUE((W.array() == 0.0f).all());
  AdamConfig skip;
  skip.nonfinite = sparsenm::NonFinitePolicy::SkipStep;
  Adam<float> sk(2, 4, skip);
  sk.step(W, G);
  EXPECT_EQ(sk.skipped_steps(), 1);
  EXPECT_EQ(sk.steps(), 0);
  EXPECT_TRUE((W.array() == 0.0f).all());
  EXPECT_TRUE((sk.exp_avg().array() == 0.0f).all());
}

TEST(Adam, ThreadCountDoesNotChangeResult) {
  auto run = [](int threads) {
    sparsenm::set_thread_count(threads);
    Adam<float> opt(64, 1536);  // 3 chunks
    Matrix<float> W = t::uniform_matrix<float>(64, 1536, 1);
    const Mask M = t::random_nm_mask(64, 1536, 2, 4, 2);
    for (int k = 0; k < 3; ++k) opt.step(W, t::uniform_matrix<float>(64, 1536, 5 + k), M);
    sparsenm::set_thread_count(2);
    return W;
  };
  EXPECT_TRUE(run(1) == run(2));
}

// AdamConfig::nm: the masked step rejects a mask that breaks N:M (naming row and group) and
// changes nothing; without nm any 0/1 mask is a freeze mask.
TEST(Adam, MaskThatBreaksNMThrowsWhenNmIsSet) {
  AdamConfig cfg;
  cfg.nm = {1, 4};
  Adam<float> opt(4, 8, cfg);
  Matrix<float> W = t::uniform_matrix<float>(4, 8, 3);
  const Matrix<float> W0 = W;
  const Matrix<float> G = t::uniform_matrix<float>(4, 8, 4);
  Mask M = t::random_nm_mask(4, 8, 1, 4, 5);
  M(3, 1) ^= 1;  // row 3, group 0 now has 0 or 2 ones
  try {
    opt.step(W, G, M);
    ADD_FAILURE() << "no throw";
  } catch (const sparsenm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 3 group 0"), std::string::npos) << e.what();
  }
  EXPECT_TRUE((W.array() == W0.array()).all());
  EXPECT_EQ(opt.steps(), 0);
  M(3, 1) ^= 1;
  EXPECT_NO_THROW(opt.step(W, G, M));
  EXPECT_EQ(opt.steps(), 1);
  Adam<float> loose(4, 8);
  M(3, 1) ^= 1;
  EXPECT_NO_THROW(loose.step(W, G, M));
  cfg.nm = {0, 4};
  EXPECT_THROW(Adam<float>(4, 8, cfg), sparsenm::Error);
}

}  // namespace
