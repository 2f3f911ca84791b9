// SPDX-License-Identifier: Apache-2.0
// CoMoLoRA, the contextually modulated low-rank residual branch of CHTsNM (Sec. 3.3, App. D.5, K):
//   z = x Aᵀ                       (batch x r)
//   G(x) = W2 SiLU(W1 x + b1) + b2 (batch x r, controller MLP with h hidden units)
//   m(x) = 1 + γ tanh(G(x))        (rank-space gate around identity, App. D.7)
//   Δy = (α / r) (m ⊙ z) Bᵀ         (batch x out; App. K eq. (A3)-(A4))
// W2 and b2 start at zero, so m = 1 and the branch starts exactly as plain LoRA (App. D.5). A and B
// follow LoRA's init (A Kaiming-uniform = U(-1/sqrt(in), 1/sqrt(in)), B = 0); W1, b1 follow
// nn.Linear (U(-1/sqrt(in), 1/sqrt(in))). The canonical setting is r = 7, h = 2, γ = 0.5.
// With the gate disabled (set_gate_enabled(false)) the branch is plain LoRA, Δy = (α/r) x Aᵀ Bᵀ,
// for ablations (App. K "ADD"); the gate parameters then get zero gradients.
// The parameters are dense and trained with Adam (Sec. 3.2: TANS is for the sparse backbone only);
// parameters() / gradients() list them in a fixed order for an optimizer.
#ifndef SPARSENM_NN_COMOLORA_HPP
#define SPARSENM_NN_COMOLORA_HPP

#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// CoMoLoRA: the contextually modulated low-rank residual branch of CHTsNM (Sec. 3.3, App. D.5,
/// App. K eq. (A3)-(A4)), added to the output of a sparse layer to compensate what the N:M
/// backbone cannot represent. For x of shape (batch, in):
/// \code
///   z    = x Aᵀ                          (batch x r)
///   G(x) = SiLU(x W1ᵀ + b1) W2ᵀ + b2     (batch x r; controller MLP with h hidden units)
///   m(x) = 1 + γ tanh(G(x))              (rank-space gate around identity, App. D.7)
///   Δy   = (α / r) (m ⊙ z) Bᵀ            (batch x out)
/// \endcode
/// Initialisation: A and W1, b1 ~ U(-1/sqrt(in), 1/sqrt(in)) (LoRA's A and nn.Linear defaults),
/// B = 0, W2 = 0, b2 = 0, so Δy = 0 and m = 1 at the start: the branch begins as plain LoRA
/// (App. D.5). The canonical setting is r = 7, h = 2, γ = 0.5, α = 7. With the gate disabled the
/// branch is plain LoRA, Δy = (α/r) x Aᵀ Bᵀ (the "ADD" ablation of App. K). All parameters are
/// dense and trained with Adam (Sec. 3.2: TANS is for the sparse backbone only), e.g. through
/// SparseTrainer::add(CoMoLoRA&). Typical use, y = sparse(x) + branch(x):
/// \code
///   Matrix<float> y = sparse.forward(x) + lora.forward(x);
///   ...
///   Matrix<float> dx = sparse.backward(dy) + lora.backward(dy);
/// \endcode
/// NaN/Inf inputs are not checked: they propagate to the output and the gradients.
template <class S>
class CoMoLoRA {
 public:
  /// in, out, rank, hidden >= 1; gamma, alpha finite (gamma >= 0). Throws sparsenm::Error.
  /// Random streams: A from rng.split(1), W1 from rng.split(2), b1 from rng.split(3), element
  /// index as counter.
  CoMoLoRA(Index in, Index out, int rank = 7, int hidden = 2, S gamma = S(0.5), S alpha = S(7),
           const Philox& rng = Philox(0));

  /// x: (batch, in) -> Δy (batch, out). Keeps what backward needs.
  template <class Derived>
  Matrix<S> forward(const Eigen::MatrixBase<Derived>& x);

  /// grad_y = dL/dΔy (batch, out) for the last forward. Returns dL/dx and fills every
  /// parameter gradient (overwritten, not accumulated).
  template <class Derived>
  Matrix<S> backward(const Eigen::MatrixBase<Derived>& grad_y);

  /// Gate on (CoMoLoRA, the default) or off (plain LoRA: m = 1).
  /// With the gate off, backward() gives zero gradients for W1, b1, W2 and b2.
  void set_gate_enabled(bool enabled) { m_gate = enabled; }
  /// Whether the gate m(x) is applied (true after construction).
  bool gate_enabled() const { return m_gate; }

  /// Input features (columns of x and of A).
  Index in() const { return m_a.cols(); }
  /// Output features (columns of Δy, rows of B).
  Index out() const { return m_b.rows(); }
  /// Rank r of the low-rank path (rows of A).
  int rank() const { return int(m_a.rows()); }
  /// Hidden units h of the controller MLP G (rows of W1).
  int hidden() const { return int(m_w1.rows()); }
  /// Gate strength γ: m(x) stays in [1 - γ, 1 + γ].
  S gamma() const { return m_gamma; }
  /// LoRA scale numerator α (the output is scaled by α / r).
  S alpha() const { return m_alpha; }
  /// α / r.
  S scale() const { return m_alpha / S(rank()); }

  // Parameters (mutable for the optimizer) and their gradients from the last backward.
  Matrix<S>& A() { return m_a; }    ///< rank x in
  Matrix<S>& B() { return m_b; }    ///< out x rank
  Matrix<S>& W1() { return m_w1; }  ///< hidden x in
  Matrix<S>& b1() { return m_b1; }  ///< 1 x hidden
  Matrix<S>& W2() { return m_w2; }  ///< rank x hidden
  Matrix<S>& b2() { return m_b2; }  ///< 1 x rank

  const Matrix<S>& A() const { return m_a; }          ///< down-projection, rank x in
  const Matrix<S>& B() const { return m_b; }          ///< up-projection, out x rank
  const Matrix<S>& W1() const { return m_w1; }        ///< controller input layer, hidden x in
  const Matrix<S>& b1() const { return m_b1; }        ///< controller input bias, 1 x hidden
  const Matrix<S>& W2() const { return m_w2; }        ///< controller output layer, rank x hidden
  const Matrix<S>& b2() const { return m_b2; }        ///< controller output bias, 1 x rank
  const Matrix<S>& grad_A() const { return m_ga; }    ///< dL/dA (rank x in), last backward
  const Matrix<S>& grad_B() const { return m_gb; }    ///< dL/dB (out x rank), last backward
  const Matrix<S>& grad_W1() const { return m_gw1; }  ///< dL/dW1 (hidden x in); 0 gate off
  const Matrix<S>& grad_b1() const { return m_gb1; }  ///< dL/db1 (1 x hidden); 0 gate off
  const Matrix<S>& grad_W2() const { return m_gw2; }  ///< dL/dW2 (rank x hidden); 0 gate off
  const Matrix<S>& grad_b2() const { return m_gb2; }  ///< dL/db2 (1 x rank); 0 gate off
  /// {A, B, W1, b1, W2, b2}, mutable, for an optimizer loop (pairs with gradients()).
  std::vector<Matrix<S>*> parameters() { return {&m_a, &m_b, &m_w1, &m_b1, &m_w2, &m_b2}; }
  /// {dA, dB, dW1, db1, dW2, db2} of the last backward(), in the order of parameters().
  std::vector<const Matrix<S>*> gradients() const {
    return {&m_ga, &m_gb, &m_gw1, &m_gb1, &m_gw2, &m_gb2};
  }
  /// Number of trainable scalars.
  Index parameter_count() const {
    return m_a.size() + m_b.size() + m_w1.size() + m_b1.size() + m_w2.size() + m_b2.size();
  }
  /// The gate m(x) of the last forward (batch x rank); all ones with the gate off.
  const Matrix<S>& last_gate() const { return m_m; }

 private:
  Matrix<S> m_a, m_b, m_w1, m_b1, m_w2, m_b2;
  Matrix<S> m_ga, m_gb, m_gw1, m_gb1, m_gw2, m_gb2;
  S m_gamma, m_alpha;
  bool m_gate = true;
  // Forward caches.
  Matrix<S> m_x, m_z, m_u, m_s, m_tanh, m_m, m_v;
  bool m_have_forward = false;
};

// ---------------------------------------------------------------------------------------------

template <class S>
CoMoLoRA<S>::CoMoLoRA(Index in, Index out, int rank, int hidden, S gamma, S alpha,
                      const Philox& rng)
    : m_gamma(gamma), m_alpha(alpha) {
  check_at_least(in, 1, "CoMoLoRA: in");
  check_at_least(out, 1, "CoMoLoRA: out");
  check_at_least(rank, 1, "CoMoLoRA: rank");
  check_at_least(hidden, 1, "CoMoLoRA: hidden");
  check_finite_nonnegative(double(gamma), "CoMoLoRA: gamma");
  SPARSENM_CHECK(std::isfinite(double(alpha)), "CoMoLoRA: alpha = ", double(alpha),
                 " must be finite");
  const double bound = 1.0 / std::sqrt(double(in));
  auto fill = [bound](Matrix<S>& m, const Philox& r) {
    for (Index i = 0; i < m.size(); ++i)
      m.data()[i] = S((2.0 * r.uniform(static_cast<std::uint64_t>(i)) - 1.0) * bound);
  };
  m_a.resize(rank, in);
  fill(m_a, rng.split(1));
  m_b = Matrix<S>::Zero(out, rank);
  m_w1.resize(hidden, in);
  fill(m_w1, rng.split(2));
  m_b1.resize(1, hidden);
  fill(m_b1, rng.split(3));
  m_w2 = Matrix<S>::Zero(rank, hidden);  // G's last layer starts at zero: m(x) = 1 (App. D.5)
  m_b2 = Matrix<S>::Zero(1, rank);
  m_ga = Matrix<S>::Zero(rank, in);
  m_gb = Matrix<S>::Zero(out, rank);
  m_gw1 = Matrix<S>::Zero(hidden, in);
  m_gb1 = Matrix<S>::Zero(1, hidden);
  m_gw2 = Matrix<S>::Zero(rank, hidden);
  m_gb2 = Matrix<S>::Zero(1, rank);
}

template <class S>
template <class Derived>
Matrix<S> CoMoLoRA<S>::forward(const Eigen::MatrixBase<Derived>& x) {
  SPARSENM_CHECK(x.cols() == in(), "CoMoLoRA::forward: x is ", x.rows(), "x", x.cols(),
                 " but must have in = ", in(), " columns");
  m_x = x.template cast<S>();
  m_z.noalias() = m_x * m_a.transpose();
  if (m_gate) {
    m_u.noalias() = m_x * m_w1.transpose();
    m_u.rowwise() += m_b1.row(0);
    // SiLU(u) = u σ(u)
    m_s = m_u.unaryExpr([](S u) { return u / (S(1) + std::exp(-u)); });
    Matrix<S> g;
    g.noalias() = m_s * m_w2.transpose();
    g.rowwise() += m_b2.row(0);
    m_tanh = g.array().tanh().matrix();
    m_m = (S(1) + m_gamma * m_tanh.array()).matrix();
    m_v = m_m.cwiseProduct(m_z);
  } else {
    m_m = Matrix<S>::Ones(m_z.rows(), m_z.cols());
    m_v = m_z;
  }
  Matrix<S> dy;
  dy.noalias() = scale() * (m_v * m_b.transpose());
  m_have_forward = true;
  return dy;
}

template <class S>
template <class Derived>
Matrix<S> CoMoLoRA<S>::backward(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(m_have_forward, "CoMoLoRA::backward called before forward");
  SPARSENM_CHECK(grad_y.rows() == m_x.rows() && grad_y.cols() == out(),
                 "CoMoLoRA::backward: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but must be ", m_x.rows(), "x", out());
  const Matrix<S> g = grad_y.template cast<S>();
  const S sc = scale();
  // Δy = sc v Bᵀ:  dv = sc g B,  dB = sc gᵀ v
  Matrix<S> dv;
  dv.noalias() = sc * (g * m_b);
  m_gb.noalias() = sc * (g.transpose() * m_v);
  // v = m ⊙ z:  dz = dv ⊙ m
  const Matrix<S> dz = dv.cwiseProduct(m_m);
  m_ga.noalias() = dz.transpose() * m_x;
  Matrix<S> dx;
  dx.noalias() = dz * m_a;
  if (m_gate) {
    // dm = dv ⊙ z;  m = 1 + γ tanh(G):  dG = dm ⊙ γ (1 − tanh²)
    const Matrix<S> dg =
        (dv.array() * m_z.array() * m_gamma * (S(1) - m_tanh.array().square())).matrix();
    m_gw2.noalias() = dg.transpose() * m_s;
    m_gb2 = dg.colwise().sum();
    // G = s W2ᵀ + b2:  ds = dG W2;  s = SiLU(u):  du = ds ⊙ σ(u) (1 + u (1 − σ(u)))
    Matrix<S> ds;
    ds.noalias() = dg * m_w2;
    const Matrix<S> du = ds.binaryExpr(m_u, [](S d, S u) {
      const S sig = S(1) / (S(1) + std::exp(-u));
      return d * sig * (S(1) + u * (S(1) - sig));
    });
    m_gw1.noalias() = du.transpose() * m_x;
    m_gb1 = du.colwise().sum();
    dx.noalias() += du * m_w1;
  } else {
    m_gw1.setZero();
    m_gb1.setZero();
    m_gw2.setZero();
    m_gb2.setZero();
  }
  return dx;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_NN_COMOLORA_HPP
