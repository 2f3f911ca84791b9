// SPDX-License-Identifier: Apache-2.0
// CoMoLoRA: forward against the paper's formula written in plain scalar loops (chtsnm Sec. 3.3,
// App. D.5); every gradient against central finite differences in double; at init it equals plain
// LoRA exactly; gate-off mode is LoRA; shape errors throw.
#include <gtest/gtest.h>

#include <cmath>

#include <sparsenm/nn.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using sparsenm::CoMoLoRA;
using sparsenm::Index;
using sparsenm::Matrix;
using sparsenm::Philox;

template <class S>
Matrix<S> random_matrix(Index rows, Index cols, std::uint64_t seed, double scale = 1.0) {
  const Philox rng(seed);
  Matrix<S> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i)
    m.data()[i] = S(scale * (2 * rng.uniform(std::uint64_t(i)) - 1));
  return m;
}

/// Gives every parameter a non-trivial value (at init B, W2, b2 are zero).
template <class S>
void randomise(CoMoLoRA<S>& c, std::uint64_t seed) {
  std::uint64_t k = seed;
  for (Matrix<S>* p : c.parameters()) *p = random_matrix<S>(p->rows(), p->cols(), ++k, 0.7);
}

/// The formula, one token at a time, in scalar loops.
Matrix<double> reference(const CoMoLoRA<double>& c, const Matrix<double>& x) {
  const Index r = c.rank(), h = c.hidden();
  Matrix<double> out = Matrix<double>::Zero(x.rows(), c.out());
  for (Index t = 0; t < x.rows(); ++t) {
    std::vector<double> s(h), v(r);
    for (Index j = 0; j < h; ++j) {
      double u = c.b1()(0, j);
      for (Index i = 0; i < c.in(); ++i) u += c.W1()(j, i) * x(t, i);
      s[j] = u / (1 + std::exp(-u));
    }
    for (Index k = 0; k < r; ++k) {
      double z = 0, g = c.b2()(0, k);
      for (Index i = 0; i < c.in(); ++i) z += c.A()(k, i) * x(t, i);
      for (Index j = 0; j < h; ++j) g += c.W2()(k, j) * s[j];
      v[k] = (c.gate_enabled() ? 1 + c.gamma() * std::tanh(g) : 1.0) * z;
    }
    for (Index o = 0; o < c.out(); ++o)
      for (Index k = 0; k < r; ++k) out(t, o) += c.alpha() / double(r) * v[k] * c.B()(o, k);
  }
  return out;
}

TEST(CoMoLoRA, ForwardMatchesScalarFormula) {
  CoMoLoRA<double> c(12, 9, 7, 2, 0.5, 7.0, Philox(3));
  randomise(c, 10);
  const Matrix<double> x = random_matrix<double>(5, 12, 4);
  EXPECT_LT((c.forward(x) - reference(c, x)).cwiseAbs().maxCoeff(), 1e-13);
  c.set_gate_enabled(false);
  EXPECT_LT((c.forward(x) - reference(c, x)).cwiseAbs().maxCoeff(), 1e-13);
}

TEST(CoMoLoRA, CanonicalDefaultsAndInit) {
  CoMoLoRA<float> c(64, 32);
  EXPECT_EQ(c.rank(), 7);
  EXPECT_EQ(c.hidden(), 2);
  EXPECT_EQ(c.gamma(), 0.5f);
  EXPECT_EQ(c.scale(), 1.0f);
  EXPECT_TRUE(c.W2().isZero(0));
  EXPECT_TRUE(c.b2().isZero(0));
  EXPECT_TRUE(c.B().isZero(0));
  EXPECT_FALSE(c.A().isZero(0));
  EXPECT_LE(c.A().cwiseAbs().maxCoeff(), 1.0f / 8.0f);
  EXPECT_EQ(c.parameter_count(), 7 * 64 + 32 * 7 + 2 * 64 + 2 + 7 * 2 + 7);
}

TEST(CoMoLoRA, AtInitEqualsPlainLoRAExactly) {
  for (const std::uint64_t seed : {1u, 2u}) {
    CoMoLoRA<float> como(24, 16, 7, 2, 0.5f, 7.0f, Philox(seed));
    como.B() = random_matrix<float>(16, 7, seed + 5);  // B = 0 at init would make this trivial
    CoMoLoRA<float> lora = como;
    lora.set_gate_enabled(false);
    const Matrix<float> x = random_matrix<float>(11, 24, seed + 9);
    const Matrix<float> g = random_matrix<float>(11, 16, seed + 19);
    const Matrix<float> y1 = como.forward(x), y2 = lora.forward(x);
    EXPECT_TRUE(y1 == y2);
    EXPECT_TRUE(como.last_gate().isOnes(0));
    // Plain LoRA by its own formula: (α/r) x Aᵀ Bᵀ.
    const Matrix<float> plain = (x * como.A().transpose()) * como.B().transpose();
    EXPECT_LT((y1 - plain).cwiseAbs().maxCoeff(), 1e-5f);
    const Matrix<float> dx1 = como.backward(g), dx2 = lora.backward(g);
    EXPECT_TRUE(dx1 == dx2);
    EXPECT_TRUE(como.grad_A() == lora.grad_A());
    EXPECT_TRUE(como.grad_B() == lora.grad_B());
    // The gate's last layer does get a gradient, so training moves away from LoRA.
    EXPECT_FALSE(como.grad_W2().isZero(0));
    EXPECT_TRUE(lora.grad_W2().isZero(0));
  }
}

TEST(CoMoLoRA, GradientsMatchFiniteDifferences) {
  for (const bool gate : {true, false}) {
    SCOPED_TRACE(gate ? "gate on" : "gate off");
    CoMoLoRA<double> c(10, 6, 3, 2, 0.5, 4.0, Philox(11));
    randomise(c, 20);
    c.set_gate_enabled(gate);
    const Matrix<double> x = random_matrix<double>(4, 10, 30);
    const Matrix<double> r = random_matrix<double>(4, 6, 31);
    auto loss = [&](const Matrix<double>& xin) { return c.forward(xin).cwiseProduct(r).sum(); };
    c.forward(x);
    const Matrix<double> dx = c.backward(r);
    const auto params = c.parameters();
    const auto grads = c.gradients();
    std::vector<Matrix<double>> g;
    for (const Matrix<double>* p : grads) g.push_back(*p);
    const double h = 1e-6;
    double worst = 0;
    for (std::size_t p = 0; p < params.size(); ++p)
      for (Index i = 0; i < params[p]->size(); ++i) {
        double& w = params[p]->data()[i];
        const double w0 = w;
        w = w0 + h;
        const double lp = loss(x);
        w = w0 - h;
        const double lm = loss(x);
        w = w0;
        const double fd = (lp - lm) / (2 * h);
        const double err = std::abs(g[p].data()[i] - fd) / std::max(1.0, std::abs(fd));
        EXPECT_LT(err, 1e-6) << "parameter " << p << " entry " << i;
        worst = std::max(worst, err);
      }
    Matrix<double> xp = x;
    for (Index i = 0; i < x.size(); ++i) {
      const double x0 = xp.data()[i];
      xp.data()[i] = x0 + h;
      const double lp = loss(xp);
      xp.data()[i] = x0 - h;
      const double lm = loss(xp);
      xp.data()[i] = x0;
      const double fd = (lp - lm) / (2 * h);
      EXPECT_LT(std::abs(dx.data()[i] - fd) / std::max(1.0, std::abs(fd)), 1e-6) << i;
    }
    EXPECT_LT(worst, 1e-6);
  }
}

TEST(CoMoLoRA, ErrorsThrow) {
  EXPECT_THROW(CoMoLoRA<float>(0, 4), sparsenm::Error);
  EXPECT_THROW(CoMoLoRA<float>(4, 4, 0), sparsenm::Error);
  EXPECT_THROW(CoMoLoRA<float>(4, 4, 2, 0), sparsenm::Error);
  EXPECT_THROW(CoMoLoRA<float>(4, 4, 2, 2, -1.0f), sparsenm::Error);
  EXPECT_THROW(CoMoLoRA<float>(4, 4, 2, 2, 0.5f, std::numeric_limits<float>::infinity()),
               sparsenm::Error);
  CoMoLoRA<float> c(8, 4);
  EXPECT_THROW(c.backward(Matrix<float>::Zero(2, 4)), sparsenm::Error);
  EXPECT_THROW(c.forward(Matrix<float>::Zero(2, 7)), sparsenm::Error);
  c.forward(Matrix<float>::Zero(2, 8));
  EXPECT_THROW(c.backward(Matrix<float>::Zero(3, 4)), sparsenm::Error);
}

TEST(CoMoLoRA, NonFiniteInputsPropagate) {
  CoMoLoRA<float> c(8, 4);
  c.B().setOnes();
  Matrix<float> x = Matrix<float>::Ones(2, 8);
  x(1, 3) = std::numeric_limits<float>::infinity();
  const Matrix<float> y = c.forward(x);
  EXPECT_TRUE(y.row(0).allFinite());
  EXPECT_FALSE(y.row(1).allFinite());
}

}  // namespace
