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
template <class S>
class CausalSelfAttention {
 public:
  /// d_model divisible by heads, head width even; seq_len >= 1; rope_base > 1.
  CausalSelfAttention(Index d_model, Index heads, Index seq_len, double rope_base = 10000.0);

  /// q, k, v: (tokens, d_model), tokens a multiple of seq_len. Returns the context
  /// (tokens, d_model), the input of the o projection. Keeps what backward needs.
  Matrix<S> forward(const Matrix<S>& q, const Matrix<S>& k, const Matrix<S>& v);
  /// d_ctx (tokens, d_model) of the last forward -> gradients of the (unrotated) q, k, v.
  void backward(const Matrix<S>& d_ctx, Matrix<S>& dq, Matrix<S>& dk, Matrix<S>& dv);

  Index d_model() const { return m_d; }
  Index heads() const { return m_heads; }
  Index head_dim() const { return m_d / m_heads; }
  Index seq_len() const { return m_rope.seq_len(); }
  const Rope<S>& rope() const { return m_rope; }

 private:
  Index m_d, m_heads;
  Rope<S> m_rope;
  Matrix<S> m_q, m_k, m_v;     // rotated q, k and v of the last forward
  std::vector<Matrix<S>> m_p;  // softmax of each (sequence, head): (seq_len, seq_len)
};

/// q, k, v, o projections around a CausalSelfAttention: y = o(Attn(q(x), k(x), v(x))). `Linear`
/// is any layer with Matrix-returning forward(x) and backward(dy) (SparseLinear, or the caller's
/// dense layer); the layers are the caller's and must outlive this object.
template <class S, class Linear>
class MultiHeadAttention {
 public:
  MultiHeadAttention(Linear& q, Linear& k, Linear& v, Linear& o, Index heads, Index seq_len,
                     double rope_base = 10000.0)
      : m_q(&q), m_k(&k), m_v(&v), m_o(&o), m_core(o.out(), heads, seq_len, rope_base) {
    for (const Linear* l : {m_q, m_k, m_v, m_o})
      SPARSENM_CHECK(l->in() == m_core.d_model() && l->out() == m_core.d_model(),
                     "MultiHeadAttention: every projection must be ", m_core.d_model(), "x",
                     m_core.d_model(), " but one is ", l->out(), "x", l->in());
  }
  /// x (tokens, d_model) -> (tokens, d_model).
  Matrix<S> forward(const Matrix<S>& x) {
    const Matrix<S> q = m_q->forward(x), k = m_k->forward(x), v = m_v->forward(x);
    return m_o->forward(m_core.forward(q, k, v));
  }
  /// dy -> dx; every projection keeps its own parameter gradient.
  Matrix<S> backward(const Matrix<S>& dy) {
    const Matrix<S> d_ctx = m_o->backward(dy);
    Matrix<S> dq, dk, dv;
    m_core.backward(d_ctx, dq, dk, dv);
    Matrix<S> dx = m_q->backward(dq);
    dx += m_k->backward(dk);
    dx += m_v->backward(dv);
    return dx;
  }
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
