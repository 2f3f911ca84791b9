// SPDX-License-Identifier: Apache-2.0
// The pattern-family concept (STYLE.md section 3) as compile-time types, so generic code and the
// conformance test suite can treat row-wise and transposable layouts alike.
//
// A pattern family F provides
//   static constexpr int group_rows, group_cols;  // the tile one decision is made on
//   static constexpr NM nm();                     // n kept per tile-row (and tile-column)
//   static bool legal(const Mask& tile);          // a group_rows x group_cols tile is legal
//   template <class D> static Mask project(const Eigen::MatrixBase<D>& scores);
//                                                 // per tile, the legal tile with the largest
//                                                 // score sum; ties deterministic
//   static Mask random(Index rows, Index cols, const Philox& rng);   // uniform over legal tiles
//   static long long count();                     // number of legal tiles (-1: not representable)
// Three families:
//   RowWiseFamily<M, N>            top-n per 1 x M group (any M <= 32);
//   TransposableTableFamily<M, N>  M <= 6: the pattern library (TransposablePatterns); M = 4 runs
//   the
//                                  meet-in-the-middle kernel, M = 5, 6 score every library tile;
//   TransposableExactFamily<M, N>  any M <= 32: max-weight b-matching (min-cost flow).
#ifndef SPARSENM_MASK_FAMILIES_HPP
#define SPARSENM_MASK_FAMILIES_HPP

#include <atomic>
#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "patterns.hpp"
#include "rowwise.hpp"
#include "transposable.hpp"

namespace sparsenm {

namespace detail {

/// C(m, n) as long long.
constexpr long long binomial(int m, int n) {
  long long r = 1;
  for (int k = 1; k <= n; ++k) r = r * (m - n + k) / k;
  return r;
}

/// Checks one tile against n per row (and per column when `columns`).
inline bool tile_legal(const Mask& tile, int rows, int cols, int n, bool columns) {
  if (tile.rows() != rows || tile.cols() != cols) return false;
  for (Index i = 0; i < rows; ++i) {
    int c = 0;
    for (Index j = 0; j < cols; ++j) {
      if (tile(i, j) > 1) return false;
      c += tile(i, j);
    }
    if (c != n) return false;
  }
  if (columns)
    for (Index j = 0; j < cols; ++j) {
      int c = 0;
      for (Index i = 0; i < rows; ++i) c += tile(i, j);
      if (c != n) return false;
    }
  return true;
}

/// Exact projection by scoring every tile of the library (chts24 App. E's formulation), m <= 6;
/// the first library tile (ascending bits) with the largest sum wins.
template <class S>
void project_transposable_library(const Eigen::Ref<const Matrix<S>>& s, NM nm, Mask& out) {
  const std::vector<std::uint64_t>& lib = transposable_library(nm);
  const int m = nm.m;
  const Index bands = s.rows() / m, tiles = s.cols() / m;
  std::atomic<bool> bad{false};
  parallel_for_chunks(bands, std::max<Index>(1, row_grain(s.cols()) / m), [&](Index b0, Index b1) {
    for (Index b = b0; b < b1; ++b)
      for (Index t = 0; t < tiles; ++t) {
        double x[36];
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c) {
            x[r * m + c] = double(s(b * m + r, t * m + c));
            if (!std::isfinite(x[r * m + c])) bad.store(true, std::memory_order_relaxed);
          }
        double best = 0;
        std::uint64_t arg = lib.front();
        bool first = true;
        for (std::uint64_t p : lib) {
          double acc = 0;
          for (int k = 0; k < m * m; ++k)
            if ((p >> k) & 1u) acc += x[k];
          if (first || acc > best) {
            best = acc;
            arg = p;
            first = false;
          }
        }
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c)
            out(b * m + r, t * m + c) = std::uint8_t((arg >> (r * m + c)) & 1u);
      }
  });
  if (bad.load()) raise_nonfinite<S>(s, "TransposableTableFamily::project", false);
}

template <class F, class = void>
struct is_pattern_family : std::false_type {};

template <class F>
struct is_pattern_family<
    F, std::void_t<decltype(F::group_rows), decltype(F::group_cols), decltype(F::nm()),
                   decltype(F::legal(std::declval<const Mask&>())),
                   decltype(F::project(std::declval<const Matrix<float>&>())),
                   decltype(F::random(Index(), Index(), std::declval<const Philox&>())),
                   decltype(F::count())>> : std::true_type {};

}  // namespace detail

/// Compile-time check with a readable message (ensmallen-style).
template <class F>
constexpr void static_check_pattern_family() {
  static_assert(detail::is_pattern_family<F>::value,
                "F is not a sparsenm pattern family: it needs group_rows, group_cols, nm(), "
                "legal(tile), project(scores), random(rows, cols, rng) and count() (see "
                "mask/families.hpp)");
}

/// Row-wise N:M: top-N per group of M contiguous entries (ties to the lower index).
template <int M, int N>
struct RowWiseFamily {
  static_assert(M >= 1 && M <= kMaxGroupSize && N >= 1 && N <= M,
                "RowWiseFamily: 1 <= N <= M <= 32");
  /// Rows of a group.
  static constexpr int group_rows = 1;
  /// Columns of a group.
  static constexpr int group_cols = M;
  /// The N:M pattern.
  static constexpr NM nm() { return NM{N, M}; }
  /// True when `tile` (group_rows x group_cols) is legal.
  static bool legal(const Mask& tile) { return detail::tile_legal(tile, 1, M, N, false); }
  /// The legal mask with the largest kept score sum.
  template <class D>
  static Mask project(const Eigen::MatrixBase<D>& scores) {
    return project_rowwise(scores, nm());
  }
  /// A uniformly random legal mask.
  static Mask random(Index rows, Index cols, const Philox& rng) {
    return random_rowwise(rows, cols, nm(), rng);
  }
  /// Number of legal groups.
  static long long count() { return detail::binomial(M, N); }
};

/// Transposable N:M through the pattern library (M <= 6).
template <int M, int N>
struct TransposableTableFamily {
  static_assert(M >= 1 && M <= 6 && N >= 1 && N <= M, "TransposableTableFamily: 1 <= N <= M <= 6");
  /// Rows of a tile.
  static constexpr int group_rows = M;
  /// Columns of a tile.
  static constexpr int group_cols = M;
  /// The N:M pattern.
  static constexpr NM nm() { return NM{N, M}; }
  /// True when `tile` (M x M) is legal.
  static bool legal(const Mask& tile) { return detail::tile_legal(tile, M, M, N, true); }
  /// The legal mask with the largest kept score sum (best tile of the library, per tile).
  template <class D>
  static Mask project(const Eigen::MatrixBase<D>& scores) {
    if constexpr (M == 4 || N == M) {
      return project_transposable(scores, nm());
    } else {
      detail::static_check_scores<D>();
      using S = typename D::Scalar;
      check_divisible(scores.rows(), M, "TransposableTableFamily::project: scores.rows()", "m");
      check_divisible(scores.cols(), M, "TransposableTableFamily::project: scores.cols()", "m");
      Mask out(scores.rows(), scores.cols());
      if (out.size() == 0) return out;
      const Eigen::Ref<const Matrix<S>> s(scores.derived());
      detail::project_transposable_library<S>(s, nm(), out);
      return out;
    }
  }
  /// A uniformly random legal mask.
  static Mask random(Index rows, Index cols, const Philox& rng) {
    return random_transposable(rows, cols, nm(), rng);
  }
  /// Number of legal tiles.
  static long long count() { return TransposablePatterns<M, N>::size(); }
};

/// Transposable N:M by exact max-weight b-matching, for any M <= 32.
template <int M, int N>
struct TransposableExactFamily {
  static_assert(M >= 1 && M <= kMaxGroupSize && N >= 1 && N <= M,
                "TransposableExactFamily: 1 <= N <= M <= 32");
  /// Rows of a tile.
  static constexpr int group_rows = M;
  /// Columns of a tile.
  static constexpr int group_cols = M;
  /// The N:M pattern.
  static constexpr NM nm() { return NM{N, M}; }
  /// True when `tile` (M x M) is legal.
  static bool legal(const Mask& tile) { return detail::tile_legal(tile, M, M, N, true); }
  /// The legal mask with the largest kept score sum (exact b-matching per tile).
  template <class D>
  static Mask project(const Eigen::MatrixBase<D>& scores) {
    detail::static_check_scores<D>();
    using S = typename D::Scalar;
    check_divisible(scores.rows(), M, "TransposableExactFamily::project: scores.rows()", "m");
    check_divisible(scores.cols(), M, "TransposableExactFamily::project: scores.cols()", "m");
    Mask out(scores.rows(), scores.cols());
    if (out.size() == 0) return out;
    const Eigen::Ref<const Matrix<S>> s(scores.derived());
    std::atomic<bool> bad{false};
    if (N == M) {
      bad = !s.allFinite();
      out.setOnes();
    } else {
      detail::project_transposable_exact<S>(s, nm(), out, bad);
    }
    if (bad.load()) detail::raise_nonfinite<S>(s, "TransposableExactFamily::project", false);
    return out;
  }
  /// A uniformly random legal mask.
  static Mask random(Index rows, Index cols, const Philox& rng) {
    return random_transposable(rows, cols, nm(), rng);
  }
  /// Exact count from the column-sum DP for M <= 12 (e.g. 116,963,796,250 for 8:4); -1 beyond.
  static long long count() {
    if (N == M) return 1;
    if (M > detail::TransposableSampler::kMaxM) return -1;
    detail::TransposableSampler dp(M, N);
    return static_cast<long long>(dp.count(std::vector<int>(std::size_t(M), N), M));
  }
};

}  // namespace sparsenm

#endif  // SPARSENM_MASK_FAMILIES_HPP
