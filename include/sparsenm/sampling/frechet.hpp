// SPDX-License-Identifier: Apache-2.0
// Soft removal and soft regrowth noise (chts24 Sec. 3.2.2-3.2.3, App. A, C; docs/algorithms.md
// "Soft sampling"). All randomness is counter-based: entry (i, j) uses counter i * cols + j of
// `rng`, so results never depend on the thread count.
#ifndef SPARSENM_SAMPLING_FRECHET_HPP
#define SPARSENM_SAMPLING_FRECHET_HPP

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/philox.hpp"
#include "../core/random_fill.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/frechet_kernels.hpp"

namespace sparsenm {

namespace detail {

template <class S, class Fallback>
using sampling_scalar_t = std::conditional_t<std::is_void<S>::value, Fallback, S>;

/// Calls f(i, row_begin, row_end) over rows in parallel chunks (static schedule; chunking depends
/// only on the shape).
template <class F>
void for_each_row_chunk(Index rows, Index cols, F&& f) {
  const Index grain = std::max<Index>(1, Index(16384) / std::max<Index>(cols, 1));
  parallel_for_chunks(rows, grain, [&](Index b, Index e) { f(b, e); });
}

/// True if any of n values is NaN (magnitude bits above the infinity pattern).
template <class T>
bool any_nan(const T* p, Index n) {
  static_assert(std::is_floating_point<T>::value, "any_nan: floating-point input");
  using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  constexpr U kAbs = sizeof(T) == 4 ? U(0x7fffffffu) : U(0x7fffffffffffffffull);
  constexpr U kInf = sizeof(T) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  U hit = 0;
  for (Index k = 0; k < n; ++k) {
    U bits;
    std::memcpy(&bits, p + k, sizeof(T));
    hit |= U((bits & kAbs) > kInf);
  }
  return hit != 0;
}

}  // namespace detail

/// frechet_scores (below) written into `out` (resized to the shape of w; its storage is reused
/// when the size does not change, as in a refresher that scores every refresh).
template <class S, class Derived>
void frechet_scores_into(const Eigen::MatrixBase<Derived>& w, S temperature, const Philox& rng,
                         Matrix<S>& out) {
  static_assert(std::is_floating_point<S>::value, "frechet_scores: S must be float or double");
  check_finite_positive(double(temperature), "frechet_scores: temperature");
  using T = typename Derived::Scalar;
  const Eigen::Ref<const Matrix<T>> x(w.derived());
  out.resize(x.rows(), x.cols());
  const Index cols = x.cols();
  if (out.size() == 0) return;
  const S inv_t = S(1.0 / double(temperature));
  std::atomic<bool> bad{false};
  detail::for_each_row_chunk(x.rows(), cols, [&](Index b, Index e) {
    std::vector<S> u(static_cast<std::size_t>(cols));
    for (Index i = b; i < e; ++i) {
      if (!detail::all_finite_range(x.data() + i * x.outerStride(), cols))
        bad.store(true, std::memory_order_relaxed);
      SPARSENM_DISPATCH(fill_uniform)(rng, std::uint64_t(i * cols), u.data(), cols);
      SPARSENM_DISPATCH(frechet_transform)
      (x.data() + i * x.outerStride(), u.data(), out.data() + i * cols, cols, inv_t);
    }
  });
  if (bad.load()) check_all_finite(x, "frechet_scores: w");  // throws, naming the entry
}

/// Fréchet removal scores W~ = |W| * (-ln U)^(-1/T), U ~ U(0, 1) with counter = linear index
/// (chts24 Sec. 3.2.2, App. A). Keeping the top-k of W~ samples k entries without replacement with
/// probability proportional to |W|^T (Gumbel-top-k in log space): small T = near-uniform, large T =
/// near-greedy top-k. Computed in S (deduced from `temperature`; write
/// `frechet_scores<float>(w, 2.0, rng)` to force it) with U = rng.uniform_float(k) for float and
/// rng.uniform(k) for double. Float evaluates 2^(-(1/T) log2(-ln U)) with log2/exp2 polynomials
/// (detail/frechet_math.hpp: within 1e-5 of the formula in double), vectorised with AVX-512 and
/// bit-identical between that kernel, the scalar path and the CUDA backend; double uses
/// std::log/exp. Zero weights score exactly 0. For very small T a score may overflow to +Inf (it
/// then ties with other +Inf scores). Throws sparsenm::Error if T is not finite and > 0 or if w has
/// a NaN/Inf entry.
template <class S, class Derived>
Matrix<S> frechet_scores(const Eigen::MatrixBase<Derived>& w, S temperature, const Philox& rng) {
  Matrix<S> out;
  frechet_scores_into(w, temperature, rng, out);
  return out;
}

/// uniform_perturb (below) written into `out` (resized to the shape of scores; its storage is
/// reused when the size does not change). A fresh result matrix costs page faults on every call
/// for large shapes (glibc maps blocks above 32 MiB anew each time; in the project's VM a 4096^2
/// float result spent ~200 ms in them, 18x the kernel).
template <class R, class Derived>
void uniform_perturb_into(const Eigen::MatrixBase<Derived>& scores, const Philox& rng,
                          Matrix<R>& out) {
  using T = typename Derived::Scalar;
  static_assert(std::is_floating_point<R>::value, "uniform_perturb: S must be float or double");
  const Eigen::Ref<const Matrix<T>> x(scores.derived());
  out.resize(x.rows(), x.cols());
  const Index cols = x.cols();
  if (out.size() == 0) return;
  std::atomic<bool> nan{false};
  detail::for_each_row_chunk(x.rows(), cols, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) {
      R* o = out.data() + i * cols;
      if (detail::any_nan(x.data() + i * x.outerStride(), cols))
        nan.store(true, std::memory_order_relaxed);
      SPARSENM_DISPATCH(fill_uniform)(rng, std::uint64_t(i * cols), o, cols);
      const T* xi = x.data() + i * x.outerStride();
      for (Index j = 0; j < cols; ++j) o[j] = R(xi[j]) * o[j];
    }
  });
  if (nan.load())
    for (Index i = 0; i < x.rows(); ++i)
      for (Index j = 0; j < cols; ++j)
        SPARSENM_CHECK(!std::isnan(double(x(i, j))), "uniform_perturb: scores(", i, ", ", j,
                       ") is NaN");
}

/// Soft-regrowth noise S~ = S ⊙ U(0, 1) (chts24 Sec. 3.2.3, App. C), U with counter = linear index
/// (rng.uniform_float for a float result, rng.uniform for double), computed in the result type S,
/// which defaults to the scores' scalar. ±Inf pass through (Inf * U = Inf); NaN throws.
template <class S = void, class Derived>
Matrix<detail::sampling_scalar_t<S, typename Derived::Scalar>> uniform_perturb(
    const Eigen::MatrixBase<Derived>& scores, const Philox& rng) {
  Matrix<detail::sampling_scalar_t<S, typename Derived::Scalar>> out;
  uniform_perturb_into(scores, rng, out);
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_SAMPLING_FRECHET_HPP
