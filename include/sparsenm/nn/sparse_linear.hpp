// SPDX-License-Identifier: Apache-2.0
// A true-sparse linear layer y = x Wᵀ (+ b) whose weight lives only in NMCompressed form
// (CHTsNM Sec. 3.1: inactive weights are absent from the forward pass and are not updated; CHTs24
// App. J: forward, dX and dW all run at the sparse cost). Training never forms dense W or dense dW:
//   forward   Y  = X Wᵀ                      spmm on the compressed weight
//   backward  dX = dY W                      spmm on the CSR of Wᵀ (the column structure)
//             dW_active = (dYᵀ X)|active     sddmm, in the layout of weight().values
// Topology refresh runs on the compressed weight (refresh(topology, step), CHTs24 Alg. 1): values
// of entries active before and after are kept, regrown entries start at zero, and the returned
// SlotMap lets every optimizer's per-weight state follow its weight (remap()).
#ifndef SPARSENM_NN_SPARSE_LINEAR_HPP
#define SPARSENM_NN_SPARSE_LINEAR_HPP

#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../kernels/packed_tokens.hpp"
#include "../kernels/sddmm.hpp"
#include "../kernels/spmm.hpp"
#include "../kernels/transposed_weight.hpp"
#include "../mask.hpp"
#include "../topology/refresh.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// y = x Wᵀ (+ bias), W (out x in) stored as NMCompressed with a row-wise or transposable N:M mask.
///
/// Initialisation: a uniformly random legal mask (random_rowwise / random_transposable from
/// rng.split(1)) and PyTorch nn.Linear's default values on the kept entries,
/// W(o, k) ~ U(-1/sqrt(in), 1/sqrt(in)) with the dense linear index o * in + k as Philox counter of
/// rng; the optional bias ~ U(-1/sqrt(in), 1/sqrt(in)) from rng.split(2).
/// NaN/Inf inputs are not checked (a hot path): they propagate to the outputs and gradients.
template <class S>
class SparseLinear {
 public:
  /// `in` must be divisible by m (and `out` too for Layout::Transposable). Throws sparsenm::Error.
  SparseLinear(Index in, Index out, NM nm, Layout layout, const Philox& rng, bool bias = false);

  /// x: (batch, in) -> (batch, out). Keeps x (packed) for backward.
  template <class Derived>
  Matrix<S> forward(const Eigen::MatrixBase<Derived>& x);

  /// grad_y: (batch, out) for the batch of the last forward. Returns dX (batch, in) and fills
  /// grad_values() (active entries only, same layout as weight().values) and grad_bias().
  template <class Derived>
  Matrix<S> backward(const Eigen::MatrixBase<Derived>& grad_y);
  /// backward() without dX: only grad_values() and grad_bias(), for a layer whose input needs no
  /// gradient (a network's first layer, as autograd skips inputs that do not require one). Skips
  /// the dX product and the copy of the values into W^T's layout.
  template <class Derived>
  void backward_params(const Eigen::MatrixBase<Derived>& grad_y);

  /// The compressed weight: values (out x in/m*n) and their in-group positions (indices), the
  /// only form W has during training. Build compressed-route optimizers (Adam, Tans, Muon) from it.
  const NMCompressed<S>& weight() const { return m_weight; }
  /// The active values (out x in/m*n), for an optimizer to update in place. The shape must stay.
  Matrix<S>& values() { return m_weight.values; }
  /// The active values (out x in/m*n), read-only.
  const Matrix<S>& values() const { return m_weight.values; }
  /// dL/dW on the active entries only (out x in/m*n, the layout of weight().values), written by
  /// backward() (overwritten, not accumulated) and zeroed by every mask change.
  const Matrix<S>& grad_values() const { return m_grad_values; }
  /// Whether the layer was built with a bias.
  bool has_bias() const { return m_has_bias; }
  /// Bias (length out; empty without bias).
  Vector<S>& bias() { return m_bias; }
  /// Bias (length out; empty without bias), read-only.
  const Vector<S>& bias() const { return m_bias; }
  /// dL/db (length out) from the last backward(): the column sums of grad_y. Empty without bias.
  const Vector<S>& grad_bias() const { return m_grad_bias; }

  /// The current 0/1 mask (out x in), rebuilt from the indices.
  Mask mask() const;
  /// Dense W with zeros at inactive entries: for export and tests only, never used in training.
  Matrix<S> dense_weight() const { return decompress(m_weight); }
  /// Dense dW with zeros at inactive entries: for tests and dense optimizers only.
  Matrix<S> dense_grad() const;

  /// One step of a compressed-route optimizer (Adam, Tans or Muon built from weight()) on this
  /// layer's values with grad_values(): opt.step(weight, grad_values). The bias is not included.
  template <class Optimizer>
  void step(Optimizer& opt) {
    opt.step(m_weight, m_grad_values);
  }

  /// Replaces the compressed weight (loading a checkpoint): same shape and n:m, indices legal for
  /// the layer's layout. Throws sparsenm::Error and keeps the old weight otherwise.
  void set_compressed(NMCompressed<S> weight);
  /// The checks of set_compressed() alone: throws sparsenm::Error unless `weight` could replace
  /// this layer's weight.
  void check_weight(const NMCompressed<S>& weight) const;

  /// One topology refresh of this layer's compressed weight at `step` (sparse-to-sparse: dense
  /// scratch only during the call). The result's `slots` maps the new slots to the old ones: pass
  /// it to every optimizer that keeps state for values() (their remap()). The gradient is zeroed.
  /// Throws if the refresher's n:m or layout differ from the layer's.
  RefreshResult refresh(TopologyRefresher<S>& topology, long step);

  /// Accepts a new legal mask for this layer's layout: entries active in both masks keep their
  /// values, newly active ones start at 0. Returns where each new slot comes from (for the
  /// optimizers' remap()). Throws if the mask has the wrong shape or is not legal.
  SlotMap set_mask(const Mask& new_mask);
  /// Replaces mask and values: W = dense ⊙ mask. For loading and for tests.
  template <class Derived>
  void set_weight(const Eigen::MatrixBase<Derived>& dense, const Mask& mask);

  /// Bytes of training state this layer keeps between steps: values, indices, gradient, the
  /// transposed structure for dX, bias and its gradient (not the activations kept for backward).
  std::size_t state_bytes() const {
    return std::size_t(m_weight.values.size()) * (2 * sizeof(S) + sizeof(std::uint8_t)) +
           m_transposed.bytes() + std::size_t(m_bias.size() + m_grad_bias.size()) * sizeof(S);
  }
  /// Bytes of the activations kept from forward for backward (x and dY, packed).
  std::size_t activation_bytes() const { return m_x.bytes() + m_dy.bytes(); }

  /// Input features (columns of W).
  Index in() const { return m_weight.cols; }
  /// Output features (rows of W).
  Index out() const { return m_weight.rows; }
  /// The N:M pattern: n kept of every m consecutive weights of a row.
  NM nm() const { return m_weight.nm; }
  /// Row-wise N:M, or transposable: the columns of W are N:M too (CHTs24 Sec. 3.1), so the
  /// backward product dX = dY W is N:M-sparse on hardware as well.
  Layout layout() const { return m_layout; }

 private:
  void check_mask(const Mask& mask) const;

  NMCompressed<S> m_weight;
  Layout m_layout;
  bool m_has_bias;
  Vector<S> m_bias, m_grad_bias;
  Matrix<S> m_grad_values;
  TransposedWeight<S> m_transposed;  // structure rebuilt on mask changes, values every backward
  PackedTokens<S> m_x, m_dy;
  bool m_have_forward = false;
};

// ---------------------------------------------------------------------------------------------

template <class S>
SparseLinear<S>::SparseLinear(Index in, Index out, NM nm, Layout layout, const Philox& rng,
                              bool bias)
    : m_layout(layout), m_has_bias(bias) {
  check_at_least(in, 1, "SparseLinear: in");
  check_at_least(out, 1, "SparseLinear: out");
  check_nm(nm, "SparseLinear: nm");
  check_divisible(in, nm.m, "SparseLinear: in");
  if (layout == Layout::Transposable)
    check_divisible(out, nm.m, "SparseLinear: out (transposable)");
  const Mask mask = layout == Layout::RowWise ? random_rowwise(out, in, nm, rng.split(1))
                                              : random_transposable(out, in, nm, rng.split(1));
  const double bound = 1.0 / std::sqrt(double(in));
  m_weight.nm = nm;
  m_weight.rows = out;
  m_weight.cols = in;
  const Index nnzr = in / nm.m * nm.n;
  m_weight.values.resize(out, nnzr);
  m_weight.indices.resize(out, nnzr);
  for (Index o = 0; o < out; ++o) {
    Index j = 0;
    for (Index k = 0; k < in; ++k)
      if (mask(o, k)) {
        const std::uint64_t counter = static_cast<std::uint64_t>(o * in + k);
        m_weight.values(o, j) = S((2.0 * rng.uniform(counter) - 1.0) * bound);
        m_weight.indices(o, j) = std::uint8_t(k % nm.m);
        ++j;
      }
  }
  if (bias) {
    const Philox brng = rng.split(2);
    m_bias.resize(out);
    for (Index o = 0; o < out; ++o)
      m_bias(o) = S((2.0 * brng.uniform(static_cast<std::uint64_t>(o)) - 1.0) * bound);
    m_grad_bias = Vector<S>::Zero(out);
  }
  m_grad_values = Matrix<S>::Zero(out, nnzr);
  m_transposed.rebuild(m_weight);
}

template <class S>
template <class Derived>
Matrix<S> SparseLinear<S>::forward(const Eigen::MatrixBase<Derived>& x) {
  SPARSENM_CHECK(x.cols() == in(), "SparseLinear::forward: x is ", x.rows(), "x", x.cols(),
                 " but must have in = ", in(), " columns");
  m_x.pack(x);
  Matrix<S> y(x.rows(), out());
  spmm(m_x, m_weight, y);
  if (m_has_bias) y.rowwise() += m_bias.transpose();
  m_have_forward = true;
  return y;
}

template <class S>
template <class Derived>
Matrix<S> SparseLinear<S>::backward(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(m_have_forward, "SparseLinear::backward called before forward");
  SPARSENM_CHECK(grad_y.rows() == m_x.tokens() && grad_y.cols() == out(),
                 "SparseLinear::backward: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but must be ", m_x.tokens(), "x", out(), " (batch of the last forward x out)");
  m_dy.pack(grad_y);
  // The optimizer may have changed the values since the last call (never the structure: that
  // goes through set_mask, which rebuilds it).
  m_transposed.update_values(m_weight);
  Matrix<S> dx(grad_y.rows(), in());
  spmm_transposed(m_dy, m_transposed, dx);
  sddmm(m_dy, m_x, m_weight, m_grad_values);
  if (m_has_bias) m_grad_bias = grad_y.colwise().sum().transpose().template cast<S>();
  return dx;
}

template <class S>
template <class Derived>
void SparseLinear<S>::backward_params(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(m_have_forward, "SparseLinear::backward_params called before forward");
  SPARSENM_CHECK(grad_y.rows() == m_x.tokens() && grad_y.cols() == out(),
                 "SparseLinear::backward_params: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but must be ", m_x.tokens(), "x", out(), " (batch of the last forward x out)");
  m_dy.pack(grad_y);
  sddmm(m_dy, m_x, m_weight, m_grad_values);
  if (m_has_bias) m_grad_bias = grad_y.colwise().sum().transpose().template cast<S>();
}

template <class S>
Mask SparseLinear<S>::mask() const {
  return mask_of(m_weight);
}

template <class S>
RefreshResult SparseLinear<S>::refresh(TopologyRefresher<S>& topology, long step) {
  const RefreshConfig& c = topology.config();
  SPARSENM_CHECK(c.nm == nm() && c.layout == m_layout, "SparseLinear::refresh: the refresher is ",
                 c.nm, " ", to_string(c.layout), " but the layer is ", nm(), " ",
                 to_string(m_layout));
  RefreshResult r = topology.refresh(m_weight, step);
  m_grad_values.setZero();
  m_transposed.rebuild(m_weight);
  return r;
}

template <class S>
Matrix<S> SparseLinear<S>::dense_grad() const {
  NMCompressed<S> g = m_weight;
  g.values = m_grad_values;
  return decompress(g);
}

template <class S>
void SparseLinear<S>::check_mask(const Mask& mask) const {
  check_shape(mask, out(), in(), "SparseLinear: mask");
  check_binary(mask, "SparseLinear: mask");
  SPARSENM_CHECK(is_legal(mask, m_weight.nm, m_layout), "SparseLinear: mask is not ",
                 to_string(m_layout), "-legal for ", m_weight.nm);
}

template <class S>
void SparseLinear<S>::set_compressed(NMCompressed<S> weight) {
  check_weight(weight);
  m_weight = std::move(weight);
  m_grad_values.setZero();
  m_transposed.rebuild(m_weight);
}

template <class S>
void SparseLinear<S>::check_weight(const NMCompressed<S>& weight) const {
  check_compressed(weight, "SparseLinear::set_compressed: weight");
  SPARSENM_CHECK(weight.rows == out() && weight.cols == in() && weight.nm == nm(),
                 "SparseLinear::set_compressed: weight is ", weight.rows, "x", weight.cols, " ",
                 weight.nm, " but the layer is ", out(), "x", in(), " ", nm());
  if (m_layout == Layout::Transposable)
    SPARSENM_CHECK(is_legal(mask_of(weight), nm(), m_layout),
                   "SparseLinear::set_compressed: the weight's mask is not transposable-legal for ",
                   nm());
}

template <class S>
SlotMap SparseLinear<S>::set_mask(const Mask& new_mask) {
  check_mask(new_mask);
  SlotMap map = move_to_mask(m_weight, new_mask);
  m_grad_values.setZero();
  m_transposed.rebuild(m_weight);
  return map;
}

template <class S>
template <class Derived>
void SparseLinear<S>::set_weight(const Eigen::MatrixBase<Derived>& dense, const Mask& mask) {
  check_shape(dense, out(), in(), "SparseLinear::set_weight: dense");
  check_mask(mask);
  m_weight = compress<S>(dense, mask, m_weight.nm);
  m_grad_values.setZero();
  m_transposed.rebuild(m_weight);
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_NN_SPARSE_LINEAR_HPP
