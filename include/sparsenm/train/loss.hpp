// SPDX-License-Identifier: Apache-2.0
// Softmax cross-entropy and classification accuracy for mini-batches of logits (batch, classes).
#ifndef SPARSENM_TRAIN_LOSS_HPP
#define SPARSENM_TRAIN_LOSS_HPP

#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"

namespace sparsenm {

/// Mean softmax cross-entropy of `logits` (batch, classes) against integer labels; if `grad` is
/// not null it receives dL/dlogits = (softmax - onehot) / batch. Uses the max-shift (log-sum-exp)
/// form so large logits do not overflow. Throws on a label outside [0, classes) or a size
/// mismatch. NaN logits give a NaN loss (not checked: training loops test the loss instead).
template <class Derived>
typename Derived::Scalar softmax_cross_entropy(const Eigen::MatrixBase<Derived>& logits,
                                               const std::vector<int>& labels,
                                               Matrix<typename Derived::Scalar>* grad = nullptr);

/// Index of the largest entry of each row (the first one on ties).
template <class Derived>
std::vector<int> argmax_rows(const Eigen::MatrixBase<Derived>& logits);

/// Number of rows whose argmax equals the label.
template <class Derived>
Index count_correct(const Eigen::MatrixBase<Derived>& logits, const std::vector<int>& labels);

// ---------------------------------------------------------------------------------------------

template <class Derived>
typename Derived::Scalar softmax_cross_entropy(const Eigen::MatrixBase<Derived>& logits,
                                               const std::vector<int>& labels,
                                               Matrix<typename Derived::Scalar>* grad) {
  using S = typename Derived::Scalar;
  const Index batch = logits.rows(), classes = logits.cols();
  SPARSENM_CHECK(static_cast<Index>(labels.size()) == batch, "labels has ", labels.size(),
                 " entries but logits has ", batch, " rows");
  SPARSENM_CHECK(batch > 0 && classes > 0, "logits is ", batch, "x", classes,
                 "; must be non-empty");
  if (grad) grad->resize(batch, classes);
  double total = 0;
  for (Index i = 0; i < batch; ++i) {
    const int y = labels[static_cast<std::size_t>(i)];
    SPARSENM_CHECK(y >= 0 && y < classes, "labels[", i, "] = ", y, " must be in [0, ", classes,
                   ")");
    // Manual max: Eigen's vectorised row reduction trips GCC 12's -Wmaybe-uninitialized.
    S shift = logits(i, 0);
    for (Index c = 1; c < classes; ++c) shift = logits(i, c) > shift ? logits(i, c) : shift;
    double sum = 0;
    for (Index c = 0; c < classes; ++c) sum += std::exp(double(logits(i, c) - shift));
    const double log_z = std::log(sum) + double(shift);
    total += log_z - double(logits(i, y));
    if (grad) {
      for (Index c = 0; c < classes; ++c)
        (*grad)(i, c) = S((std::exp(double(logits(i, c)) - log_z) - (c == y ? 1.0 : 0.0)) / batch);
    }
  }
  return S(total / batch);
}

template <class Derived>
std::vector<int> argmax_rows(const Eigen::MatrixBase<Derived>& logits) {
  std::vector<int> out(static_cast<std::size_t>(logits.rows()));
  for (Index i = 0; i < logits.rows(); ++i) {
    Index best = 0;
    for (Index c = 1; c < logits.cols(); ++c)
      if (logits(i, c) > logits(i, best)) best = c;
    out[static_cast<std::size_t>(i)] = static_cast<int>(best);
  }
  return out;
}

template <class Derived>
Index count_correct(const Eigen::MatrixBase<Derived>& logits, const std::vector<int>& labels) {
  SPARSENM_CHECK(static_cast<Index>(labels.size()) == logits.rows(), "labels has ", labels.size(),
                 " entries but logits has ", logits.rows(), " rows");
  const std::vector<int> pred = argmax_rows(logits);
  Index correct = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) correct += pred[i] == labels[i];
  return correct;
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_LOSS_HPP
