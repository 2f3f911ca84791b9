// SPDX-License-Identifier: Apache-2.0
// Runtime NM -> compile-time (M, N) dispatch in one place (STYLE.md section 3.3): the public API
// stays runtime (NM{n, m}); the hot loops get compile-time M and N for the cases that matter.
#ifndef SPARSENM_MASK_DETAIL_DISPATCH_HPP
#define SPARSENM_MASK_DETAIL_DISPATCH_HPP

#include <type_traits>

#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {

template <int V>
using IntC = std::integral_constant<int, V>;

/// Calls f(IntC<M>{}, IntC<N>{}) for the specialised row-wise cases 1:4, 2:4, 3:4, 2:8, 4:8 (and
/// the other n of m = 4, 8), else f(IntC<0>{}, IntC<0>{}) for the generic runtime path.
template <class F>
decltype(auto) with_nm(NM nm, F&& f) {
  if (nm.m == 4) {
    switch (nm.n) {
      case 1:
        return f(IntC<4>{}, IntC<1>{});
      case 2:
        return f(IntC<4>{}, IntC<2>{});
      case 3:
        return f(IntC<4>{}, IntC<3>{});
      default:
        break;
    }
  } else if (nm.m == 8) {
    switch (nm.n) {
      case 1:
        return f(IntC<8>{}, IntC<1>{});
      case 2:
        return f(IntC<8>{}, IntC<2>{});
      case 3:
        return f(IntC<8>{}, IntC<3>{});
      case 4:
        return f(IntC<8>{}, IntC<4>{});
      case 5:
        return f(IntC<8>{}, IntC<5>{});
      case 6:
        return f(IntC<8>{}, IntC<6>{});
      case 7:
        return f(IntC<8>{}, IntC<7>{});
      default:
        break;
    }
  }
  return f(IntC<0>{}, IntC<0>{});
}

/// Scalar type of a call: S if given, else the expression's scalar (lets `compress(w, mask, nm)`
/// and `compress<float>(w, mask, nm)` both work).
template <class S, class Fallback>
using resolve_scalar_t = std::conditional_t<std::is_void<S>::value, Fallback, S>;

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_MASK_DETAIL_DISPATCH_HPP
