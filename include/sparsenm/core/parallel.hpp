// SPDX-License-Identifier: Apache-2.0
// OpenMP helpers. Pragmas go through _Pragma-based macros so a consumer compiled without -fopenmp
// builds warning-free (no "unknown pragma"), and every loop uses a static schedule so the work each
// index does never depends on the thread count (results are bit-identical for 1 and 2 threads).
//
// Debian's OpenBLAS is the pthreads build: never call BLAS (or an Eigen product that dispatches to
// it) inside a parallel region; parallel_for refuses nothing, so kernels must keep GEMMs outside.
#ifndef SPARSENM_CORE_PARALLEL_HPP
#define SPARSENM_CORE_PARALLEL_HPP

#include <algorithm>

#include "../config.hpp"
#include "types.hpp"

#if SPARSENM_HAS_OPENMP
#include <omp.h>
#define SPARSENM_PRAGMA(x) _Pragma(#x)
/// Wraps an OpenMP directive: SPARSENM_OMP(parallel for schedule(static)).
#define SPARSENM_OMP(directive) SPARSENM_PRAGMA(omp directive)
#else
#define SPARSENM_OMP(directive)
#endif

namespace sparsenm {

/// Threads a parallel region would use (1 without OpenMP).
inline int thread_count() {
#if SPARSENM_HAS_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the OpenMP thread count for later regions (no-op without OpenMP). n < 1 is clamped to 1.
inline void set_thread_count(int n) {
#if SPARSENM_HAS_OPENMP
  omp_set_num_threads(std::max(1, n));
#else
  (void)n;
#endif
}

/// True inside an active parallel region.
inline bool in_parallel() {
#if SPARSENM_HAS_OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

/// Calls f(i) for i in [begin, end) with a static schedule; serial without OpenMP or when the range
/// is shorter than `min_parallel` (parallel start-up costs a few microseconds).
template <class F>
void parallel_for(Index begin, Index end, F&& f, Index min_parallel = 2) {
#if SPARSENM_HAS_OPENMP
  if (end - begin >= min_parallel && !in_parallel() && thread_count() > 1) {
    SPARSENM_OMP(parallel for schedule(static))
    for (Index i = begin; i < end; ++i) f(i);
    return;
  }
#else
  (void)min_parallel;
#endif
  for (Index i = begin; i < end; ++i) f(i);
}

/// Splits [0, n) into contiguous chunks of `grain` items (the last may be shorter) and calls
/// f(chunk_begin, chunk_end) for each, in parallel with a static schedule. The chunk boundaries
/// depend only on n and grain, never on the thread count.
template <class F>
void parallel_for_chunks(Index n, Index grain, F&& f) {
  grain = std::max<Index>(grain, 1);
  const Index chunks = (n + grain - 1) / grain;
  parallel_for(Index(0), chunks, [&](Index c) { f(c * grain, std::min(n, (c + 1) * grain)); });
}

}  // namespace sparsenm

#endif  // SPARSENM_CORE_PARALLEL_HPP
