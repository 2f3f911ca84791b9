// SPDX-License-Identifier: Apache-2.0
// Four-Russians products out = A B of a real A and a binary B with lookup tables in L1: the two
// projections F_D M and F_T Mᵀ of the CH-L3n scores (topology/detail/ch_kernels.hpp).
//
// The inner dimension is cut into blocks; for 16 output rows (8 for double) and one block, a table
// holds the sums of A's block columns over every pattern the block of a column of B can take, one
// 64-byte entry (one zmm) per pattern. Each output column then adds the entry its pattern selects:
// one load + one add does 16 rows x (block size) multiply-adds of the GEMM. A pass keeps 8 tables
// and reads and writes each column's accumulator once. The loop is bound by the zmm loads (~1.3
// per cycle on the project machine, whatever feeds the addresses: 16-bit offsets, bytes, direct
// loads measured the same), so the lever is the number of inner indices one entry covers:
//
//  * TableKind::Bits6 (any B): blocks of 6 inner indices, 2^6 = 64 entries (32 KiB per pass;
//    10, 12 or 16 tables per pass and 5- or 7-bit blocks measured slower).
//  * TableKind::Groups1of4: every aligned group of 4 inner indices of every column of B holds at
//    most one 1, as each row of a row-wise 1:4 mask does (also after removal, which only clears
//    bits). A group then takes 5 states, so 3 groups = 12 inner indices need 5^3 = 125 entries:
//    twice the indices per load of Bits6. This is the column stream of a row-wise 1:4 mask (the
//    N:M-sparse product the issue asks for) and both streams of a transposable one. The pass's
//    62.5 KiB exceed L1, but a legal 1:4 mask touches only the 4^3 entries without an empty group
//    (8 tables measured 7 % faster than 5 on legal masks, equal after a 10 % removal).
//  * TableKind::Groups2of4: at most two 1s per group (2:4): 11 states, 2 groups = 8 inner indices
//    in 11^2 = 121 entries (6^2 touched by a legal 2:4 mask); taken from 1024 columns on
//    (table_kind), below which building its tables costs more than it saves.
//
// Summation order (fixed, shared by the SIMD kernel and the scalar reference in detail::scalar, so
// the two agree bit for bit and results do not depend on the thread count): a group's value for a
// state is its columns summed from 0 in ascending bit order; an entry is the left fold of its
// groups' values, group 0 first; per column and pass the entries are summed as a pairwise tree
// (tree(0, n) = tree(0, h) + tree(h, n), h the largest power of 2 below n), which is added to the
// column's accumulator, passes ascending.
#ifndef SPARSENM_TOPOLOGY_DETAIL_TABLE_PRODUCT_HPP
#define SPARSENM_TOPOLOGY_DETAIL_TABLE_PRODUCT_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/simd.hpp"
#include "../../core/types.hpp"
#include "../../kernels/detail/simd_vec.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {

/// Rows of a 0/1 matrix packed LSB-first into 64-bit words. `words` is padded to a multiple of 8
/// (one zmm) and `rows_padded` to a multiple of 16 (a Gram tile); padding is zero.
struct BitRows {
  Index rows = 0;
  Index rows_padded = 0;
  Index bits = 0;
  Index words = 0;
  std::vector<std::uint64_t> data;

  const std::uint64_t* row(Index r) const { return data.data() + r * words; }
  std::uint64_t* row(Index r) { return data.data() + r * words; }
  void resize(Index r, Index b) {
    rows = r;
    bits = b;
    rows_padded = (r + 15) / 16 * 16;
    words = ((b + 63) / 64 + 7) / 8 * 8;
    data.assign(static_cast<std::size_t>(rows_padded * words), 0);
  }
};

/// min_parallel value that keeps a parallel_for serial (small problems: a parallel region costs
/// more than the work, and a lot more on a loaded machine).
constexpr Index kNoParallel = Index(1) << 62;

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

/// How a table product cuts its inner dimension into lookups (see the top of this file).
enum class TableKind { Bits6, Groups1of4, Groups2of4 };

/// Geometry of one TableKind: a table covers `groups` groups of `group_bits` inner indices, each
/// group in one of `states` states (the group patterns pattern(0..states-1)), so `entries` =
/// states^groups; a pass keeps `tables` tables in L1 and covers `pass` inner indices.
template <TableKind K>
struct TableGeometry {
  static constexpr int group_bits = K == TableKind::Bits6 ? 3 : 4;
  static constexpr int states = K == TableKind::Bits6 ? 8 : K == TableKind::Groups1of4 ? 5 : 11;
  static constexpr int groups = K == TableKind::Groups1of4 ? 3 : 2;
  static constexpr int tables = 8;
  static constexpr int inner = group_bits * groups;
  static constexpr int entries = states * states * (groups == 3 ? states : 1);
  static constexpr Index pass = Index(inner) * tables;

  /// Bit pattern of a group in state s: all 8 patterns of 3 bits; the patterns of 4 bits with at
  /// most one / two ones.
  static constexpr int pattern(int s) {
    constexpr int two[11] = {0, 1, 2, 4, 8, 3, 5, 6, 9, 10, 12};
    return K == TableKind::Bits6        ? s
           : K == TableKind::Groups1of4 ? (s == 0 ? 0 : 1 << (s - 1))
                                        : two[s];
  }
  /// State of a group pattern p (p a legal pattern of this kind).
  static constexpr int state(int p) {
    for (int s = 0; s < states; ++s)
      if (pattern(s) == p) return s;
    return -1;
  }
};

// A column's pattern in one pass is stored as the byte offsets of its 8 entries in the pass's
// tables, 16 bits each (the largest pass is 8 x 125 entries x 64 bytes = 64000 bytes).
constexpr Index kOffsetSlots = 8;
static_assert(TableGeometry<TableKind::Groups1of4>::tables *
                      TableGeometry<TableKind::Groups1of4>::entries * 64 <=
                  65536,
              "table offsets must fit 16 bits");

/// Output rows per panel: one 64-byte table entry.
template <class S>
constexpr Index tab_lanes() {
  return Index(64 / sizeof(S));
}

/// The default of table_kind's `min_columns_2of4`: a pass builds all 8 x 121 entries of its
/// Groups2of4 tables (62 KiB, past L1: ~1.2 ns an entry against ~0.3 ns for Bits6's 32 KiB), which
/// pays off from about 1000 columns (n = 512: Bits6 8 % faster; 1280: equal; 4096: 2of4 18 %
/// faster). Groups1of4's 96 inner indices per pass pay from about 360 columns (1.4x at 512), and
/// below that the tables are small work anyway: it is always taken.
constexpr Index kMinColumnsGroups2of4 = 1024;

/// The cheapest kind valid for every column of B, given as the packed rows of `cols` (aligned
/// groups of 4 bits: bits 4g .. 4g + 3 of each row): Groups1of4 when no group holds two ones,
/// else Groups2of4 when none holds three and B has at least `min_columns_2of4` columns, else
/// Bits6.
inline TableKind table_kind(const BitRows& cols, Index min_columns_2of4 = kMinColumnsGroups2of4) {
  constexpr std::uint64_t k1 = 0x5555555555555555ull, k2 = 0x3333333333333333ull,
                          k4 = 0x1111111111111111ull;
  std::uint64_t two_or_more = 0, three_or_more = 0;
  const std::uint64_t* w = cols.data.data();
  for (Index i = 0; i < cols.rows * cols.words; ++i) {
    const std::uint64_t pairs = (w[i] & k1) + (w[i] >> 1 & k1);
    const std::uint64_t count = (pairs & k2) + (pairs >> 2 & k2);  // ones per group, 0..4
    two_or_more |= count & 0x6666666666666666ull;                  // count in {2, 3, 4}
    three_or_more |= (count + k4) & 0x4444444444444444ull;         // count + 1 in {4, 5}
  }
  return two_or_more == 0                                      ? TableKind::Groups1of4
         : three_or_more == 0 && cols.rows >= min_columns_2of4 ? TableKind::Groups2of4
                                                               : TableKind::Bits6;
}

/// Table offsets of a binary B (K x n) whose COLUMNS are the packed rows of `cols` (cols.rows = n,
/// cols.bits = K, zero beyond K), for a product of kind Kd over kp inner indices (a multiple of
/// the pass): table t of pass q covers the inner indices pass·q + inner·t .. + inner − 1, where
/// the groups' states s_g of column c select entry e = Σ_g s_g·states^g; stored at
/// `offsets[(q * n + c) * 8 + t]` as its byte offset (entries·t + e)·64 in the pass's tables.
template <TableKind Kd>
void table_offsets(const BitRows& cols, Index kp, std::vector<std::uint16_t>& offsets,
                   bool par = true) {
  using G = TableGeometry<Kd>;
  const Index n = cols.rows, passes = kp / G::pass;
  offsets.resize(static_cast<std::size_t>(passes * n * kOffsetSlots));
  // Byte offset (within table 0) of the entry of every block pattern p (2^inner of them).
  std::vector<std::uint16_t> entry_of(std::size_t(1) << G::inner);
  for (std::size_t p = 0; p < entry_of.size(); ++p) {
    int e = 0;
    for (int g = G::groups - 1; g >= 0; --g)
      e = e * G::states + std::max(0, G::state(static_cast<int>(p >> (g * G::group_bits)) &
                                               ((1 << G::group_bits) - 1)));
    entry_of[p] = static_cast<std::uint16_t>(e * 64);
  }
  constexpr std::uint64_t sel = (std::uint64_t(1) << G::inner) - 1;
  // Blocks of 64 columns, passes outer: each pass's offsets of a block are written contiguously.
  parallel_for(
      0, (n + 63) / 64,
      [&](Index cb) {
        const Index c1 = std::min(n, cb * 64 + 64);
        for (Index q = 0; q < passes; ++q)
          for (Index c = cb * 64; c < c1; ++c) {
            const std::uint64_t* w = cols.row(c);
            std::uint16_t* o = offsets.data() + (q * n + c) * kOffsetSlots;
            for (int t = 0; t < G::tables; ++t) {
              const Index bit = q * G::pass + G::inner * t;
              const Index k = bit / 64;
              const int shift = static_cast<int>(bit % 64);
              std::uint64_t x = k < cols.words ? w[k] >> shift : 0;
              if (shift > 64 - G::inner && k + 1 < cols.words) x |= w[k + 1] << (64 - shift);
              o[t] = static_cast<std::uint16_t>(G::entries * 64 * t + entry_of[x & sel]);
            }
          }
      },
      par ? Index(1) : kNoParallel);
}

namespace scalar {

/// The entries of one table of kind Kd from its G::inner inner columns x[0..] (each `lanes`
/// values), in the order described at the top of the file: the groups' values, then each entry
/// the left fold of its groups' values, group 0 first.
template <TableKind Kd, class S>
void table_entries(const S* x, Index lanes, S* table) {
  using G = TableGeometry<Kd>;
  for (Index lane = 0; lane < lanes; ++lane) {
    S value[G::groups][G::states];
    for (int g = 0; g < G::groups; ++g)
      for (int s = 0; s < G::states; ++s) {
        S a = S(0);
        for (int bit = 0; bit < G::group_bits; ++bit)
          if (G::pattern(s) >> bit & 1) a = a + x[(g * G::group_bits + bit) * lanes + lane];
        value[g][s] = a;
      }
    for (int e = 0; e < G::entries; ++e) {
      int r = e;
      S v = value[0][r % G::states];
      for (int g = 1; g < G::groups; ++g) {
        r /= G::states;
        v = v + value[g][r % G::states];
      }
      table[e * lanes + lane] = v;
    }
  }
}

/// Pairwise sum of e[B .. E) (the tree of the file comment).
template <class S>
S tree_sum(const S* e, int b, int end) {
  if (end - b == 1) return e[b];
  int h = 1;
  while (2 * h < end - b) h *= 2;
  return tree_sum(e, b, b + h) + tree_sum(e, b + h, end);
}

/// out = a B for a real a (rows x K) given in row panels and a binary B (K x n) given by its
/// table offsets (table_offsets<Kd>): panel layout of a: a(r, k) at `panels[(rb * kp + k) * L +
/// l]` with r = rb * L + l, L = tab_lanes<S>(), kp a multiple of the pass, zero beyond rows / K;
/// output in the same layout with n columns: out(r, c) at `out[(rb * n + c) * L + l]`.
template <TableKind Kd, class S>
void table_product(const S* panels, Index rows, Index kp, const std::uint16_t* offsets, Index n,
                   S* out) {
  using G = TableGeometry<Kd>;
  constexpr Index L = tab_lanes<S>();
  const Index passes = kp / G::pass;
  std::vector<S> table(static_cast<std::size_t>(G::tables * G::entries * L));
  for (Index rb = 0; rb < (rows + L - 1) / L; ++rb) {
    S* o = out + rb * n * L;
    for (Index q = 0; q < passes; ++q) {
      for (int t = 0; t < G::tables; ++t)
        table_entries<Kd>(panels + (rb * kp + q * G::pass + G::inner * t) * L, L,
                          table.data() + t * G::entries * L);
      const std::uint16_t* off = offsets + q * n * kOffsetSlots;
      for (Index c = 0; c < n; ++c)
        for (Index l = 0; l < L; ++l) {
          S e[G::tables];
          for (int t = 0; t < G::tables; ++t)
            e[t] = table[static_cast<std::size_t>(off[c * kOffsetSlots + t] / 64 * L + l)];
          const S s = tree_sum(e, 0, G::tables);
          o[c * L + l] = q == 0 ? s : o[c * L + l] + s;
        }
    }
  }
}

}  // namespace scalar

}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../topology/detail/table_product_body.inc"
#include "../../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_TOPOLOGY_DETAIL_TABLE_PRODUCT_HPP
