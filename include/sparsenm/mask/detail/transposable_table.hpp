// SPDX-License-Identifier: Apache-2.0
// Exact 4 x 4 transposable N:M selection (n = 1, 2, 3) without scoring every tile against every
// pattern (chts24 Sec. 3.2.4 / App. E score all 90 patterns per tile).
//
// Meet in the middle. A legal tile is a choice of one n-subset per row ("row choice") such that
// every column ends with n ones. Split the tile into rows {0, 1} and rows {2, 3}: a top half with
// column counts v can be completed exactly by a bottom half with column counts n - v. So
//   best(tile) = max_v [ max_{top half with counts v} (rs0 + rs1)
//                      + max_{bottom half with counts n - v} (rs2 + rs3) ],
// where rs_r[ch] is the score sum of row r's choice ch (computed once per row and reused by every
// pattern). For 2:4 that is 24 row sums, 2 x 36 half sums and 19 merges instead of 90 x 16
// multiply-adds; it is exact because every legal tile is exactly one (top, bottom) pair.
//
// The same generic code runs on scalars (the reference, any S) and on AVX-512 / AVX2 vectors of 16
// / 8 tiles (float), with identical summation order and tie rule, so the SIMD result equals the
// scalar reference bit for bit. Tie rule: in plan order (keys in order of first appearance over
// (choice0, choice1) pairs ascending, combos within a key ascending), the first maximum wins
// (strict > comparisons).
#ifndef SPARSENM_MASK_DETAIL_TRANSPOSABLE_TABLE_HPP
#define SPARSENM_MASK_DETAIL_TRANSPOSABLE_TABLE_HPP

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../../core/simd.hpp"
#include "../../core/types.hpp"

SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {

/// Compile-time plan of the meet-in-the-middle search for 4 x 4 tiles with n per row/column.
struct Tile4Plan {
  int nchoices = 0;
  int choice[6] = {};  // row choices: 4-bit masks with n bits, ascending
  int nkeys = 0;
  int top_begin[20] = {}, top_end[20] = {}, bot_begin[20] = {}, bot_end[20] = {};
  int ntop = 0, nbot = 0;
  int top_a[36] = {}, top_b[36] = {};  // choice indices for rows 0 and 1
  int bot_a[36] = {}, bot_b[36] = {};  // choice indices for rows 2 and 3
};

constexpr int tile4_popcount(int x) {
  return (x & 1) + ((x >> 1) & 1) + ((x >> 2) & 1) + ((x >> 3) & 1);
}

/// Column-count key of two row choices: base-3 digits (counts 0..2 per column).
constexpr int tile4_key(int a, int b) {
  int key = 0, p = 1;
  for (int c = 0; c < 4; ++c) {
    key += (((a >> c) & 1) + ((b >> c) & 1)) * p;
    p *= 3;
  }
  return key;
}

constexpr Tile4Plan make_tile4_plan(int n) {
  Tile4Plan p{};
  for (int b = 0; b < 16; ++b)
    if (tile4_popcount(b) == n) p.choice[p.nchoices++] = b;
  int keys[20] = {};
  for (int a = 0; a < p.nchoices; ++a)
    for (int b = 0; b < p.nchoices; ++b) {
      const int k = tile4_key(p.choice[a], p.choice[b]);
      // The bottom half must supply n - count per column, which needs 0 <= n - count <= 2.
      bool feasible = true;
      for (int c = 0, q = k; c < 4; ++c, q /= 3)
        if (n - q % 3 < 0 || n - q % 3 > 2) feasible = false;
      if (!feasible) continue;
      bool seen = false;
      for (int i = 0; i < p.nkeys; ++i) seen = seen || keys[i] == k;
      if (!seen) keys[p.nkeys++] = k;
    }
  for (int i = 0; i < p.nkeys; ++i) {
    int want = 0;  // complement key: n - count per column
    for (int c = 0, q = keys[i], pw = 1; c < 4; ++c, q /= 3, pw *= 3) want += (n - q % 3) * pw;
    p.top_begin[i] = p.ntop;
    for (int a = 0; a < p.nchoices; ++a)
      for (int b = 0; b < p.nchoices; ++b)
        if (tile4_key(p.choice[a], p.choice[b]) == keys[i]) {
          p.top_a[p.ntop] = a;
          p.top_b[p.ntop] = b;
          ++p.ntop;
        }
    p.top_end[i] = p.ntop;
    p.bot_begin[i] = p.nbot;
    for (int a = 0; a < p.nchoices; ++a)
      for (int b = 0; b < p.nchoices; ++b)
        if (tile4_key(p.choice[a], p.choice[b]) == want) {
          p.bot_a[p.nbot] = a;
          p.bot_b[p.nbot] = b;
          ++p.nbot;
        }
    p.bot_end[i] = p.nbot;
  }
  return p;
}

template <int N>
struct Tile4PlanFor {
  static constexpr Tile4Plan value = make_tile4_plan(N);
};

/// Scalar lane operations (the reference): one tile per "vector".
template <class S>
struct ScalarTileOps {
  using Vec = S;
  using IVec = std::uint32_t;
  using Bool = bool;
  static Vec add(Vec a, Vec b) { return a + b; }
  static Bool gt(Vec a, Vec b) { return a > b; }
  static Vec select(Bool m, Vec a, Vec b) { return m ? a : b; }
  static IVec iselect(Bool m, IVec a, IVec b) { return m ? a : b; }
  static IVec iset(std::uint32_t v) { return v; }
  static IVec ior(IVec a, IVec b) { return a | b; }
};

/// Half-tile reduction over combos [T, End) of one key, fully unrolled at compile time (so the row
/// sums stay in registers): Top = rows {0, 1}, else rows {2, 3}.
template <int N, class Ops, bool Top, int T, int End>
SPARSENM_ALWAYS_INLINE void tile4_half_step(const typename Ops::Vec (&rs)[4][6],
                                            typename Ops::Vec& best, typename Ops::IVec& pat) {
  if constexpr (T < End) {
    constexpr const Tile4Plan& P = Tile4PlanFor<N>::value;
    constexpr int a = Top ? P.top_a[T] : P.bot_a[T];
    constexpr int b = Top ? P.top_b[T] : P.bot_b[T];
    constexpr int r0 = Top ? 0 : 2;
    constexpr std::uint32_t bits = std::uint32_t(P.choice[a] | (P.choice[b] << 4)) << (Top ? 0 : 8);
    const typename Ops::Vec v = Ops::add(rs[r0][a], rs[r0 + 1][b]);
    const auto m = Ops::gt(v, best);
    best = Ops::select(m, v, best);
    pat = Ops::iselect(m, Ops::iset(bits), pat);
    tile4_half_step<N, Ops, Top, T + 1, End>(rs, best, pat);
  }
}

template <int N, class Ops, bool Top, int T>
SPARSENM_ALWAYS_INLINE void tile4_half_first(const typename Ops::Vec (&rs)[4][6],
                                             typename Ops::Vec& best, typename Ops::IVec& pat) {
  constexpr const Tile4Plan& P = Tile4PlanFor<N>::value;
  constexpr int a = Top ? P.top_a[T] : P.bot_a[T];
  constexpr int b = Top ? P.top_b[T] : P.bot_b[T];
  constexpr int r0 = Top ? 0 : 2;
  constexpr std::uint32_t bits = std::uint32_t(P.choice[a] | (P.choice[b] << 4)) << (Top ? 0 : 8);
  best = Ops::add(rs[r0][a], rs[r0 + 1][b]);
  pat = Ops::iset(bits);
}

/// Keys [K, nkeys): best top half + best complementary bottom half, merged into (best, best_pat).
template <int N, class Ops, int K>
SPARSENM_ALWAYS_INLINE void tile4_keys(const typename Ops::Vec (&rs)[4][6], typename Ops::Vec& best,
                                       typename Ops::IVec& best_pat) {
  constexpr const Tile4Plan& P = Tile4PlanFor<N>::value;
  if constexpr (K < P.nkeys) {
    typename Ops::Vec bt, bb;
    typename Ops::IVec tp, bp;
    tile4_half_first<N, Ops, true, P.top_begin[K]>(rs, bt, tp);
    tile4_half_step<N, Ops, true, P.top_begin[K] + 1, P.top_end[K]>(rs, bt, tp);
    tile4_half_first<N, Ops, false, P.bot_begin[K]>(rs, bb, bp);
    tile4_half_step<N, Ops, false, P.bot_begin[K] + 1, P.bot_end[K]>(rs, bb, bp);
    const typename Ops::Vec tot = Ops::add(bt, bb);
    const typename Ops::IVec pat = Ops::ior(tp, bp);
    if constexpr (K == 0) {
      best = tot;
      best_pat = pat;
    } else {
      const auto m = Ops::gt(tot, best);
      best = Ops::select(m, tot, best);
      best_pat = Ops::iselect(m, pat, best_pat);
    }
    tile4_keys<N, Ops, K + 1>(rs, best, best_pat);
  }
}

/// Score sum of row choice ch (columns ascending, left to right). Vectors travel through
/// references, never by value: these helpers are instantiated from bodies compiled under
/// `#pragma GCC target` (runtime dispatch), and a vector return of a plain template would trip
/// GCC's -Wpsabi note.
template <int N, class Ops, int Ch>
SPARSENM_ALWAYS_INLINE void tile4_row_sum(const typename Ops::Vec (&xr)[4],
                                          typename Ops::Vec& out) {
  constexpr int bits = Tile4PlanFor<N>::value.choice[Ch];
  constexpr int c0 = (bits & 1) ? 0 : (bits & 2) ? 1 : (bits & 4) ? 2 : 3;
  if constexpr (N == 1) {
    out = xr[c0];
  } else {
    constexpr int rest = bits & ~(1 << c0);
    constexpr int c1 = (rest & 2) ? 1 : (rest & 4) ? 2 : 3;
    if constexpr (N == 2) {
      out = Ops::add(xr[c0], xr[c1]);
    } else {
      constexpr int c2 = ((rest & ~(1 << c1)) & 4) ? 2 : 3;
      out = Ops::add(Ops::add(xr[c0], xr[c1]), xr[c2]);
    }
  }
}

template <int N, class Ops, std::size_t... Ch>
SPARSENM_ALWAYS_INLINE void tile4_row_sums(const typename Ops::Vec (&xr)[4], typename Ops::Vec* rs,
                                           std::index_sequence<Ch...>) {
  (tile4_row_sum<N, Ops, int(Ch)>(xr, rs[Ch]), ...);
}

/// The meet-in-the-middle search on one "vector" of tiles; x[r][c] holds entry (r, c) of every
/// tile in the vector. Sets best_pat to the 16-bit pattern (bit 4r + c) of each tile.
template <int N, class Ops>
SPARSENM_ALWAYS_INLINE void tile4_search(const typename Ops::Vec (&x)[4][4],
                                         typename Ops::IVec& best_pat) {
  constexpr int kChoices = Tile4PlanFor<N>::value.nchoices;
  typename Ops::Vec rs[4][6];
  for (int r = 0; r < 4; ++r)
    tile4_row_sums<N, Ops>(x[r], rs[r], std::make_index_sequence<std::size_t(kChoices)>{});
  typename Ops::Vec best{};
  best_pat = typename Ops::IVec{};
  tile4_keys<N, Ops, 0>(rs, best, best_pat);
}

/// Writes a 16-bit tile pattern into the mask at (row pointer, stride).
inline void write_tile4(std::uint32_t pat, std::uint8_t* out, Index stride) {
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) out[r * stride + c] = std::uint8_t((pat >> (4 * r + c)) & 1u);
}

namespace scalar {

/// Reference: one tile-row band of 4 rows, tiles [t0, t1) (tile t covers columns 4t..4t+3).
/// Returns true if a non-finite score was seen.
template <int N, class S>
inline bool transposable4_band(const S* s, Index stride, Index t0, Index t1, std::uint8_t* out,
                               Index out_stride) {
  bool bad = false;
  for (Index t = t0; t < t1; ++t) {
    S x[4][4];
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) {
        x[r][c] = s[r * stride + 4 * t + c];
        bad |= !std::isfinite(x[r][c]);
      }
    typename ScalarTileOps<S>::IVec pat;
    tile4_search<N, ScalarTileOps<S>>(x, pat);
    write_tile4(pat, out + 4 * t, out_stride);
  }
  return bad;
}

}  // namespace scalar

// GCC 12 false positive in AVX-512 intrinsics (core/simd.hpp).
}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../mask/detail/transposable_table_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_MASK_DETAIL_TRANSPOSABLE_TABLE_HPP
