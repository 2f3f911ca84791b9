// SPDX-License-Identifier: Apache-2.0
// Row kernels of the Fréchet transform W~ = |W| * (-ln U)^(-1/T) (chts24 Sec. 3.2.2, App. A).
// Float: the base-2 polynomial pipeline of frechet_math.hpp, as a scalar reference and an AVX-512
// kernel that performs the same operations (bit-identical results). Double: std::log / std::exp. U
// comes from the vectorised Philox fill (core/random_fill.hpp), counter = element linear index.
#ifndef SPARSENM_SAMPLING_DETAIL_FRECHET_KERNELS_HPP
#define SPARSENM_SAMPLING_DETAIL_FRECHET_KERNELS_HPP

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../../core/simd.hpp"
#include "../../core/types.hpp"
#include "frechet_math.hpp"

namespace sparsenm {
namespace detail {
namespace scalar {

/// out[k] = |w[k]| * (-ln u[k])^(-inv_t); exactly 0 where w is 0. Float: frechet_score (the AVX-512
/// kernel's operations one lane at a time); double: std::log / std::exp.
template <class S, class T>
inline void frechet_transform(const T* w, const S* u, S* out, Index n, S inv_t) {
  if constexpr (std::is_same<S, float>::value) {
    const FrechetConstants c = frechet_constants(inv_t);
    for (Index k = 0; k < n; ++k) out[k] = frechet_score(std::abs(float(w[k])), u[k], c);
  } else {
    for (Index k = 0; k < n; ++k) {
      const S a = std::abs(S(w[k]));
      out[k] = a == S(0) ? S(0) : a * std::exp(-inv_t * std::log(-std::log(u[k])));
    }
  }
}

}  // namespace scalar

SPARSENM_SIMD_WARNINGS_PUSH
}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../sampling/detail/frechet_kernels_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {
SPARSENM_SIMD_WARNINGS_POP

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_SAMPLING_DETAIL_FRECHET_KERNELS_HPP
