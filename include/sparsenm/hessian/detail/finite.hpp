// SPDX-License-Identifier: Apache-2.0
// A vectorisable finiteness test for the hessian module's hot paths. Eigen's allFinite() (what
// core's check_all_finite uses) compiles to a scalar loop with GCC 12 (about 10 ns per entry
// measured here), which would dominate a Hutchinson update; testing the exponent bits as integers
// vectorises and runs at memory speed. The error message still comes from check_all_finite.
#ifndef SPARSENM_HESSIAN_DETAIL_FINITE_HPP
#define SPARSENM_HESSIAN_DETAIL_FINITE_HPP

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "../../core/validate.hpp"

namespace sparsenm {
namespace detail {

/// True when p[0..n) holds no NaN or ±Inf (exponent field not all ones).
template <class S>
inline bool all_finite_range(const S* p, Index n) {
  static_assert(std::is_floating_point<S>::value, "all_finite_range: floating point only");
  using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  constexpr U exp_mask = sizeof(S) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  unsigned bad = 0;
  for (Index i = 0; i < n; ++i) {
    U u;
    std::memcpy(&u, p + i, sizeof(S));
    bad |= unsigned((u & exp_mask) == exp_mask);
  }
  return bad == 0;
}

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
