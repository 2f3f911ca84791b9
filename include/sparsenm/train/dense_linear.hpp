// SPDX-License-Identifier: Apache-2.0
// A dense fully connected layer y = x Wᵀ + b and a ReLU, for the dense baseline, the output layer
// and the STE / SR-STE baselines (chtsnm App. H.1-H.2), whose latent weights are dense: with a
// forward mask set, the layer computes y = x (W ⊙ M)ᵀ + b and hands the dense W the task gradient
// (the straight-through estimator). GEMMs go through parallel_product (core/blas.hpp): fixed
// blocks of the output, one single-threaded Eigen / OpenBLAS product each, in parallel, so the
// results do not depend on the OpenMP or BLAS thread count.
#ifndef SPARSENM_TRAIN_DENSE_LINEAR_HPP
#define SPARSENM_TRAIN_DENSE_LINEAR_HPP

#include <cmath>

#include <Eigen/Core>

#include "../core/blas.hpp"
#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// y = x Wᵀ + b with W (out, in) row-major; PyTorch nn.Linear's default init
/// (W, b ~ U(-1/sqrt(in), 1/sqrt(in)), element index as Philox counter, bias from rng.split(1)).
template <class S>
class DenseLinear {
 public:
  /// W (out x in) from counters of `rng`, b (out) from rng.split(1); in, out >= 1, else
  /// sparsenm::Error.
  DenseLinear(Index in, Index out, const Philox& rng);

  /// x: (batch, in) -> (batch, out). Keeps x for backward.
  template <class Derived>
  const Matrix<S>& forward(const Eigen::MatrixBase<Derived>& x);

  /// grad_y: (batch, out). Fills grad_weight() (dense, the STE gradient when a mask is set) and
  /// grad_bias(), and returns dL/dx = grad_y (W ⊙ M).
  template <class Derived>
  Matrix<S> backward(const Eigen::MatrixBase<Derived>& grad_y);
  /// backward() without dL/dx (grad_weight() and grad_bias() only): for a network's first layer.
  template <class Derived>
  void backward_params(const Eigen::MatrixBase<Derived>& grad_y);

  /// Straight-through masking: forward and backward use W ⊙ mask; pass nullptr for dense.
  /// The mask is copied; it must have W's shape and hold only 0/1.
  void set_forward_mask(const Mask* mask);
  /// Whether a forward mask is set (STE mode).
  bool has_forward_mask() const { return m_masked; }
  /// The forward mask (out x in); meaningful only when has_forward_mask().
  const Mask& forward_mask() const { return m_mask; }

  /// Input features (columns of W).
  Index in() const { return m_weight.cols(); }
  /// Output features (rows of W).
  Index out() const { return m_weight.rows(); }
  /// The dense (latent) weight W (out x in), for an optimizer to update in place.
  Matrix<S>& weight() { return m_weight; }
  /// The dense (latent) weight W (out x in), read-only.
  const Matrix<S>& weight() const { return m_weight; }
  /// The bias b (length out), for an optimizer to update in place.
  Vector<S>& bias() { return m_bias; }
  /// The bias b (length out), read-only.
  const Vector<S>& bias() const { return m_bias; }
  /// dL/dW = grad_yᵀ x (out x in) from the last backward(); dense, also at masked entries.
  const Matrix<S>& grad_weight() const { return m_grad_weight; }
  /// dL/db (length out): the column sums of grad_y from the last backward().
  const Vector<S>& grad_bias() const { return m_grad_bias; }
  /// The weight the forward pass uses (W, or W ⊙ M with a forward mask).
  Matrix<S> effective_weight() const;

 private:
  const Matrix<S>& used_weight();
  void add_bias(Matrix<S>& y) const {
    for (Index r = 0; r < y.rows(); ++r) {
      S* row = y.data() + r * y.cols();
      for (Index c = 0; c < y.cols(); ++c) row[c] += m_bias(c);
    }
  }

  Matrix<S> m_weight, m_grad_weight, m_masked_weight, m_x, m_y;
  Vector<S> m_bias, m_grad_bias;
  Mask m_mask;
  bool m_masked = false;
};

/// max(x, 0) elementwise, in place, remembering where x > 0 for backward.
template <class S>
class Relu {
 public:
  /// x <- max(x, 0) in place; NaN becomes 0 (a dead unit). Remembers where x > 0 for backward().
  void forward(Matrix<S>& x);
  /// grad ⊙ [x > 0], in place.
  void backward(Matrix<S>& grad) const;

 private:
  Matrix<S> m_active;
};

// ---------------------------------------------------------------------------------------------

template <class S>
DenseLinear<S>::DenseLinear(Index in, Index out, const Philox& rng)
    : m_weight(out, in),
      m_grad_weight(Matrix<S>::Zero(out, in)),
      m_bias(out),
      m_grad_bias(Vector<S>::Zero(out)) {
  check_at_least(in, 1, "in");
  check_at_least(out, 1, "out");
  const double bound = 1.0 / std::sqrt(double(in));
  const Philox brng = rng.split(1);
  for (Index i = 0; i < m_weight.size(); ++i)
    m_weight.data()[i] = S((2.0 * rng.uniform(static_cast<std::uint64_t>(i)) - 1.0) * bound);
  for (Index i = 0; i < out; ++i)
    m_bias(i) = S((2.0 * brng.uniform(static_cast<std::uint64_t>(i)) - 1.0) * bound);
}

template <class S>
void DenseLinear<S>::set_forward_mask(const Mask* mask) {
  if (mask == nullptr) {
    m_masked = false;
    return;
  }
  check_shape(*mask, m_weight.rows(), m_weight.cols(), "mask");
  check_binary(*mask);
  m_mask = *mask;
  m_masked = true;
}

template <class S>
Matrix<S> DenseLinear<S>::effective_weight() const {
  if (!m_masked) return m_weight;
  return m_weight.cwiseProduct(m_mask.template cast<S>());
}

template <class S>
const Matrix<S>& DenseLinear<S>::used_weight() {
  if (!m_masked) return m_weight;
  m_masked_weight = m_weight.cwiseProduct(m_mask.template cast<S>());
  return m_masked_weight;
}

template <class S>
template <class Derived>
const Matrix<S>& DenseLinear<S>::forward(const Eigen::MatrixBase<Derived>& x) {
  SPARSENM_CHECK(x.cols() == in(), "DenseLinear::forward: x has ", x.cols(),
                 " columns but the layer has in = ", in());
  m_x = x;
  const Matrix<S>& w = used_weight();
  m_y.resize(x.rows(), out());
  parallel_product(m_y, m_x, w.transpose());
  add_bias(m_y);
  return m_y;
}

template <class S>
template <class Derived>
Matrix<S> DenseLinear<S>::backward(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(grad_y.rows() == m_x.rows() && grad_y.cols() == out(),
                 "DenseLinear::backward: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but the last forward produced ", m_x.rows(), "x", out());
  const Matrix<S> g = grad_y;
  parallel_product(m_grad_weight, g.transpose(), m_x);  // dW = gᵀ x (dense: STE passes it through)
  m_grad_bias = g.colwise().sum().transpose();
  const Matrix<S>& w = m_masked ? m_masked_weight : m_weight;
  Matrix<S> dx(g.rows(), in());
  parallel_product(dx, g, w);
  return dx;
}

template <class S>
template <class Derived>
void DenseLinear<S>::backward_params(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(grad_y.rows() == m_x.rows() && grad_y.cols() == out(),
                 "DenseLinear::backward_params: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but the last forward produced ", m_x.rows(), "x", out());
  const Matrix<S> g = grad_y;
  parallel_product(m_grad_weight, g.transpose(), m_x);
  m_grad_bias = g.colwise().sum().transpose();
}

// Plain loops here and in add_bias: GCC 12 reports false -Wmaybe-uninitialized warnings inside
// Eigen's AVX-512 packet max/add on partial packets, and -Werror turns them into errors.
template <class S>
void Relu<S>::forward(Matrix<S>& x) {
  m_active.resize(x.rows(), x.cols());
  S* p = x.data();
  S* a = m_active.data();
  for (Index i = 0; i < x.size(); ++i) {
    a[i] = p[i] > S(0) ? S(1) : S(0);
    p[i] = p[i] > S(0) ? p[i] : S(0);  // NaN -> 0 (a dead unit), as max(x, 0) in most frameworks
  }
}

template <class S>
void Relu<S>::backward(Matrix<S>& grad) const {
  SPARSENM_CHECK(grad.rows() == m_active.rows() && grad.cols() == m_active.cols(),
                 "Relu::backward: grad is ", grad.rows(), "x", grad.cols(), " but forward saw ",
                 m_active.rows(), "x", m_active.cols());
  S* g = grad.data();
  const S* a = m_active.data();
  for (Index i = 0; i < grad.size(); ++i) g[i] *= a[i];
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_DENSE_LINEAR_HPP
