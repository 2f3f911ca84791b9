// SPDX-License-Identifier: Apache-2.0
// Sampled dense-dense product for the weight gradient of a compressed N:M layer (CHTs24 App. J):
//   dW_active(o, j) = sum_t dY(t, o) X(t, col(o, j)),
// i.e. dY^T X evaluated only at the n/m active entries, returned in the layout of
// NMCompressed::values (out x in/m*n). Dense dW is never formed.
#ifndef SPARSENM_KERNELS_SDDMM_HPP
#define SPARSENM_KERNELS_SDDMM_HPP

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask.hpp"
#include "detail/spmm_scalar.hpp"
#include "detail/spmm_tiled.hpp"
#include "packed_tokens.hpp"
#include "transposed_weight.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// Active-entry gradient into `dv` (out x nnz per row) from packed dY (tokens x out) and X
/// (tokens x in). Checks shapes; the indices of `w` must be valid (check_compressed).
template <class S>
void sddmm(const PackedTokens<S>& dy, const PackedTokens<S>& x, const NMCompressed<S>& w,
           detail::RefOut<S> dv) {
  check_nm(w.nm, "weight.nm");
  SPARSENM_CHECK(w.cols % w.nm.m == 0, "weight.cols = ", w.cols,
                 " must be divisible by m = ", w.nm.m);
  const Index nnzr = w.cols / w.nm.m * w.nm.n;
  check_shape(w.values, w.rows, nnzr, "weight.values");
  check_shape(w.indices, w.rows, nnzr, "weight.indices");
  SPARSENM_CHECK(dy.tokens() == x.tokens(), "dy has ", dy.tokens(), " tokens but x has ",
                 x.tokens());
  SPARSENM_CHECK(dy.features() == w.rows, "dy has ", dy.features(), " features but weight has ",
                 w.rows, " outputs");
  SPARSENM_CHECK(x.features() == w.cols, "x has ", x.features(), " features but weight has ",
                 w.cols, " inputs");
  check_shape(dv, w.rows, nnzr, "dv");
  SPARSENM_CHECK(dv.outerStride() == nnzr, "dv must be contiguous (outer stride ", dv.outerStride(),
                 " != ", nnzr, ")");
  if (dv.size() == 0) return;
  if (x.tokens() == 0) {
    dv.setZero();
    return;
  }
  SPARSENM_DISPATCH(sddmm_nm)(w, dy, x, dv.data());
}

/// Active-entry gradient (out x in/m*n) of y = x W^T for upstream gradient `dy`.
template <class S, class DerivedDy, class DerivedX>
Matrix<S> sddmm(const Eigen::MatrixBase<DerivedDy>& dy, const Eigen::MatrixBase<DerivedX>& x,
                const NMCompressed<S>& w) {
  check_compressed(w, "weight");
  SPARSENM_CHECK(dy.rows() == x.rows(), "dy has ", dy.rows(), " rows (tokens) but x has ",
                 x.rows());
  SPARSENM_CHECK(dy.cols() == w.rows, "dy has ", dy.cols(), " columns but weight has ", w.rows,
                 " outputs");
  SPARSENM_CHECK(x.cols() == w.cols, "x has ", x.cols(), " columns but weight has ", w.cols,
                 " inputs");
  const PackedTokens<S> dyp(dy), xp(x);
  Matrix<S> dv(w.rows, w.values.cols());
  sddmm(dyp, xp, w, dv);
  return dv;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_SDDMM_HPP
