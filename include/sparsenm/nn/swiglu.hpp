// SPDX-License-Identifier: Apache-2.0
// The SwiGLU MLP of a LLaMA block: y = down(silu(gate(x)) ⊙ up(x)), silu(z) = z σ(z). In the
// papers' sparse models all three projections are N:M sparse (CHTsNM Sec. 4); they are the
// caller's layers here, as in attention.hpp.
#ifndef SPARSENM_NN_SWIGLU_HPP
#define SPARSENM_NN_SWIGLU_HPP

#include <cmath>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"

namespace sparsenm {

/// The elementwise core h = silu(g) ⊙ u (Shazeer 2020, "GLU Variants Improve Transformer",
/// the SwiGLU of LLaMA), silu(z) = z σ(z), with
///   dg = dh ⊙ u ⊙ σ(g) (1 + g (1 − σ(g))),   du = dh ⊙ silu(g).
/// NaN/Inf inputs propagate to the outputs and gradients (not checked: a hot path).
template <class S>
class SwiGlu {
 public:
  /// g, u: (tokens, hidden) -> h (tokens, hidden). Keeps g and u for backward. Throws
  /// sparsenm::Error when the shapes differ or are empty.
  Matrix<S> forward(const Matrix<S>& g, const Matrix<S>& u) {
    SPARSENM_CHECK(g.rows() == u.rows() && g.cols() == u.cols() && g.size() > 0,
                   "SwiGlu::forward: gate is ", g.rows(), "x", g.cols(), " but up is ", u.rows(),
                   "x", u.cols(), " (must be the same non-empty shape)");
    m_g = g;
    m_u = u;
    Matrix<S> h(g.rows(), g.cols());
    for (Index i = 0; i < g.size(); ++i) {
      const S z = g.data()[i];
      h.data()[i] = z / (S(1) + std::exp(-z)) * u.data()[i];
    }
    return h;
  }
  /// dh (tokens, hidden) of the last forward -> dg, du (resized and overwritten). Throws
  /// sparsenm::Error when dh is not the shape of the last forward's output.
  void backward(const Matrix<S>& dh, Matrix<S>& dg, Matrix<S>& du) const {
    SPARSENM_CHECK(dh.rows() == m_g.rows() && dh.cols() == m_g.cols(), "SwiGlu::backward: dh is ",
                   dh.rows(), "x", dh.cols(), " but the last forward was ", m_g.rows(), "x",
                   m_g.cols());
    dg.resize(dh.rows(), dh.cols());
    du.resize(dh.rows(), dh.cols());
    for (Index i = 0; i < dh.size(); ++i) {
      const S z = m_g.data()[i], s = S(1) / (S(1) + std::exp(-z));
      dg.data()[i] = dh.data()[i] * m_u.data()[i] * s * (S(1) + z * (S(1) - s));
      du.data()[i] = dh.data()[i] * z * s;
    }
  }

 private:
  Matrix<S> m_g, m_u;
};

/// gate, up (d_model -> hidden) and down (hidden -> d_model) around SwiGlu. `Linear` as in
/// MultiHeadAttention; the layers are the caller's and must outlive this object:
///   y = down(silu(gate(x)) ⊙ up(x)),  x and y (tokens, d_model), gate(x), up(x) (tokens, hidden).
template <class S, class Linear>
class SwiGluMlp {
 public:
  /// gate and up (hidden, d_model) as (out, in), down (d_model, hidden). Keeps pointers, not
  /// copies. Throws sparsenm::Error naming the three shapes when they do not fit together.
  SwiGluMlp(Linear& gate, Linear& up, Linear& down) : m_gate(&gate), m_up(&up), m_down(&down) {
    SPARSENM_CHECK(gate.in() == up.in() && gate.out() == up.out() && down.in() == gate.out() &&
                       down.out() == gate.in(),
                   "SwiGluMlp: gate ", gate.out(), "x", gate.in(), ", up ", up.out(), "x", up.in(),
                   ", down ", down.out(), "x", down.in(),
                   " must be (hidden x d), (hidden x d), (d x hidden)");
  }
  /// x (tokens, d_model) -> y (tokens, d_model). Each layer keeps what its backward needs.
  /// Throws sparsenm::Error (from the layers) on a shape mismatch.
  Matrix<S> forward(const Matrix<S>& x) {
    const Matrix<S> g = m_gate->forward(x), u = m_up->forward(x);
    return m_down->forward(m_act.forward(g, u));
  }
  /// dy (tokens, d_model) of the last forward -> dx = gate.backward(dg) + up.backward(du) (x feeds
  /// both). Every projection keeps its own parameter gradient, with that layer's semantics.
  /// Throws sparsenm::Error (from the layers) before a forward or on a shape mismatch.
  Matrix<S> backward(const Matrix<S>& dy) {
    const Matrix<S> dh = m_down->backward(dy);
    Matrix<S> dg, du;
    m_act.backward(dh, dg, du);
    Matrix<S> dx = m_gate->backward(dg);
    dx += m_up->backward(du);
    return dx;
  }

 private:
  Linear *m_gate, *m_up, *m_down;
  SwiGlu<S> m_act;
};

}  // namespace sparsenm

#endif  // SPARSENM_NN_SWIGLU_HPP
