// SPDX-License-Identifier: Apache-2.0
// A packed, register-blocked dense GEMM / SYRK for column-major views (used by Newton-Schulz).
//
// Why our own rather than BLAS: Newton-Schulz needs products that BLAS does not offer in one call
// (a factor read from its lower triangle on BOTH sides, C = S1 S2 for symmetric S1, S2 with only
// the lower triangle of a symmetric result computed, i.e. half the flops), and a summation order
// that does not depend on the thread count. As a plain GEMM it is on par with OpenBLAS 0.3.21 on
// the project machine (0.94-1.14x its sgemm / ssyrk, bench_optim BM_PackedGemmVsOpenBlas). The
// micro-kernel keeps both FMA operands in registers (2 vector loads of the packed A panel + NR
// broadcasts of the packed B panel per k, 2 NR FMAs): ~205 GFLOP/s per core in L1, ~95 % of the
// register FMA rate. The structure is the classic GotoBLAS / BLIS one: B is packed per k-block
// into NR-wide panels, A per (k, m) block into MR-tall panels (L2), and the micro-kernel computes
// an MR x NR tile over the k-block with the B panel in L1.
//
// Operands are logical matrices read from column-major storage in one of three ways (plain,
// transposed, symmetric with its lower triangle stored), so SYRK (C = A A^T), products with a
// symmetric factor given by its lower triangle (SYMM) and plain GEMM share one kernel; the
// packing routines read the storage with unit stride wherever the layout allows.
//
// Determinism: every entry of C is one fixed sequence of FMAs (k-blocks in order, k in order
// inside a block, C <- fma(alpha, acc, C) after each block), whatever the thread count and
// whatever tile the entry falls in (edge tiles run the same FMAs on zero padding). The scalar
// reference micro-kernel (std::fma in the same order) gives the same bits; tests use it.
#ifndef SPARSENM_KERNELS_DETAIL_DENSE_GEMM_HPP
#define SPARSENM_KERNELS_DETAIL_DENSE_GEMM_HPP

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "simd_vec.hpp"

SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../kernels/detail/dense_gemm_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_DETAIL_DENSE_GEMM_HPP
