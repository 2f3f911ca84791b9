// SPDX-License-Identifier: Apache-2.0
// Row kernels of the Fréchet transform W~ = |W| * (-ln U)^(-1/T) (chts24 Sec. 3.2.2, App. A):
// a scalar reference (std::log / std::exp in the output precision) and an AVX-512 float kernel
// with Cephes-style logf / expf polynomials (about 1 ulp each). U comes from the vectorised Philox
// fill (core/random_fill.hpp), counter = element linear index.
#ifndef SPARSENM_SAMPLING_DETAIL_FRECHET_KERNELS_HPP
#define SPARSENM_SAMPLING_DETAIL_FRECHET_KERNELS_HPP

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../../core/simd.hpp"
#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {
namespace scalar {

/// out[k] = |w[k]| * exp(-inv_t * log(-log(u[k]))); exactly 0 where w is 0.
template <class S, class T>
inline void frechet_transform(const T* w, const S* u, S* out, Index n, S inv_t) {
  for (Index k = 0; k < n; ++k) {
    const S a = std::abs(S(w[k]));
    out[k] = a == S(0) ? S(0) : a * std::exp(-inv_t * std::log(-std::log(u[k])));
  }
}

}  // namespace scalar

SPARSENM_SIMD_WARNINGS_PUSH
inline namespace SPARSENM_ISA_NAMESPACE {

#if SPARSENM_HAS_AVX512
/// Natural log for positive normal floats (Cephes logf on [sqrt(1/2), sqrt(2))).
inline __m512 log_ps(__m512 x) {
  __m512 e = _mm512_getexp_ps(x);                                         // floor(log2 x)
  __m512 m = _mm512_getmant_ps(x, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);  // [1, 2)
  const __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
  e = _mm512_mask_add_ps(e, big, e, _mm512_set1_ps(1.0f));
  const __m512 f = _mm512_sub_ps(m, _mm512_set1_ps(1.0f));  // exact (Sterbenz)
  const __m512 z = _mm512_mul_ps(f, f);
  __m512 y = _mm512_set1_ps(7.0376836292E-2f);
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-1.1514610310E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.1676998740E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-1.2420140846E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(1.4249322787E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-1.6668057665E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(2.0000714765E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(-2.4999993993E-1f));
  y = _mm512_fmadd_ps(y, f, _mm512_set1_ps(3.3333331174E-1f));
  y = _mm512_mul_ps(_mm512_mul_ps(y, f), z);
  y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
  y = _mm512_fnmadd_ps(z, _mm512_set1_ps(0.5f), y);
  const __m512 r = _mm512_add_ps(f, y);
  return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), r);
}

/// exp(x) (Cephes expf), x clamped to [-110, 100]: underflows to 0 and overflows to +Inf cleanly.
inline __m512 exp_ps(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-110.0f)), _mm512_set1_ps(100.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
  const __m512 z = _mm512_mul_ps(x, x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, z, _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}
#endif

/// Vectorised transform (float on AVX-512), the scalar reference otherwise.
template <class S, class T>
inline void frechet_transform(const T* w, const S* u, S* out, Index n, S inv_t) {
#if SPARSENM_HAS_AVX512
  if constexpr (std::is_same<S, float>::value && std::is_same<T, float>::value) {
    const __m512 it = _mm512_set1_ps(-inv_t);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    Index k = 0;
    for (; k + 16 <= n; k += 16) {
      const __m512 a = _mm512_and_ps(_mm512_loadu_ps(w + k), absmask);
      const __m512 e = _mm512_sub_ps(_mm512_setzero_ps(), log_ps(_mm512_loadu_ps(u + k)));
      const __m512 f = _mm512_mul_ps(a, exp_ps(_mm512_mul_ps(it, log_ps(e))));
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
