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
namespace detail {}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../kernels/detail/simd_vec_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_DETAIL_SIMD_VEC_HPP
