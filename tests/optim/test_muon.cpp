// SPDX-License-Identifier: Apache-2.0
#include <cmath>
#include <limits>

#include <sparsenm/optim/muon.hpp>

#include "optim/optim_test_utils.hpp"

namespace {

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::Muon;
using sparsenm::MuonConfig;
namespace t = sparsenm::test;
using t::LD;

// docs/algorithms.md "Muon (baseline)" in long double with the reference Newton-Schulz.
TEST(Muon, MatchesScalarReference) {
  for (const auto& sh : {std::pair<Index, Index>{8, 20}, {20, 8}})
    for (bool nesterov : {true, false})
      for (bool masked : {false, true}) {
        const Index R = sh.first, C = sh.second;
        MuonConfig cfg;
        cfg.nesterov = nesterov;
        cfg.weight_decay = 0.5;
        Muon<double> opt(R, C, cfg);
        Matrix<double> W = t::uniform_matrix<double>(R, C, 1);
        t::RefMat Wr = t::to_ref(W), Mr(R, C);
        const Mask M = t::random_nm_mask(R, C, 2, 4, 3);
        for (int k = 0; k < 6; ++k) {
          const Matrix<double> G = t::uniform_matrix<double>(R, C, 10 + k);
          if (masked)
            opt.step(W, G, M);
          else
            opt.step(W, G);
          t::RefMat U(R, C);
          for (std::size_t i = 0; i < U.v.size(); ++i) {
            const bool on = !masked || M.data()[i];
            const LD g = on ? LD(G.data()[i]) : 0;
            Mr.v[i] = 0.95L * Mr.v[i] + 0.05L * g;
            U.v[i] = on ? (nesterov ? 0.05L * g + 0.95L * Mr.v[i] : Mr.v[i]) : 0;
          }
          const t::RefMat O = t::ref_newton_schulz(U, 5, sparsenm::NsCoefficients::Muon);
          const LD lr = 0.02L * std::sqrt(std::max(LD(1), LD(R) / LD(C)));
          for (std::size_t i = 0; i < U.v.size(); ++i)
            if (!masked || M.data()[i]) Wr.v[i] = (1 - 0.02L * 0.5L) * Wr.v[i] - lr * O.v[i];
        }
        EXPECT_LT(t::max_rel_err(W, t::to_double(Wr)), 1e-11);
      }
}

TEST(Muon, MinimisesConvexQuadraticAndFreezesMasked) {
  const Index R = 16, C = 32;
  MuonConfig cfg;
  cfg.lr = 0.05;
  Muon<float> opt(R, C, cfg);
  const Matrix<float> T = t::uniform_matrix<float>(R, C, 3);
  Matrix<float> W = Matrix<float>::Zero(R, C);
  const Mask M = t::random_nm_mask(R, C, 2, 4, 4);
  auto loss = [&] {
    double l = 0;
    for (Index i = 0; i < W.size(); ++i)
      if (M.data()[i]) l += 0.5 * std::pow(double(W.data()[i] - T.data()[i]), 2);
    return l;
  };
  const double l0 = loss();
  for (int k = 0; k < 300; ++k) {
    if (k == 150) opt.set_lr(0.01);
    if (k == 250) opt.set_lr(0.002);
    opt.step(W, W - T, M);
  }
  EXPECT_LT(loss(), 1e-2 * l0);
  for (Index i = 0; i < W.size(); ++i)
    if (!M.data()[i]) {
      EXPECT_EQ(W.data()[i], 0.0f);
    }
}

TEST(Muon, BadConfigsThrow) {
  MuonConfig c;
  c.momentum = 1.0;
  EXPECT_THROW(Muon<float>(2, 2, c), sparsenm::Error);
  c = MuonConfig{};
  c.lr = 0;
  EXPECT_THROW(Muon<float>(2, 2, c), sparsenm::Error);
  c = MuonConfig{};
  c.ns_steps = -2;
  EXPECT_THROW(Muon<float>(2, 2, c), sparsenm::Error);
  Muon<float> opt(2, 4);
  Matrix<float> W = Matrix<float>::Zero(2, 4);
  Matrix<float> G = Matrix<float>::Ones(2, 4);
  G(0, 0) = -std::numeric_limits<float>::infinity();
  EXPECT_THROW(opt.step(W, G), sparsenm::Error);
  EXPECT_TRUE((W.array() == 0.0f).all());
}

}  // namespace
