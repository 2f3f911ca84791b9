// SPDX-License-Identifier: Apache-2.0
// Kernels behind ch_l3n_scores (topology/ch_scores.hpp). The float-GEMM formulation of CHTs24
// Alg. 1 stage 1 runs four dense GEMMs of a 0/1 matrix; here the binary structure does the work:
//
//  * DD = M Mᵀ and TT = Mᵀ M are common-neighbour counts: rows packed into 64-bit words and
//    multiplied with AND + POPCNT (AVX-512 VPOPCNTDQ, 512 bit-products per instruction triple).
//  * The projections F_D M and F_T Mᵀ multiply a real matrix by a binary one. They use the
//    "four Russians" idea: the inner dimension is cut into blocks of 5, and for each output row
//    and block the 32 possible subset sums of the 5 reals form a table that sits in two zmm
//    registers; one VPERMT2PS then looks up 16 outputs (16 columns x 5 inner indices = 80
//    multiply-adds of the GEMM) at once. The pattern of each binary 5-block is precomputed.
//
// Everything here is exact integer arithmetic except the table sums and their accumulation, which
// run in a fixed order (inner blocks ascending), identical in the SIMD kernels and the scalar
// reference (namespace detail::scalar), so the two agree bit for bit and the results do not depend
// on the thread count.
#ifndef SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP
#define SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/simd.hpp"
#include "../../core/types.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// Which Cannistraci-Hebb L3 rule the topology scores use (CHTs24 App. B; ALGORITHMS.md).
///  - Ch2L3n: each intermediate node z of the L3 paths adds (1 + di_z) / (1 + de_z).
///  - Ch3L3n: each intermediate node adds 1 / (1 + de_z).
enum class ChRule { Ch2L3n, Ch3L3n };

namespace detail {

/// Rows of a 0/1 matrix packed LSB-first into 64-bit words. `words` is padded to a multiple of 8
/// (one zmm) and `rows_padded` to a multiple of 8; padding is zero.
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
    rows_padded = (r + 7) / 8 * 8;
    words = ((b + 63) / 64 + 7) / 8 * 8;
    data.assign(static_cast<std::size_t>(rows_padded * words), 0);
  }
};

/// Reusable buffers of one score computation (avoids ~6 large allocations per refresh).
template <class S>
struct ChWorkspace {
  BitRows bits_rows;                   // rows of M
  BitRows bits_cols;                   // rows of Mᵀ
  std::vector<std::int32_t> gram;      // DD or TT, n x n
  std::vector<S> weights;              // F_D or F_T, n x ld (ld padded to a multiple of 20)
  std::vector<std::uint32_t> pattern;  // 5-bit patterns of the binary factor, 4 per word
  std::vector<S> row_stream;           // F_D M, R x ldc
  std::vector<S> col_stream;           // F_T Mᵀ, C x ldr
  std::vector<int> deg_rows, deg_cols;
};

/// min_parallel value that keeps a parallel_for serial (small problems: a parallel region costs
/// more than the work, and a lot more on a loaded machine).
constexpr Index kNoParallel = Index(1) << 62;

inline Index round_up(Index x, Index to) { return (x + to - 1) / to * to; }

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

/// Packs the columns of `mask` (the rows of Mᵀ).
inline void pack_cols(const Mask& mask, BitRows& out, bool par = true) {
  const Index R = mask.rows(), C = mask.cols();
  out.resize(C, R);
  const std::uint8_t* m = mask.data();
  const Index blocks = (R + 63) / 64;
  parallel_for(
      0, blocks,
      [&](Index w) {
        std::vector<std::uint64_t> acc(static_cast<std::size_t>(C), 0);
        const Index r_end = std::min(R, (w + 1) * 64);
        for (Index r = w * 64; r < r_end; ++r) {
          const std::uint8_t* src = m + r * C;
          const int shift = static_cast<int>(r - w * 64);
          for (Index c = 0; c < C; ++c)
            acc[static_cast<std::size_t>(c)] |= std::uint64_t(src[c] != 0) << shift;
        }
        for (Index c = 0; c < C; ++c) out.row(c)[w] = acc[static_cast<std::size_t>(c)];
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

/// out(r, c) = sum_k a(r, k) * B(k, c) for a binary B given by its `width`-bit block patterns
/// (`pattern[(J / 4) * ldp + c]`, byte J % 4 = bits of B(wJ .. wJ+w-1, c), w = width = 5 for float,
/// 4 for double). `a` rows have ld `lda` >= w * blocks, zero beyond K. Summation order: subset
/// sums t = 0..w-1, blocks J ascending (the order of the SIMD kernels).
template <class S>
void fr_product(const S* a, Index rows, Index lda, Index blocks, const std::uint32_t* pattern,
                Index ldp, Index n, S* out, Index ldo, int width = 5) {
  const int entries = 1 << width;
  const std::uint32_t sel = static_cast<std::uint32_t>(entries - 1);
  std::vector<S> table(static_cast<std::size_t>(entries));
  for (Index r = 0; r < rows; ++r) {
    S* o = out + r * ldo;
    for (Index c = 0; c < n; ++c) o[c] = S(0);
    for (Index J = 0; J < blocks; ++J) {
      const S* x = a + r * lda + width * J;
      for (int p = 0; p < entries; ++p) {
        S t = (p & 1) ? x[0] : S(0);
        for (int b = 1; b + 1 < width; ++b) t = t + ((p >> b & 1) ? x[b] : S(0));
        if (p >> (width - 1) & 1) t = t + x[width - 1];
        table[static_cast<std::size_t>(p)] = t;
      }
      const std::uint32_t* pj = pattern + (J / 4) * ldp;
      const int shift = static_cast<int>(8 * (J % 4));
      for (Index c = 0; c < n; ++c) o[c] = o[c] + table[(pj[c] >> shift) & sel];
    }
  }
}

}  // namespace scalar

inline namespace SPARSENM_ISA_NAMESPACE {

#if SPARSENM_HAS_AVX512
/// Sums of 8 vectors of 8 x u64 -> one vector: lane q = sum of the lanes of v[q].
SPARSENM_ALWAYS_INLINE __m512i reduce8_epi64(const __m512i* v) {
  __m512i t[4];
  for (int p = 0; p < 4; ++p)
    t[p] = _mm512_add_epi64(_mm512_unpacklo_epi64(v[2 * p], v[2 * p + 1]),
                            _mm512_unpackhi_epi64(v[2 * p], v[2 * p + 1]));
  // t[p] 128-bit lane L holds (partial v[2p], partial v[2p+1]).
  const __m512i u0 = _mm512_add_epi64(_mm512_shuffle_i64x2(t[0], t[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                      _mm512_shuffle_i64x2(t[0], t[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i u1 = _mm512_add_epi64(_mm512_shuffle_i64x2(t[2], t[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                      _mm512_shuffle_i64x2(t[2], t[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_epi64(_mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                          _mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
}
#endif

/// G = B Bᵀ (n x n, row-major, both triangles written). Each unordered pair {i, j} is computed
/// and stored by the owner of min(i, j) only, so threads never write the same entry.
inline void gram(const BitRows& b, std::int32_t* g, bool par = true) {
#if SPARSENM_HAS_AVX512 && SPARSENM_HAS_AVX512_VPOPCNTDQ
  const Index n = b.rows;
  const Index W = b.words;
  // Blocks of kIB rows i against chunks of kJB rows j: the j chunk (kJB * W words) stays in L2
  // while the kIB rows sweep it, instead of every row pair streaming all of B from L3.
  constexpr Index kIB = 32, kJB = 256;
  const Index nb = (n + kIB - 1) / kIB;
  // Fold block t with block nb-1-t so both threads get the same triangular work.
  parallel_for(
      0, (nb + 1) / 2,
      [&](Index t) {
        for (int side = 0; side < 2; ++side) {
          const Index ib = side == 0 ? t : nb - 1 - t;
          if (side == 1 && ib == t) break;
          const Index i_begin = ib * kIB, i_end = std::min(n, i_begin + kIB);
          for (Index jc = i_begin / 8 * 8; jc < n; jc += kJB) {
            const Index jc_end = std::min(n, jc + kJB);
            for (Index i0 = i_begin; i0 < i_end; i0 += 2) {
              const Index ni = std::min<Index>(2, i_end - i0);
              const std::uint64_t* a0 = b.row(i0);
              const std::uint64_t* a1 = b.row(ni > 1 ? i0 + 1 : i0);
              for (Index j0 = std::max(jc, i0 / 8 * 8); j0 < jc_end; j0 += 8) {
                __m512i acc0[8], acc1[8];
                for (int q = 0; q < 8; ++q) acc0[q] = acc1[q] = _mm512_setzero_si512();
                for (Index w = 0; w < W; w += 8) {
                  const __m512i x0 = _mm512_loadu_si512(a0 + w);
                  const __m512i x1 = _mm512_loadu_si512(a1 + w);
                  for (int q = 0; q < 8; ++q) {
                    // rows beyond n are zero padding (rows_padded), so reading them is safe.
                    const __m512i y = _mm512_loadu_si512(b.row(j0 + q) + w);
                    acc0[q] =
                        _mm512_add_epi64(acc0[q], _mm512_popcnt_epi64(_mm512_and_si512(x0, y)));
                    acc1[q] =
                        _mm512_add_epi64(acc1[q], _mm512_popcnt_epi64(_mm512_and_si512(x1, y)));
                  }
                }
                alignas(64) std::int64_t s[2][8];
                _mm512_store_si512(s[0], reduce8_epi64(acc0));
                _mm512_store_si512(s[1], reduce8_epi64(acc1));
                for (Index di = 0; di < ni; ++di) {
                  const Index i = i0 + di;
                  for (Index q = 0; q < 8; ++q) {
                    const Index j = j0 + q;
                    if (j < i || j >= n) continue;
                    const auto v = static_cast<std::int32_t>(s[di][q]);
                    g[i * n + j] = v;
                    g[j * n + i] = v;
                  }
                }
              }
            }
          }
        }
      },
      par ? Index(1) : kNoParallel);
#else
  (void)par;
  scalar::gram(b, g);
#endif
}

#if SPARSENM_HAS_AVX512
/// RB output rows x JB inner blocks per pass over the column tile [c0, c1): builds the RB·JB
/// lookup tables (two zmm each: subset sums of 5 reals, patterns 0-15 and 16-31), then for every
/// 16 columns one VPERMT2PS per (row, block) and an add. Blocks are added in ascending J, the order
/// of scalar::fr_product, so the results are bit-identical.
template <int RB, int JB>
SPARSENM_ALWAYS_INLINE void fr_tile(const float* const* x, float* const* o, int rows_valid,
                                    Index blocks, const std::uint32_t* pattern, Index ldp, Index c0,
                                    Index c1) {
  const __m512 bit0 = _mm512_setr_ps(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  const __m512 bit1 = _mm512_setr_ps(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1);
  const __m512 bit2 = _mm512_setr_ps(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  const __m512 bit3 = _mm512_setr_ps(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const Index blocks4 = (blocks + 3) / 4;
  for (Index J4 = 0; J4 < blocks4; ++J4) {
    const std::uint32_t* pj = pattern + J4 * ldp;
    for (int h = 0; h < 4 / JB; ++h) {
      if (4 * J4 + h * JB >= blocks) break;
      __m512 lo[RB][JB], hi[RB][JB];
      for (int jj = 0; jj < JB; ++jj) {
        const Index J = 4 * J4 + h * JB + jj;
        for (int r = 0; r < RB; ++r) {
          if (J >= blocks) {
            lo[r][jj] = hi[r][jj] = _mm512_setzero_ps();
            continue;
          }
          const float* y = x[r] + 5 * J;
          __m512 t = _mm512_mul_ps(_mm512_set1_ps(y[0]), bit0);
          t = _mm512_fmadd_ps(_mm512_set1_ps(y[1]), bit1, t);
          t = _mm512_fmadd_ps(_mm512_set1_ps(y[2]), bit2, t);
          t = _mm512_fmadd_ps(_mm512_set1_ps(y[3]), bit3, t);
          lo[r][jj] = t;
          hi[r][jj] = _mm512_add_ps(t, _mm512_set1_ps(y[4]));
        }
      }
      const bool first = J4 == 0 && h == 0;
      for (Index c = c0; c < c1; c += 16) {
        const __m512i idx = _mm512_loadu_si512(pj + c);
        __m512 acc[RB];
        for (int r = 0; r < RB; ++r)
          acc[r] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(o[r] + c);
        for (int jj = 0; jj < JB; ++jj) {
          const int sh = 8 * (h * JB + jj);
          const __m512i ix = sh == 0 ? idx : _mm512_srli_epi32(idx, static_cast<unsigned>(sh));
          for (int r = 0; r < RB; ++r)
            acc[r] = _mm512_add_ps(acc[r], _mm512_permutex2var_ps(lo[r][jj], ix, hi[r][jj]));
        }
        for (int r = 0; r < RB; ++r)
          if (r < rows_valid) _mm512_storeu_ps(o[r] + c, acc[r]);
      }
    }
  }
}

/// Double version of fr_tile: 4-bit blocks (16-entry tables in two zmm of 8 doubles, VPERMT2PD),
/// 8 columns per lookup.
template <int RB, int JB>
SPARSENM_ALWAYS_INLINE void fr_tile_pd(const double* const* x, double* const* o, int rows_valid,
                                       Index blocks, const std::uint32_t* pattern, Index ldp,
                                       Index c0, Index c1) {
  const __m512d bit0 = _mm512_setr_pd(0, 1, 0, 1, 0, 1, 0, 1);
  const __m512d bit1 = _mm512_setr_pd(0, 0, 1, 1, 0, 0, 1, 1);
  const __m512d bit2 = _mm512_setr_pd(0, 0, 0, 0, 1, 1, 1, 1);
  const Index blocks4 = (blocks + 3) / 4;
  for (Index J4 = 0; J4 < blocks4; ++J4) {
    const std::uint32_t* pj = pattern + J4 * ldp;
    for (int h = 0; h < 4 / JB; ++h) {
      if (4 * J4 + h * JB >= blocks) break;
      __m512d lo[RB][JB], hi[RB][JB];
      for (int jj = 0; jj < JB; ++jj) {
        const Index J = 4 * J4 + h * JB + jj;
        for (int r = 0; r < RB; ++r) {
          if (J >= blocks) {
            lo[r][jj] = hi[r][jj] = _mm512_setzero_pd();
            continue;
          }
          const double* y = x[r] + 4 * J;
          __m512d t = _mm512_mul_pd(_mm512_set1_pd(y[0]), bit0);
          t = _mm512_fmadd_pd(_mm512_set1_pd(y[1]), bit1, t);
          t = _mm512_fmadd_pd(_mm512_set1_pd(y[2]), bit2, t);
          lo[r][jj] = t;
          hi[r][jj] = _mm512_add_pd(t, _mm512_set1_pd(y[3]));
        }
      }
      const bool first = J4 == 0 && h == 0;
      for (Index c = c0; c < c1; c += 8) {
        const __m512i idx =
            _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pj + c)));
        __m512d acc[RB];
        for (int r = 0; r < RB; ++r)
          acc[r] = first ? _mm512_setzero_pd() : _mm512_loadu_pd(o[r] + c);
        for (int jj = 0; jj < JB; ++jj) {
          const int sh = 8 * (h * JB + jj);
          const __m512i ix = sh == 0 ? idx : _mm512_srli_epi64(idx, static_cast<unsigned>(sh));
          for (int r = 0; r < RB; ++r)
            acc[r] = _mm512_add_pd(acc[r], _mm512_permutex2var_pd(lo[r][jj], ix, hi[r][jj]));
        }
        for (int r = 0; r < RB; ++r)
          if (r < rows_valid) _mm512_storeu_pd(o[r] + c, acc[r]);
      }
    }
  }
}
#endif

/// Inner-block width of the four-Russians tables: 5 bits (32 floats = two zmm) for float, 4 bits
/// (16 doubles = two zmm) for double.
template <class S>
constexpr int fr_width() {
  return std::is_same<S, float>::value ? 5 : 4;
}

/// Four-Russians product (see scalar::fr_product for the contract, width = fr_width<S>());
/// AVX-512 VPERMT2PS / VPERMT2PD kernels.
template <class S>
void fr_product(const S* a, Index rows, Index lda, Index blocks, const std::uint32_t* pattern,
                Index ldp, Index n, S* out, Index ldo, bool par = true) {
  const Index threads = par ? std::max(1, thread_count()) : 1;
#if SPARSENM_HAS_AVX512
  // ldo and ldp are multiples of 16 and the pattern/out buffers are padded to them.
  constexpr int kRB = 2, kJB = 4;  // measured best of (2,4) (3,4) (4,2) (4,4) (6,2) for float
  const Index n16 = round_up(n, 16);
  constexpr Index kTile = 1024;  // columns per tile: the tile's patterns stay in L2
  const Index groups = (rows + kRB - 1) / kRB;
  const Index grain = (groups + threads - 1) / threads;
  parallel_for_chunks(groups, grain, [&](Index g_begin, Index g_end) {
    for (Index c0 = 0; c0 < n16; c0 += kTile) {
      const Index c1 = std::min(n16, c0 + kTile);
      for (Index g = g_begin; g < g_end; ++g) {
        const Index r0 = kRB * g;
        const int valid = static_cast<int>(std::min<Index>(kRB, rows - r0));
        const S* x[kRB];
        S* o[kRB];
        for (int r = 0; r < kRB; ++r) {
          const Index rr = r0 + std::min(r, valid - 1);  // repeat the last row as padding
          x[r] = a + rr * lda;
          o[r] = out + rr * ldo;
        }
        if constexpr (std::is_same<S, float>::value)
          fr_tile<kRB, kJB>(x, o, valid, blocks, pattern, ldp, c0, c1);
        else
          fr_tile_pd<kRB, kJB>(x, o, valid, blocks, pattern, ldp, c0, c1);
      }
    }
  });
#else
  // Builds without AVX-512: the scalar kernel, parallel over rows.
  parallel_for_chunks(rows, (rows + threads - 1) / threads, [&](Index r0, Index r1) {
    scalar::fr_product(a + r0 * lda, r1 - r0, lda, blocks, pattern, ldp, n, out + r0 * ldo, ldo,
                       fr_width<S>());
  });
#endif
}

}  // namespace SPARSENM_ISA_NAMESPACE

/// Patterns of `width` consecutive ROWS of `mask` at every column: byte J % 4 of
/// pattern[(J / 4) * ldp + c] = sum_t mask(wJ + t, c) << t (rows beyond R count as 0).
inline void patterns_over_rows(const Mask& mask, std::vector<std::uint32_t>& pattern, Index& ldp,
                               Index& blocks, bool par = true, int width = 5) {
  const Index R = mask.rows(), C = mask.cols();
  blocks = (R + width - 1) / width;
  const Index blocks4 = (blocks + 3) / 4;
  ldp = round_up(std::max<Index>(C, 1), 16);
  pattern.assign(static_cast<std::size_t>(blocks4 * ldp), 0u);
  const std::uint8_t* m = mask.data();
  parallel_for(
      0, blocks4,
      [&](Index J4) {
        std::uint32_t* dst = pattern.data() + J4 * ldp;
        for (int q = 0; q < 4; ++q)
          for (int t = 0; t < width; ++t) {
            const Index r = width * (4 * J4 + q) + t;
            if (r >= R) break;
            const std::uint8_t* src = m + r * C;
            const int shift = 8 * q + t;
            for (Index c = 0; c < C; ++c) dst[c] |= std::uint32_t(src[c] != 0) << shift;
          }
      },
      par ? Index(2) : kNoParallel);
}

/// Patterns of `width` consecutive COLUMNS of every row of the mask (the rows-patterns of Mᵀ),
/// read from its packed rows: byte J % 4 of pattern[(J / 4) * ldp + r] = bits wJ .. wJ+w-1 of r.
inline void patterns_over_cols(const BitRows& rows_bits, std::vector<std::uint32_t>& pattern,
                               Index& ldp, Index& blocks, bool par = true, int width = 5) {
  const Index R = rows_bits.rows, C = rows_bits.bits;
  blocks = (C + width - 1) / width;
  const std::uint64_t sel = (std::uint64_t(1) << width) - 1;
  const Index blocks4 = (blocks + 3) / 4;
  ldp = round_up(std::max<Index>(R, 1), 16);
  pattern.assign(static_cast<std::size_t>(blocks4 * ldp), 0u);
  parallel_for(
      0, R,
      [&](Index r) {
        const std::uint64_t* w = rows_bits.row(r);  // zero-padded beyond C (and beyond words)
        for (Index J4 = 0; J4 < blocks4; ++J4) {
          std::uint32_t v = 0;
          for (int q = 0; q < 4; ++q) {
            const Index bit = width * (4 * J4 + q);
            if (bit >= C) break;
            const Index k = bit / 64;
            const int off = static_cast<int>(bit % 64);
            std::uint64_t x = w[k] >> off;
            if (off > 64 - width && k + 1 < rows_bits.words) x |= w[k + 1] << (64 - off);
            v |= static_cast<std::uint32_t>(x & sel) << (8 * q);
          }
          pattern[static_cast<std::size_t>(J4 * ldp + r)] = v;
        }
      },
      par ? Index(64) : kNoParallel);
}

/// F(i, j) = ch_weight(G(i, j), deg[j]) for an n x n Gram matrix; F has leading dimension ld
/// (>= 5 * ceil(n / 5)) and zeros in the padding columns.
template <class S>
void ch_weights_from_gram(const std::int32_t* g, Index n, const std::vector<int>& deg, ChRule rule,
                          S* f, Index ld, bool par = true) {
  parallel_for(
      0, n,
      [&](Index i) {
        const std::int32_t* gi = g + i * n;
        S* fi = f + i * ld;
        const int* dg = deg.data();
        Index j0 = 0;
#if SPARSENM_HAS_AVX512
        if constexpr (std::is_same<S, float>::value) {
          // Same operations as the scalar loop below (exact int -> float, one division), so the
          // result is identical.
          const __m512i one_i = _mm512_set1_epi32(1);
          const __m512 one = _mm512_set1_ps(1.0f);
          const bool ch2 = rule == ChRule::Ch2L3n;
          for (; j0 + 16 <= n; j0 += 16) {
            const __m512i d = _mm512_loadu_si512(gi + j0);
            const __m512i dj = _mm512_loadu_si512(dg + j0);
            const __m512 den = _mm512_cvtepi32_ps(_mm512_max_epi32(_mm512_sub_epi32(dj, d), one_i));
            const __m512 num = ch2 ? _mm512_add_ps(_mm512_cvtepi32_ps(d), one) : one;
            const __mmask16 pos = _mm512_cmpgt_epi32_mask(d, _mm512_setzero_si512());
            _mm512_storeu_ps(fi + j0, _mm512_maskz_div_ps(pos, num, den));
          }
        }
#endif
        if (rule == ChRule::Ch2L3n) {
          for (Index j = j0; j < n; ++j) {
            const std::int32_t d = gi[j];
            const S v = (S(d) + S(1)) / S(std::max(dg[j] - d, 1));
            fi[j] = d > 0 ? v : S(0);
          }
        } else {
          for (Index j = j0; j < n; ++j) {
            const std::int32_t d = gi[j];
            const S v = S(1) / S(std::max(dg[j] - d, 1));
            fi[j] = d > 0 ? v : S(0);
          }
        }
        for (Index j = n; j < ld; ++j) fi[j] = S(0);
      },
      par ? Index(16) : kNoParallel);
}

/// Full fast CH-L3n computation (rows = outputs R, cols = inputs C):
///   S = (F_D M + (F_T Mᵀ)ᵀ) ⊙ (1 − M), written to `out` (R x C, row-major, ld = C).
/// `use_scalar` selects the scalar reference kernels (tests compare the two bit for bit).
template <class S>
void ch_l3n_fast(const Mask& mask, ChRule rule, ChWorkspace<S>& ws, S* out, bool use_scalar) {
  const Index R = mask.rows(), C = mask.cols();
  if (R == 0 || C == 0) return;
  // Parallel only when the work (about R·C·(R + C) / 80 lookups) amortises the regions.
  const bool par = double(R) * double(C) * double(R + C) >= 2e7;
  pack_rows(mask, ws.bits_rows, par);
  pack_cols(mask, ws.bits_cols, par);
  row_degrees(ws.bits_rows, ws.deg_rows);
  row_degrees(ws.bits_cols, ws.deg_cols);
  const Index nmax = std::max(R, C);
  ws.gram.resize(static_cast<std::size_t>(nmax * nmax));
  Index ldp = 0, blocks = 0;

  // Row stream: S_row = F_D M, F_D (R x R) from DD = M Mᵀ with the degree of the last index.
  if (use_scalar)
    scalar::gram(ws.bits_rows, ws.gram.data());
  else
    gram(ws.bits_rows, ws.gram.data(), par);
  const Index ldf_r = round_up(R, 20);
  ws.weights.resize(static_cast<std::size_t>(std::max(R * ldf_r, C * round_up(C, 20))));
  ch_weights_from_gram(ws.gram.data(), R, ws.deg_rows, rule, ws.weights.data(), ldf_r, par);
  patterns_over_rows(mask, ws.pattern, ldp, blocks, par, fr_width<S>());
  const Index ldc = round_up(C, 16);
  ws.row_stream.resize(static_cast<std::size_t>(R * ldc));
  if (use_scalar)
    scalar::fr_product(ws.weights.data(), R, ldf_r, blocks, ws.pattern.data(), ldp, C,
                       ws.row_stream.data(), ldc, fr_width<S>());
  else
    fr_product(ws.weights.data(), R, ldf_r, blocks, ws.pattern.data(), ldp, C, ws.row_stream.data(),
               ldc, par);

  // Column stream: X = F_T Mᵀ (C x R), F_T from TT = Mᵀ M with the column degrees.
  if (use_scalar)
    scalar::gram(ws.bits_cols, ws.gram.data());
  else
    gram(ws.bits_cols, ws.gram.data(), par);
  const Index ldf_c = round_up(C, 20);
  ch_weights_from_gram(ws.gram.data(), C, ws.deg_cols, rule, ws.weights.data(), ldf_c, par);
  patterns_over_cols(ws.bits_rows, ws.pattern, ldp, blocks, par, fr_width<S>());
  const Index ldr = round_up(R, 16);
  ws.col_stream.resize(static_cast<std::size_t>(C * ldr));
  if (use_scalar)
    scalar::fr_product(ws.weights.data(), C, ldf_c, blocks, ws.pattern.data(), ldp, R,
                       ws.col_stream.data(), ldr, fr_width<S>());
  else
    fr_product(ws.weights.data(), C, ldf_c, blocks, ws.pattern.data(), ldp, R, ws.col_stream.data(),
               ldr, par);

  // S = (S_row + Xᵀ) ⊙ (1 − M): X is read through a 32 x 32 transposed tile on the stack.
  const std::uint8_t* m = mask.data();
  const S* srow = ws.row_stream.data();
  const S* x = ws.col_stream.data();
  constexpr Index kB = 32;
  parallel_for(
      0, (R + kB - 1) / kB,
      [&](Index rb) {
        S tile[kB][kB];
        const Index r0 = rb * kB, r1 = std::min(R, r0 + kB);
        for (Index c0 = 0; c0 < C; c0 += kB) {
          const Index c1 = std::min(C, c0 + kB);
          for (Index c = c0; c < c1; ++c)
            for (Index r = r0; r < r1; ++r) tile[r - r0][c - c0] = x[c * ldr + r];
          for (Index r = r0; r < r1; ++r) {
            const S* a = srow + r * ldc;
            const std::uint8_t* mr = m + r * C;
            S* o = out + r * C;
            const S* t = tile[r - r0];
            for (Index c = c0; c < c1; ++c) o[c] = mr[c] ? S(0) : a[c] + t[c - c0];
          }
        }
      },
      par ? Index(1) : kNoParallel);
}

}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_TOPOLOGY_DETAIL_CH_KERNELS_HPP
