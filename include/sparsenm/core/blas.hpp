// SPDX-License-Identifier: Apache-2.0
// sparsenm's thread policy next to BLAS, one for the whole library: BLAS runs single-threaded and
// sparsenm parallelises around it with OpenMP, over partitions that depend only on the shapes.
//
// Why (measured on the project machines, bench/RESULTS.md "Threads"): OpenBLAS's pthreads build
// keeps its worker threads spinning after every call, and the OpenMP regions that follow (every
// sparse kernel, optimizer pass and refresh) lose time slices to them: on 2 cores a training step
// ran 1.4x slower with OpenBLAS's default threads than with OPENBLAS_NUM_THREADS=1. OpenBLAS's
// threading also changes sgemm's rounding between thread counts, so the same program gave
// different models on machines with different core counts. With this policy:
//  - programs linked with sparsenm::blas (which defines SPARSENM_OPENBLAS) set OpenBLAS to one
//    thread when they start (before main; define SPARSENM_KEEP_BLAS_THREADS to opt out, or call
//    set_blas_threads() later);
//  - parallel_product() runs a dense product as fixed blocks of the output, each block one BLAS
//    (or Eigen) product on one thread: the same calls on the same data for any OpenMP thread count,
//    so results depend only on the inputs (and the ISA), never on OMP_NUM_THREADS or
//    OPENBLAS_NUM_THREADS.
#ifndef SPARSENM_CORE_BLAS_HPP
#define SPARSENM_CORE_BLAS_HPP

#include <algorithm>

#include <Eigen/Core>

#include "parallel.hpp"
#include "types.hpp"

#if defined(SPARSENM_OPENBLAS)
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
}
#endif

namespace sparsenm {

/// Sets the number of threads BLAS itself uses (OpenBLAS through sparsenm::blas; a no-op
/// otherwise). sparsenm's policy is 1: see the file comment.
inline void set_blas_threads(int n) {
#if defined(SPARSENM_OPENBLAS)
  openblas_set_num_threads(std::max(1, n));
#else
  (void)n;
#endif
}

/// Threads BLAS uses (1 when sparsenm does not know the BLAS).
inline int blas_threads() {
#if defined(SPARSENM_OPENBLAS)
  return openblas_get_num_threads();
#else
  return 1;
#endif
}

namespace detail {
#if defined(SPARSENM_OPENBLAS) && !defined(SPARSENM_KEEP_BLAS_THREADS)
/// Applies the policy once per program, at static initialisation (OpenBLAS's own initialisation
/// runs before: it is a shared library the program depends on).
inline const bool kBlasSingleThreaded = (set_blas_threads(1), true);
#endif

/// Output rows or columns per block of parallel_product: large enough that a block is an
/// efficient GEMM (packing amortised), small enough that 2-4 threads get balanced work on the
/// layer shapes of the examples (1024-4096 wide).
constexpr Index kProductBlock = 128;
}  // namespace detail

/// dst = lhs * rhs (dst must already have the product's shape; no aliasing with the operands),
/// computed as fixed blocks of kProductBlock rows or columns of dst (whichever dimension is
/// larger) in parallel. The blocks depend only on the shapes and each is one product on one
/// thread, so the result is bit-identical for any OpenMP or BLAS thread count. Products too small
/// to split, and calls from inside a parallel region, run as one product.
template <class Dst, class Lhs, class Rhs>
void parallel_product(Eigen::MatrixBase<Dst>& dst, const Eigen::MatrixBase<Lhs>& lhs,
                      const Eigen::MatrixBase<Rhs>& rhs) {
  const Index rows = dst.rows(), cols = dst.cols();
  constexpr Index B = detail::kProductBlock;
  const bool by_rows = rows >= cols;
  const Index n = by_rows ? rows : cols, blocks = (n + B - 1) / B;
  // The block split is the same whether or not it runs in parallel (results must not change).
  // Even one block runs inside a region (min_parallel 1): Eigen's own GEMM then never splits it
  // over threads with thread-count-dependent blocking.
  parallel_for(
      Index(0), blocks,
      [&](Index b) {
        const Index b0 = b * B, len = std::min(B, n - b0);
        if (by_rows)
          dst.middleRows(b0, len).noalias() = lhs.middleRows(b0, len) * rhs;
        else
          dst.middleCols(b0, len).noalias() = lhs * rhs.middleCols(b0, len);
      },
      Index(1));
}

}  // namespace sparsenm

#endif  // SPARSENM_CORE_BLAS_HPP
