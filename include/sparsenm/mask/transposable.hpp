// SPDX-License-Identifier: Apache-2.0
// Transposable (block-wise) N:M masks (chts24 Sec. 3.1, 3.2.4, App. E): exact projection for every
// m, legality check, uniform random masks over the pattern library.
#ifndef SPARSENM_MASK_TRANSPOSABLE_HPP
#define SPARSENM_MASK_TRANSPOSABLE_HPP

#include <atomic>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/common.hpp"
#include "detail/transposable_exact.hpp"
#include "detail/transposable_sampler.hpp"
#include "detail/transposable_table.hpp"
#include "patterns.hpp"

namespace sparsenm {

namespace detail {

template <class S>
void project_transposable_exact(const Eigen::Ref<const Matrix<S>>& s, NM nm, Mask& out,
                                std::atomic<bool>& bad) {
  const int m = nm.m;
  const Index bands = s.rows() / m, tiles = s.cols() / m;
  const Index grain = std::max<Index>(1, row_grain(s.cols()) / m);
  parallel_for_chunks(bands, grain, [&](Index b0, Index b1) {
    BMatchingSolver solver(m, nm.n);
    for (Index b = b0; b < b1; ++b)
      for (Index t = 0; t < tiles; ++t) {
        bool tile_bad = false;
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c) {
            const S v = s(b * m + r, t * m + c);
            tile_bad |= !std::isfinite(v);
            solver.w(r, c) = double(v);
          }
        if (tile_bad) {
          bad.store(true, std::memory_order_relaxed);
          continue;
        }
        solver.solve();
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c) out(b * m + r, t * m + c) = solver.x(r, c);
      }
  });
}

template <int N, class S>
void project_transposable4(const Eigen::Ref<const Matrix<S>>& s, Mask& out,
                           std::atomic<bool>& bad) {
  const Index bands = s.rows() / 4, tiles = s.cols() / 4;
  const Index grain = std::max<Index>(1, row_grain(s.cols()) / 4);
  parallel_for_chunks(bands, grain, [&](Index b0, Index b1) {
    for (Index b = b0; b < b1; ++b)
      if (SPARSENM_DISPATCH(transposable4_band_simd<N>)(
              s.data() + 4 * b * s.outerStride(), s.outerStride(), 0, tiles,
              out.data() + 4 * b * out.cols(), out.cols()))
        bad.store(true, std::memory_order_relaxed);
  });
}

}  // namespace detail

/// Transposable N:M projection (chts24 eq. (2)): for every m x m tile, the mask with exactly n
/// ones per tile-row and per tile-column that maximises the sum of kept scores. EXACT for every m:
///  - m = 4, n = 1, 2, 3: meet-in-the-middle search over the pattern library (24 / 90 / 24
///    patterns) vectorised across 16 tiles (AVX-512) or 8 (AVX2); no per-pattern dot products
///    (mask/detail/transposable_table.hpp);
///  - other m (<= 32): max-weight bipartite b-matching by min-cost flow
///    (mask/detail/transposable_exact.hpp);
///  - n = m: all ones.
/// Scores must be finite (NaN or +-Inf throws sparsenm::Error naming the entry, because sums of
/// infinities are undefined). rows and cols must be multiples of m. Ties: deterministic (first
/// maximum in the search order), independent of the thread count. Empty input -> empty mask.
/// `project_transposable_into` writes into `out` (resized; no allocation when the shape matches).
template <class Derived>
void project_transposable_into(const Eigen::MatrixBase<Derived>& scores, NM nm, Mask& out) {
  detail::static_check_scores<Derived>();
  using S = typename Derived::Scalar;
  check_nm(nm, "project_transposable: nm");
  check_divisible(scores.rows(), nm.m, "project_transposable: scores.rows()", "m");
  check_divisible(scores.cols(), nm.m, "project_transposable: scores.cols()", "m");
  out.resize(scores.rows(), scores.cols());  // no reallocation when the shape is unchanged
  if (out.size() == 0) return;
  const Eigen::Ref<const Matrix<S>> s(scores.derived());
  std::atomic<bool> bad{false};
  if (nm.n == nm.m) {
    if (!s.allFinite()) bad = true;
    out.setOnes();
  } else if (nm.m == 4) {
    if (nm.n == 1)
      detail::project_transposable4<1>(s, out, bad);
    else if (nm.n == 2)
      detail::project_transposable4<2>(s, out, bad);
    else
      detail::project_transposable4<3>(s, out, bad);
  } else {
    detail::project_transposable_exact(s, nm, out, bad);
  }
  if (bad.load()) detail::raise_nonfinite<S>(s, "project_transposable", false);
}

/// Transposable N:M projection returning a new mask; see project_transposable_into.
template <class Derived>
Mask project_transposable(const Eigen::MatrixBase<Derived>& scores, NM nm) {
  Mask out;
  project_transposable_into(scores, nm, out);
  return out;
}

/// True iff every m x m tile has exactly n ones in each tile-row and tile-column and every entry
/// is 0 or 1. Throws if nm is invalid or a dimension is not a multiple of m.
inline bool is_transposable_legal(const Mask& mask, NM nm) {
  check_nm(nm, "is_transposable_legal: nm");
  check_divisible(mask.rows(), nm.m, "is_transposable_legal: mask.rows()", "m");
  check_divisible(mask.cols(), nm.m, "is_transposable_legal: mask.cols()", "m");
  const int m = nm.m;
  const Index cols = mask.cols();
  const std::uint8_t* p = mask.data();
  std::atomic<bool> bad{false};
  // One band of m rows per item: its row groups, then its column groups (a tile-row's columns).
  parallel_for(
      0, mask.rows() / m,
      [&](Index band) {
        const std::uint8_t* b = p + band * m * cols;
        bool ok = true;
        for (Index k = 0; k < m * cols; ++k) ok &= b[k] <= 1;
        for (int r = 0; r < m && ok; ++r)
          for (Index j = 0; j < cols; j += m) {
            int cnt = 0;
            for (int k = 0; k < m; ++k) cnt += b[r * cols + j + k];
            ok &= cnt == nm.n;
          }
        for (Index j = 0; j < cols && ok; ++j) {
          int cnt = 0;
          for (int k = 0; k < m; ++k) cnt += b[k * cols + j];
          ok &= cnt == nm.n;
        }
        if (!ok) bad.store(true, std::memory_order_relaxed);
      },
      16);
  return !bad.load();
}

/// A random transposable N:M mask, every tile drawn uniformly from the legal patterns (chts24
/// Sec. 3.2.1: z ~ U{1, |P|}). m <= 6: an index into TransposablePatterns with 32 Philox bits
/// (counter = linear index of the tile's top-left entry; bias < |P| / 2^32). 6 < m <= 12:
/// row-by-row sampling weighted by exact completion counts (row r of a tile uses the counter of its
/// first entry). Independent of the thread count. Throws for m > 12 (n < m).
inline Mask random_transposable(Index rows, Index cols, NM nm, const Philox& rng) {
  check_nm(nm, "random_transposable: nm");
  SPARSENM_CHECK(nm.n == nm.m || nm.m <= detail::TransposableSampler::kMaxM,
                 "random_transposable: nm = ", nm,
                 ": m must be <= ", detail::TransposableSampler::kMaxM, " (unless n = m)");
  check_divisible(rows, nm.m, "random_transposable: rows", "m");
  check_divisible(cols, nm.m, "random_transposable: cols", "m");
  Mask out(rows, cols);
  if (out.size() == 0) return out;
  if (nm.n == nm.m) {
    out.setOnes();
    return out;
  }
  const int m = nm.m;
  const Index bands = rows / m, tiles = cols / m;
  const Index grain = std::max<Index>(1, detail::row_grain(cols) / m);
  if (m <= 6) {
    const std::vector<std::uint64_t>& lib = detail::transposable_library(nm);
    const std::uint64_t size = lib.size();
    parallel_for_chunks(bands, grain, [&](Index b0, Index b1) {
      for (Index b = b0; b < b1; ++b)
        for (Index t = 0; t < tiles; ++t) {
          const std::uint64_t counter = std::uint64_t(b * m * cols + t * m);
          const std::uint64_t z = (std::uint64_t(rng.bits(counter)) * size) >> 32;  // Lemire
          const std::uint64_t bits = lib[std::size_t(z)];
          for (int r = 0; r < m; ++r)
            for (int c = 0; c < m; ++c)
              out(b * m + r, t * m + c) = std::uint8_t((bits >> (r * m + c)) & 1u);
        }
    });
  } else {
    parallel_for_chunks(bands, grain, [&](Index b0, Index b1) {
      detail::TransposableSampler sampler(m, nm.n);
      for (Index b = b0; b < b1; ++b)
        for (Index t = 0; t < tiles; ++t)
          sampler.sample(
              rng, [&](int r) { return std::uint64_t((b * m + r) * cols + t * m); },
              out.data() + b * m * cols + t * m, cols);
    });
  }
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_TRANSPOSABLE_HPP
