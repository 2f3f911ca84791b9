// SPDX-License-Identifier: Apache-2.0
// RMSNorm (the LLaMA normalisation the papers' models use before attention, before the MLP and
// before the output head): y = x / sqrt(mean(x²) + eps) ⊙ g, row by row of (tokens, dim).
#ifndef SPARSENM_NN_RMSNORM_HPP
#define SPARSENM_NN_RMSNORM_HPP

#include <cmath>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// Row-wise RMSNorm (Zhang & Sennrich 2019, as in LLaMA: no mean subtraction, no bias) with a
/// learnable gain g (length dim, initialised to 1): for each row x of (tokens, dim),
///   y = x / sqrt(mean(x²) + eps) ⊙ g,
/// eps inside the square root (LLaMA's convention). The sum of squares is taken in double.
/// Backward, with r = 1 / sqrt(mean(x²) + eps) and x̂ = r x per row:
///   dg = Σ_rows dy ⊙ x̂,   dx = r (dy ⊙ g − x̂ · mean(dy ⊙ g ⊙ x̂)).
/// NaN/Inf inputs propagate to outputs and gradients (not checked: a hot path).
template <class S>
class RmsNorm {
 public:
  /// dim >= 1, eps finite and > 0 (1e-6 as in LLaMA). Throws sparsenm::Error.
  explicit RmsNorm(Index dim, double eps = 1e-6);

  /// x (tokens, dim) -> y (tokens, dim). Keeps x̂ and r for backward. Throws sparsenm::Error
  /// when x does not have dim columns.
  template <class Derived>
  Matrix<S> forward(const Eigen::MatrixBase<Derived>& x);
  /// grad_y (tokens, dim) of the last forward -> dx (tokens, dim); fills grad_weight()
  /// (overwritten, not accumulated). Throws sparsenm::Error when grad_y is not the shape of the
  /// last forward's output.
  template <class Derived>
  Matrix<S> backward(const Eigen::MatrixBase<Derived>& grad_y);

  /// Feature width: the columns normalised together.
  Index dim() const { return m_gain.size(); }
  /// The constant added to mean(x²) before the square root.
  double eps() const { return m_eps; }
  /// The gain g (dim), writable for the optimizer and for loading a checkpoint (keep its length).
  Vector<S>& weight() { return m_gain; }
  /// The gain g (dim).
  const Vector<S>& weight() const { return m_gain; }
  /// dL/dg (dim) of the last backward, Σ_rows dy ⊙ x̂; zero before it.
  const Vector<S>& grad_weight() const { return m_grad; }

 private:
  double m_eps;
  Vector<S> m_gain, m_grad;
  Matrix<S> m_xhat;
  Vector<S> m_r;
};

// ---------------------------------------------------------------------------------------------

template <class S>
RmsNorm<S>::RmsNorm(Index dim, double eps) : m_eps(eps) {
  check_at_least(dim, 1, "RmsNorm: dim");
  check_finite_positive(eps, "RmsNorm: eps");
  m_gain = Vector<S>::Ones(dim);
  m_grad = Vector<S>::Zero(dim);
}

template <class S>
template <class Derived>
Matrix<S> RmsNorm<S>::forward(const Eigen::MatrixBase<Derived>& x) {
  SPARSENM_CHECK(x.cols() == dim(), "RmsNorm::forward: x has ", x.cols(),
                 " columns but dim = ", dim());
  const Index t = x.rows(), d = dim();
  m_xhat.resize(t, d);
  m_r.resize(t);
  Matrix<S> y(t, d);
  for (Index i = 0; i < t; ++i) {
    double ss = 0;
    for (Index j = 0; j < d; ++j) ss += double(x(i, j)) * double(x(i, j));
    const S r = S(1.0 / std::sqrt(ss / double(d) + m_eps));
    m_r(i) = r;
    for (Index j = 0; j < d; ++j) {
      m_xhat(i, j) = S(x(i, j)) * r;
      y(i, j) = m_xhat(i, j) * m_gain(j);
    }
  }
  return y;
}

template <class S>
template <class Derived>
Matrix<S> RmsNorm<S>::backward(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(grad_y.rows() == m_xhat.rows() && grad_y.cols() == dim(),
                 "RmsNorm::backward: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but the last forward was ", m_xhat.rows(), "x", dim());
  const Index t = m_xhat.rows(), d = dim();
  Matrix<S> dx(t, d);
  m_grad.setZero();
  for (Index i = 0; i < t; ++i) {
    double dot = 0;
    for (Index j = 0; j < d; ++j) {
      const S dyg = S(grad_y(i, j)) * m_gain(j);
      dot += double(dyg) * double(m_xhat(i, j));
      m_grad(j) += S(grad_y(i, j)) * m_xhat(i, j);
    }
    const S mean = S(dot / double(d));
    for (Index j = 0; j < d; ++j)
      dx(i, j) = m_r(i) * (S(grad_y(i, j)) * m_gain(j) - m_xhat(i, j) * mean);
  }
  return dx;
}

}  // namespace sparsenm

#endif  // SPARSENM_NN_RMSNORM_HPP
