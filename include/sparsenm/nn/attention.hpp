// SPDX-License-Identifier: Apache-2.0
// Causal multi-head self-attention of a LLaMA block (the papers' models, CHTsNM Sec. 4): RoPE on
// queries and keys, softmax(Q Kᵀ / sqrt(hd) + causal mask) V per head and sequence. The four
// projections q, k, v, o are the caller's (SparseLinear in sparse training, so that all of them
// run at the sparse cost; any layer with forward / backward for the dense baselines), which keeps
// this header free of any choice of training method.
#ifndef SPARSENM_NN_ATTENTION_HPP
#define SPARSENM_NN_ATTENTION_HPP

#include <cmath>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "rope.hpp"

namespace sparsenm {

/// The attention core between the projections: ctx = Attn(RoPE(q), RoPE(k), v), all
/// (tokens, d_model) with tokens = batch · seq_len (sequences one after another), heads of width
/// d_model / heads side by side in the columns. Backward (per sequence and head, P the softmax):
///   dV = Pᵀ dO,  dP = dO Vᵀ,  dS = P ⊙ (dP − rowsum(P ⊙ dP)),  dQ = dS K / √hd,  dK = dSᵀ Q / √hd,
/// then the inverse rotation on dQ and dK. (sequence, head) pairs run in parallel, each on its
/// own output blocks, so results do not depend on the thread count.
///
/// Per sequence and head the forward pass is scaled dot-product attention (Vaswani et al. 2017,
/// Eq. 1) with a causal mask, as in the LLaMA blocks of the papers' models (CHTsNM Sec. 4):
///   S = RoPE(Q) RoPE(K)ᵀ / √hd,  P = softmax_row(S + M),  O = P V,
/// M(i, j) = −∞ for j > i (position i attends to positions 0..i of its own sequence only). The
/// softmax is max-shifted, so large logits do not overflow; NaN/Inf inputs propagate to the
/// outputs and gradients (not checked: a hot path).
/// \code
/// CausalSelfAttention<float> attn(d_model, heads, seq_len);
/// Matrix<float> ctx = attn.forward(q, k, v);  // q, k, v: (batch * seq_len, d_model)
/// attn.backward(d_ctx, dq, dk, dv);           // same shapes as q, k, v
/// \endcode
template <class S>
class CausalSelfAttention {
 public:
  /// d_model >= 1 divisible by heads >= 1, head width d_model / heads even (>= 2); seq_len >= 1;
  /// rope_base finite and > 1 (the RoPE base θ, LLaMA's 10000). Throws sparsenm::Error naming the
  /// first bad argument.
  CausalSelfAttention(Index d_model, Index heads, Index seq_len, double rope_base = 10000.0);

  /// q, k, v: (tokens, d_model), tokens a multiple of seq_len. Returns the context
  /// (tokens, d_model), the input of the o projection. Keeps what backward needs (the rotated q
  /// and k, v, and every softmax P: batch · heads matrices of seq_len²). Throws sparsenm::Error
  /// when the shapes differ, d_model does not match or tokens is 0 or not a multiple of seq_len.
  Matrix<S> forward(const Matrix<S>& q, const Matrix<S>& k, const Matrix<S>& v);
  /// d_ctx (tokens, d_model) of the last forward -> gradients of the (unrotated) q, k, v, each
  /// resized to (tokens, d_model) and overwritten. Does not change the kept state, so it may be
  /// called again for another d_ctx. Throws sparsenm::Error before the first forward or when
  /// d_ctx is not the shape of the last forward's context.
  void backward(const Matrix<S>& d_ctx, Matrix<S>& dq, Matrix<S>& dk, Matrix<S>& dv);

  /// Model width: the columns of q, k, v and of the context.
  Index d_model() const { return m_d; }
  /// Number of attention heads.
  Index heads() const { return m_heads; }
  /// Width hd of one head, d_model / heads; head h owns columns [h · hd, (h + 1) · hd).
  Index head_dim() const { return m_d / m_heads; }
  /// Tokens per sequence; the rows of every input are a whole number of sequences.
  Index seq_len() const { return m_rope.seq_len(); }
  /// The rotary tables applied to q and k (head_dim, seq_len and base of this layer).
  const Rope<S>& rope() const { return m_rope; }

 private:
  Index m_d, m_heads;
  Rope<S> m_rope;
  Matrix<S> m_q, m_k, m_v;     // rotated q, k and v of the last forward
  std::vector<Matrix<S>> m_p;  // softmax of each (sequence, head): (seq_len, seq_len)
};

/// q, k, v, o projections around a CausalSelfAttention: y = o(Attn(q(x), k(x), v(x))). `Linear`
/// is any layer with Matrix-returning forward(x) and backward(dy) (SparseLinear, or the caller's
/// dense layer); the layers are the caller's and must outlive this object. `Linear` also needs
/// in() and out() (its (out, in) weight shape), which the constructor checks.
template <class S, class Linear>
class MultiHeadAttention {
 public:
  /// Wraps the projections q, k, v, o, each d_model × d_model with d_model = o.out(), around a
  /// CausalSelfAttention(d_model, heads, seq_len, rope_base). Keeps pointers, not copies. Throws
  /// sparsenm::Error when a projection is not d_model × d_model, or on a bad heads, seq_len or
  /// rope_base (as CausalSelfAttention).
  MultiHeadAttention(Linear& q, Linear& k, Linear& v, Linear& o, Index heads, Index seq_len,
                     double rope_base = 10000.0)
      : m_q(&q), m_k(&k), m_v(&v), m_o(&o), m_core(o.out(), heads, seq_len, rope_base) {
    for (const Linear* l : {m_q, m_k, m_v, m_o})
      SPARSENM_CHECK(l->in() == m_core.d_model() && l->out() == m_core.d_model(),
                     "MultiHeadAttention: every projection must be ", m_core.d_model(), "x",
                     m_core.d_model(), " but one is ", l->out(), "x", l->in());
  }
  /// x (tokens, d_model), tokens a multiple of seq_len -> (tokens, d_model). Runs the q, k, v
  /// forwards on x, the attention core, then o; each layer keeps what its backward needs. Throws
  /// sparsenm::Error (from the layers) on a shape mismatch.
  Matrix<S> forward(const Matrix<S>& x) {
    const Matrix<S> q = m_q->forward(x), k = m_k->forward(x), v = m_v->forward(x);
    return m_o->forward(m_core.forward(q, k, v));
  }
  /// dy (tokens, d_model) of the last forward -> dx = q.backward(dq) + k.backward(dk) +
  /// v.backward(dv) (x feeds all three). Every projection keeps its own parameter gradient, with
  /// that layer's semantics (overwritten or accumulated). Throws sparsenm::Error (from the layers
  /// and the core) before a forward or when dy is not the shape of the last output.
  Matrix<S> backward(const Matrix<S>& dy) {
    const Matrix<S> d_ctx = m_o->backward(dy);
    Matrix<S> dq, dk, dv;
    m_core.backward(d_ctx, dq, dk, dv);
    Matrix<S> dx = m_q->backward(dq);
    dx += m_k->backward(dk);
    dx += m_v->backward(dv);
    return dx;
  }
  /// The attention core between the projections (its d_model, heads, seq_len, RoPE tables).
  const CausalSelfAttention<S>& core() const { return m_core; }

 private:
  Linear *m_q, *m_k, *m_v, *m_o;
  CausalSelfAttention<S> m_core;
};

// ---------------------------------------------------------------------------------------------

template <class S>
CausalSelfAttention<S>::CausalSelfAttention(Index d_model, Index heads, Index seq_len,
                                            double rope_base)
    : m_d(d_model),
      m_heads(heads),
      m_rope((check_at_least(heads, 1, "CausalSelfAttention: heads"),
              check_at_least(d_model, 1, "CausalSelfAttention: d_model"),
              check_divisible(d_model, heads, "CausalSelfAttention: d_model", "heads"),
              d_model / heads),
             seq_len, rope_base) {}

template <class S>
Matrix<S> CausalSelfAttention<S>::forward(const Matrix<S>& q, const Matrix<S>& k,
                                          const Matrix<S>& v) {
  const Index t = seq_len(), hd = head_dim();
  for (const Matrix<S>* a : {&q, &k, &v})
    SPARSENM_CHECK(a->cols() == m_d && a->rows() == q.rows() && q.rows() % t == 0 && q.rows() > 0,
                   "CausalSelfAttention::forward: q, k, v must be (batch * seq_len = ", t,
                   " * batch, d_model = ", m_d, ") but are ", q.rows(), "x", q.cols(), ", ",
                   k.rows(), "x", k.cols(), ", ", v.rows(), "x", v.cols());
  m_q = q;
  m_k = k;
  m_v = v;
  m_rope.apply(m_q);
  m_rope.apply(m_k);
  const Index batch = q.rows() / t, pairs = batch * m_heads;
  m_p.resize(std::size_t(pairs));
  Matrix<S> ctx(q.rows(), m_d);
  const S scale = S(1.0 / std::sqrt(double(hd)));
  parallel_for(Index(0), pairs, [&](Index bh) {
    const Index b = bh / m_heads, h = bh % m_heads;
    const Matrix<S> qb = m_q.block(b * t, h * hd, t, hd), kb = m_k.block(b * t, h * hd, t, hd),
                    vb = m_v.block(b * t, h * hd, t, hd);
    Matrix<S>& p = m_p[std::size_t(bh)];
    p.resize(t, t);
    p.noalias() = qb * kb.transpose();
    for (Index i = 0; i < t; ++i) {
      S mx = p(i, 0) * scale;
      for (Index j = 1; j <= i; ++j) mx = std::max(mx, p(i, j) * scale);
      S sum = 0;
      for (Index j = 0; j <= i; ++j) {
        p(i, j) = std::exp(p(i, j) * scale - mx);
        sum += p(i, j);
      }
      for (Index j = 0; j <= i; ++j) p(i, j) /= sum;
      for (Index j = i + 1; j < t; ++j) p(i, j) = S(0);  // causal: no attention to the future
    }
    Matrix<S> ob(t, hd);
    ob.noalias() = p * vb;
    ctx.block(b * t, h * hd, t, hd) = ob;
  });
  return ctx;
}

template <class S>
void CausalSelfAttention<S>::backward(const Matrix<S>& d_ctx, Matrix<S>& dq, Matrix<S>& dk,
                                      Matrix<S>& dv) {
  SPARSENM_CHECK(!m_p.empty(), "CausalSelfAttention::backward called before forward");
  SPARSENM_CHECK(d_ctx.rows() == m_q.rows() && d_ctx.cols() == m_d,
                 "CausalSelfAttention::backward: d_ctx is ", d_ctx.rows(), "x", d_ctx.cols(),
                 " but the last forward was ", m_q.rows(), "x", m_d);
  const Index t = seq_len(), hd = head_dim(), pairs = Index(m_p.size());
  dq.resize(m_q.rows(), m_d);
  dk.resize(m_q.rows(), m_d);
  dv.resize(m_q.rows(), m_d);
  const S scale = S(1.0 / std::sqrt(double(hd)));
  parallel_for(Index(0), pairs, [&](Index bh) {
    const Index b = bh / m_heads, h = bh % m_heads;
    const Matrix<S> qb = m_q.block(b * t, h * hd, t, hd), kb = m_k.block(b * t, h * hd, t, hd),
                    vb = m_v.block(b * t, h * hd, t, hd), dob = d_ctx.block(b * t, h * hd, t, hd);
    const Matrix<S>& p = m_p[std::size_t(bh)];
    Matrix<S> dvb(t, hd), ds(t, t), dqb(t, hd), dkb(t, hd);
    dvb.noalias() = p.transpose() * dob;
    ds.noalias() = dob * vb.transpose();  // dP
    for (Index i = 0; i < t; ++i) {
      S dot = 0;
      for (Index j = 0; j <= i; ++j) dot += p(i, j) * ds(i, j);
      for (Index j = 0; j < t; ++j) ds(i, j) = j <= i ? p(i, j) * (ds(i, j) - dot) * scale : S(0);
    }
    dqb.noalias() = ds * kb;
    dkb.noalias() = ds.transpose() * qb;
    dq.block(b * t, h * hd, t, hd) = dqb;
    dk.block(b * t, h * hd, t, hd) = dkb;
    dv.block(b * t, h * hd, t, hd) = dvb;
  });
  m_rope.apply(dq, true);
  m_rope.apply(dk, true);
}

}  // namespace sparsenm

#endif  // SPARSENM_NN_ATTENTION_HPP
