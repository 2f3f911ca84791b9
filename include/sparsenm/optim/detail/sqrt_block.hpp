// SPDX-License-Identifier: Apache-2.0
// In-place square root of a short block. Why this exists: with GCC's default -fmath-errno, a loop
// that calls std::sqrt is never vectorised (the errno path is control flow), and a header library
// cannot change the consumer's flags. The optimizer kernels therefore work in L1-sized blocks:
// a vectorisable loop writes the values to take the root of into a small buffer, this function
// takes the roots with explicit AVX-512 / AVX2 instructions, and a second vectorisable loop uses
// them. Memory traffic stays one pass. The scalar reference is detail::scalar::sqrt_block.
#ifndef SPARSENM_OPTIM_DETAIL_SQRT_BLOCK_HPP
#define SPARSENM_OPTIM_DETAIL_SQRT_BLOCK_HPP

#include <cmath>

#include "../../core/simd.hpp"
#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {

/// Elements per block of the optimizer kernels (fits L1 with a few buffers; multiple of 16).
constexpr Index kSqrtBlock = 256;

namespace scalar {
template <class S>
void sqrt_block(S* x, Index n) {
  for (Index i = 0; i < n; ++i) x[i] = std::sqrt(x[i]);
}
}  // namespace scalar

inline namespace SPARSENM_ISA_NAMESPACE {

// The maskz forms with a full mask: the plain _mm512_sqrt_ps is built on _mm512_undefined_ps,
// which GCC 12 reports as -Wmaybe-uninitialized once inlined into some callers.
inline void sqrt_block(float* x, Index n) {
  Index i = 0;
#if SPARSENM_HAS_AVX512
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(x + i, _mm512_maskz_sqrt_ps(__mmask16(0xFFFF), _mm512_loadu_ps(x + i)));
#elif SPARSENM_HAS_AVX2
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
#endif
  scalar::sqrt_block(x + i, n - i);
}

inline void sqrt_block(double* x, Index n) {
  Index i = 0;
#if SPARSENM_HAS_AVX512
  for (; i + 8 <= n; i += 8)
    _mm512_storeu_pd(x + i, _mm512_maskz_sqrt_pd(__mmask8(0xFF), _mm512_loadu_pd(x + i)));
#elif SPARSENM_HAS_AVX2
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, _mm256_sqrt_pd(_mm256_loadu_pd(x + i)));
#endif
  scalar::sqrt_block(x + i, n - i);
}

}  // namespace SPARSENM_ISA_NAMESPACE
}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_DETAIL_SQRT_BLOCK_HPP
