// SPDX-License-Identifier: Apache-2.0
// True-sparse products with a compressed N:M weight W (out x in), never forming dense W:
//   spmm:             Y  = X W^T   (forward of y = x W^T;  X: tokens x in,  Y: tokens x out)
//   spmm_transposed:  dX = dY W    (input gradient;         dY: tokens x out, dX: tokens x in)
// CHTs24 App. J: a true-sparse training step runs forward, dX and dW at n/m of the dense cost;
// this header has the first two, sddmm.hpp the third. The kernels are described in
// detail/spmm_tiled.hpp; results do not depend on the number of OpenMP threads.
//
// Transposable masks (CHTs24 Sec. 3.1) make W^T row-wise N:M as well; spmm_transposed then runs on
// exactly n of every m entries per row of W^T. Row-wise masks use the same CSR-of-W^T kernel with
// rows of varying length. Build the TransposedWeight once per mask and refresh its values after
// each optimizer step (TransposedWeight::update_values) to avoid the O(nnz) sort.
#ifndef SPARSENM_KERNELS_SPMM_HPP
#define SPARSENM_KERNELS_SPMM_HPP

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

/// Y = X W^T into `y` (tokens x out) with X already packed. Checks shapes (not index contents:
/// the indices of `w` must be valid, which check_compressed verifies).
template <class S>
void spmm(const PackedTokens<S>& x, const NMCompressed<S>& w, detail::RefOut<S> y) {
  check_nm(w.nm, "weight.nm");
  SPARSENM_CHECK(w.cols % w.nm.m == 0, "weight.cols = ", w.cols,
                 " must be divisible by m = ", w.nm.m);
  check_shape(w.values, w.rows, w.cols / w.nm.m * w.nm.n, "weight.values");
  check_shape(w.indices, w.rows, w.cols / w.nm.m * w.nm.n, "weight.indices");
  SPARSENM_CHECK(x.features() == w.cols, "x has ", x.features(), " features but weight has ",
                 w.cols, " inputs");
  check_shape(y, x.tokens(), w.rows, "y");
  if (x.tokens() == 0 || w.rows == 0) return;
  SPARSENM_DISPATCH(spmm_nm)(w, x, y.data(), y.outerStride());
}

/// Y = X W^T (tokens x out). `x` is tokens x in, any dense expression.
template <class S, class Derived>
Matrix<S> spmm(const Eigen::MatrixBase<Derived>& x, const NMCompressed<S>& w) {
  check_compressed(w, "weight");
  SPARSENM_CHECK(x.cols() == w.cols, "x has ", x.cols(), " columns but weight has ", w.cols,
                 " inputs");
  const PackedTokens<S> xp(x);
  Matrix<S> y(x.rows(), w.rows);
  spmm(xp, w, y);
  return y;
}

/// dX = dY W into `dx` (tokens x in), dY packed, W given by its transposed structure.
template <class S>
void spmm_transposed(const PackedTokens<S>& dy, const TransposedWeight<S>& wt,
                     detail::RefOut<S> dx) {
  SPARSENM_CHECK(dy.features() == wt.inner(), "dy has ", dy.features(), " features but weight has ",
                 wt.inner(), " outputs");
  check_shape(dx, dy.tokens(), wt.rows(), "dx");
  if (dy.tokens() == 0 || wt.rows() == 0) return;
  if (wt.is_nm())
    SPARSENM_DISPATCH(spmm_nm)(wt.as_nm(), dy, dx.data(), dx.outerStride());
  else
    SPARSENM_DISPATCH(spmm_csr)(wt, dy, dx.data(), dx.outerStride());
}

/// dX = dY W (tokens x in). `dy` is tokens x out.
template <class S, class Derived>
Matrix<S> spmm_transposed(const Eigen::MatrixBase<Derived>& dy, const NMCompressed<S>& w) {
  check_compressed(w, "weight");
  SPARSENM_CHECK(dy.cols() == w.rows, "dy has ", dy.cols(), " columns but weight has ", w.rows,
                 " outputs");
  const TransposedWeight<S> wt(w);
  const PackedTokens<S> dyp(dy);
  Matrix<S> dx(dy.rows(), w.cols);
  spmm_transposed(dyp, wt, dx);
  return dx;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_SPMM_HPP
