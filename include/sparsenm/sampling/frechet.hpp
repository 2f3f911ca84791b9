// SPDX-License-Identifier: Apache-2.0
// Soft removal and soft regrowth noise (chts24 Sec. 3.2.2-3.2.3, App. A, C; ALGORITHMS.md "Soft
// sampling"). All randomness is counter-based: entry (i, j) uses counter i * cols + j of `rng`, so
// results never depend on the thread count.
#ifndef SPARSENM_SAMPLING_FRECHET_HPP
#define SPARSENM_SAMPLING_FRECHET_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

namespace detail {

template <class S, class Fallback>
using sampling_scalar_t = std::conditional_t<std::is_void<S>::value, Fallback, S>;

/// Calls f(i, j, linear) over a (rows, cols) shape in parallel row chunks (static schedule).
template <class F>
void for_each_entry(Index rows, Index cols, F&& f) {
  const Index grain = std::max<Index>(1, Index(16384) / std::max<Index>(cols, 1));
  parallel_for_chunks(rows, grain, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i)
      for (Index j = 0; j < cols; ++j) f(i, j, i * cols + j);
  });
}

}  // namespace detail

/// Fréchet removal scores W~ = |W| * (-ln U)^(-1/T), U ~ U(0, 1) with counter = linear index
/// (chts24 Sec. 3.2.2, App. A). Keeping the top-k of W~ samples k entries without replacement with
/// probability proportional to |W|^T (Gumbel-top-k in log space): small T = near-uniform, large T =
/// near-greedy top-k. Computed in double, returned as S (deduced from `temperature`; write
/// `frechet_scores<float>(w, 2.0, rng)` to force it). Zero weights score exactly 0. For very small
/// T a score may overflow to +Inf (it then ties with other +Inf scores).
/// Throws sparsenm::Error if T is not finite and > 0 or if w has a NaN/Inf entry.
template <class S, class Derived>
Matrix<S> frechet_scores(const Eigen::MatrixBase<Derived>& w, S temperature, const Philox& rng) {
  static_assert(std::is_floating_point<S>::value, "frechet_scores: S must be float or double");
  check_finite_positive(double(temperature), "frechet_scores: temperature");
  check_all_finite(w, "frechet_scores: w");
  using T = typename Derived::Scalar;
  const Eigen::Ref<const Matrix<T>> x(w.derived());
  Matrix<S> out(x.rows(), x.cols());
  const double inv_t = 1.0 / double(temperature);
  detail::for_each_entry(x.rows(), x.cols(), [&](Index i, Index j, Index k) {
    const double a = std::abs(double(x(i, j)));
    if (a == 0) {
      out(i, j) = S(0);
      return;
    }
    const double e = -std::log(rng.uniform(std::uint64_t(k)));  // Exp(1), > 0
    out(i, j) = S(a * std::exp(-inv_t * std::log(e)));
  });
  return out;
}

/// Soft-regrowth noise S~ = S ⊙ U(0, 1) (chts24 Sec. 3.2.3, App. C), U with counter = linear index.
/// S defaults to the scores' scalar. ±Inf pass through (Inf * U = Inf); NaN throws.
template <class S = void, class Derived>
Matrix<detail::sampling_scalar_t<S, typename Derived::Scalar>> uniform_perturb(
    const Eigen::MatrixBase<Derived>& scores, const Philox& rng) {
  using R = detail::sampling_scalar_t<S, typename Derived::Scalar>;
  using T = typename Derived::Scalar;
  static_assert(std::is_floating_point<R>::value, "uniform_perturb: S must be float or double");
  const Eigen::Ref<const Matrix<T>> x(scores.derived());
  for (Index i = 0; i < x.rows(); ++i)
    for (Index j = 0; j < x.cols(); ++j)
      SPARSENM_CHECK(!std::isnan(double(x(i, j))), "uniform_perturb: scores(", i, ", ", j,
                     ") is NaN");
  Matrix<R> out(x.rows(), x.cols());
  detail::for_each_entry(x.rows(), x.cols(), [&](Index i, Index j, Index k) {
    out(i, j) = R(double(x(i, j)) * rng.uniform(std::uint64_t(k)));
  });
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_SAMPLING_FRECHET_HPP
