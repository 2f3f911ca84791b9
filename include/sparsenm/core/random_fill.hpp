// SPDX-License-Identifier: Apache-2.0
// Bulk uniform fills from Philox: out[k] = rng.uniform(first + k) (double) or
// rng.uniform_float(first + k) (float), bit-identical to the per-counter functions. The AVX-512
// path runs 16 Philox blocks (64 values) per iteration; filling a matrix uses the element's linear
// index as the counter and fixed-size chunks, so the result never depends on the thread count.
#ifndef SPARSENM_CORE_RANDOM_FILL_HPP
#define SPARSENM_CORE_RANDOM_FILL_HPP

#include <cstdint>
#include <type_traits>

#include "parallel.hpp"
#include "philox.hpp"
#include "simd.hpp"
#include "types.hpp"

SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {

template <class S>
S philox_uniform_as(const Philox& rng, std::uint64_t counter) {
  if constexpr (std::is_same_v<S, float>) {
    return rng.uniform_float(counter);
  } else {
    return static_cast<S>(rng.uniform(counter));
  }
}

namespace scalar {
/// Reference: one counter at a time.
template <class S>
void fill_uniform(const Philox& rng, std::uint64_t first, S* out, Index n) {
  for (Index k = 0; k < n; ++k) out[k] = philox_uniform_as<S>(rng, first + std::uint64_t(k));
}
}  // namespace scalar

inline namespace SPARSENM_ISA_NAMESPACE {
#if SPARSENM_HAS_AVX512
/// High and low 32 bits of the 16 products a * m (unsigned 32 x 32 -> 64).
SPARSENM_ALWAYS_INLINE void mul_hi_lo(__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
  lo = _mm512_mullo_epi32(a, m);
  const __m512i even = _mm512_mul_epu32(a, m);  // lanes 0,2,..: 64-bit products
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // lanes 1,3,..
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

/// Converts 16 raw words to uniforms exactly as Philox::to_uniform(_float) does, and stores them.
template <class S>
SPARSENM_ALWAYS_INLINE void store_uniform(__m512i bits, S* out) {
  const __m512d half = _mm512_set1_pd(0.5), scale = _mm512_set1_pd(1.0 / 4294967296.0);
  const __m512d lo =
      _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu32_pd(_mm512_castsi512_si256(bits)), half), scale);
  const __m512d hi = _mm512_mul_pd(
      _mm512_add_pd(_mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(bits, 1)), half), scale);
  if constexpr (std::is_same_v<S, float>) {
    const __m256 cap = _mm256_set1_ps(0.99999994f);
    _mm256_storeu_ps(out, _mm256_min_ps(_mm512_cvtpd_ps(lo), cap));
    _mm256_storeu_ps(out + 8, _mm256_min_ps(_mm512_cvtpd_ps(hi), cap));
  } else {
    _mm512_storeu_pd(out, lo);
    _mm512_storeu_pd(out + 8, hi);
  }
}

/// 16 consecutive Philox blocks starting at `block` -> 64 values in counter order.
template <class S>
SPARSENM_ALWAYS_INLINE void philox16_blocks(const Philox& rng, std::uint64_t block, S* out) {
  const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  // 64-bit block indices of lanes 0..7 and 8..15, split into low and high 32-bit words.
  const __m512i b0 = _mm512_add_epi64(_mm512_set1_epi64(std::int64_t(block)), lane);
  const __m512i b1 = _mm512_add_epi64(b0, _mm512_set1_epi64(8));
  const __m512i idx_lo =
      _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i idx_hi =
      _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  __m512i c0 = _mm512_permutex2var_epi32(b0, idx_lo, b1);
  __m512i c1 = _mm512_permutex2var_epi32(b0, idx_hi, b1);
  __m512i c2 = _mm512_set1_epi32(std::int32_t(std::uint32_t(rng.stream())));
  __m512i c3 = _mm512_set1_epi32(std::int32_t(std::uint32_t(rng.stream() >> 32)));
  std::uint32_t k0 = std::uint32_t(rng.seed()), k1 = std::uint32_t(rng.seed() >> 32);
  const __m512i m0 = _mm512_set1_epi32(std::int32_t(Philox::kM0));
  const __m512i m1 = _mm512_set1_epi32(std::int32_t(Philox::kM1));
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += Philox::kW0;
      k1 += Philox::kW1;
    }
    __m512i hi0, lo0, hi1, lo1;
    mul_hi_lo(c0, m0, hi0, lo0);
    mul_hi_lo(c2, m1, hi1, lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(std::int32_t(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(std::int32_t(k1)));
    c3 = lo0;
  }
  // Transpose 4 words x 16 blocks into counter order (block j word w -> position 4j + w).
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i v0 = _mm512_shuffle_i32x4(u0, u1, 0x44), v1 = _mm512_shuffle_i32x4(u2, u3, 0x44);
  const __m512i v2 = _mm512_shuffle_i32x4(u0, u1, 0xEE), v3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  store_uniform(_mm512_shuffle_i32x4(v0, v1, 0x88), out);
  store_uniform(_mm512_shuffle_i32x4(v0, v1, 0xDD), out + 16);
  store_uniform(_mm512_shuffle_i32x4(v2, v3, 0x88), out + 32);
  store_uniform(_mm512_shuffle_i32x4(v2, v3, 0xDD), out + 48);
}
#endif

/// Vectorised where available; identical output to scalar::fill_uniform.
template <class S>
void fill_uniform(const Philox& rng, std::uint64_t first, S* out, Index n) {
#if SPARSENM_HAS_AVX512
  if constexpr (std::is_same_v<S, float> || std::is_same_v<S, double>) {
    Index k = 0;
    for (; k < n && ((first + std::uint64_t(k)) & 3u) != 0; ++k)  // head up to a block boundary
      out[k] = philox_uniform_as<S>(rng, first + std::uint64_t(k));
    for (; k + 64 <= n; k += 64) philox16_blocks(rng, (first + std::uint64_t(k)) >> 2, out + k);
    scalar::fill_uniform(rng, first + std::uint64_t(k), out + k, n - k);
    return;
  }
#endif
  scalar::fill_uniform(rng, first, out, n);
}
}  // namespace SPARSENM_ISA_NAMESPACE
}  // namespace detail

/// Fills `out` with U(0,1) using the element's row-major linear index (+ `first_counter`) as the
/// Philox counter: out(i, j) = rng.uniform(first_counter + i * cols + j) (uniform_float for float).
/// Parallel over fixed chunks, so any thread count gives the same matrix.
template <class S>
void fill_uniform(Eigen::Ref<Matrix<S>> out, const Philox& rng, std::uint64_t first_counter = 0) {
  S* data = out.data();
  const Index n = out.size();
  if (out.outerStride() == out.cols()) {
    parallel_for_chunks(n, Index(1) << 14, [&](Index b, Index e) {
      detail::fill_uniform(rng, first_counter + std::uint64_t(b), data + b, e - b);
    });
  } else {
    parallel_for(0, out.rows(), [&](Index i) {
      detail::fill_uniform(rng, first_counter + std::uint64_t(i * out.cols()), &out(i, 0),
                           out.cols());
    });
  }
}

/// A rows x cols matrix of U(0,1), element index as counter (see fill_uniform).
template <class S>
Matrix<S> uniform_matrix(Index rows, Index cols, const Philox& rng,
                         std::uint64_t first_counter = 0) {
  Matrix<S> out(rows, cols);
  fill_uniform<S>(out, rng, first_counter);
  return out;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_CORE_RANDOM_FILL_HPP
