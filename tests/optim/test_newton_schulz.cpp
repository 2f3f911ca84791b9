// SPDX-License-Identifier: Apache-2.0
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <sparsenm/optim/newton_schulz.hpp>

#include "optim/optim_test_utils.hpp"

namespace {

using sparsenm::Index;
using sparsenm::Matrix;
using sparsenm::NsCoefficients;
namespace t = sparsenm::test;

template <class S>
class NewtonSchulzTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(NewtonSchulzTyped, Scalars, ::testing::internal::DefaultNameGenerator);

// The polynomial iteration against a long-double transcription of chtsnm Sec. 3.2 / App. C
// (explicit transpose for tall matrices, explicit normalisation, three plain products per step).
TYPED_TEST(NewtonSchulzTyped, MatchesLongDoubleReference) {
  using S = TypeParam;
  const Index shapes[][2] = {{16, 16}, {24, 40}, {40, 24}, {1, 7},  {7, 1},
                             {48, 64}, {33, 5},  {12, 90}, {90, 12}};
  for (const auto& sh : shapes)
    for (NsCoefficients c : {NsCoefficients::TansTableA4, NsCoefficients::Muon})
      for (int steps : {0, 1, 5, 6}) {
        const Matrix<S> x = t::gaussian_matrix<S>(sh[0], sh[1], 11 + sh[0] * 3 + sh[1]);
        const Matrix<S> got = sparsenm::newton_schulz(x, steps, c);
        const Eigen::MatrixXd ref = t::to_double(t::ref_newton_schulz(t::to_ref(x), steps, c));
        ASSERT_EQ(got.rows(), sh[0]);
        ASSERT_EQ(got.cols(), sh[1]);
        EXPECT_LT(t::max_rel_err(got, ref), t::Tol<S>::ns)
            << sh[0] << "x" << sh[1] << " steps " << steps << " coeffs " << int(c);
      }
}

// Shapes large enough for the blocking of the products (several k-blocks, m-blocks and column
// panels per thread; square and Gram routes, wide and tall). Reference: the same iteration in
// double through Eigen's plain products (explicit transpose for tall inputs, three products a
// step).
TYPED_TEST(NewtonSchulzTyped, BlockedShapesMatchDoubleReference) {
  using S = TypeParam;
  const Index shapes[][2] = {{300, 530}, {530, 300}, {130, 600}, {600, 130}};
  for (const auto& sh : shapes) {
    const Matrix<S> x = t::gaussian_matrix<S>(sh[0], sh[1], 5 + sh[0]);
    const Matrix<S> got = sparsenm::newton_schulz(x);
    const bool tall = sh[0] > sh[1];
    Eigen::MatrixXd X = x.template cast<double>();
    if (tall) X.transposeInPlace();
    X /= X.norm() + sparsenm::kNsNormEps;
    for (int k = 0; k < 5; ++k) {
      const auto tr = sparsenm::ns_coefficients(NsCoefficients::TansTableA4, k);
      const Eigen::MatrixXd A = X * X.transpose();
      const Eigen::MatrixXd B = tr.b * A + tr.c * (A * A);
      X = (tr.a * X + B * X).eval();
    }
    if (tall) X.transposeInPlace();
    EXPECT_LT(t::max_rel_err(got, X), t::Tol<S>::ns) << sh[0] << "x" << sh[1];
  }
}

TYPED_TEST(NewtonSchulzTyped, ZeroMatrixGivesZeros) {
  using S = TypeParam;
  const Matrix<S> z = Matrix<S>::Zero(12, 20);
  const Matrix<S> o = sparsenm::newton_schulz(z);
  EXPECT_EQ(o.rows(), 12);
  EXPECT_TRUE((o.array() == S(0)).all());
}

TYPED_TEST(NewtonSchulzTyped, TransposeCommutes) {
  using S = TypeParam;
  const Matrix<S> x = t::gaussian_matrix<S>(24, 56, 5);
  const Matrix<S> a = sparsenm::newton_schulz(x);
  const Matrix<S> xt = x.transpose();
  const Matrix<S> b = sparsenm::newton_schulz(xt);
  EXPECT_LT(t::max_rel_err(b.transpose(), a), t::Tol<S>::ns);
}

// Each singular value s of X0 = x / ||x||_F maps to f(s) = p_5(...p_1(s)) with the scalar
// polynomials p_k(s) = a s + b s^3 + c s^5; the singular vectors are kept. Checks every output
// singular value against f of the matching input one (computed in double by the scalar map), and
// that all of them lie in the band [min f, max f] over [s_min, 1] (reported).
TEST(NewtonSchulz, SingularValuesFollowScalarPolynomialAndBand) {
  for (NsCoefficients c : {NsCoefficients::TansTableA4, NsCoefficients::Muon}) {
    for (const auto& sh : {std::pair<Index, Index>{48, 112}, {112, 48}}) {
      const Matrix<float> x = t::gaussian_matrix<float>(sh.first, sh.second, 42 + sh.first);
      t::RefMat xr = t::to_ref(x);
      t::LD nrm = 0;
      for (t::LD e : xr.v) nrm += e * e;
      for (t::LD& e : xr.v) e /= std::sqrt(nrm);
      const std::vector<double> sin = t::singular_values(xr);
      auto f = [&](double s) {
        for (int k = 0; k < 5; ++k) {
          const auto tr = sparsenm::ns_coefficients(c, k);
          s = tr.a * s + tr.b * s * s * s + tr.c * s * s * s * s * s;
        }
        return s;
      };
      const Matrix<float> o = sparsenm::newton_schulz(x, 5, c);
      const std::vector<double> sout = t::singular_values(t::to_ref(o));
      std::vector<double> pred;
      for (double s : sin) pred.push_back(f(s));
      std::sort(pred.begin(), pred.end(), std::greater<double>());
      double lo = 1e9, hi = -1e9;
      const double smin = sin.back();
      for (int i = 0; i <= 20000; ++i) {
        const double v = f(smin + (1.0 - smin) * i / 20000.0);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      for (std::size_t i = 0; i < sout.size(); ++i) {
        EXPECT_NEAR(sout[i], pred[i], 2e-4) << i;
        EXPECT_GE(sout[i], lo - 1e-4);
        EXPECT_LE(sout[i], hi + 1e-4);
      }
      std::printf(
          "[ NS band ] %s %ldx%ld: input s/||x||_F in [%.4f, %.4f] -> output singular values "
          "in [%.4f, %.4f], scalar band [%.4f, %.4f]\n",
          c == NsCoefficients::Muon ? "Muon" : "TableA4", long(sh.first), long(sh.second), smin,
          sin.front(), sout.back(), sout.front(), lo, hi);
      if (c == NsCoefficients::TansTableA4) {
        // Table A4 maps every normalised singular value in [0.01, 1] into [0.9777, 1.0318].
        EXPECT_GT(smin, 0.01);
        EXPECT_GT(sout.back(), 0.977);
        EXPECT_LT(sout.front(), 1.032);
      }
    }
  }
}

TEST(NewtonSchulz, BadInputThrows) {
  Matrix<float> x = t::gaussian_matrix<float>(4, 8, 1);
  EXPECT_THROW(sparsenm::newton_schulz(x, -1), sparsenm::Error);
  EXPECT_THROW(sparsenm::newton_schulz(x, 1001), sparsenm::Error);
  x(1, 2) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(sparsenm::newton_schulz(x), sparsenm::Error);
  x(1, 2) = std::numeric_limits<float>::infinity();
  EXPECT_THROW(sparsenm::newton_schulz(x), sparsenm::Error);
}

TEST(NewtonSchulz, ExplicitScalarAndExpressions) {
  const Matrix<double> x = t::gaussian_matrix<double>(10, 30, 3);
  const Matrix<float> a = sparsenm::newton_schulz<float>(x);
  const Matrix<float> b = sparsenm::newton_schulz(x.cast<float>());
  EXPECT_TRUE(a == b);
  const Matrix<double> c = sparsenm::newton_schulz(2.0 * x.block(0, 0, 10, 20));
  EXPECT_EQ(c.cols(), 20);
  // Scale invariance: NS(2x) == NS(x) up to rounding (normalisation).
  const Matrix<double> d = sparsenm::newton_schulz(x.block(0, 0, 10, 20));
  EXPECT_LT(t::max_rel_err(c, d), 1e-6);  // the 1e-7 in the normaliser is not scale-free
}

TEST(NewtonSchulz, ThreadCountDoesNotChangeResult) {
  const Matrix<float> x = t::gaussian_matrix<float>(200, 150, 9);
  sparsenm::set_thread_count(1);
  const Matrix<float> a = sparsenm::newton_schulz(x);
  sparsenm::set_thread_count(2);
  const Matrix<float> b = sparsenm::newton_schulz(x);
  EXPECT_TRUE(a == b);
}

}  // namespace

// Entries of the normalised input whose fourfold products would be subnormal are zeroed before the
// iteration (subnormal FMAs take microcode assists, ~30x slower in OpenBLAS ssyrk here). Reference:
// the same matrix with those rows exactly zero, and the long-double polynomial on it.
TEST(NewtonSchulz, NegligibleEntriesAreFlushedNotIterated) {
  for (const Index rows : {Index(48), Index(200)}) {  // square (SYRK) and rectangular (Gram) paths
    const Index cols = 96;
    Matrix<float> x(rows, cols);
    for (Index i = 0; i < x.size(); ++i)
      x.data()[i] = float(sparsenm::Philox(3).uniform(std::uint64_t(i)) - 0.5);
    Matrix<float> zeroed = x;
    x.topRows(rows / 2) *= 1e-16f;  // a decayed momentum: normalised entries ~1e-17
    zeroed.topRows(rows / 2).setZero();
    const Matrix<float> got = sparsenm::newton_schulz(x);
    const Matrix<float> ref = sparsenm::newton_schulz(zeroed);
    EXPECT_EQ((got - ref).cwiseAbs().maxCoeff(), 0.0f) << rows;
    EXPECT_EQ(got.topRows(rows / 2).cwiseAbs().maxCoeff(), 0.0f) << rows;
    // Double keeps such entries (its threshold is 1e-77): nothing is flushed there.
    const Matrix<double> xd = x.cast<double>();
    const Matrix<double> gd = sparsenm::newton_schulz(xd);
    EXPECT_GT(gd.topRows(rows / 2).cwiseAbs().maxCoeff(), 0.0) << rows;
  }
}
