// LLaMA building blocks (embedding, RMSNorm, RoPE, causal attention, SwiGLU) and a whole tiny
// decoder with N:M sparse projections: every gradient against central finite differences in
// double, plus closed forms (RoPE preserves norms, the first token attends only to itself) and
// one optimizer step lowering the loss on a fixed batch.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <vector>

#include <sparsenm/nn.hpp>
#include <sparsenm/train/loss.hpp>

using namespace sparsenm;
using Mat = Matrix<double>;

namespace {

Mat random_matrix(Index r, Index c, std::uint64_t seed, double scale = 1.0) {
  const Philox rng(seed);
  Mat m(r, c);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = scale * (2 * rng.uniform(i) - 1);
  return m;
}

// A bias-free dense projection for the block tests (the Linear concept of attention.hpp).
struct DenseProj {
  Mat w, grad, x;
  DenseProj(Index in, Index out, std::uint64_t seed) : w(random_matrix(out, in, seed, 0.5)) {}
  Index in() const { return w.cols(); }
  Index out() const { return w.rows(); }
  Mat forward(const Mat& in_x) {
    x = in_x;
    return x * w.transpose();
  }
  Mat backward(const Mat& dy) {
    grad = dy.transpose() * x;
    return dy * w;
  }
};

// Checks dL/dp for every entry of `p` (or the first `limit`) by central differences of loss().
void expect_gradient(double* p, Index n, const Mat& analytic, const std::function<double()>& loss,
                     double tol, Index limit = 1 << 30) {
  const double h = 1e-5;
  for (Index i = 0; i < std::min(n, limit); ++i) {
    const double saved = p[i];
    p[i] = saved + h;
    const double lp = loss();
    p[i] = saved - h;
    const double lm = loss();
    p[i] = saved;
    EXPECT_NEAR(analytic.data()[i], (lp - lm) / (2 * h), tol) << "entry " << i;
  }
}

// L = Σ y ⊙ R for a fixed random R: dL/dy = R.
double weighted_sum(const Mat& y, const Mat& r) { return y.cwiseProduct(r).sum(); }

}  // namespace

TEST(Transformer, RmsNormGradients) {
  RmsNorm<double> norm(6, 1e-5);
  norm.weight() = random_matrix(1, 6, 3).transpose() + Vector<double>::Ones(6);
  Mat x = random_matrix(5, 6, 4);
  const Mat r = random_matrix(5, 6, 5);
  const Mat y = norm.forward(x);
  // Closed form of row 0.
  const double rms = std::sqrt(x.row(0).squaredNorm() / 6 + 1e-5);
  EXPECT_NEAR(y(0, 2), x(0, 2) / rms * norm.weight()(2), 1e-12);
  const Mat dx = norm.backward(r);
  const Mat dg = Mat(norm.grad_weight().transpose());
  auto loss = [&] { return weighted_sum(norm.forward(x), r); };
  expect_gradient(x.data(), x.size(), dx, loss, 1e-7);
  expect_gradient(norm.weight().data(), 6, dg, loss, 1e-7);
  EXPECT_THROW(RmsNorm<double>(0), Error);
  EXPECT_THROW(RmsNorm<double>(4, 0.0), Error);
  EXPECT_THROW(norm.forward(Mat(2, 5)), Error);
}

TEST(Transformer, RopeRotatesPairsAndInvertsExactly) {
  const Rope<double> rope(4, 3, 100.0);
  Mat x = random_matrix(6, 8, 7);  // 2 sequences of 3, 2 heads of 4
  Mat y = x;
  rope.apply(y);
  // Position 0 is unchanged; position 2, head 1, pair i = 1: angle 2 · 100^(-1/2).
  EXPECT_TRUE(y.row(0).isApprox(x.row(0)));
  EXPECT_TRUE(y.row(3).isApprox(x.row(3)));
  const double a = 2 * std::pow(100.0, -0.5);
  EXPECT_NEAR(y(5, 4 + 1), x(5, 5) * std::cos(a) - x(5, 7) * std::sin(a), 1e-12);
  EXPECT_NEAR(y(5, 4 + 3), x(5, 5) * std::sin(a) + x(5, 7) * std::cos(a), 1e-12);
  for (Index r = 0; r < 6; ++r) EXPECT_NEAR(y.row(r).norm(), x.row(r).norm(), 1e-12);
  rope.apply(y, true);
  EXPECT_LT((y - x).cwiseAbs().maxCoeff(), 1e-12);
  EXPECT_THROW(Rope<double>(3, 4), Error);
  EXPECT_THROW(Rope<double>(4, 4, 1.0), Error);
  Mat bad(5, 8);
  EXPECT_THROW(rope.apply(bad), Error);
}

TEST(Transformer, AttentionGradientsAndCausality) {
  const Index d = 8, heads = 2, t = 4, batch = 2;
  DenseProj q(d, d, 11), k(d, d, 12), v(d, d, 13), o(d, d, 14);
  MultiHeadAttention<double, DenseProj> attn(q, k, v, o, heads, t, 50.0);
  Mat x = random_matrix(batch * t, d, 15);
  const Mat r = random_matrix(batch * t, d, 16);
  const Mat y = attn.forward(x);
  // Token 0 of each sequence attends only to itself: ctx row = its own v.
  const Mat ctx = y * o.w.transpose().inverse();  // undo the o projection
  const Mat vx = x * v.w.transpose();
  EXPECT_LT((ctx.row(0) - vx.row(0)).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_LT((ctx.row(t) - vx.row(t)).cwiseAbs().maxCoeff(), 1e-9);
  // Causality: changing the last token does not change earlier outputs.
  Mat x2 = x;
  x2.row(t - 1).setConstant(3.0);
  const Mat y2 = attn.forward(x2);
  EXPECT_LT((y2.topRows(t - 1) - y.topRows(t - 1)).cwiseAbs().maxCoeff(), 1e-12);
  attn.forward(x);
  const Mat dx = attn.backward(r);
  const Mat gq = q.grad, gk = k.grad, gv = v.grad, go = o.grad;
  auto loss = [&] { return weighted_sum(attn.forward(x), r); };
  expect_gradient(x.data(), x.size(), dx, loss, 1e-7);
  expect_gradient(q.w.data(), q.w.size(), gq, loss, 1e-7);
  expect_gradient(k.w.data(), k.w.size(), gk, loss, 1e-7);
  expect_gradient(v.w.data(), v.w.size(), gv, loss, 1e-7, 20);
  expect_gradient(o.w.data(), o.w.size(), go, loss, 1e-7, 20);
  EXPECT_THROW(CausalSelfAttention<double>(8, 3, 4), Error);
  CausalSelfAttention<double> core(d, heads, t);
  EXPECT_THROW(core.forward(Mat(5, d), Mat(5, d), Mat(5, d)), Error);  // 5 not a multiple of 4
}

TEST(Transformer, SwiGluGradients) {
  DenseProj gate(4, 8, 21), up(4, 8, 22), down(8, 4, 23);
  SwiGluMlp<double, DenseProj> mlp(gate, up, down);
  Mat x = random_matrix(3, 4, 24, 2.0);
  const Mat r = random_matrix(3, 4, 25);
  const Mat y = mlp.forward(x);
  // Closed form of y(0, 0).
  const Mat g = x * gate.w.transpose(), u = x * up.w.transpose();
  double ref = 0;
  for (Index j = 0; j < 8; ++j) ref += down.w(0, j) * g(0, j) / (1 + std::exp(-g(0, j))) * u(0, j);
  EXPECT_NEAR(y(0, 0), ref, 1e-12);
  const Mat dx = mlp.backward(r);
  const Mat gg = gate.grad, gu = up.grad, gd = down.grad;
  auto loss = [&] { return weighted_sum(mlp.forward(x), r); };
  expect_gradient(x.data(), x.size(), dx, loss, 1e-7);
  expect_gradient(gate.w.data(), gate.w.size(), gg, loss, 1e-7);
  expect_gradient(up.w.data(), up.w.size(), gu, loss, 1e-7);
  expect_gradient(down.w.data(), down.w.size(), gd, loss, 1e-7);
  DenseProj bad(4, 6, 1);
  EXPECT_THROW((SwiGluMlp<double, DenseProj>(gate, bad, down)), Error);
}

TEST(Transformer, EmbeddingScatterAdds) {
  Embedding<double> emb(5, 3, Philox(2), 0.02);
  EXPECT_LE(emb.weight().cwiseAbs().maxCoeff(), std::sqrt(3.0) * 0.02);
  const Mat y = emb.forward({4, 1, 4});
  EXPECT_EQ(y.row(2), emb.weight().row(4));
  const Mat r = random_matrix(3, 3, 9);
  emb.backward(r);
  EXPECT_TRUE(emb.grad_weight().row(4).isApprox(r.row(0) + r.row(2)));
  EXPECT_EQ(emb.grad_weight().row(0).cwiseAbs().sum(), 0.0);
  EXPECT_THROW(emb.forward({0, 5}), Error);
  EXPECT_THROW(emb.forward({}), Error);
}

namespace {

// One pre-norm LLaMA block with 2:4 sparse projections, a final RMSNorm and a dense head.
struct TinyDecoder {
  static constexpr Index V = 7, d = 8, heads = 2, t = 4, hidden = 8;
  Embedding<double> emb{V, d, Philox(1), 0.5};
  RmsNorm<double> n1{d}, n2{d}, nf{d};
  std::vector<std::unique_ptr<SparseLinear<double>>> lin;
  std::unique_ptr<MultiHeadAttention<double, SparseLinear<double>>> attn;
  std::unique_ptr<SwiGluMlp<double, SparseLinear<double>>> mlp;
  Mat head = random_matrix(V, d, 77, 0.5), head_grad, hn;

  TinyDecoder() {
    const Index shapes[7][2] = {{d, d},      {d, d},      {d, d},     {d, d},
                                {d, hidden}, {d, hidden}, {hidden, d}};
    for (int i = 0; i < 7; ++i)
      lin.push_back(std::make_unique<SparseLinear<double>>(shapes[i][0], shapes[i][1], NM{2, 4},
                                                           Layout::RowWise, Philox(40 + i)));
    attn = std::make_unique<MultiHeadAttention<double, SparseLinear<double>>>(
        *lin[0], *lin[1], *lin[2], *lin[3], heads, t);
    mlp = std::make_unique<SwiGluMlp<double, SparseLinear<double>>>(*lin[4], *lin[5], *lin[6]);
  }
  Mat forward(const std::vector<int>& tokens) {
    Mat h = emb.forward(tokens);
    h += attn->forward(n1.forward(h));
    h += mlp->forward(n2.forward(h));
    hn = nf.forward(h);
    return hn * head.transpose();
  }
  double loss(const std::vector<int>& tokens, const std::vector<int>& labels, bool grads) {
    Mat g;
    const double l = softmax_cross_entropy(forward(tokens), labels, grads ? &g : nullptr);
    if (grads) {
      head_grad = g.transpose() * hn;
      Mat dh = nf.backward(g * head);
      dh += n2.backward(mlp->backward(dh));
      dh += n1.backward(attn->backward(dh));
      emb.backward(dh);
    }
    return l;
  }
};

const std::vector<int> kTokens = {1, 5, 2, 6, 0, 3, 3, 4}, kLabels = {5, 2, 6, 0, 3, 3, 4, 1};

}  // namespace

TEST(Transformer, WholeDecoderGradientMatchesFiniteDifferences) {
  TinyDecoder m;
  m.loss(kTokens, kLabels, true);
  auto loss = [&] { return m.loss(kTokens, kLabels, false); };
  const double tol = 1e-7;
  expect_gradient(m.head.data(), m.head.size(), Mat(m.head_grad), loss, tol, 24);
  expect_gradient(m.emb.weight().data(), m.emb.weight().size(), Mat(m.emb.grad_weight()), loss, tol,
                  32);
  for (RmsNorm<double>* n : {&m.n1, &m.n2, &m.nf})
    expect_gradient(n->weight().data(), n->dim(), Mat(n->grad_weight().transpose()), loss, tol);
  for (auto& l : m.lin) {
    const Mat g = l->grad_values();  // active entries only (the sparse-to-sparse route)
    expect_gradient(l->values().data(), l->values().size(), g, loss, tol, 12);
  }
}

TEST(Transformer, OneTrainerStepLowersTheLoss) {
  TinyDecoder m;
  SparseTrainerConfig cfg;
  cfg.refresh = false;
  cfg.adam.lr = 1e-2;
  SparseTrainer<double> trainer(cfg);
  for (auto& l : m.lin) trainer.add(*l);
  trainer.add(m.emb.weight(), m.emb.grad_weight());
  trainer.add(m.head, m.head_grad);
  for (RmsNorm<double>* n : {&m.n1, &m.n2, &m.nf}) trainer.add(n->weight(), n->grad_weight());
  const double before = m.loss(kTokens, kLabels, true);
  trainer.step(1);
  const double after = m.loss(kTokens, kLabels, false);
  EXPECT_LT(after, before - 1e-3);
}

TEST(Transformer, NonFiniteInputsPropagate) {
  // Documented behaviour: NaN inputs are not checked (hot path) and reach the outputs.
  RmsNorm<double> norm(4);
  Mat x = Mat::Ones(2, 4);
  x(1, 2) = std::nan("");
  const Mat y = norm.forward(x);
  EXPECT_TRUE(std::isfinite(y(0, 0)));
  EXPECT_TRUE(std::isnan(y(1, 0)));
  CausalSelfAttention<double> core(4, 2, 2);
  Mat q = Mat::Ones(2, 4), k = q, v = q;
  v(0, 0) = std::numeric_limits<double>::infinity();
  const Mat c = core.forward(q, k, v);
  EXPECT_FALSE(std::isfinite(c(0, 0)));
  EXPECT_TRUE(std::isfinite(c(0, 2)));  // the other head is untouched
}

// Both scalar types compile (the example trains in float, the tests above run in double).
template class sparsenm::Embedding<float>;
template class sparsenm::RmsNorm<float>;
template class sparsenm::Rope<float>;
template class sparsenm::CausalSelfAttention<float>;
template class sparsenm::SwiGlu<float>;
