// SPDX-License-Identifier: Apache-2.0
// Row-wise N:M top-n kernels: a scalar reference (any m <= 32, any scalar) and AVX-512 / AVX2 float
// kernels for m = 4 and m = 8.
//
// Selection rule (the contract): entry i of a group is kept iff its rank
//   rank(i) = #{ j : s_j > s_i  or  (s_j == s_i and j < i) }
// is < n. Ranks are a permutation of 0..m-1 for NaN-free input (ties go to the lower index), so
// exactly n entries are kept. The SIMD kernels compute the same ranks with m - 1 in-group rotations
// and compares, so their output equals the scalar reference bit for bit.
#ifndef SPARSENM_MASK_DETAIL_ROWWISE_KERNELS_HPP
#define SPARSENM_MASK_DETAIL_ROWWISE_KERNELS_HPP

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../../core/simd.hpp"
#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {
namespace scalar {

/// NaN test that is also valid (and warning-free) for integer keys.
template <class S>
constexpr bool is_nan_value(S x) {
  if constexpr (std::is_floating_point<S>::value)
    return x != x;
  else
    return (void)x, false;
}

/// Top-n of one group of m scores (rank rule above). Returns true if a NaN was seen (the output is
/// then unspecified; callers throw).
template <class S>
inline bool rowwise_group(const S* SPARSENM_RESTRICT s, int m, int n,
                          std::uint8_t* SPARSENM_RESTRICT out) {
  bool nan = false;
  for (int i = 0; i < m; ++i) {
    const S si = s[i];
    nan |= is_nan_value(si);
    int rank = 0;
    for (int j = 0; j < m; ++j) rank += (s[j] > si) || (s[j] == si && j < i);
    out[i] = std::uint8_t(rank < n);
  }
  return nan;
}

/// A run of `len` scores (len % m == 0) cut into groups. Returns true if a NaN was seen.
template <class S>
inline bool rowwise_run(const S* s, Index len, int m, int n, std::uint8_t* out) {
  bool nan = false;
  for (Index j = 0; j < len; j += m) nan |= rowwise_group(s + j, m, n, out + j);
  return nan;
}

/// Same with compile-time M, N (lets the compiler unroll the m x m compares).
template <int M, int N, class S>
inline bool rowwise_run_fixed(const S* SPARSENM_RESTRICT s, Index len,
                              std::uint8_t* SPARSENM_RESTRICT out) {
  bool nan = false;
  for (Index j = 0; j < len; j += M) {
    const S* g = s + j;
    for (int i = 0; i < M; ++i) {
      const S si = g[i];
      nan |= is_nan_value(si);
      int rank = 0;
      for (int k = 0; k < M; ++k) rank += (g[k] > si) || (g[k] == si && k < i);
      out[j + i] = std::uint8_t(rank < N);
    }
  }
  return nan;
}

}  // namespace scalar

/// Keep bits of 16 groups of 4 (bit 4g + i = entry i of group g) from the three masks of the
/// pairwise "upper" comparisons w_ij = s_j > s_i (i < j) read from the in-group rotations:
/// A = w01|w12|w23|-, B = w02|w13|-|-, C = w03|-|-|- per group (see rowwise_run_simd). Entry i's
/// rank is the number of pairs it loses; t_k marks "lost at least k pairs", and the entries of
/// rank < N are kept:
///   lane 0 loses w01, w02, w03;     lane 1 loses !w01, w12, w13;
///   lane 2 loses !w02, !w12, w23;   lane 3 loses !w03, !w13, !w23.
template <int N>
inline std::uint64_t keep_bits_m4(std::uint64_t A, std::uint64_t B, std::uint64_t C) {
  constexpr std::uint64_t L0 = 0x1111111111111111ull, L1 = L0 << 1, L2 = L0 << 2;
  const std::uint64_t t1 = (A & L0) | ((~A & L0) << 1) | ((~B & L0) << 2) | ((~C & L0) << 3);
  const std::uint64_t t2 = (B & L0) | (A & L1) | ((~A & L1) << 1) | ((~B & L1) << 2);
  const std::uint64_t t3 = (C & L0) | (B & L1) | (A & L2) | ((~A & L2) << 1);
  if constexpr (N == 1)
    return ~(t1 | t2 | t3);
  else if constexpr (N == 2)
    return ~((t1 & t2) | (t1 & t3) | (t2 & t3));
  else if constexpr (N == 3)
    return ~(t1 & t2 & t3);
  else
    return ~std::uint64_t(0);
}

// GCC 12 false positive in AVX-512 intrinsics (core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH
inline namespace SPARSENM_ISA_NAMESPACE {

/// Fast row-wise kernel over a run of `len` scores (len % M == 0); falls back to the scalar
/// reference where no SIMD kernel exists. Returns true if a NaN was seen.
template <int M, int N, class S>
inline bool rowwise_run_simd(const S* s, Index len, std::uint8_t* out) {
#if SPARSENM_HAS_AVX512
  if constexpr (std::is_same<S, float>::value && (M == 4 || M == 8)) {
    Index j = 0;
    __mmask16 nan = 0;
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i nv = _mm512_set1_epi32(N);
    const __m128i ones8 = _mm_set1_epi8(1);
    if constexpr (M == 4) {
      // 64 scores per step. Only the 6 pairwise "upper" comparisons of a group are computed,
      // w_ij = s_j > s_i for i < j (a tie keeps the lower index i ahead), read from three in-group
      // rotations into 64-bit lane masks; keep_bits_m4 turns them into ranks.
      const __m512i ones64 = _mm512_set1_epi8(1);
      for (; j + 64 <= len; j += 64) {
        std::uint64_t A = 0, B = 0, C = 0, bad = 0;
        // One stream is latency-bound on its own; prefetch 4 KiB ahead (harmless past the end).
        _mm_prefetch(reinterpret_cast<const char*>(s + j + 1024), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(s + j + 1024 + 16), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(s + j + 1024 + 32), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(s + j + 1024 + 48), _MM_HINT_T0);
        for (int v = 0; v < 4; ++v) {
          const __m512 x = _mm512_loadu_ps(s + j + 16 * v);
          const __m512 y1 = _mm512_shuffle_ps(x, x, _MM_SHUFFLE(0, 3, 2, 1));
          const __m512 y2 = _mm512_shuffle_ps(x, x, _MM_SHUFFLE(1, 0, 3, 2));
          const __m512 y3 = _mm512_shuffle_ps(x, x, _MM_SHUFFLE(2, 1, 0, 3));
          A |= std::uint64_t(_mm512_cmp_ps_mask(y1, x, _CMP_GT_OQ)) << (16 * v);
          B |= std::uint64_t(_mm512_cmp_ps_mask(y2, x, _CMP_GT_OQ)) << (16 * v);
          C |= std::uint64_t(_mm512_cmp_ps_mask(y3, x, _CMP_GT_OQ)) << (16 * v);
          bad |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        }
        nan |= __mmask16(bad);
        const std::uint64_t keep = keep_bits_m4<N>(A, B, C);
        _mm512_storeu_si512(reinterpret_cast<void*>(out + j), _mm512_maskz_mov_epi8(keep, ones64));
      }
      for (; j + 16 <= len; j += 16) {
        const __m512 x = _mm512_loadu_ps(s + j);
        nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        // Rotation by k inside each group of 4: lane i meets j = (i + k) % 4, which is a lower
        // index (tie wins) exactly for in-group lanes i >= 4 - k.
        const __m512 y1 = _mm512_shuffle_ps(x, x, _MM_SHUFFLE(0, 3, 2, 1));
        const __m512 y2 = _mm512_shuffle_ps(x, x, _MM_SHUFFLE(1, 0, 3, 2));
        const __m512 y3 = _mm512_shuffle_ps(x, x, _MM_SHUFFLE(2, 1, 0, 3));
        const __mmask16 b1 = _mm512_cmp_ps_mask(y1, x, _CMP_GT_OQ) |
                             (_mm512_cmp_ps_mask(y1, x, _CMP_EQ_OQ) & __mmask16(0x8888));
        const __mmask16 b2 = _mm512_cmp_ps_mask(y2, x, _CMP_GT_OQ) |
                             (_mm512_cmp_ps_mask(y2, x, _CMP_EQ_OQ) & __mmask16(0xCCCC));
        const __mmask16 b3 = _mm512_cmp_ps_mask(y3, x, _CMP_GT_OQ) |
                             (_mm512_cmp_ps_mask(y3, x, _CMP_EQ_OQ) & __mmask16(0xEEEE));
        __m512i rank = _mm512_maskz_mov_epi32(b1, one);
        rank = _mm512_mask_add_epi32(rank, b2, rank, one);
        rank = _mm512_mask_add_epi32(rank, b3, rank, one);
        const __mmask16 keep = _mm512_cmp_epi32_mask(rank, nv, _MM_CMPINT_LT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_maskz_mov_epi8(keep, ones8));
      }
    } else {
      const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      const __m512i hi = _mm512_set1_epi32(~7), lo = _mm512_set1_epi32(7);
      __m512i idx[7];
      __mmask16 tie[7];
      for (int k = 1; k < 8; ++k) {
        idx[k - 1] =
            _mm512_or_si512(_mm512_and_si512(lane, hi),
                            _mm512_and_si512(_mm512_add_epi32(lane, _mm512_set1_epi32(k)), lo));
        const unsigned half = (0xFFu << (8 - k)) & 0xFFu;  // in-group lanes i >= 8 - k
        tie[k - 1] = __mmask16(half | (half << 8));
      }
      // 64 scores (8 groups) per step. Lane i "loses" to its rotation-k partner p = (i + k) % 8 iff
      // s_p > s_i for p > i, s_p >= s_i for p < i (ties keep the lower index ahead). Rotations
      // 1..3 are compared on all lanes (GT on upward lanes, GE on wrapped ones), rotation 4 on
      // lanes 0..3 only; rotations 4 (upper half), 5, 6, 7 follow by antisymmetry: lane j loses to
      // i exactly when i does not lose to j, i.e. loses_{8-k} = ~rotl_k(loses_k) inside each
      // group. The rank (number of losses, 0..7) is summed bit-sliced on 64-bit lane masks.
      {
        constexpr std::uint64_t kB = 0x0101010101010101ull;
        auto rotl = [](std::uint64_t x, int k) {  // rotate left inside every byte (= group)
          const std::uint64_t hi = kB * ((0xFFu << k) & 0xFFu), lo = kB * (0xFFu >> (8 - k));
          return ((x << k) & hi) | ((x >> (8 - k)) & lo);
        };
        auto fa = [](std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t& sum,
                     std::uint64_t& carry) {
          const std::uint64_t t = a ^ b;
          sum = t ^ c;
          carry = (a & b) | (c & t);
        };
        const __m512i ones64 = _mm512_set1_epi8(1);
        constexpr __mmask16 up[4] = {0x7F7F, 0x3F3F, 0x1F1F, 0x0F0F};
        for (; j + 64 <= len; j += 64) {
          std::uint64_t l[4] = {0, 0, 0, 0};
          std::uint64_t bad = 0;
          for (int v = 0; v < 4; ++v) {
            const __m512 x = _mm512_loadu_ps(s + j + 16 * v);
            bad |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
            for (int k = 0; k < 3; ++k) {
              const __m512 y = _mm512_permutexvar_ps(idx[k], x);
              const __mmask16 b = _mm512_mask_cmp_ps_mask(up[k], y, x, _CMP_GT_OQ) |
                                  _mm512_mask_cmp_ps_mask(__mmask16(~up[k]), y, x, _CMP_GE_OQ);
              l[k] |= std::uint64_t(b) << (16 * v);
            }
            const __m512 y4 = _mm512_permutexvar_ps(idx[3], x);
            l[3] |= std::uint64_t(_mm512_mask_cmp_ps_mask(up[3], y4, x, _CMP_GT_OQ)) << (16 * v);
          }
          nan |= __mmask16(bad);
          constexpr std::uint64_t lo4 = 0x0F0F0F0F0F0F0F0Full;
          const std::uint64_t l4 = (l[3] & lo4) | ((~l[3] & lo4) << 4);
          const std::uint64_t l5 = ~rotl(l[2], 3), l6 = ~rotl(l[1], 2), l7 = ~rotl(l[0], 1);
          std::uint64_t sa, ca, sb, cb, s0, cc, s1, s2;
          fa(l[0], l[1], l[2], sa, ca);
          fa(l4, l5, l6, sb, cb);
          fa(sa, sb, l7, s0, cc);
          fa(ca, cb, cc, s1, s2);
          // keep iff rank (s2 s1 s0) < N, a constant: bit-sliced comparison
          constexpr std::uint64_t n0 = (N & 1) ? ~0ull : 0, n1 = (N & 2) ? ~0ull : 0,
                                  n2 = (N & 4) ? ~0ull : 0;
          const std::uint64_t eq2 = ~(s2 ^ n2), eq1 = ~(s1 ^ n1);
          const std::uint64_t keep = (~s2 & n2) | (eq2 & ((~s1 & n1) | (eq1 & (~s0 & n0))));
          _mm512_storeu_si512(reinterpret_cast<void*>(out + j),
                              _mm512_maskz_mov_epi8(keep, ones64));
        }
      }
      for (; j + 16 <= len; j += 16) {
        const __m512 x = _mm512_loadu_ps(s + j);
        nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
        __m512i rank = _mm512_setzero_si512();
        for (int k = 0; k < 7; ++k) {
          const __m512 y = _mm512_permutexvar_ps(idx[k], x);
          const __mmask16 b = _mm512_cmp_ps_mask(y, x, _CMP_GT_OQ) |
                              (_mm512_cmp_ps_mask(y, x, _CMP_EQ_OQ) & tie[k]);
          rank = _mm512_mask_add_epi32(rank, b, rank, one);
        }
        const __mmask16 keep = _mm512_cmp_epi32_mask(rank, nv, _MM_CMPINT_LT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + j), _mm_maskz_mov_epi8(keep, ones8));
      }
    }
    bool tail_nan = scalar::rowwise_run_fixed<M, N>(s + j, len - j, out + j);
    return tail_nan || nan != 0;
  }
#elif SPARSENM_HAS_AVX2
  if constexpr (std::is_same<S, float>::value && (M == 4 || M == 8)) {
    Index j = 0;
    __m256 nanacc = _mm256_setzero_ps();
    if constexpr (M == 4) {
      // Same pairwise-comparison scheme as the AVX-512 kernel, 8 vectors of 8 per step.
      for (; j + 64 <= len; j += 64) {
        std::uint64_t A = 0, B = 0, C = 0;
        for (int v = 0; v < 8; ++v) {
          const __m256 x = _mm256_loadu_ps(s + j + 8 * v);
          const __m256 y1 = _mm256_permute_ps(x, _MM_SHUFFLE(0, 3, 2, 1));
          const __m256 y2 = _mm256_permute_ps(x, _MM_SHUFFLE(1, 0, 3, 2));
          const __m256 y3 = _mm256_permute_ps(x, _MM_SHUFFLE(2, 1, 0, 3));
          A |= std::uint64_t(unsigned(_mm256_movemask_ps(_mm256_cmp_ps(y1, x, _CMP_GT_OQ))))
               << (8 * v);
          B |= std::uint64_t(unsigned(_mm256_movemask_ps(_mm256_cmp_ps(y2, x, _CMP_GT_OQ))))
               << (8 * v);
          C |= std::uint64_t(unsigned(_mm256_movemask_ps(_mm256_cmp_ps(y3, x, _CMP_GT_OQ))))
               << (8 * v);
          nanacc = _mm256_or_ps(nanacc, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
        }
        const std::uint64_t keep = keep_bits_m4<N>(A, B, C);
        // 8 mask bits -> 8 bytes of 0/1: spread bit b to byte b (multiply-free, branch-free).
        for (int q = 0; q < 8; ++q) {
          std::uint64_t x8 = (keep >> (8 * q)) & 0xFFu;
          x8 = (x8 | (x8 << 28)) & 0x0000000F0000000Full;
          x8 = (x8 | (x8 << 14)) & 0x0003000300030003ull;
          x8 = (x8 | (x8 << 7)) & 0x0101010101010101ull;
          std::memcpy(out + j + 8 * q, &x8, 8);
        }
      }
    }
    const __m256i nv = _mm256_set1_epi32(N);
    // Tie lanes per rotation (all-ones where the partner has the lower in-group index).
    __m256i perm[7];
    __m256 tie[7];
    constexpr int kRot = M - 1;
    for (int k = 1; k <= kRot; ++k) {
      alignas(32) int p[8];
      alignas(32) int t[8];
      for (int i = 0; i < 8; ++i) {
        const int g = i % M;
        p[i] = (i - g) + (g + k) % M;
        t[i] = g >= M - k ? -1 : 0;
      }
      perm[k - 1] = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
      tie[k - 1] = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(t)));
    }
    for (; j + 8 <= len; j += 8) {
      const __m256 x = _mm256_loadu_ps(s + j);
      nanacc = _mm256_or_ps(nanacc, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
      __m256i rank = _mm256_setzero_si256();
      for (int k = 0; k < kRot; ++k) {
        const __m256 y = _mm256_permutevar8x32_ps(x, perm[k]);
        const __m256 b = _mm256_or_ps(_mm256_cmp_ps(y, x, _CMP_GT_OQ),
                                      _mm256_and_ps(_mm256_cmp_ps(y, x, _CMP_EQ_OQ), tie[k]));
        rank = _mm256_sub_epi32(rank, _mm256_castps_si256(b));  // b is -1 where true
      }
      const unsigned keep =
          unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(nv, rank))));
      std::uint64_t bytes = 0;
      for (int i = 0; i < 8; ++i) bytes |= std::uint64_t((keep >> i) & 1u) << (8 * i);
      std::memcpy(out + j, &bytes, 8);
    }
    bool tail_nan = scalar::rowwise_run_fixed<M, N>(s + j, len - j, out + j);
    return tail_nan || _mm256_movemask_ps(nanacc) != 0;
  }
#endif
  return scalar::rowwise_run_fixed<M, N>(s, len, out);
}

}  // namespace SPARSENM_ISA_NAMESPACE
SPARSENM_SIMD_WARNINGS_POP
}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_MASK_DETAIL_ROWWISE_KERNELS_HPP
