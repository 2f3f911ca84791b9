// SPDX-License-Identifier: Apache-2.0
// A parallel finiteness test for the hessian module's hot paths, built on core's vectorisable
// detail::all_finite_range; the error message still comes from check_all_finite.
#ifndef SPARSENM_HESSIAN_DETAIL_FINITE_HPP
#define SPARSENM_HESSIAN_DETAIL_FINITE_HPP

#include <vector>

#include <Eigen/Core>

#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "../../core/validate.hpp"

namespace sparsenm {
namespace detail {

/// check_all_finite with a fast common path: scans in parallel chunks (fixed boundaries), and
/// only on failure calls check_all_finite for the message naming the first bad entry.
template <class S>
inline void check_all_finite_fast(const Matrix<S>& x, const char* name) {
  constexpr Index grain = Index(1) << 16;
  const Index n = x.size();
  const Index chunks = (n + grain - 1) / grain;
  std::vector<unsigned char> ok(std::size_t(chunks > 0 ? chunks : 1), 1);
  const S* p = x.data();
  parallel_for_chunks(n, grain, [&](Index b, Index e) {
    ok[std::size_t(b / grain)] = all_finite_range(p + b, e - b) ? 1 : 0;
  });
  for (unsigned char c : ok)
    if (!c) check_all_finite(x, name);  // throws with the position
}

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_HESSIAN_DETAIL_FINITE_HPP
