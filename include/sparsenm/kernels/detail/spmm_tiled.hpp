// SPDX-License-Identifier: Apache-2.0
// Register-blocked, cache-tiled CPU micro-kernels for compressed N:M weights (ISA chosen at compile
// time through VecOps). Design (the "X^T tile" scheme; CHTs24 App. J counts these products):
//
//  * Activations are packed as X^T in tiles of T = C * W tokens (PackedTokens), W = SIMD width.
//  * SpMM, Y^T(o, tile) = sum_e w_e X^T(col_e, tile): one nonzero costs one broadcast, C vector
//    loads (micro-fused into the FMAs) and C FMAs into C accumulators that stay in registers. For
//    skinny batches (C < 8) R = 8 / C rows run in lockstep so 8 independent FMA chains hide
//    latency.
//  * Cache tiling: the input dimension is cut in blocks of Kc features with Kc * T * sizeof(S) =
//    32 KiB, so the X^T block a row block sweeps stays in L1 (48 KiB here); row blocks of up to
//    row_block() rows accumulate in a small per-thread Y^T buffer (L2) across input blocks, and the
//    buffer is transposed into Y once at the end.
//  * Work items are (row block, token tile) pairs split statically over threads; each output value
//    is produced by exactly one item with a fixed summation order, so results are bit-identical
//    for any thread count.
//  * SDDMM, dW(e) = sum_t dY(t, o_e) X(t, col_e): dY^T(o, tile) sits in C registers, every active
//    entry of the row costs C FMAs with X^T(col_e, tile) as the memory operand (one load per FMA),
//    and W entries at a time are reduced to W lane sums with one shuffle tree
//    (VecOps::reduce_batch).
#ifndef SPARSENM_KERNELS_DETAIL_SPMM_TILED_HPP
#define SPARSENM_KERNELS_DETAIL_SPMM_TILED_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <Eigen/Core>

#include "../../core/simd.hpp"
#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "../../mask.hpp"
#include "../packed_tokens.hpp"
#include "../transposed_weight.hpp"
#include "simd_vec.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../kernels/detail/spmm_tiled_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_DETAIL_SPMM_TILED_HPP
