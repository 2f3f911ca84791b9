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

}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../optim/detail/sqrt_block_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_DETAIL_SQRT_BLOCK_HPP
