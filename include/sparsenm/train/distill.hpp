// SPDX-License-Identifier: Apache-2.0
// CAST's knowledge-distillation loss (CAST Sec. 3, "knowledge distillation from the dense
// teacher"; CHTsNM App. H.3 removes it for pre-training): the student's cross-entropy on the
// labels plus eta times the KL divergence from the teacher's token distribution,
//   L = CE(s, y) + eta · T² · KL(softmax(t / T) ‖ softmax(s / T)),
// averaged over rows (tokens). T = 1 is CAST's setting; T² keeps the gradient scale independent
// of T (the usual distillation convention).
#ifndef SPARSENM_TRAIN_DISTILL_HPP
#define SPARSENM_TRAIN_DISTILL_HPP

#include <cmath>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// The parts of a distillation loss (means over rows).
struct DistillLoss {
  double total = 0;  ///< ce + eta · T² · kl: the loss the gradient belongs to
  double ce = 0;     ///< cross-entropy of the student (at temperature 1) on the labels, in nats
  double kl = 0;     ///< KL(softmax(t / T) ‖ softmax(s / T)) in nats, without eta · T²
};

/// CAST's distillation objective (CAST Sec. 3: CE on the labels plus eta times the KL divergence
/// from the dense teacher; a larger eta weights the teacher more; CAST tunes it per model):
/// L = CE(student, labels) + eta · T² · KL(p_t ‖ p_s), p = softmax(logits / T), for logits
/// (rows, classes). With `grad`, dL/dstudent = (softmax(s) − onehot) / rows + eta · T · (p_s − p_t)
/// / rows. Throws sparsenm::Error on shape mismatch, a label out of range, eta < 0 or T <= 0.
/// NaN logits give a NaN loss (not checked, as softmax_cross_entropy). Log-softmaxes are
/// max-shifted and computed in double. eta = 0 is plain cross-entropy (the teacher only enters kl).
/// \param student  student logits (rows, classes), row-major, one row per token
/// \param teacher  teacher logits, same shape (the dense model's output; no gradient flows to it)
/// \param labels   target class of each row, in [0, classes)
/// \param eta      weight of the KL term, finite and >= 0
/// \param grad     if not null, resized to (rows, classes) and set to dL/dstudent
/// \param temperature  T, finite and > 0 (1: CAST's setting)
template <class S>
DistillLoss distillation_loss(const Matrix<S>& student, const Matrix<S>& teacher,
                              const std::vector<int>& labels, double eta,
                              std::enable_if_t<true, Matrix<S>>* grad = nullptr,
                              double temperature = 1.0) {  // (grad: not deduced, so nullptr works)
  const Index rows = student.rows(), classes = student.cols();
  SPARSENM_CHECK(rows > 0 && classes > 0, "distillation_loss: student logits are ", rows, "x",
                 classes, "; must be non-empty");
  SPARSENM_CHECK(teacher.rows() == rows && teacher.cols() == classes,
                 "distillation_loss: teacher logits are ", teacher.rows(), "x", teacher.cols(),
                 " but student logits are ", rows, "x", classes);
  SPARSENM_CHECK(Index(labels.size()) == rows, "distillation_loss: labels has ", labels.size(),
                 " entries but the logits have ", rows, " rows");
  check_finite_nonnegative(eta, "distillation_loss: eta");
  check_finite_positive(temperature, "distillation_loss: temperature");
  if (grad) grad->resize(rows, classes);
  // log-softmax of row i of z / tau, max-shifted.
  auto log_softmax = [&](const Matrix<S>& z, Index i, double tau, std::vector<double>& out) {
    double mx = double(z(i, 0)) / tau;
    for (Index c = 1; c < classes; ++c) mx = std::max(mx, double(z(i, c)) / tau);
    double sum = 0;
    for (Index c = 0; c < classes; ++c) sum += std::exp(double(z(i, c)) / tau - mx);
    const double lz = std::log(sum) + mx;
    for (Index c = 0; c < classes; ++c) out[std::size_t(c)] = double(z(i, c)) / tau - lz;
  };
  const std::size_t nc = static_cast<std::size_t>(classes);
  std::vector<double> ls(nc), lst(nc), ltt(nc);
  DistillLoss r;
  const double t2 = temperature * temperature;
  for (Index i = 0; i < rows; ++i) {
    const int y = labels[std::size_t(i)];
    SPARSENM_CHECK(y >= 0 && y < classes, "distillation_loss: labels[", i, "] = ", y,
                   " must be in [0, ", classes, ")");
    log_softmax(student, i, 1.0, ls);
    log_softmax(student, i, temperature, lst);
    log_softmax(teacher, i, temperature, ltt);
    r.ce -= ls[std::size_t(y)];
    double kl = 0;
    for (std::size_t c = 0; c < std::size_t(classes); ++c)
      kl += std::exp(ltt[c]) * (ltt[c] - lst[c]);
    r.kl += kl;
    if (grad)
      for (Index c = 0; c < classes; ++c) {
        const std::size_t k = std::size_t(c);
        (*grad)(i, c) = S((std::exp(ls[k]) - (c == y ? 1.0 : 0.0) +
                           eta * temperature * (std::exp(lst[k]) - std::exp(ltt[k]))) /
                          double(rows));
      }
  }
  r.ce /= double(rows);
  r.kl /= double(rows);
  r.total = r.ce + eta * t2 * r.kl;
  return r;
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_DISTILL_HPP
