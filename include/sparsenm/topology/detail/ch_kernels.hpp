// SPDX-License-Identifier: Apache-2.0
// Kernels behind ch_l3n_scores (topology/ch_scores.hpp). The float-GEMM formulation of CHTs24
// Alg. 1 stage 1 runs four dense GEMMs of a 0/1 matrix; here the binary structure does the work:
//
//  * DD = M Mᵀ and TT = Mᵀ M are common-neighbour counts: rows packed into 64-bit words and
//    multiplied with AND + POPCNT (AVX-512 VPOPCNTDQ, 512 bit-products per instruction triple).
//  * The projections F_D M and F_T Mᵀ multiply a real matrix by a binary one: four-Russians
//    lookups in L1-resident tables (detail/table_product.hpp), 6-bit blocks for any mask and
//    N:M-structured blocks (12 inner indices per lookup for 1:4, 8 for 2:4) where every aligned
//    group of 4 holds at most one / two ones: the column stream of a row-wise mask (also after
//    removal) and both streams of a transposable one.
//
// Everything here is exact integer arithmetic except the table sums and their accumulation, which
// run in a fixed order (inner blocks ascending), identical in the SIMD kernels and the scalar
// reference (namespace detail::scalar), so the two agree bit for bit and the results do not depend
// on the thread count.
#ifndef SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP
#define SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP

#include <algorithm>
#include <cstdint>
#include <utility>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/simd.hpp"
#include "../../core/types.hpp"
#include "../../kernels/detail/simd_vec.hpp"
#include "table_product.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// Which Cannistraci-Hebb L3 rule the topology scores use (CHTs24 App. B; docs/algorithms.md).
///  - Ch2L3n: each intermediate node z of the L3 paths adds (1 + di_z) / (1 + de_z).
///  - Ch3L3n: each intermediate node adds 1 / (1 + de_z).
enum class ChRule { Ch2L3n, Ch3L3n };

namespace detail {

/// Reusable buffers of one score computation (avoids ~6 large allocations per refresh).
template <class S>
struct ChWorkspace {
  BitRows bits_rows;               // rows of M
  BitRows bits_cols;               // rows of Mᵀ
  std::vector<std::int32_t> gram;  // DD or TT, n x n
  // The Gram's rows interleaved by octets (gram_weight_panels), 64-byte aligned.
  std::vector<std::uint64_t, detail::CacheAlignedAllocator<std::uint64_t>> interleaved;
  // 64-byte aligned (Eigen's allocator with AVX-512): panel entries are whole cache lines.
  using Buffer = std::vector<S, detail::CacheAlignedAllocator<S>>;
  Buffer weights;                      // F_D or F_T in row panels (see ch_weight_panels)
  std::vector<std::uint16_t> offsets;  // table-entry offsets of the binary factor (table_offsets)
  Buffer row_stream;                   // F_D M in panels of 16 (float) / 8 (double) rows
  Buffer col_stream;                   // F_T Mᵀ, same panel layout
  std::vector<int> deg_rows, deg_cols;
  // Weight panels and results above this many bytes are written with non-temporal stores
  // (stream_lines; tests lower it to cover that route on small masks).
  double stream_above_bytes = 32.0 * (1 << 20);
  // table_kind's threshold for the Groups2of4 tables (tests lower it to cover them on small masks).
  Index min_columns_2of4 = kMinColumnsGroups2of4;

  /// Frees every buffer and keeps the two settings (the compressed refresh keeps nothing dense
  /// between calls).
  void release() {
    ChWorkspace fresh;
    fresh.stream_above_bytes = stream_above_bytes;
    fresh.min_columns_2of4 = min_columns_2of4;
    *this = std::move(fresh);
  }
};

/// Packs the rows of `mask` (any nonzero byte counts as 1).
inline void pack_rows(const Mask& mask, BitRows& out, bool par = true) {
  const Index R = mask.rows(), C = mask.cols();
  out.resize(R, C);
  const std::uint8_t* m = mask.data();
  parallel_for(
      0, R,
      [&](Index r) {
        const std::uint8_t* src = m + r * C;
        std::uint64_t* dst = out.row(r);
        Index c = 0;
#if SPARSENM_HAS_AVX512
        for (; c + 64 <= C; c += 64) {
          const __m512i v = _mm512_loadu_si512(reinterpret_cast<const void*>(src + c));
          dst[c / 64] = _mm512_test_epi8_mask(v, v);
        }
#endif
        for (; c < C; ++c)
          if (src[c]) dst[c / 64] |= std::uint64_t(1) << (c % 64);
      },
      par ? Index(64) : kNoParallel);
}

/// Transposes a 64 x 64 bit block in place, LSB-first: bit c of a[r] becomes bit r of a[c]. Six
/// rounds swap the off-diagonal j x j sub-blocks of every 2j x 2j block, j = 32, 16, .., 1.
inline void transpose_bits64(std::uint64_t* a) {
  std::uint64_t m = 0x00000000FFFFFFFFull;  // the low j bits of every 2j-bit field
  for (int j = 32; j != 0; j >>= 1, m ^= m << j)
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const std::uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
}

/// The packed rows of Mᵀ from those of M (`rows` from pack_rows), by 64 x 64 bit-block transposes.
inline void pack_cols(const BitRows& rows, BitRows& out, bool par = true) {
  const Index R = rows.rows, C = rows.bits;
  out.resize(C, R);
  parallel_for(
      0, (C + 63) / 64,
      [&](Index cb) {
        std::uint64_t a[64];
        for (Index rb = 0; rb * 64 < R; ++rb) {
          for (Index i = 0; i < 64; ++i) a[i] = rb * 64 + i < R ? rows.row(rb * 64 + i)[cb] : 0;
          transpose_bits64(a);
          for (Index j = 0; j < 64 && cb * 64 + j < C; ++j) out.row(cb * 64 + j)[rb] = a[j];
        }
      },
      par ? Index(2) : kNoParallel);
}

/// Number of ones of each packed row.
inline void row_degrees(const BitRows& b, std::vector<int>& deg) {
  deg.assign(static_cast<std::size_t>(b.rows), 0);
  for (Index r = 0; r < b.rows; ++r) {
    int d = 0;
    const std::uint64_t* p = b.row(r);
    for (Index w = 0; w < b.words; ++w) d += __builtin_popcountll(p[w]);
    deg[static_cast<std::size_t>(r)] = d;
  }
}

namespace scalar {

/// G = B Bᵀ over the packed rows (n x n, row-major), by scalar popcount.
inline void gram(const BitRows& b, std::int32_t* g) {
  const Index n = b.rows;
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) {
      std::int32_t s = 0;
      const std::uint64_t* x = b.row(i);
      const std::uint64_t* y = b.row(j);
      for (Index w = 0; w < b.words; ++w) s += __builtin_popcountll(x[w] & y[w]);
      g[i * n + j] = s;
    }
}

}  // namespace scalar

/// Whether a buffer of `bytes` at `p` is written with non-temporal stores: larger than `above`
/// (the caches: no read for ownership of lines that are only overwritten; a smaller one stays
/// cached for its reader) and 64-byte aligned (whole lines only).
inline bool stream_lines(const void* p, double bytes, double above) {
  return bytes > above && reinterpret_cast<std::uintptr_t>(p) % 64 == 0;
}

/// The CH weight of a pair with g common neighbours whose LAST node has degree `deg`
/// (docs/algorithms.md): (g + 1) / max(deg - g, 1) for Ch2L3n, 1 / max(deg - g, 1) for Ch3L3n, and
/// 0 when g = 0 (no local community).
template <class S>
S ch_weight(std::int32_t g, int deg, ChRule rule) {
  if (g <= 0) return S(0);
  const S num = rule == ChRule::Ch2L3n ? S(g) + S(1) : S(1);
  return num / S(std::max(deg - g, 1));
}

/// F(r, k) = ch_weight(G(r, k), deg[k]) of a symmetric n x n Gram matrix G, written as the row
/// panels table_product reads: F(r, k) at `f[(rb * kp + k) * L + l]`, r = rb * L + l, zero for
/// r >= n or k >= n. Panel rb reads column block rb of G as rows (G is symmetric): G(k, r).
/// The reference (and the route without VPOPCNTDQ) of gram_weight_panels.
template <class S>
void ch_weight_panels(const std::int32_t* g, Index n, const std::vector<int>& deg, ChRule rule,
                      S* f, Index kp, bool par = true) {
  constexpr Index L = tab_lanes<S>();
  parallel_for(
      0, (n + L - 1) / L,
      [&](Index rb) {
        const Index r0 = rb * L, lanes = std::min(L, n - r0);
        S* panel = f + rb * kp * L;
        for (Index k = 0; k < n; ++k) {
          const std::int32_t* gk = g + k * n + r0;
          const int dk = deg[static_cast<std::size_t>(k)];
          for (Index l = 0; l < L; ++l)
            panel[k * L + l] = l < lanes ? ch_weight<S>(gk[l], dk, rule) : S(0);
        }
        std::fill(panel + n * L, panel + kp * L, S(0));
      },
      par ? Index(4) : kNoParallel);
}

}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../topology/detail/ch_kernels_body.inc"
#include "../../core/detail/isa_passes.inc"

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP
