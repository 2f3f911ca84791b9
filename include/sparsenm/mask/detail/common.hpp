// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the mask module: binding scores, NaN reporting, row chunking.
#ifndef SPARSENM_MASK_DETAIL_COMMON_HPP
#define SPARSENM_MASK_DETAIL_COMMON_HPP

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <Eigen/Core>

#include "../../core/error.hpp"
#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {

/// Row grain for parallel loops: about 64 K entries per chunk, so small matrices stay serial and
/// chunk boundaries depend only on the shape (never on the thread count).
inline Index row_grain(Index cols, Index multiple = 1) {
  const Index per = std::max<Index>(1, Index(65536) / std::max<Index>(cols, 1));
  return ((per + multiple - 1) / multiple) * multiple;
}

/// Throws naming the first non-finite (or NaN-only, if `nan_only`) entry of `s`.
template <class S>
[[noreturn]] SPARSENM_COLD SPARSENM_NOINLINE void raise_nonfinite(
    const Eigen::Ref<const Matrix<S>>& s, const char* where, bool nan_only) {
  for (Index i = 0; i < s.rows(); ++i)
    for (Index j = 0; j < s.cols(); ++j) {
      const S v = s(i, j);
      if (nan_only ? std::isnan(v) : !std::isfinite(v))
        raise(concat(where, ": scores(", i, ", ", j, ") = ", double(v),
                     nan_only ? " is NaN" : " is not finite"));
    }
  raise(concat(where, ": scores contain a non-finite value"));
}

template <class Derived>
constexpr void static_check_scores() {
  static_assert(std::is_floating_point<typename Derived::Scalar>::value,
                "sparsenm mask projections take float or double scores");
}

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_MASK_DETAIL_COMMON_HPP
