// SPDX-License-Identifier: Apache-2.0
#include <cmath>
#include <cstdio>
#include <limits>

#include <sparsenm/optim/adam.hpp>
#include <sparsenm/optim/ste.hpp>

#include "optim/optim_test_utils.hpp"

namespace {

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
namespace t = sparsenm::test;

TEST(SrSte, GradientFormula) {
  const Matrix<double> G = t::uniform_matrix<double>(4, 8, 1);
  const Matrix<double> W = t::uniform_matrix<double>(4, 8, 2);
  const Mask M = t::random_nm_mask(4, 8, 2, 4, 3);
  const Matrix<double> out = sparsenm::srste_gradient(G, W, M, 1e-4);
  for (Index i = 0; i < 4; ++i)
    for (Index j = 0; j < 8; ++j)
      EXPECT_DOUBLE_EQ(out(i, j), G(i, j) + (M(i, j) ? 0.0 : 1e-4 * W(i, j)));
  const Matrix<float> f = sparsenm::srste_gradient(G.cast<float>(), W.cast<float>(), M, 0.5f);
  EXPECT_FLOAT_EQ(f(0, 0), float(G(0, 0)) + (M(0, 0) ? 0.0f : 0.5f * float(W(0, 0))));
  EXPECT_THROW(sparsenm::srste_gradient(G, W, M, -1.0), sparsenm::Error);
  EXPECT_THROW(sparsenm::srste_gradient(G, W.leftCols(4), M, 1.0), sparsenm::Error);
  Mask bad = M;
  bad(0, 0) = 3;
  EXPECT_THROW(sparsenm::srste_gradient(G, W, bad, 1.0), sparsenm::Error);
}

TEST(Ste, ForwardUsesMagnitudeMaskEachCall) {
  sparsenm::Ste<float> ste(3, 8, {{2, 4}, 0.0});
  Matrix<float> W = t::uniform_matrix<float>(3, 8, 4);
  for (int rep = 0; rep < 2; ++rep) {
    const Matrix<float>& F = ste.forward(W);
    for (Index r = 0; r < 3; ++r)
      for (Index g = 0; g < 2; ++g) {
        // brute force: the two largest |W| of the group are kept (distinct values here)
        for (int k = 0; k < 4; ++k) {
          int larger = 0;
          for (int q = 0; q < 4; ++q)
            larger += std::abs(W(r, g * 4 + q)) > std::abs(W(r, g * 4 + k));
          const bool keep = larger < 2;
          EXPECT_EQ(ste.mask()(r, g * 4 + k), keep ? 1 : 0);
          EXPECT_EQ(F(r, g * 4 + k), keep ? W(r, g * 4 + k) : 0.0f);
        }
      }
    W = t::uniform_matrix<float>(3, 8, 40 + rep);  // a different weight: the mask follows it
  }
  // plain STE: the latent weight gets the forward gradient unchanged
  const Matrix<float> G = t::uniform_matrix<float>(3, 8, 5);
  EXPECT_TRUE(ste.backward(G, W) == G);
  sparsenm::Ste<float> sr(3, 8, {{2, 4}, 1e-2});
  sr.forward(W);
  const Matrix<float> g2 = sr.backward(G, W);
  EXPECT_TRUE(g2 == sparsenm::srste_gradient(G, W, sr.mask(), 1e-2f));
  sparsenm::Ste<float> fresh(3, 8);
  EXPECT_THROW(fresh.backward(G, W), sparsenm::Error);
  EXPECT_THROW(sparsenm::Ste<float>(3, 6), sparsenm::Error);
}

TEST(Ste, TransposableLayout) {
  sparsenm::SteConfig cfg;
  cfg.layout = sparsenm::Layout::Transposable;
  sparsenm::Ste<float> ste(8, 8, cfg);
  const Matrix<float> W = t::uniform_matrix<float>(8, 8, 11);
  const Matrix<float>& F = ste.forward(W);
  EXPECT_TRUE(sparsenm::is_transposable_legal(ste.mask(), {2, 4}));
  EXPECT_TRUE(ste.mask() == sparsenm::project_transposable(W.cwiseAbs(), {2, 4}));
  for (Index i = 0; i < W.size(); ++i)
    EXPECT_EQ(F.data()[i], ste.mask().data()[i] ? W.data()[i] : 0.0f);
  EXPECT_THROW(sparsenm::Ste<float>(6, 8, cfg), sparsenm::Error);  // rows % m != 0
}

// STE / SR-STE + Adam on f(F) = 1/2 ||F - T||^2 of the masked forward F = W . m(W). Plain STE
// lowers the loss but keeps flipping (pruned latent weights get the constant gradient -T and grow
// until they displace a kept one); SR-STE's lambda_w W . (1 - m) term gives the pruned latent
// weights the fixed point T / lambda_w; with lambda_w = 1 every latent weight tends to T and the
// mask settles on the best 2:4 pattern of T.
TEST(Ste, SteAndSrSteWithAdamOnQuadratic) {
  const Index R = 8, C = 16;
  const Matrix<float> T = t::uniform_matrix<float>(R, C, 6);
  const Mask best = sparsenm::project_rowwise(T.cwiseAbs(), {2, 4});
  double lbest = 0;
  for (Index i = 0; i < T.size(); ++i)
    if (!best.data()[i]) lbest += 0.5 * double(T.data()[i]) * double(T.data()[i]);
  for (double lambda_w : {0.0, 1.0}) {
    sparsenm::Ste<float> ste(R, C, {{2, 4}, lambda_w});
    sparsenm::AdamConfig ac;
    ac.lr = 3e-2;
    sparsenm::Adam<float> adam(R, C, ac);
    Matrix<float> W = t::uniform_matrix<float>(R, C, 7);
    auto loss = [&](const Matrix<float>& F) {
      double l = 0;
      for (Index i = 0; i < F.size(); ++i)
        l += 0.5 * std::pow(double(F.data()[i] - T.data()[i]), 2);
      return l;
    };
    const double l0 = loss(ste.forward(W));
    for (int k = 0; k < 400; ++k) {
      if (k == 300) adam.set_lr(3e-3);
      const Matrix<float> F = ste.forward(W);
      adam.step(W, ste.backward(F - T, W));
    }
    const double l1 = loss(ste.forward(W));
    std::printf("[ STE ] lambda_w %.1f: loss %.4f -> %.4f (best 2:4 loss %.4f)\n", lambda_w, l0, l1,
                lbest);
    EXPECT_LT(l1, 0.5 * l0);
    if (lambda_w > 0) {
      EXPECT_TRUE(ste.mask() == best);
      EXPECT_LT(l1, lbest + 0.01 * l0);
    }
  }
}

}  // namespace
