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
  std::vector<std::uint64_t, Eigen::aligned_allocator<std::uint64_t>> interleaved;
  // 64-byte aligned (Eigen's allocator with AVX-512): panel entries are whole cache lines.
  using Buffer = std::vector<S, Eigen::aligned_allocator<S>>;
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

inline namespace SPARSENM_ISA_NAMESPACE {

#if SPARSENM_HAS_AVX512
/// One 64-byte line: a non-temporal store (`stream`, see stream_lines) or a plain one.
SPARSENM_ALWAYS_INLINE void store_line(float* at, __m512 v, bool stream) {
  if (stream)
    _mm512_stream_ps(at, v);
  else
    _mm512_storeu_ps(at, v);
}
SPARSENM_ALWAYS_INLINE void store_line(double* at, __m512d v, bool stream) {
  if (stream)
    _mm512_stream_pd(at, v);
  else
    _mm512_storeu_pd(at, v);
}
#endif

#if SPARSENM_HAS_AVX512 && SPARSENM_HAS_AVX512_VPOPCNTDQ
/// F(r0 + l, k) = ch_weight(g16[l], deg_k) for the 16 rows r0 .. r0 + 15 (r0 a multiple of 16),
/// into the row panels: ch_weight vectorised (exact int -> float / double, one division).
/// `stream`: non-temporal stores (whole aligned 64-byte lines), see gram_weight_panels.
template <class S>
SPARSENM_ALWAYS_INLINE void weights16(const std::int32_t* g16, Index r0, Index k, int deg_k,
                                      ChRule rule, S* f, Index kp, bool stream) {
  constexpr Index L = tab_lanes<S>();
  const __m512i d = _mm512_loadu_si512(g16);
  const __m512i den =
      _mm512_max_epi32(_mm512_sub_epi32(_mm512_set1_epi32(deg_k), d), _mm512_set1_epi32(1));
  const __mmask16 pos = _mm512_cmpgt_epi32_mask(d, _mm512_setzero_si512());
  const bool ch2 = rule == ChRule::Ch2L3n;
  if constexpr (std::is_same<S, float>::value) {
    const __m512 num =
        ch2 ? _mm512_add_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(1.0f)) : _mm512_set1_ps(1.0f);
    store_line(f + ((r0 / L) * kp + k) * L, _mm512_maskz_div_ps(pos, num, _mm512_cvtepi32_ps(den)),
               stream);
  } else {
    for (int h = 0; h < 2; ++h) {
      const __m256i dh = h == 0 ? _mm512_castsi512_si256(d) : _mm512_extracti64x4_epi64(d, 1);
      const __m256i eh = h == 0 ? _mm512_castsi512_si256(den) : _mm512_extracti64x4_epi64(den, 1);
      const __m512d num =
          ch2 ? _mm512_add_pd(_mm512_cvtepi32_pd(dh), _mm512_set1_pd(1.0)) : _mm512_set1_pd(1.0);
      store_line(
          f + (((r0 + 8 * h) / L) * kp + k) * L,
          _mm512_maskz_div_pd(static_cast<__mmask8>(pos >> (8 * h)), num, _mm512_cvtepi32_pd(eh)),
          stream);
    }
  }
}

/// ch_weight_panels of G = B Bᵀ without forming G: 16 x 16 tiles of G by AND + VPOPCNTQ (tiles
/// on and above the diagonal only, G being symmetric), each turned into weights at once and
/// written as rows of the panels of its column block and, transposed, of its row block; the
/// panel rows a tile writes belong to no other tile, and whole 64-byte lines are written.
/// `interleaved` is scratch (B's rows interleaved by octets, see below); panels above
/// `stream_above_bytes` are written with non-temporal stores.
template <class S>
void gram_weight_panels(
    const BitRows& b, const std::vector<int>& deg, ChRule rule, S* f, Index kp, bool par,
    double stream_above_bytes,
    std::vector<std::uint64_t, Eigen::aligned_allocator<std::uint64_t>>& interleaved) {
  constexpr Index L = tab_lanes<S>();
  const Index n = b.rows, W = b.words, nt = (n + 15) / 16;
  // Non-temporal stores for panels larger than the caches: 4096²: 27 -> 24.5 ms per Gram; measured
  // 12 % slower at 1280 x 512, whose panels the table product then reads from cache.
  const bool stream =
      stream_lines(f, double((n + L - 1) / L) * double(kp * L) * sizeof(S), stream_above_bytes);
  auto emit = [&](const std::int32_t* g16, Index r0, Index lanes, Index k) {
    const int dk = deg[static_cast<std::size_t>(k)];
    if (lanes == 16) {
      weights16(g16, r0, k, dk, rule, f, kp, stream);
      return;
    }
    for (Index l = 0; l < lanes; ++l) {
      const Index r = r0 + l;
      f[((r / L) * kp + k) * L + r % L] = ch_weight<S>(g16[l], dk, rule);
    }
  };
  // The j side of the tiles reads B interleaved by octets of rows: word w of rows 8o .. 8o + 7 is
  // one zmm at yi[(o * W + w) * 8], so that AND with a broadcast word of row i + VPOPCNTQ + ADD
  // accumulate G(i, 8o .. 8o + 7) in the lanes directly (3 operations per 512 bit-products, no
  // horizontal sums).
  interleaved.resize(static_cast<std::size_t>(b.rows_padded * W));
  std::uint64_t* yi = interleaved.data();
  parallel_for(
      0, b.rows_padded / 8,
      [&](Index o) {
        for (Index w = 0; w < W; ++w)
          for (Index q = 0; q < 8; ++q) yi[(o * W + w) * 8 + q] = b.row(8 * o + q)[w];
      },
      par ? Index(64) : kNoParallel);
  auto tile = [&](Index ib, Index jb) {
    alignas(64) std::int32_t t[16][16];
    const Index i0 = 16 * ib, j0 = 16 * jb;
    const std::uint64_t* y0 = yi + (2 * jb) * W * 8;
    const std::uint64_t* y1 = yi + (2 * jb + 1) * W * 8;
    for (Index ih = 0; ih < 16; ih += 8) {
      // rows up to rows_padded (a multiple of 16) exist and are zero beyond n.
      const std::uint64_t* x = b.row(i0 + ih);
      __m512i acc0[8], acc1[8];
      for (int q = 0; q < 8; ++q) acc0[q] = acc1[q] = _mm512_setzero_si512();
      for (Index w = 0; w < W; ++w) {
        const __m512i a0 = _mm512_load_si512(y0 + w * 8);
        const __m512i a1 = _mm512_load_si512(y1 + w * 8);
        for (int q = 0; q < 8; ++q) {
          const __m512i xq = _mm512_set1_epi64(static_cast<long long>(x[q * W + w]));
          acc0[q] = _mm512_add_epi64(acc0[q], _mm512_popcnt_epi64(_mm512_and_si512(xq, a0)));
          acc1[q] = _mm512_add_epi64(acc1[q], _mm512_popcnt_epi64(_mm512_and_si512(xq, a1)));
        }
      }
      for (int q = 0; q < 8; ++q) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(t[ih + q]), _mm512_cvtepi64_epi32(acc0[q]));
        _mm256_store_si256(reinterpret_cast<__m256i*>(t[ih + q] + 8),
                           _mm512_cvtepi64_epi32(acc1[q]));
      }
    }
    const Index ni = std::min<Index>(16, n - i0), nj = std::min<Index>(16, n - j0);
    // t[ii][jj] = G(i0 + ii, j0 + jj): row ii gives F(j0 + jj, k = i0 + ii) across the lanes jj.
    for (Index ii = 0; ii < ni; ++ii) emit(t[ii], j0, nj, i0 + ii);
    if (ib == jb) return;                // a diagonal tile is symmetric: done
    alignas(64) std::int32_t u[16][16];  // the transposed tile (the int bits moved as floats)
    VecOps<float>::transpose_block(reinterpret_cast<const float*>(&t[0][0]), 16,
                                   reinterpret_cast<float*>(&u[0][0]), 16);
    for (Index jj = 0; jj < nj; ++jj) emit(u[jj], i0, ni, j0 + jj);
  };
  // Row of tiles ib has nt - ib tiles; folding ib with nt - 1 - ib gives every item nt + 1.
  parallel_for(
      0, (nt + 1) / 2,
      [&](Index item) {
        for (int side = 0; side < 2; ++side) {
          const Index ib = side == 0 ? item : nt - 1 - item;
          if (side == 1 && ib == item) break;
          for (Index jb = ib; jb < nt; ++jb) tile(ib, jb);
        }
        if (stream) _mm_sfence();  // non-temporal stores visible before the table product
      },
      par ? Index(1) : kNoParallel);
  // Padding: inner rows k >= n of every panel, and the lanes r >= n of a partial last panel.
  const Index panels = (n + L - 1) / L;
  for (Index rb = 0; rb < panels; ++rb) {
    S* panel = f + rb * kp * L;
    std::fill(panel + n * L, panel + kp * L, S(0));
    if (rb * L + L > n)
      for (Index k = 0; k < n; ++k)
        std::fill(panel + k * L + (n - rb * L), panel + k * L + L, S(0));
  }
}
#endif

#if SPARSENM_HAS_AVX512
/// One full 16 x 16 tile of the final scores (float): rows r0.., columns c0..; `srow` points at
/// the row-stream panel entry (c0, lanes r0..), `x` at the column-stream entry (r0, lanes c0..),
/// both with 16 floats per step. The same single add and masking as the scalar loop.
SPARSENM_ALWAYS_INLINE void combine_tile16(const float* srow, const float* x, const std::uint8_t* m,
                                           Index ld, float* out, bool stream) {
  alignas(64) float tile[16 * 16];
  VecOps<float>::transpose_block(srow, 16, tile, 16);  // row i of the tile = score row r0 + i
  for (int i = 0; i < 16; ++i) {
    const __m128i mb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(m + i * ld));
    const __mmask16 active = _mm_test_epi8_mask(mb, mb);
    store_line(out + i * ld,
               _mm512_maskz_add_ps(static_cast<__mmask16>(~active), _mm512_load_ps(tile + 16 * i),
                                   _mm512_loadu_ps(x + 16 * i)),
               stream);
  }
}
#endif

}  // namespace SPARSENM_ISA_NAMESPACE

/// One stream of the scores, a (rows x n) = F B with F = ch_weight of the Gram of `gram_rows`
/// (rows x rows) and B the binary factor whose columns are the packed rows of `b_cols`; the result
/// lands in `stream` in row panels (table_product's layout).
template <TableKind Kd, class S>
void ch_stream_with(const BitRows& gram_rows, const std::vector<int>& deg, const BitRows& b_cols,
                    ChRule rule, ChWorkspace<S>& ws, typename ChWorkspace<S>::Buffer& stream,
                    bool use_scalar, bool par) {
  constexpr Index L = tab_lanes<S>();
  const Index rows = gram_rows.rows, n = b_cols.rows;
  const Index kp = round_up(rows, TableGeometry<Kd>::pass), panels = (rows + L - 1) / L;
  ws.weights.resize(static_cast<std::size_t>(panels * kp * L));
#if SPARSENM_HAS_AVX512 && SPARSENM_HAS_AVX512_VPOPCNTDQ
  if (!use_scalar) {
    gram_weight_panels(gram_rows, deg, rule, ws.weights.data(), kp, par, ws.stream_above_bytes,
                       ws.interleaved);
  } else
#endif
  {
    ws.gram.resize(static_cast<std::size_t>(rows * rows));
    scalar::gram(gram_rows, ws.gram.data());
    ch_weight_panels(ws.gram.data(), rows, deg, rule, ws.weights.data(), kp, par);
  }
  table_offsets<Kd>(b_cols, kp, ws.offsets, par);
  stream.resize(static_cast<std::size_t>(panels * n * L));
  if (use_scalar)
    scalar::table_product<Kd>(ws.weights.data(), rows, kp, ws.offsets.data(), n, stream.data());
  else
    table_product<Kd>(ws.weights.data(), rows, kp, ws.offsets.data(), n, stream.data(), par);
}

/// One stream of the scores, a (rows x n) = F B with F = ch_weight of the Gram of `gram_rows`
/// (rows x rows) and B the binary factor whose columns are the packed rows of `b_cols`; the result
/// lands in `stream` in row panels (table_product's layout). The table kind is the cheapest one
/// B's group structure allows (table_kind).
template <class S>
void ch_stream(const BitRows& gram_rows, const std::vector<int>& deg, const BitRows& b_cols,
               ChRule rule, ChWorkspace<S>& ws, typename ChWorkspace<S>::Buffer& stream,
               bool use_scalar, bool par) {
  switch (table_kind(b_cols, ws.min_columns_2of4)) {
    case TableKind::Groups1of4:
      return ch_stream_with<TableKind::Groups1of4>(gram_rows, deg, b_cols, rule, ws, stream,
                                                   use_scalar, par);
    case TableKind::Groups2of4:
      return ch_stream_with<TableKind::Groups2of4>(gram_rows, deg, b_cols, rule, ws, stream,
                                                   use_scalar, par);
    case TableKind::Bits6:
      break;
  }
  ch_stream_with<TableKind::Bits6>(gram_rows, deg, b_cols, rule, ws, stream, use_scalar, par);
}

/// Full fast CH-L3n computation (rows = outputs R, cols = inputs C):
///   S = (F_D M + (F_T Mᵀ)ᵀ) ⊙ (1 − M), written to `out` (R x C, row-major, ld = C).
/// `use_scalar` selects the scalar reference kernels (tests compare the two bit for bit).
template <class S>
void ch_l3n_fast(const Mask& mask, ChRule rule, ChWorkspace<S>& ws, S* out, bool use_scalar) {
  const Index R = mask.rows(), C = mask.cols();
  if (R == 0 || C == 0) return;
  // Parallel only when the work (about R·C·(R + C) / 96 lookups) amortises the regions.
  const bool par = double(R) * double(C) * double(R + C) >= 2e7;
  pack_rows(mask, ws.bits_rows, par);
  pack_cols(ws.bits_rows, ws.bits_cols, par);
  row_degrees(ws.bits_rows, ws.deg_rows);
  row_degrees(ws.bits_cols, ws.deg_cols);
  // Row stream F_D M (R x C): F_D from DD = M Mᵀ, B = M, whose columns are the rows of Mᵀ.
  ch_stream(ws.bits_rows, ws.deg_rows, ws.bits_cols, rule, ws, ws.row_stream, use_scalar, par);
  // Column stream X = F_T Mᵀ (C x R): F_T from TT = Mᵀ M, B = Mᵀ, whose columns are M's rows.
  ch_stream(ws.bits_cols, ws.deg_cols, ws.bits_rows, rule, ws, ws.col_stream, use_scalar, par);

  // S(r, c) = (F_D M)(r, c) + X(c, r), 0 on active entries. Row-stream panels hold L rows r per
  // column, column-stream panels L columns c per row; an L x L tile transposes the former.
  constexpr Index L = tab_lanes<S>();
  const std::uint8_t* m = mask.data();
  const S* srow = ws.row_stream.data();
  const S* x = ws.col_stream.data();
  // A result larger than the caches is written with non-temporal stores by the AVX-512 tiles
  // (whole lines: C a multiple of L, so that every row starts a line).
  [[maybe_unused]] const bool stream =
      C % L == 0 && stream_lines(out, double(R) * double(C) * sizeof(S), ws.stream_above_bytes);
  parallel_for(
      0, (R + L - 1) / L,
      [&](Index rb) {
        S tile[L][L];
        const Index r0 = rb * L, r1 = std::min(R, r0 + L);
        for (Index cb = 0; cb * L < C; ++cb) {
          const Index c0 = cb * L, c1 = std::min(C, c0 + L);
#if SPARSENM_HAS_AVX512
          if constexpr (std::is_same<S, float>::value) {
            if (!use_scalar && r1 - r0 == L && c1 - c0 == L) {
              combine_tile16(srow + (rb * C + c0) * L, x + (cb * R + r0) * L, m + r0 * C + c0, C,
                             out + r0 * C + c0, stream);
              continue;
            }
          }
#endif
          for (Index c = c0; c < c1; ++c)
            for (Index l = 0; l < L; ++l) tile[l][c - c0] = srow[(rb * C + c) * L + l];
          for (Index r = r0; r < r1; ++r) {
            const S* a = tile[r - r0];
            const S* t = x + (cb * R + r) * L;
            const std::uint8_t* mr = m + r * C;
            S* o = out + r * C;
            for (Index c = c0; c < c1; ++c) o[c] = mr[c] ? S(0) : a[c - c0] + t[c - c0];
          }
        }
#if SPARSENM_HAS_AVX512
        if (stream) _mm_sfence();  // the non-temporal stores are visible when this returns
#endif
      },
      par ? Index(1) : kNoParallel);
}

}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP
