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
}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../mask/detail/rowwise_kernels_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {
SPARSENM_SIMD_WARNINGS_POP
}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_MASK_DETAIL_ROWWISE_KERNELS_HPP
