// SPDX-License-Identifier: Apache-2.0
// Shared machinery of the optimizers' element-wise passes: a fixed chunking of the flat parameter
// (so every reduction is summed in the same order for any thread count), lane-split accumulators
// that the compiler vectorises without -ffast-math, and the gradient/mask pre-scan that runs
// before any state is written (a non-finite gradient must not leave half-updated moments behind).
#ifndef SPARSENM_OPTIM_DETAIL_ELEMENTWISE_HPP
#define SPARSENM_OPTIM_DETAIL_ELEMENTWISE_HPP

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../../core/blas.hpp"
#include "../../core/error.hpp"
#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "../nonfinite.hpp"

namespace sparsenm {
namespace detail {

/// Elements per chunk of every optimizer pass: large enough to amortise scheduling, small enough
/// that two threads get balanced work on a 1024x1024 layer. Independent of the thread count.
constexpr Index kOptimGrain = Index(1) << 15;
/// Independent partial sums per reduction inside a chunk (one zmm of floats); the fixed lane split
/// lets the compiler vectorise the reduction while the summation order stays fixed.
constexpr int kLanes = 16;

inline Index optim_chunk_count(Index n) { return n <= 0 ? 0 : (n + kOptimGrain - 1) / kOptimGrain; }

/// Per-chunk partial results, preallocated once per optimizer so step() allocates nothing.
struct ChunkScratch {
  std::vector<double> a, b;
  std::vector<long long> c, d, e;
  void resize(Index n) {
    const auto k = static_cast<std::size_t>(optim_chunk_count(n));
    a.assign(k, 0.0);
    b.assign(k, 0.0);
    c.assign(k, 0);
    d.assign(k, 0);
    e.assign(k, 0);
  }
};

/// Matrices up to this many entries run the elementwise passes of the optimizers that call BLAS
/// (TANS and Muon: Newton-Schulz) on the calling thread. OpenBLAS (pthreads) keeps its worker
/// threads spinning after a call; an OpenMP region started then competes with them for the cores
/// and can lose a scheduler time slice (the same happens after the backward pass's GEMMs). On 2
/// cores, 2 threads, 1024 x 1024, the TANS step took 1.01-1.34x the Newton-Schulz time over 8 runs
/// with parallel passes; serially the passes cost ~4 ms there, and above 4 M entries the parallel
/// bandwidth wins. With SPARSENM_NS_PACKED_GEMM the passes after Newton-Schulz run in parallel
/// (it runs on OpenMP); the ones before it still follow the caller's backward pass.
constexpr Index kSerialAfterBlas = Index(1) << 22;

/// Whether the passes of TANS / Muon over a rows x cols weight run in parallel: under sparsenm's
/// thread policy (core/blas.hpp: BLAS single-threaded, no pool left spinning) always; only above
/// kSerialAfterBlas when the program keeps a multi-threaded BLAS (SPARSENM_KEEP_BLAS_THREADS or
/// set_blas_threads(n > 1)). One rule for the library rather than a choice per call site; the
/// chunks, and so the results, are the same either way.
inline bool parallel_next_to_blas(Index entries) {
  return blas_threads() <= 1 || entries > kSerialAfterBlas;
}

/// Runs f(begin, end, chunk) over the fixed chunks of [0, n) in parallel (static schedule), or in
/// order on the calling thread when `parallel` is false (same chunks, same results).
template <class F>
void for_each_chunk(Index n, F&& f, bool parallel = true) {
  const Index chunks = optim_chunk_count(n);
  auto one = [&](Index c) {
    const Index b = c * kOptimGrain;
    const Index e = b + kOptimGrain < n ? b + kOptimGrain : n;
    f(b, e, c);
  };
  if (parallel) {
    parallel_for(Index(0), chunks, one);
  } else {
    for (Index c = 0; c < chunks; ++c) one(c);
  }
}

/// Calls f(r) for every row; in parallel only when the matrix spans at least two chunks (a parallel
/// region on a small matrix costs more than the work, and much more on a loaded machine).
template <class F>
void for_each_row(Index rows, Index cols, F&& f) {
  const Index min_parallel = rows * cols >= 2 * kOptimGrain ? 2 : rows + 1;
  parallel_for(Index(0), rows, std::forward<F>(f), min_parallel);
}

/// Result of the pre-scan of a gradient (and optionally a mask).
struct GradScan {
  bool finite = true;    ///< every gradient entry is finite
  bool binary = true;    ///< every mask entry is 0 or 1
  long long active = 0;  ///< number of mask entries equal to 1 (all entries without a mask)
};

/// One read-only pass over grad (and mask when non-null): finiteness, mask legality, |M|.
/// Finiteness: g * 0 is 0 for finite g and NaN for Inf/NaN (never folded without -ffast-math),
/// summed in lanes, so the test vectorises; the mask count and OR are integer reductions.
template <class S>
GradScan scan_gradient(const S* SPARSENM_RESTRICT g, const std::uint8_t* SPARSENM_RESTRICT mask,
                       Index n, ChunkScratch& scratch, bool parallel = true) {
  for_each_chunk(
      n,
      [&](Index b, Index e, Index c) {
        S z[kLanes] = {};
        Index i = b;
        for (; i + kLanes <= e; i += kLanes)
          for (int l = 0; l < kLanes; ++l) z[l] += g[i + l] * S(0);
        S tail = 0;
        for (; i < e; ++i) tail += g[i] * S(0);
        bool finite = tail == S(0);
        for (int l = 0; l < kLanes; ++l) finite = finite && z[l] == S(0);
        unsigned act = 0, orr = 0;  // a chunk has at most 2^15 entries of at most 255
        if (mask) {
          for (Index k = b; k < e; ++k) {
            act += mask[k];
            orr |= mask[k];
          }
        }
        scratch.c[static_cast<std::size_t>(c)] = finite ? 0 : 1;
        scratch.d[static_cast<std::size_t>(c)] = mask ? (long long)act : (long long)(e - b);
        scratch.e[static_cast<std::size_t>(c)] = orr;
      },
      parallel);
  GradScan r;
  const Index chunks = optim_chunk_count(n);
  long long orr = 0;
  for (Index c = 0; c < chunks; ++c) {
    const auto k = static_cast<std::size_t>(c);
    if (scratch.c[k] != 0) r.finite = false;
    r.active += scratch.d[k];
    orr |= scratch.e[k];
  }
  r.binary = (orr & ~1LL) == 0;
  return r;
}

/// Cold path: the message for the first bad entry found by scan_gradient.
template <class S>
[[noreturn]] SPARSENM_COLD SPARSENM_NOINLINE void raise_bad_input(const char* who, const S* g,
                                                                  const std::uint8_t* mask,
                                                                  Index rows, Index cols) {
  const Index n = rows * cols;
  if (mask)
    for (Index i = 0; i < n; ++i)
      SPARSENM_CHECK(mask[i] <= 1, who, ": mask(", i / cols, ", ", i % cols, ") = ", int(mask[i]),
                     " must be 0 or 1");
  for (Index i = 0; i < n; ++i)
    SPARSENM_CHECK(std::isfinite(static_cast<double>(g[i])), who, ": grad(", i / cols, ", ",
                   i % cols, ") = ", static_cast<double>(g[i]),
                   " is not finite (NonFinitePolicy::Throw; set the config's nonfinite = "
                   "NonFinitePolicy::SkipStep to skip such steps instead)");
  raise(concat(who, ": bad gradient or mask"));
}

/// Pre-scan + policy: returns true when the step may proceed, false when it must be skipped;
/// throws for a non-binary mask always and for a non-finite gradient under Throw.
template <class S>
bool admit_gradient(const char* who, const S* g, const std::uint8_t* mask, Index rows, Index cols,
                    NonFinitePolicy policy, ChunkScratch& scratch, long long* active = nullptr,
                    bool parallel = true) {
  const GradScan s = scan_gradient(g, mask, rows * cols, scratch, parallel);
  if (!s.binary) raise_bad_input(who, g, mask, rows, cols);
  if (!s.finite) {
    if (policy == NonFinitePolicy::Throw) raise_bad_input<S>(who, g, nullptr, rows, cols);
    return false;
  }
  if (active) *active = s.active;
  return true;
}

/// Sum of f(b, e) over the fixed chunks of [0, n), summed serially in chunk order. The chunks run
/// in parallel unless `parallel` is false (same result either way).
template <class F>
double chunk_sum(Index n, std::vector<double>& partial, F&& f, bool parallel = true) {
  for_each_chunk(
      n, [&](Index b, Index e, Index c) { partial[static_cast<std::size_t>(c)] = f(b, e); },
      parallel);
  double s = 0;
  const Index chunks = optim_chunk_count(n);
  for (Index c = 0; c < chunks; ++c) s += partial[static_cast<std::size_t>(c)];
  return s;
}

/// acc[l] += x[i]^2 over [0, n), lane l taking i % kLanes == l (the tail goes to lane 0). The
/// fixed lane split vectorises without -ffast-math and fixes the summation order.
template <class S>
SPARSENM_ALWAYS_INLINE void lanes_sum_squares(const S* SPARSENM_RESTRICT x, Index n,
                                              S (&acc)[kLanes]) {
  Index i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * x[i + l];
  for (; i < n; ++i) acc[0] += x[i] * x[i];
}

/// acc[l] += x[i] y[i] over [0, n), same lane split as lanes_sum_squares.
template <class S>
SPARSENM_ALWAYS_INLINE void lanes_dot(const S* SPARSENM_RESTRICT x, const S* SPARSENM_RESTRICT y,
                                      Index n, S (&acc)[kLanes]) {
  Index i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * y[i + l];
  for (; i < n; ++i) acc[0] += x[i] * y[i];
}

/// Sum of squares of x[b, e) with lane-split partial sums (vectorised, fixed order).
template <class S>
double sum_squares(const S* SPARSENM_RESTRICT x, Index b, Index e) {
  S acc[kLanes] = {};
  Index i = b;
  for (; i + kLanes <= e; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += x[i + l] * x[i + l];
  double s = 0;
  for (; i < e; ++i) s += double(x[i]) * double(x[i]);
  for (int l = 0; l < kLanes; ++l) s += double(acc[l]);
  return s;
}

/// Pointer to contiguous row-major data of g: g itself when it is contiguous, else a copy in buf.
template <class S>
const S* contiguous_data(const Eigen::Ref<const Matrix<S>>& g, Matrix<S>& buf) {
  if (g.rows() <= 1 || g.outerStride() == g.cols()) return g.data();
  buf = g;
  return buf.data();
}

/// Calls f(flat_begin, flat_end, w) over a rows x cols row-major weight with any outer stride,
/// where w points at the weight element of flat index flat_begin: fixed chunks when the weight
/// is contiguous, whole rows otherwise. Deterministic for any thread count.
template <class S, class F>
void for_each_weight_span(Eigen::Ref<Matrix<S>>& w, F&& f, bool parallel = true) {
  const Index rows = w.rows(), cols = w.cols();
  S* base = w.data();
  if (rows <= 1 || w.outerStride() == cols) {
    for_each_chunk(
        rows * cols, [&](Index b, Index e, Index) { f(b, e, base + b); }, parallel);
  } else {
    const Index stride = w.outerStride();
    auto row = [&](Index r) { f(r * cols, (r + 1) * cols, base + r * stride); };
    if (parallel) {
      for_each_row(rows, cols, row);
    } else {
      for (Index r = 0; r < rows; ++r) row(r);
    }
  }
}

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_DETAIL_ELEMENTWISE_HPP
