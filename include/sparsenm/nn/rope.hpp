// SPDX-License-Identifier: Apache-2.0
// Rotary position embedding (RoPE) of LLaMA, the position encoding of the papers' models: within
// each head of width hd, the pair (x_i, x_{i+hd/2}) at position p is rotated by the angle
// p · base^(-2i/hd), i < hd/2 (the "rotate_half" pairing of the LLaMA reference code). A rotation
// is orthogonal, so the backward pass is the rotation by the opposite angle.
#ifndef SPARSENM_NN_ROPE_HPP
#define SPARSENM_NN_ROPE_HPP

#include <cmath>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// RoPE tables for head width `head_dim` (even) and positions [0, seq_len).
/// Activations are (tokens, heads * head_dim) with tokens = batch · seq_len, row r at position
/// r % seq_len (sequences stored one after another). Rotary position embedding (Su et al. 2021,
/// RoFormer) in the LLaMA layout: for head column i < head_dim / 2 and position p,
///   θ_i = base^(−2i / head_dim),
///   x'_i      = x_i cos(p θ_i) − x_{i+hd/2} sin(p θ_i),
///   x'_{i+hd/2} = x_i sin(p θ_i) + x_{i+hd/2} cos(p θ_i)   (hd = head_dim).
/// cos and sin are tabulated once in double and stored as S.
template <class S>
class Rope {
 public:
  /// head_dim >= 2 and even, seq_len >= 1, base finite and > 1. Throws sparsenm::Error.
  Rope(Index head_dim, Index seq_len, double base = 10000.0);

  /// Rotates x in place (inverse = true: by the opposite angles, which is the backward pass).
  /// x.cols() must be a multiple of head_dim and x.rows() of seq_len, else sparsenm::Error. Each
  /// head of width head_dim is rotated independently with the same tables.
  void apply(Eigen::Ref<Matrix<S>> x, bool inverse = false) const;

  /// Width of one head (even): pairs (i, i + head_dim / 2) rotate together.
  Index head_dim() const { return m_hd; }
  /// Number of positions tabulated; row r of an activation is at position r % seq_len().
  Index seq_len() const { return m_cos.rows(); }
  /// The frequency base (θ_i = base^(−2i / head_dim)); LLaMA uses 10000.
  double base() const { return m_base; }

 private:
  Index m_hd;
  double m_base;
  Matrix<S> m_cos, m_sin;  // (seq_len, head_dim / 2)
};

// ---------------------------------------------------------------------------------------------

template <class S>
Rope<S>::Rope(Index head_dim, Index seq_len, double base) : m_hd(head_dim), m_base(base) {
  check_at_least(head_dim, 2, "Rope: head_dim");
  SPARSENM_CHECK(head_dim % 2 == 0, "Rope: head_dim = ", head_dim, " must be even");
  check_at_least(seq_len, 1, "Rope: seq_len");
  SPARSENM_CHECK(std::isfinite(base) && base > 1.0, "Rope: base = ", base,
                 " must be finite and > 1");
  const Index half = head_dim / 2;
  m_cos.resize(seq_len, half);
  m_sin.resize(seq_len, half);
  for (Index p = 0; p < seq_len; ++p)
    for (Index i = 0; i < half; ++i) {
      const double angle = double(p) * std::pow(base, -2.0 * double(i) / double(head_dim));
      m_cos(p, i) = S(std::cos(angle));
      m_sin(p, i) = S(std::sin(angle));
    }
}

template <class S>
void Rope<S>::apply(Eigen::Ref<Matrix<S>> x, bool inverse) const {
  SPARSENM_CHECK(x.cols() % m_hd == 0, "Rope::apply: x has ", x.cols(),
                 " columns, not a multiple of head_dim = ", m_hd);
  SPARSENM_CHECK(x.rows() % seq_len() == 0, "Rope::apply: x has ", x.rows(),
                 " rows, not a multiple of seq_len = ", seq_len());
  const Index half = m_hd / 2, heads = x.cols() / m_hd;
  const S sign = inverse ? S(-1) : S(1);
  for (Index r = 0; r < x.rows(); ++r) {
    const Index p = r % seq_len();
    for (Index h = 0; h < heads; ++h) {
      S* v = x.data() + r * x.outerStride() + h * m_hd;
      for (Index i = 0; i < half; ++i) {
        const S c = m_cos(p, i), s = sign * m_sin(p, i);
        const S a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = a * s + b * c;
      }
    }
  }
}

}  // namespace sparsenm

#endif  // SPARSENM_NN_ROPE_HPP
