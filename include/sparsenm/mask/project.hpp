// SPDX-License-Identifier: Apache-2.0
// Layout-dispatching conveniences: project(scores, nm, layout), is_legal(mask, nm, layout),
// random_mask(...), apply_mask(w, mask), and magnitude_mask(w, nm, layout).
//
// The projections keep the LARGEST signed scores: project(w, ...) on raw weights keeps the most
// positive weights, not the largest magnitudes. For magnitude pruning pass |w|, or call
// magnitude_mask(w, nm, layout), which does exactly that.
#ifndef SPARSENM_MASK_PROJECT_HPP
#define SPARSENM_MASK_PROJECT_HPP

#include <Eigen/Core>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "rowwise.hpp"
#include "transposable.hpp"

namespace sparsenm {

/// project_rowwise or project_transposable, by layout.
template <class Derived>
Mask project(const Eigen::MatrixBase<Derived>& scores, NM nm, Layout layout) {
  return layout == Layout::RowWise ? project_rowwise(scores, nm) : project_transposable(scores, nm);
}

/// The legal N:M mask of the layout that keeps the largest |weight| (magnitude pruning; the mask
/// of STE, eDSrT): project(weight.cwiseAbs(), nm, layout). Throws like project() (NaN or Inf
/// weights, shapes not divisible by m).
template <class Derived>
Mask magnitude_mask(const Eigen::MatrixBase<Derived>& weight, NM nm,
                    Layout layout = Layout::RowWise) {
  return project(weight.cwiseAbs(), nm, layout);
}

/// is_rowwise_legal or is_transposable_legal, by layout.
inline bool is_legal(const Mask& mask, NM nm, Layout layout) {
  return layout == Layout::RowWise ? is_rowwise_legal(mask, nm) : is_transposable_legal(mask, nm);
}

/// random_rowwise or random_transposable, by layout.
inline Mask random_mask(Index rows, Index cols, NM nm, Layout layout, const Philox& rng) {
  return layout == Layout::RowWise ? random_rowwise(rows, cols, nm, rng)
                                   : random_transposable(rows, cols, nm, rng);
}

/// w <- w ⊙ mask in place (entries where the mask is 0 become exactly 0). Accepts any writable
/// Eigen l-value or block (Eigen's const-cast idiom for writable expressions). Throws on a shape
/// mismatch.
template <class Derived>
void apply_mask(const Eigen::MatrixBase<Derived>& w, const Mask& mask) {
  check_same_shape(w, mask, "apply_mask: w", "mask");
  auto& x = const_cast<Eigen::MatrixBase<Derived>&>(w);
  using S = typename Derived::Scalar;
  for (Index i = 0; i < x.rows(); ++i)
    for (Index j = 0; j < x.cols(); ++j)
      if (!mask(i, j)) x(i, j) = S(0);
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_PROJECT_HPP
