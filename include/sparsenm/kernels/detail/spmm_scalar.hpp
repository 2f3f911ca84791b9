// SPDX-License-Identifier: Apache-2.0
// Plain scalar references for the sparse kernels, written straight from the definitions on the
// compressed form (no tiling, no SIMD). Tests compare the optimised kernels to these and to dense
// Eigen products on the decompressed weight.
#ifndef SPARSENM_KERNELS_DETAIL_SPMM_SCALAR_HPP
#define SPARSENM_KERNELS_DETAIL_SPMM_SCALAR_HPP

#include <Eigen/Core>

#include "../../core/types.hpp"
#include "../../mask.hpp"

namespace sparsenm {
namespace detail {
namespace scalar {

/// Input column of entry j of a compressed row.
template <class S>
inline Index compressed_col(const NMCompressed<S>& w, Index r, Index j) {
  return (j / w.nm.n) * w.nm.m + w.indices(r, j);
}

/// Y = X W^T, Y(t, o) = sum_j values(o, j) X(t, col(o, j)).
template <class S>
Matrix<S> spmm(const Matrix<S>& x, const NMCompressed<S>& w) {
  Matrix<S> y = Matrix<S>::Zero(x.rows(), w.rows);
  for (Index t = 0; t < x.rows(); ++t)
    for (Index o = 0; o < w.rows; ++o) {
      S acc = 0;
      for (Index j = 0; j < w.values.cols(); ++j)
        acc += w.values(o, j) * x(t, compressed_col(w, o, j));
      y(t, o) = acc;
    }
  return y;
}

/// dX = dY W, dX(t, k) = sum over entries (o, j) with col k of values(o, j) dY(t, o).
template <class S>
Matrix<S> spmm_transposed(const Matrix<S>& dy, const NMCompressed<S>& w) {
  Matrix<S> dx = Matrix<S>::Zero(dy.rows(), w.cols);
  for (Index t = 0; t < dy.rows(); ++t)
    for (Index o = 0; o < w.rows; ++o)
      for (Index j = 0; j < w.values.cols(); ++j)
        dx(t, compressed_col(w, o, j)) += w.values(o, j) * dy(t, o);
  return dx;
}

/// dW restricted to the active entries: dv(o, j) = sum_t dY(t, o) X(t, col(o, j)).
template <class S>
Matrix<S> sddmm(const Matrix<S>& dy, const Matrix<S>& x, const NMCompressed<S>& w) {
  Matrix<S> dv = Matrix<S>::Zero(w.rows, w.values.cols());
  for (Index o = 0; o < w.rows; ++o)
    for (Index j = 0; j < w.values.cols(); ++j) {
      S acc = 0;
      for (Index t = 0; t < dy.rows(); ++t) acc += dy(t, o) * x(t, compressed_col(w, o, j));
      dv(o, j) = acc;
    }
  return dv;
}

}  // namespace scalar
}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_KERNELS_DETAIL_SPMM_SCALAR_HPP
