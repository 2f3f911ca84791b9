// SPDX-License-Identifier: Apache-2.0
// Token embedding of a decoder language model: row t of the (vocab, dim) table is the input of a
// token with id t. The papers keep it dense (CHTsNM Sec. 4 and CHTs24 Sec. 4.2 sparsify only the
// seven projections q, k, v, o, gate, up, down of each LLaMA block).
#ifndef SPARSENM_NN_EMBEDDING_HPP
#define SPARSENM_NN_EMBEDDING_HPP

#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// y(i, :) = W(tokens[i], :) with W (vocab, dim) row-major: a table look-up, dense in the papers'
/// models (only the block projections are N:M sparse). Backward is the scatter-add
///   dW(t, :) = Σ_{i : tokens[i] = t} dy(i, :),
/// serial in token order, so the gradient is bit-identical for any thread count.
///
/// Initialisation: W ~ U(-a, a) with a = sqrt(3) * stddev (variance stddev², LLaMA's 0.02 by
/// default), the element index as Philox counter of rng.
template <class S>
class Embedding {
 public:
  /// vocab, dim >= 1; stddev finite and >= 0. Throws sparsenm::Error.
  Embedding(Index vocab, Index dim, const Philox& rng, double stddev = 0.02);

  /// tokens (any length >= 1, each in [0, vocab)) -> (tokens, dim). Keeps the ids for backward.
  /// Throws sparsenm::Error on an empty list or an id out of range (naming its position).
  Matrix<S> forward(const std::vector<int>& tokens);
  /// grad_y (tokens, dim) of the last forward: grad_weight() = sum over positions of the rows
  /// (overwritten, not accumulated; ids repeated in the batch add up). Throws sparsenm::Error
  /// before the first forward or when grad_y is not (tokens, dim).
  template <class Derived>
  void backward(const Eigen::MatrixBase<Derived>& grad_y);

  /// Number of token ids: the rows of the table.
  Index vocab() const { return m_weight.rows(); }
  /// Embedding width: the columns of the table and of forward's output.
  Index dim() const { return m_weight.cols(); }
  /// The table W (vocab, dim), writable for the optimizer and for loading a checkpoint (keep the
  /// shape: forward and backward read vocab() and dim() from it).
  Matrix<S>& weight() { return m_weight; }
  /// The table W (vocab, dim).
  const Matrix<S>& weight() const { return m_weight; }
  /// dL/dW (vocab, dim) of the last backward; zero before it. Rows of ids absent from the batch
  /// are zero.
  const Matrix<S>& grad_weight() const { return m_grad; }

 private:
  Matrix<S> m_weight, m_grad;
  std::vector<int> m_tokens;
};

// ---------------------------------------------------------------------------------------------

template <class S>
Embedding<S>::Embedding(Index vocab, Index dim, const Philox& rng, double stddev) {
  check_at_least(vocab, 1, "Embedding: vocab");
  check_at_least(dim, 1, "Embedding: dim");
  check_finite_nonnegative(stddev, "Embedding: stddev");
  m_weight.resize(vocab, dim);
  const double a = std::sqrt(3.0) * stddev;
  for (Index i = 0; i < m_weight.size(); ++i)
    m_weight.data()[i] = S((2.0 * rng.uniform(static_cast<std::uint64_t>(i)) - 1.0) * a);
  m_grad = Matrix<S>::Zero(vocab, dim);
}

template <class S>
Matrix<S> Embedding<S>::forward(const std::vector<int>& tokens) {
  SPARSENM_CHECK(!tokens.empty(), "Embedding::forward: no tokens");
  Matrix<S> y(static_cast<Index>(tokens.size()), dim());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    SPARSENM_CHECK(tokens[i] >= 0 && tokens[i] < vocab(), "Embedding::forward: tokens[", i,
                   "] = ", tokens[i], " must be in [0, ", vocab(), ")");
    y.row(Index(i)) = m_weight.row(tokens[i]);
  }
  m_tokens = tokens;
  return y;
}

template <class S>
template <class Derived>
void Embedding<S>::backward(const Eigen::MatrixBase<Derived>& grad_y) {
  SPARSENM_CHECK(!m_tokens.empty(), "Embedding::backward called before forward");
  SPARSENM_CHECK(grad_y.rows() == Index(m_tokens.size()) && grad_y.cols() == dim(),
                 "Embedding::backward: grad_y is ", grad_y.rows(), "x", grad_y.cols(),
                 " but must be ", m_tokens.size(), "x", dim());
  m_grad.setZero();
  // Serial scatter-add in token order: bit-identical for any thread count.
  for (std::size_t i = 0; i < m_tokens.size(); ++i)
    m_grad.row(m_tokens[i]) += grad_y.row(Index(i)).template cast<S>();
}

}  // namespace sparsenm

#endif  // SPARSENM_NN_EMBEDDING_HPP
