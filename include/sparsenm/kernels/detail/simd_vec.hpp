// SPDX-License-Identifier: Apache-2.0
// Thin vector wrappers for the kernels: one struct per (ISA, scalar) with the handful of operations
// the SpMM/SDDMM micro-kernels need. The ISA is fixed at compile time (core/simd.hpp); the generic
// fallback is a one-lane "vector" so the very same kernel templates also build without SIMD.
#ifndef SPARSENM_KERNELS_DETAIL_SIMD_VEC_HPP
#define SPARSENM_KERNELS_DETAIL_SIMD_VEC_HPP

#include "../../core/simd.hpp"
#include "../../core/types.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {
inline namespace SPARSENM_ISA_NAMESPACE {

template <class S>
struct VecOps;

#if SPARSENM_HAS_AVX512
template <>
struct VecOps<float> {
  using V = __m512;
  static constexpr int kWidth = 16;
  static constexpr bool kHasTranspose = true;
  static SPARSENM_ALWAYS_INLINE V zero() { return _mm512_setzero_ps(); }
  static SPARSENM_ALWAYS_INLINE V set1(float a) { return _mm512_set1_ps(a); }
  static SPARSENM_ALWAYS_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static SPARSENM_ALWAYS_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static SPARSENM_ALWAYS_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static SPARSENM_ALWAYS_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static SPARSENM_ALWAYS_INLINE float hsum(V a) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a),
                                   _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(
                                       _mm256_setzero_pd(), 0xF, _mm512_castps_pd(a), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  /// Lane e of the result = sum of the lanes of a[e], e < 16 (one shuffle tree: 30 shuffles and
  /// 15 adds for 16 reductions instead of 16 separate horizontal sums).
  static SPARSENM_ALWAYS_INLINE V reduce_batch(const V* a) {
    V s[8];
    for (int i = 0; i < 8; ++i)  // per 128-bit lane: [a02, b02, a13, b13]
      s[i] = _mm512_add_ps(_mm512_mask_unpacklo_ps(a[2 * i], 0xFFFF, a[2 * i], a[2 * i + 1]),
                           _mm512_mask_unpackhi_ps(a[2 * i], 0xFFFF, a[2 * i], a[2 * i + 1]));
    V v[4];
    for (int i = 0; i < 4; ++i)  // per 128-bit lane: partial sums of entries 4i..4i+3
      v[i] = _mm512_add_ps(
          _mm512_mask_shuffle_ps(s[2 * i], 0xFFFF, s[2 * i], s[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
          _mm512_mask_shuffle_ps(s[2 * i], 0xFFFF, s[2 * i], s[2 * i + 1],
                                 _MM_SHUFFLE(3, 2, 3, 2)));
    const V x01 =
        _mm512_add_ps(_mm512_mask_shuffle_f32x4(v[0], 0xFFFF, v[0], v[1], _MM_SHUFFLE(1, 0, 1, 0)),
                      _mm512_mask_shuffle_f32x4(v[0], 0xFFFF, v[0], v[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const V x23 =
        _mm512_add_ps(_mm512_mask_shuffle_f32x4(v[2], 0xFFFF, v[2], v[3], _MM_SHUFFLE(1, 0, 1, 0)),
                      _mm512_mask_shuffle_f32x4(v[2], 0xFFFF, v[2], v[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_mask_shuffle_f32x4(x01, 0xFFFF, x01, x23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_mask_shuffle_f32x4(x01, 0xFFFF, x01, x23, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  /// Transposes a kWidth x kWidth block: row i of the source (src + i * lds) becomes column i of
  /// the destination (dst + j * ldd). Standard unpack/shuffle network (64 shuffles for 16 x 16).
  static SPARSENM_ALWAYS_INLINE void transpose_block(const float* src, Index lds, float* dst,
                                                     Index ldd) {
    V r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_mask_unpacklo_ps(r[2 * i], 0xFFFF, r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_mask_unpackhi_ps(r[2 * i], 0xFFFF, r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i)
      for (int h = 0; h < 2; ++h) {
        const V a = t[4 * i + h], b = t[4 * i + 2 + h];
        r[4 * i + h] = _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 2 + h] = _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, _MM_SHUFFLE(3, 2, 3, 2));
      }
    // r[4i + k] now holds, in each 128-bit lane q, column (4q + k') entries of rows 4i..4i+3 for
    // k' = {0, 2, 1, 3}[k]; combine lanes across the four row quads.
    for (int k = 0; k < 4; ++k) {
      const V a = r[k], b = r[4 + k], c = r[8 + k], d = r[12 + k];
      const V ab0 = _mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, _MM_SHUFFLE(2, 0, 2, 0));
      const V ab1 = _mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, _MM_SHUFFLE(3, 1, 3, 1));
      const V cd0 = _mm512_mask_shuffle_f32x4(c, 0xFFFF, c, d, _MM_SHUFFLE(2, 0, 2, 0));
      const V cd1 = _mm512_mask_shuffle_f32x4(c, 0xFFFF, c, d, _MM_SHUFFLE(3, 1, 3, 1));
      t[k] = _mm512_mask_shuffle_f32x4(ab0, 0xFFFF, ab0, cd0, _MM_SHUFFLE(2, 0, 2, 0));
      t[8 + k] = _mm512_mask_shuffle_f32x4(ab0, 0xFFFF, ab0, cd0, _MM_SHUFFLE(3, 1, 3, 1));
      t[4 + k] = _mm512_mask_shuffle_f32x4(ab1, 0xFFFF, ab1, cd1, _MM_SHUFFLE(2, 0, 2, 0));
      t[12 + k] = _mm512_mask_shuffle_f32x4(ab1, 0xFFFF, ab1, cd1, _MM_SHUFFLE(3, 1, 3, 1));
    }
    // t[4q + k] = column 4q + {0, 2, 1, 3}[k].
    static constexpr int kCol[4] = {0, 2, 1, 3};
    for (int q = 0; q < 4; ++q)
      for (int k = 0; k < 4; ++k) _mm512_storeu_ps(dst + (4 * q + kCol[k]) * ldd, t[4 * q + k]);
  }
};
template <>
struct VecOps<double> {
  using V = __m512d;
  static constexpr int kWidth = 8;
  static constexpr bool kHasTranspose = false;
  template <class T>
  static void transpose_block(const T*, Index, T*, Index) {}

  static SPARSENM_ALWAYS_INLINE V zero() { return _mm512_setzero_pd(); }
  static SPARSENM_ALWAYS_INLINE V set1(double a) { return _mm512_set1_pd(a); }
  static SPARSENM_ALWAYS_INLINE V load(const double* p) { return _mm512_loadu_pd(p); }
  static SPARSENM_ALWAYS_INLINE void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static SPARSENM_ALWAYS_INLINE V fmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static SPARSENM_ALWAYS_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  static SPARSENM_ALWAYS_INLINE double hsum(V a) {
    const __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(a),
                                    _mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, a, 1));
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  /// Lane e of the result = sum of the lanes of a[e], e < 8.
  static SPARSENM_ALWAYS_INLINE V reduce_batch(const V* a) {
    V s[4];
    for (int i = 0; i < 4; ++i)  // per 128-bit lane: [a_q, b_q]
      s[i] = _mm512_add_pd(_mm512_mask_unpacklo_pd(a[2 * i], 0xFF, a[2 * i], a[2 * i + 1]),
                           _mm512_mask_unpackhi_pd(a[2 * i], 0xFF, a[2 * i], a[2 * i + 1]));
    const V x01 =
        _mm512_add_pd(_mm512_mask_shuffle_f64x2(s[0], 0xFF, s[0], s[1], _MM_SHUFFLE(1, 0, 1, 0)),
                      _mm512_mask_shuffle_f64x2(s[0], 0xFF, s[0], s[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const V x23 =
        _mm512_add_pd(_mm512_mask_shuffle_f64x2(s[2], 0xFF, s[2], s[3], _MM_SHUFFLE(1, 0, 1, 0)),
                      _mm512_mask_shuffle_f64x2(s[2], 0xFF, s[2], s[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_pd(_mm512_mask_shuffle_f64x2(x01, 0xFF, x01, x23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_mask_shuffle_f64x2(x01, 0xFF, x01, x23, _MM_SHUFFLE(3, 1, 3, 1)));
  }
};
#elif SPARSENM_HAS_AVX2
template <>
struct VecOps<float> {
  using V = __m256;
  static constexpr int kWidth = 8;
  static constexpr bool kHasTranspose = false;
  template <class T>
  static void transpose_block(const T*, Index, T*, Index) {}

  static SPARSENM_ALWAYS_INLINE V zero() { return _mm256_setzero_ps(); }
  static SPARSENM_ALWAYS_INLINE V set1(float a) { return _mm256_set1_ps(a); }
  static SPARSENM_ALWAYS_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static SPARSENM_ALWAYS_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static SPARSENM_ALWAYS_INLINE V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static SPARSENM_ALWAYS_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static SPARSENM_ALWAYS_INLINE float hsum(V a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static SPARSENM_ALWAYS_INLINE V reduce_batch(const V* a) {
    alignas(32) float r[kWidth];
    for (int e = 0; e < kWidth; ++e) r[e] = hsum(a[e]);
    return _mm256_load_ps(r);
  }
};
template <>
struct VecOps<double> {
  using V = __m256d;
  static constexpr int kWidth = 4;
  static constexpr bool kHasTranspose = false;
  template <class T>
  static void transpose_block(const T*, Index, T*, Index) {}

  static SPARSENM_ALWAYS_INLINE V zero() { return _mm256_setzero_pd(); }
  static SPARSENM_ALWAYS_INLINE V set1(double a) { return _mm256_set1_pd(a); }
  static SPARSENM_ALWAYS_INLINE V load(const double* p) { return _mm256_loadu_pd(p); }
  static SPARSENM_ALWAYS_INLINE void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static SPARSENM_ALWAYS_INLINE V fmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static SPARSENM_ALWAYS_INLINE V add(V a, V b) { return _mm256_add_pd(a, b); }
  static SPARSENM_ALWAYS_INLINE double hsum(V a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static SPARSENM_ALWAYS_INLINE V reduce_batch(const V* a) {
    alignas(32) double r[kWidth];
    for (int e = 0; e < kWidth; ++e) r[e] = hsum(a[e]);
    return _mm256_load_pd(r);
  }
};
#endif

#if !SPARSENM_HAS_AVX512 && !SPARSENM_HAS_AVX2
/// One-lane fallback: the kernels stay correct (and still cache-tiled) without SIMD.
template <class S>
struct VecOps {
  using V = S;
  static constexpr int kWidth = 1;
  static constexpr bool kHasTranspose = false;
  template <class T>
  static void transpose_block(const T*, Index, T*, Index) {}

  static V zero() { return S(0); }
  static V set1(S a) { return a; }
  static V load(const S* p) { return *p; }
  static void store(S* p, V v) { *p = v; }
  static V fmadd(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static S hsum(V a) { return a; }
  static V reduce_batch(const V* a) { return a[0]; }
};
#endif

}  // namespace SPARSENM_ISA_NAMESPACE
}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_DETAIL_SIMD_VEC_HPP
