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
inline namespace SPARSENM_ISA_NAMESPACE {

#if SPARSENM_HAS_AVX512
/// frechet_log2 (frechet_math.hpp) on 16 lanes.
inline __m512 log2_ps(__m512 x) {
  const __m512i b = _mm512_castps_si512(x);
  const __m512i e =
      _mm512_srai_epi32(_mm512_sub_epi32(b, _mm512_set1_epi32(int(kSqrtHalfBits))), 23);
  const __m512 f = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_sub_epi32(b, _mm512_slli_epi32(e, 23))),
                                 _mm512_set1_ps(1.0f));
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kLog2P8), f, _mm512_set1_ps(kLog2P7));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P6));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P5));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P4));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P3));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P2));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P1));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kLog2P0));
  return _mm512_fmadd_ps(f, p, _mm512_cvtepi32_ps(e));
}

/// frechet_exp2 (checked) on 16 lanes; scalef applies 2^n with one rounding.
inline __m512 exp2_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExp2Lo)), _mm512_set1_ps(kExp2Hi));
  const __m512 r = _mm512_add_ps(x, _mm512_set1_ps(kRoundShift));
  const __m512 n = _mm512_sub_ps(r, _mm512_set1_ps(kRoundShift));
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 q = _mm512_fmadd_ps(_mm512_set1_ps(kExp2Q5), f, _mm512_set1_ps(kExp2Q4));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(kExp2Q3));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(kExp2Q2));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(kExp2Q1));
  q = _mm512_fmadd_ps(q, f, _mm512_set1_ps(kExp2Q0));
  return _mm512_scalef_ps(_mm512_fmadd_ps(f, q, _mm512_set1_ps(1.0f)), n);
}
#endif

/// Vectorised transform (float on AVX-512), the scalar reference otherwise.
template <class S, class T>
inline void frechet_transform(const T* w, const S* u, S* out, Index n, S inv_t) {
#if SPARSENM_HAS_AVX512
  if constexpr (std::is_same<S, float>::value && std::is_same<T, float>::value) {
    const FrechetConstants c = frechet_constants(inv_t);
    const __m512 neg_inv_t = _mm512_set1_ps(c.neg_inv_t), shift = _mm512_set1_ps(c.shift);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    Index k = 0;
    for (; k + 16 <= n; k += 16) {
      const __m512 a = _mm512_and_ps(_mm512_loadu_ps(w + k), absmask);
      const __m512 l = log2_ps(_mm512_loadu_ps(u + k));
      const __m512 x =
          _mm512_fmadd_ps(neg_inv_t, log2_ps(_mm512_sub_ps(_mm512_setzero_ps(), l)), shift);
      const __m512 f = _mm512_mul_ps(a, exp2_ps(x));
      const __mmask16 nz = _mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NEQ_UQ);
      _mm512_storeu_ps(out + k, _mm512_maskz_mov_ps(nz, f));
    }
    scalar::frechet_transform(w + k, u + k, out + k, n - k, inv_t);
    return;
  }
#endif
  scalar::frechet_transform(w, u, out, n, inv_t);
}

}  // namespace SPARSENM_ISA_NAMESPACE
SPARSENM_SIMD_WARNINGS_POP

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_SAMPLING_DETAIL_FRECHET_KERNELS_HPP
