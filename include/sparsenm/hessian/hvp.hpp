// SPDX-License-Identifier: Apache-2.0
// Hessian-vector products for HutchinsonDiagonal without autodiff: a finite-difference HVP from any
// gradient callable, and exact HVPs of a bias-free linear layer Z = X Wᵀ (SparseForge Sec. 4.1,
// W: out x in, X: batch x in) under squared loss and under softmax cross-entropy.
//
// Losses (batch mean, the convention of a training loop):
//   squared:   L(W) = 1/(2B) Σ_b ‖W x_b − y_b‖²                  ∇L = (Z − Y)ᵀ X / B
//   softmax CE: L(W) = −1/B Σ_b log softmax(z_b)[label_b]          ∇L = (P − Y_onehot)ᵀ X / B
// Hessians (V has W's shape; a product with V is a directional derivative of ∇L):
//   squared:   H[V] = V (XᵀX) / B                                  (H = I_out ⊗ XᵀX / B)
//   softmax CE: H[V] = (1/B) Σ_b (diag(p_b) − p_b p_bᵀ)(V x_b) x_bᵀ
// For a layer whose output Z is the loss input, the Gauss–Newton matrix Jᵀ H_Z J equals the true
// Hessian exactly, because Z is linear in W (the curvature term Σ ∂L/∂z · ∂²z/∂W² vanishes). Both
// CeHessian kinds are still computed by their own route (GN: J, then H_Z, then Jᵀ; Exact: the
// directional derivative of the softmax in the gradient formula), and the tests check that they
// agree with each other and with finite differences.
#ifndef SPARSENM_HESSIAN_HVP_HPP
#define SPARSENM_HESSIAN_HVP_HPP

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// Default relative step of the central finite difference: cbrt(machine epsilon of S). The central
/// difference (g(w + h v) − g(w − h v)) / (2h) has truncation error O(h² ‖∇³L‖) and rounding error
/// O(ε ‖g‖ / h); they balance at h ∝ ε^(1/3) (Nocedal & Wright, Sec. 8.1). The step actually used
/// is h = rel_step · max(1, ‖w‖_∞) / max(‖v‖_∞, tiny), so the perturbation h v is rel_step relative
/// to the weights' scale whatever the scale of v.
template <class S>
inline S default_fd_step() {
  return std::cbrt(std::numeric_limits<S>::epsilon());
}

/// Central finite-difference Hessian-vector product of a gradient callable
/// `Matrix<S> grad(const Matrix<S>& w)` at w in direction v. Costs two gradient evaluations.
/// Throws sparsenm::Error on shape mismatch or a non-positive / non-finite rel_step.
template <class S, class Grad>
Matrix<S> finite_difference_hvp(Grad&& grad, const Matrix<S>& w, const Matrix<S>& v,
                                S rel_step = default_fd_step<S>()) {
  check_same_shape(w, v, "finite_difference_hvp: w", "v");
  check_finite_positive(double(rel_step), "finite_difference_hvp: rel_step");
  const S vmax = v.size() ? v.cwiseAbs().maxCoeff() : S(0);
  if (!(vmax > S(0))) return Matrix<S>::Zero(w.rows(), w.cols());  // H·0 = 0
  const S wmax = w.size() ? w.cwiseAbs().maxCoeff() : S(0);
  const S h = rel_step * std::max(S(1), wmax) / vmax;
  Matrix<S> wp = w + h * v;
  Matrix<S> wm = w - h * v;
  const Matrix<S> gp = grad(static_cast<const Matrix<S>&>(wp));
  const Matrix<S> gm = grad(static_cast<const Matrix<S>&>(wm));
  check_same_shape(gp, w, "finite_difference_hvp: grad(w + h v)", "w");
  check_same_shape(gm, w, "finite_difference_hvp: grad(w - h v)", "w");
  return (gp - gm) / (S(2) * h);
}

/// Callable wrapper: FiniteDifferenceHvp<S, Grad>{grad, w}(v) = finite_difference_hvp(grad, w, v).
/// Keeps a copy of w (the point of expansion) and of the gradient callable.
template <class S, class Grad>
class FiniteDifferenceHvp {
 public:
  /// Keeps `grad` and a copy of `w`; rel_step as in finite_difference_hvp.
  FiniteDifferenceHvp(Grad grad, Matrix<S> w, S rel_step = default_fd_step<S>())
      : m_grad(std::move(grad)), m_w(std::move(w)), m_rel_step(rel_step) {
    check_finite_positive(double(rel_step), "FiniteDifferenceHvp: rel_step");
  }
  /// H[v] at the stored point.
  Matrix<S> operator()(const Matrix<S>& v) const {
    return finite_difference_hvp<S>(m_grad, m_w, v, m_rel_step);
  }

 private:
  Grad m_grad;
  Matrix<S> m_w;
  S m_rel_step;
};

/// make_fd_hvp(grad, w): deduces the callable type.
template <class S, class Grad>
FiniteDifferenceHvp<S, std::decay_t<Grad>> make_fd_hvp(Grad&& grad, const Matrix<S>& w,
                                                       S rel_step = default_fd_step<S>()) {
  return FiniteDifferenceHvp<S, std::decay_t<Grad>>(std::forward<Grad>(grad), w, rel_step);
}

// ---------------------------------------------------------------------------------------------
// Linear layer, squared loss

/// L = 1/(2B) Σ_b ‖W x_b − y_b‖² with x: (B, in), w: (out, in), y: (B, out).
template <class S>
S linear_squared_loss(const Matrix<S>& x, const Matrix<S>& w, const Matrix<S>& y) {
  SPARSENM_CHECK(x.cols() == w.cols(), "linear_squared_loss: x is ", x.rows(), "x", x.cols(),
                 " but w is ", w.rows(), "x", w.cols(), " (x.cols must equal w.cols)");
  check_shape(y, x.rows(), w.rows(), "linear_squared_loss: y");
  check_at_least(x.rows(), 1, "linear_squared_loss: batch");
  Matrix<S> r;
  r.noalias() = x * w.transpose();
  r -= y;
  return S(0.5) * r.squaredNorm() / S(x.rows());
}

/// ∇_W of linear_squared_loss: (X Wᵀ − Y)ᵀ X / B, shape (out, in).
template <class S>
Matrix<S> linear_squared_loss_gradient(const Matrix<S>& x, const Matrix<S>& w, const Matrix<S>& y) {
  SPARSENM_CHECK(x.cols() == w.cols(), "linear_squared_loss_gradient: x is ", x.rows(), "x",
                 x.cols(), " but w is ", w.rows(), "x", w.cols(), " (x.cols must equal w.cols)");
  check_shape(y, x.rows(), w.rows(), "linear_squared_loss_gradient: y");
  check_at_least(x.rows(), 1, "linear_squared_loss_gradient: batch");
  Matrix<S> r;
  r.noalias() = x * w.transpose();
  r -= y;
  Matrix<S> g;
  g.noalias() = r.transpose() * x;
  g /= S(x.rows());
  return g;
}

/// Exact HVP of the squared loss of a linear layer: H[V] = V G with G = XᵀX / B precomputed once
/// (in x in), so each product costs out·in² flops. diag(H)(o, i) = G(i, i) = Σ_b x_bi² / B.
template <class S>
class LinearSquaredLossHvp {
 public:
  /// Precomputes XᵀX / B from the batch `x` (B x in).
  explicit LinearSquaredLossHvp(const Matrix<S>& x) {
    check_at_least(x.rows(), 1, "LinearSquaredLossHvp: batch");
    check_all_finite(x, "LinearSquaredLossHvp: x");
    m_gram.noalias() = x.transpose() * x;
    m_gram /= S(x.rows());
  }
  /// H[v] = v XᵀX / B.
  Matrix<S> operator()(const Matrix<S>& v) const {
    SPARSENM_CHECK(v.cols() == m_gram.rows(), "LinearSquaredLossHvp: v is ", v.rows(), "x",
                   v.cols(), " but the layer has in = ", m_gram.rows());
    Matrix<S> out;
    out.noalias() = v * m_gram;
    return out;
  }
  /// XᵀX / B (the per-row Hessian block).
  const Matrix<S>& gram() const { return m_gram; }
  /// The exact diagonal for an (out, in) weight: every row is diag(XᵀX)/B.
  Matrix<S> exact_diagonal(Index out) const {
    Matrix<S> d(out, m_gram.rows());
    for (Index o = 0; o < out; ++o) d.row(o) = m_gram.diagonal().transpose();
    return d;
  }

 private:
  Matrix<S> m_gram;
};

// ---------------------------------------------------------------------------------------------
// Linear layer, softmax cross-entropy

/// Which curvature the cross-entropy HVP computes; identical for a linear logits layer (see the
/// file comment), kept as an option so callers can state what they mean.
enum class CeHessian { Exact, GaussNewton };

namespace detail {

/// Row-wise softmax of z = x wᵀ (max-shifted), shape (B, out).
template <class S>
Matrix<S> linear_softmax(const Matrix<S>& x, const Matrix<S>& w) {
  Matrix<S> p;
  p.noalias() = x * w.transpose();
  for (Index b = 0; b < p.rows(); ++b) {
    const S mx = p.row(b).maxCoeff();
    p.row(b) = (p.row(b).array() - mx).exp();
    p.row(b) /= p.row(b).sum();
  }
  return p;
}

inline void check_labels(const std::vector<int>& labels, Index batch, Index classes,
                         const char* who) {
  SPARSENM_CHECK(Index(labels.size()) == batch, who, ": labels.size() = ", labels.size(),
                 " but the batch is ", batch);
  for (std::size_t b = 0; b < labels.size(); ++b)
    SPARSENM_CHECK(labels[b] >= 0 && labels[b] < classes, who, ": labels[", b, "] = ", labels[b],
                   " must be in [0, ", classes, ")");
}

template <class S>
void check_linear_ce(const Matrix<S>& x, const Matrix<S>& w, const std::vector<int>& labels,
                     const char* who) {
  SPARSENM_CHECK(x.cols() == w.cols(), who, ": x is ", x.rows(), "x", x.cols(), " but w is ",
                 w.rows(), "x", w.cols(), " (x.cols must equal w.cols)");
  check_at_least(x.rows(), 1, who);
  check_at_least(w.rows(), 1, who);
  check_labels(labels, x.rows(), w.rows(), who);
}

}  // namespace detail

/// L = −1/B Σ_b log softmax(x_b Wᵀ)[label_b].
template <class S>
S linear_softmax_ce_loss(const Matrix<S>& x, const Matrix<S>& w, const std::vector<int>& labels) {
  detail::check_linear_ce(x, w, labels, "linear_softmax_ce_loss");
  Matrix<S> z;
  z.noalias() = x * w.transpose();
  S total = 0;
  for (Index b = 0; b < z.rows(); ++b) {
    const S mx = z.row(b).maxCoeff();
    const S lse = mx + std::log((z.row(b).array() - mx).exp().sum());
    total += lse - z(b, labels[std::size_t(b)]);
  }
  return total / S(z.rows());
}

/// ∇_W of linear_softmax_ce_loss: (P − Y_onehot)ᵀ X / B.
template <class S>
Matrix<S> linear_softmax_ce_gradient(const Matrix<S>& x, const Matrix<S>& w,
                                     const std::vector<int>& labels) {
  detail::check_linear_ce(x, w, labels, "linear_softmax_ce_gradient");
  Matrix<S> d = detail::linear_softmax(x, w);
  for (Index b = 0; b < d.rows(); ++b) d(b, labels[std::size_t(b)]) -= S(1);
  Matrix<S> g;
  g.noalias() = d.transpose() * x;
  g /= S(x.rows());
  return g;
}

/// Exact HVP of the softmax cross-entropy of a linear layer at W (the probabilities are computed
/// once in the constructor; the labels do not enter the Hessian, only its point W and X do).
template <class S>
class LinearSoftmaxCeHvp {
 public:
  /// Precomputes the softmax of x wᵀ for the batch `x` and weight `w`.
  LinearSoftmaxCeHvp(const Matrix<S>& x, const Matrix<S>& w, CeHessian kind = CeHessian::Exact)
      : m_x(x), m_kind(kind) {
    SPARSENM_CHECK(x.cols() == w.cols(), "LinearSoftmaxCeHvp: x is ", x.rows(), "x", x.cols(),
                   " but w is ", w.rows(), "x", w.cols(), " (x.cols must equal w.cols)");
    check_at_least(x.rows(), 1, "LinearSoftmaxCeHvp: batch");
    check_all_finite(x, "LinearSoftmaxCeHvp: x");
    check_all_finite(w, "LinearSoftmaxCeHvp: w");
    m_p = detail::linear_softmax(x, w);
    m_out = w.rows();
  }

  /// H[v] of the mean cross-entropy at the stored point.
  Matrix<S> operator()(const Matrix<S>& v) const {
    check_shape(v, m_out, m_x.cols(), "LinearSoftmaxCeHvp: v");
    const Index batch = m_x.rows();
    // Directional derivative of the logits: dZ = X Vᵀ (this is J v).
    Matrix<S> dz;
    dz.noalias() = m_x * v.transpose();
    Matrix<S> q(batch, m_out);
    if (m_kind == CeHessian::GaussNewton) {
      // H_Z dz per sample with H_Z = diag(p) − p pᵀ (the softmax-CE Hessian in logit space).
      for (Index b = 0; b < batch; ++b) {
        const S pd = m_p.row(b).dot(dz.row(b));
        q.row(b) = m_p.row(b).cwiseProduct(dz.row(b)) - pd * m_p.row(b);
      }
    } else {
      // d/dt of the gradient (P(W + tV) − Y)ᵀ X / B at t = 0: dP = p ⊙ (dz − <p, dz>), the
      // softmax Jacobian applied to dz, written from the softmax derivative rather than H_Z.
      for (Index b = 0; b < batch; ++b) {
        const S mean_dz = m_p.row(b).dot(dz.row(b));
        q.row(b) = (m_p.row(b).array() * (dz.row(b).array() - mean_dz)).matrix();
      }
    }
    Matrix<S> out;
    out.noalias() = q.transpose() * m_x;  // Jᵀ
    out /= S(batch);
    return out;
  }

  /// The exact Hessian diagonal: H((o,i),(o,i)) = 1/B Σ_b p_bo (1 − p_bo) x_bi².
  Matrix<S> exact_diagonal() const {
    Matrix<S> pq = (m_p.array() * (S(1) - m_p.array())).matrix();  // (B, out)
    Matrix<S> d;
    d.noalias() = pq.transpose() * m_x.cwiseAbs2();
    d /= S(m_x.rows());
    return d;
  }

  /// The softmax probabilities P (B x out) at the stored point.
  const Matrix<S>& probabilities() const { return m_p; }

 private:
  Matrix<S> m_x;
  Matrix<S> m_p;
  Index m_out = 0;
  CeHessian m_kind;
};

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_HESSIAN_HVP_HPP
