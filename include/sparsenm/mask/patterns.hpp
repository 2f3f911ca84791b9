// SPDX-License-Identifier: Apache-2.0
// The library of legal transposable N:M tiles (CHTs24 Sec. 3.1) and the pattern-family concept.
//
// Pattern families (STYLE.md section 3). A decision about which entries stay active is made on a
// tile: 1 x m for RowWise (any n:m, mask/rowwise.hpp), m x m for Transposable
// (mask/transposable.hpp). Every family answers the same questions:
//   - legal(tile): exactly n active per tile-row (and per tile-column for transposable);
//   - project(scores): the legal tile with the largest score sum (chts24 eq. (2));
//   - count(): the number of legal tiles where it is finite and small.
// RowWise picks the top-n of each group (ties to the lower index). Transposable with m <= 4 scores
// the table below with a meet-in-the-middle search (mask/detail/transposable_table.hpp); any other
// m is solved exactly as a max-weight bipartite b-matching (mask/detail/transposable_exact.hpp).
#ifndef SPARSENM_MASK_PATTERNS_HPP
#define SPARSENM_MASK_PATTERNS_HPP

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/types.hpp"

namespace sparsenm {

namespace detail {

/// Number of set bits (portable; the compiler lowers it to popcnt where available).
SPARSENM_HOST_DEVICE inline int popcount64(std::uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_popcountll(x);
#else
  int c = 0;
  for (; x; x &= x - 1) ++c;
  return c;
#endif
}

/// All m-bit masks with exactly n bits set, ascending.
inline std::vector<std::uint32_t> row_choices(int m, int n) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t b = 0; b < (std::uint32_t(1) << m); ++b)
    if (popcount64(b) == n) out.push_back(b);
  return out;
}

/// Enumerates every m x m 0/1 tile with n ones per row and per column, bit (r*m + c), ascending.
inline std::vector<std::uint64_t> enumerate_transposable(int m, int n) {
  SPARSENM_CHECK(m >= 1 && m <= 8 && n >= 1 && n <= m, "enumerate_transposable: NM{", n, ",", m,
                 "} is not supported (1 <= n <= m <= 8)");
  const std::vector<std::uint32_t> choices = row_choices(m, n);
  std::vector<std::uint64_t> out;
  std::vector<int> colcount(std::size_t(m), 0);
  // Row-by-row backtracking with column capacities n; the last row is forced.
  struct Rec {
    const std::vector<std::uint32_t>& choices;
    std::vector<int>& colcount;
    std::vector<std::uint64_t>& out;
    int m, n;
    void go(int r, std::uint64_t acc) {
      if (r == m) {
        out.push_back(acc);
        return;
      }
      const int rows_left = m - r;  // including this one
      for (std::uint32_t ch : choices) {
        bool ok = true;
        for (int c = 0; c < m && ok; ++c) {
          const int add = (ch >> c) & 1;
          const int cnt = colcount[std::size_t(c)] + add;
          // column must still be able to reach n with the rows after this one
          if (cnt > n || cnt + (rows_left - 1) < n) ok = false;
        }
        if (!ok) continue;
        for (int c = 0; c < m; ++c) colcount[std::size_t(c)] += (ch >> c) & 1;
        go(r + 1, acc | (std::uint64_t(ch) << (r * m)));
        for (int c = 0; c < m; ++c) colcount[std::size_t(c)] -= (ch >> c) & 1;
      }
    }
  } rec{choices, colcount, out, m, n};
  rec.go(0, 0);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace detail

namespace detail {

/// Visits every legal 4x4 transposable tile (n per row and column) in ascending bit order (bit
/// 4r + c): row 3 is the most significant nibble, so nest rows 3..0 over ascending row choices.
template <class F>
constexpr void for_each_transposable4(int n, F&& f) {
  int ch[6] = {};
  int k = 0;
  for (int b = 0; b < 16; ++b)
    if (((b & 1) + ((b >> 1) & 1) + ((b >> 2) & 1) + ((b >> 3) & 1)) == n) ch[k++] = b;
  for (int i3 = 0; i3 < k; ++i3)
    for (int i2 = 0; i2 < k; ++i2)
      for (int i1 = 0; i1 < k; ++i1)
        for (int i0 = 0; i0 < k; ++i0) {
          const int r[4] = {ch[i0], ch[i1], ch[i2], ch[i3]};
          bool ok = true;
          for (int c = 0; c < 4; ++c)
            ok = ok &&
                 ((r[0] >> c) & 1) + ((r[1] >> c) & 1) + ((r[2] >> c) & 1) + ((r[3] >> c) & 1) == n;
          if (ok) f(r[0] | (r[1] << 4) | (r[2] << 8) | (r[3] << 12));
        }
}

/// Number of legal 4x4 transposable tiles with n per row and column (compile time).
constexpr int transposable4_count(int n) {
  int count = 0;
  for_each_transposable4(n, [&](int) { ++count; });
  return count;
}

template <int N>
constexpr std::array<std::uint16_t, std::size_t(transposable4_count(N))>
make_transposable4_table() {
  std::array<std::uint16_t, std::size_t(transposable4_count(N))> t{};
  std::size_t k = 0;
  for_each_transposable4(N, [&](int bits) { t[k++] = std::uint16_t(bits); });
  return t;
}

}  // namespace detail

/// The 4 x 4 libraries as compile-time tables (bit 4r + c, ascending), usable in constant
/// expressions and on the device: kTransposable4<2> holds the 90 atomic topologies of chts24
/// Sec. 3.1, kTransposable4<1> the 24 permutation matrices, kTransposable4<3> their complements.
template <int N>
inline constexpr auto kTransposable4 = detail::make_transposable4_table<N>();
static_assert(kTransposable4<1>.size() == 24, "4x4 transposable 1:4 has 24 patterns");
static_assert(kTransposable4<2>.size() == 90, "4x4 transposable 2:4 has 90 patterns (chts24 3.1)");
static_assert(kTransposable4<3>.size() == 24, "4x4 transposable 3:4 has 24 patterns");

/// All legal M x M transposable N:M tiles (N active per row and per column), as bitmasks with bit
/// (r*M + c) for tile entry (r, c), sorted ascending. Built once on first use (a function-local
/// static: thread-safe). Sizes: <4,1> = 24 (permutation matrices), <4,2> = 90 (CHTs24 Sec. 3.1),
/// <4,3> = 24 (complements of permutations), <5,2> = 2040, <6,3> = 297,200. Limited to M <= 6
/// (the 8:4 library would hold 116,963,796,250 tiles; larger M goes through the exact solver).
template <int M, int N>
struct TransposablePatterns {
  static_assert(M >= 1 && M <= 6,
                "TransposablePatterns<M,N> is limited to M <= 6; use project_transposable (exact "
                "b-matching) for larger M");
  static_assert(N >= 1 && N <= M, "TransposablePatterns<M,N> needs 1 <= N <= M");

  /// Number of legal tiles.
  static int size() { return int(all().size()); }

  /// The tiles, ascending; bit (r*M + c) is entry (r, c).
  static const std::vector<std::uint64_t>& all() {
    static const std::vector<std::uint64_t> table = detail::enumerate_transposable(M, N);
    return table;
  }

  /// Tile `p` as an M x M 0/1 mask.
  static Mask tile(int p) {
    SPARSENM_CHECK(p >= 0 && p < size(), "TransposablePatterns::tile: p = ", p, " must be in [0, ",
                   size(), ")");
    Mask t(M, M);
    const std::uint64_t bits = all()[std::size_t(p)];
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < M; ++c) t(r, c) = std::uint8_t((bits >> (r * M + c)) & 1u);
    return t;
  }
};

namespace detail {

/// Runtime access to TransposablePatterns<m, n>::all() for m <= 6 (one switch, so each table is
/// still built once, lazily and thread-safely).
inline const std::vector<std::uint64_t>& transposable_library(NM nm) {
  switch (nm.m * 8 + nm.n) {
#define SPARSENM_LIB_CASE(M_, N_) \
  case M_ * 8 + N_:               \
    return TransposablePatterns<M_, N_>::all();
    SPARSENM_LIB_CASE(1, 1)
    SPARSENM_LIB_CASE(2, 1)
    SPARSENM_LIB_CASE(2, 2)
    SPARSENM_LIB_CASE(3, 1)
    SPARSENM_LIB_CASE(3, 2)
    SPARSENM_LIB_CASE(3, 3)
    SPARSENM_LIB_CASE(4, 1)
    SPARSENM_LIB_CASE(4, 2)
    SPARSENM_LIB_CASE(4, 3)
    SPARSENM_LIB_CASE(4, 4)
    SPARSENM_LIB_CASE(5, 1)
    SPARSENM_LIB_CASE(5, 2)
    SPARSENM_LIB_CASE(5, 3)
    SPARSENM_LIB_CASE(5, 4)
    SPARSENM_LIB_CASE(5, 5)
    SPARSENM_LIB_CASE(6, 1)
    SPARSENM_LIB_CASE(6, 2)
    SPARSENM_LIB_CASE(6, 3)
    SPARSENM_LIB_CASE(6, 4)
    SPARSENM_LIB_CASE(6, 5)
    SPARSENM_LIB_CASE(6, 6)
#undef SPARSENM_LIB_CASE
    default:
      break;
  }
  raise(concat("transposable_library: ", nm, " has no pattern table (m must be <= 6)"));
}

}  // namespace detail

}  // namespace sparsenm

#endif  // SPARSENM_MASK_PATTERNS_HPP
