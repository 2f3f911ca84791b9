// SPDX-License-Identifier: Apache-2.0
// Compressed row-wise N:M storage: kept values + in-group indices (ALGORITHMS.md "Compressed
// storage"). A transposable mask is row-wise legal too, so it compresses the same way.
#ifndef SPARSENM_MASK_COMPRESS_HPP
#define SPARSENM_MASK_COMPRESS_HPP

#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/common.hpp"
#include "detail/dispatch.hpp"

namespace sparsenm {

/// Row-major N:M compressed matrix. For row i and group g (columns g*m .. g*m+m-1), slots
/// g*n .. g*n+n-1 of `values` / `indices` hold the n kept values in increasing column order and
/// their in-group column offsets (each in [0, m), strictly increasing within a group).
template <class S>
struct NMCompressed {
  NM nm{2, 4};
  Eigen::Index rows = 0, cols = 0;
  Matrix<S> values;  ///< rows x (cols / m * n)
  Mask indices;      ///< same shape, each in [0, m)
};

/// Packs `weight` under a row-wise legal `mask` (exactly n ones per group; throws sparsenm::Error
/// otherwise, and for shape mismatches). S defaults to the weight's scalar: `compress(w, mask, nm)`
/// or `compress<float>(w, mask, nm)`. Values are copied as they are (a kept zero stays a slot).
template <class S = void, class Derived>
NMCompressed<detail::resolve_scalar_t<S, typename Derived::Scalar>> compress(
    const Eigen::MatrixBase<Derived>& weight, const Mask& mask, NM nm) {
  using T = detail::resolve_scalar_t<S, typename Derived::Scalar>;
  check_nm(nm, "compress: nm");
  check_same_shape(weight, mask, "compress: weight", "mask");
  check_divisible(weight.cols(), nm.m, "compress: weight.cols()", "m");
  NMCompressed<T> c;
  c.nm = nm;
  c.rows = weight.rows();
  c.cols = weight.cols();
  const Index groups = c.cols / nm.m;
  c.values.resize(c.rows, groups * nm.n);
  c.indices.resize(c.rows, groups * nm.n);
  if (c.rows == 0 || c.cols == 0) return c;
  const auto& w = weight.derived();
  for (Index i = 0; i < c.rows; ++i)
    for (Index g = 0; g < groups; ++g) {
      int slot = 0;
      for (int k = 0; k < nm.m; ++k) {
        const std::uint8_t v = mask(i, g * nm.m + k);
        SPARSENM_CHECK(v <= 1, "compress: mask(", i, ", ", g * nm.m + k, ") = ", int(v),
                       " must be 0 or 1");
        if (!v) continue;
        SPARSENM_CHECK(slot < nm.n, "compress: mask row ", i, " group ", g,
                       " has more than n = ", nm.n, " ones (not row-wise legal)");
        c.values(i, g * nm.n + slot) = T(w(i, g * nm.m + k));
        c.indices(i, g * nm.n + slot) = std::uint8_t(k);
        ++slot;
      }
      SPARSENM_CHECK(slot == nm.n, "compress: mask row ", i, " group ", g, " has ", slot,
                     " ones but must have n = ", nm.n, " (not row-wise legal)");
    }
  return c;
}

/// Dense (rows x cols) matrix with the kept values in place and zeros elsewhere. Throws if the
/// compressed object is inconsistent (shapes, indices out of range or not increasing).
template <class S>
Matrix<S> decompress(const NMCompressed<S>& c) {
  check_nm(c.nm, "decompress: c.nm");
  check_divisible(c.cols, c.nm.m, "decompress: c.cols", "m");
  const Index k = c.cols / c.nm.m * c.nm.n;
  check_shape(c.values, c.rows, k, "decompress: c.values");
  check_shape(c.indices, c.rows, k, "decompress: c.indices");
  Matrix<S> out = Matrix<S>::Zero(c.rows, c.cols);
  const int m = c.nm.m, n = c.nm.n;
  for (Index i = 0; i < c.rows; ++i)
    for (Index g = 0; g < c.cols / m; ++g)
      for (int s = 0; s < n; ++s) {
        const int idx = c.indices(i, g * n + s);
        SPARSENM_CHECK(idx < m && (s == 0 || idx > c.indices(i, g * n + s - 1)),
                       "decompress: c.indices(", i, ", ", g * n + s, ") = ", idx,
                       " must be in [0, m) and increasing within its group");
        out(i, g * m + idx) = c.values(i, g * n + s);
      }
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_COMPRESS_HPP
