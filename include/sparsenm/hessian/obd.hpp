// SPDX-License-Identifier: Apache-2.0
// Optimal Brain Damage importance (LeCun et al. 1990; SparseForge Sec. 3.3 (I1) and Sec. 4.2):
// removing w_i changes the loss by about ½ H_ii w_i² near a minimum, so s = (H + ε) ⊙ W² ranks
// entries by their removal cost. H is the (estimated) Hessian diagonal reshaped like W.
#ifndef SPARSENM_HESSIAN_OBD_HPP
#define SPARSENM_HESSIAN_OBD_HPP

#include <algorithm>

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/finite.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// s = (max(H, 0) + eps) ⊙ W² (SparseForge Sec. 4.2, "s = (H + ε) ⊙ W²").
///
/// A Hutchinson estimate of a positive curvature can be negative for a few samples; such entries
/// are clamped to 0 here, as in the SparseForge release (docs/algorithms.md), so a noisy negative
/// estimate never ranks an entry below a zero weight. The estimator itself stays unclamped (and
/// unbiased). eps >= 0 keeps scores magnitude-ordered where H is 0.
///
/// Throws sparsenm::Error when the shapes differ, eps is negative or non-finite, or hdiag / w hold
/// a NaN or Inf (the message names the first such entry).
template <class S, class DH, class DW>
Matrix<S> obd_scores(const Eigen::MatrixBase<DH>& hdiag, const Eigen::MatrixBase<DW>& w, S eps) {
  check_same_shape(hdiag, w, "obd_scores: hdiag", "w");
  check_finite_nonnegative(double(eps), "obd_scores: eps");
  const Matrix<S> h = hdiag.template cast<S>();
  const Matrix<S> ww = w.template cast<S>();
  detail::check_all_finite_fast(h, "obd_scores: hdiag");
  detail::check_all_finite_fast(ww, "obd_scores: w");
  Matrix<S> s(h.rows(), h.cols());
  const S* hp = h.data();
  const S* wp = ww.data();
  S* sp = s.data();
  parallel_for_chunks(s.size(), Index(1) << 14, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) sp[i] = (std::max(hp[i], S(0)) + eps) * (wp[i] * wp[i]);
  });
  return s;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_HESSIAN_OBD_HPP
