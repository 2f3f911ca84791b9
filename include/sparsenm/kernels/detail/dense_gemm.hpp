// SPDX-License-Identifier: Apache-2.0
// A packed, register-blocked dense GEMM / SYRK for column-major views (used by Newton-Schulz).
//
// Why our own rather than BLAS: Newton-Schulz needs products that BLAS does not offer in one call
// (a factor read from its lower triangle on BOTH sides, C = S1 S2 for symmetric S1, S2 with only
// the lower triangle of a symmetric result computed, i.e. half the flops), and a summation order
// that does not depend on the thread count. As a plain GEMM it is on par with OpenBLAS 0.3.21 on
// the project machine (0.94-1.14x its sgemm / ssyrk, bench_optim BM_PackedGemmVsOpenBlas). The
// micro-kernel keeps both FMA operands in registers (2 vector loads of the packed A panel + NR
// broadcasts of the packed B panel per k, 2 NR FMAs): ~205 GFLOP/s per core in L1, ~95 % of the
// register FMA rate. The structure is the classic GotoBLAS / BLIS one: B is packed per k-block
// into NR-wide panels, A per (k, m) block into MR-tall panels (L2), and the micro-kernel computes
// an MR x NR tile over the k-block with the B panel in L1.
//
// Operands are logical matrices read from column-major storage in one of three ways (plain,
// transposed, symmetric with its lower triangle stored), so SYRK (C = A A^T), products with a
// symmetric factor given by its lower triangle (SYMM) and plain GEMM share one kernel; the
// packing routines read the storage with unit stride wherever the layout allows.
//
// Determinism: every entry of C is one fixed sequence of FMAs (k-blocks in order, k in order
// inside a block, C <- fma(alpha, acc, C) after each block), whatever the thread count and
// whatever tile the entry falls in (edge tiles run the same FMAs on zero padding). The scalar
// reference micro-kernel (std::fma in the same order) gives the same bits; tests use it.
#ifndef SPARSENM_KERNELS_DETAIL_DENSE_GEMM_HPP
#define SPARSENM_KERNELS_DETAIL_DENSE_GEMM_HPP

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Core>

#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "simd_vec.hpp"

SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {
inline namespace SPARSENM_ISA_NAMESPACE {

/// How a logical operand is read from column-major storage p with leading dimension ld.
enum class GemmRead {
  Plain,          ///< element (r, c) = p[r + c ld]
  Transposed,     ///< element (r, c) = p[c + r ld]
  SymmetricLower  ///< square; element (r, c) = p[max + min ld] (lower triangle stored)
};

template <class S>
struct GemmOperand {
  const S* p;
  Index ld;
  GemmRead read;
};

/// Blocking of the packed GEMM. MR = 2 vectors, NR = 12 with 32 vector registers (AVX-512), 6
/// with 16 (AVX2) so that the 2 NR accumulators, two A vectors and a broadcast fit.
template <class S>
struct GemmBlocking {
  static constexpr int kW = VecOps<S>::kWidth;
  static constexpr int kMR = 2 * kW;
#if SPARSENM_HAS_AVX512
  static constexpr int kNR = 12;
#else
  static constexpr int kNR = 6;
#endif
  /// k-block: an NR x KC panel of B (24 KiB in float) stays in L1 while A streams from L2. 512
  /// measured 3-8 % faster than 256 or 384 (C, larger than the caches for big shapes, is read and
  /// written once per k-block).
  static constexpr Index kKC = 512;
  /// m-block: a packed MC x KC block of A (512 KiB in float) stays in L2.
  static constexpr Index kMC = 256;
  /// Column chunk (a multiple of NR): bounds the packed KC x NC chunk of B (4 MiB in float). Each
  /// chunk re-packs A, so chunks are wide: the B panels stream from L3 at ~0.5 B/cycle, while
  /// 516-column chunks (B in L2) were 10 % slower at 4096^2 for the extra A packing.
  static constexpr Index kNC = 2064;
};

/// dst[r dr + c dc] = src[r rs + c cs] for r < nr, c < nc. Where the source and the destination
/// are contiguous along different indices the copy is a transpose: full 16 x 16 blocks go through
/// the kernels' register transpose (AVX-512 float), which is ~4x faster than the element loop; the
/// source may be read up to `nc_avail` >= nc columns (a panel narrower than 16 then still uses the
/// register transpose, through a local block).
template <class S>
inline void gemm_copy_block(const S* src, Index rs, Index cs, Index nr, Index nc, S* dst, Index dr,
                            Index dc, Index nc_avail = 0) {
  Index r_done = 0;  // rows [0, r_done) done by a vector path; the loop at the end copies the rest
  if constexpr (VecOps<S>::kHasTranspose) {
    constexpr Index T = VecOps<S>::kWidth;
    if (cs == 1 && dr == 1) {
      // Source rows contiguous along c, destination columns contiguous along r.
      r_done = nr / T * T;
      const Index c_full = nc / T * T;
      for (Index r0 = 0; r0 < r_done; r0 += T)
        for (Index c0 = 0; c0 < c_full; c0 += T)
          VecOps<S>::transpose_block(src + r0 * rs + c0, rs, dst + c0 * dc + r0, dc);
      for (Index r = 0; r < r_done; ++r)
        for (Index c = c_full; c < nc; ++c) dst[r * dr + c * dc] = src[r * rs + c];
    } else if (rs == 1 && dc == 1 && nc <= T && std::max(nc, nc_avail) >= T) {
      // Source columns contiguous along r, destination rows contiguous along c (one panel of
      // nc <= T columns; T columns are read).
      alignas(64) S tmp[T * T];
      r_done = nr / T * T;
      for (Index r0 = 0; r0 < r_done; r0 += T) {
        VecOps<S>::transpose_block(src + r0, cs, tmp, T);
        // Full-width stores: row r's tail lands in row r + 1 (dr <= T <= 2 dr), which is written
        // next; only the block's last row is copied element by element.
        Index r = 0;
        if (2 * dr >= T && dr <= T)
          for (; r + 1 < T; ++r)
            VecOps<S>::store(dst + (r0 + r) * dr, VecOps<S>::load(tmp + r * T));
        for (; r < T; ++r)
          for (Index c = 0; c < nc; ++c) dst[(r0 + r) * dr + c] = tmp[r * T + c];
      }
    }
  }
  src += r_done * rs;
  dst += r_done * dr;
  nr -= r_done;
  if (rs == 1) {
    for (Index c = 0; c < nc; ++c)
      for (Index r = 0; r < nr; ++r) dst[r * dr + c * dc] = src[r + c * cs];
  } else {
    for (Index r = 0; r < nr; ++r)
      for (Index c = 0; c < nc; ++c) dst[r * dr + c * dc] = src[r * rs + c * cs];
  }
}

/// Copies the logical block rows [r0, r0 + nr) x cols [c0, c0 + nc) of op into
/// dst[(r - r0) dr + (c - c0) dc].
template <class S>
inline void gemm_pack_block(const GemmOperand<S>& op, Index r0, Index nr, Index c0, Index nc,
                            S* dst, Index dr, Index dc, Index nc_avail = 0) {
  const S* p = op.p;
  const Index ld = op.ld;
  switch (op.read) {
    case GemmRead::Plain:
      gemm_copy_block(p + r0 + c0 * ld, 1, ld, nr, nc, dst, dr, dc, nc_avail);
      return;
    case GemmRead::Transposed:
      gemm_copy_block(p + c0 + r0 * ld, ld, 1, nr, nc, dst, dr, dc);
      return;
    case GemmRead::SymmetricLower: {
      // Rows r >= c0 + nc - 1 see only entries on or below the diagonal (plain read), rows
      // r < c0 only entries above it (transposed read); the rows in between are split by column
      // the same way (c <= r0': plain, c >= r0' + nr': transposed, a diagonal band per entry).
      const Index r_end = r0 + nr, c_end = c0 + nc;
      const Index up_rows = std::clamp<Index>(c0 - r0, 0, nr);
      const Index lo_begin = std::clamp<Index>(c_end - 1, r0 + up_rows, r_end);
      if (up_rows > 0) gemm_copy_block(p + c0 + r0 * ld, ld, 1, up_rows, nc, dst, dr, dc);
      if (lo_begin < r_end)
        gemm_copy_block(p + lo_begin + c0 * ld, 1, ld, r_end - lo_begin, nc,
                        dst + (lo_begin - r0) * dr, dr, dc, nc_avail);
      const Index m0 = r0 + up_rows, mn = lo_begin - m0;  // mixed rows [m0, lo_begin)
      if (mn <= 0) return;
      S* md = dst + up_rows * dr;
      const Index lo_end = std::min(c_end, m0 + 1);
      const Index up_begin = std::max(c0, m0 + mn);
      if (lo_end > c0) gemm_copy_block(p + m0 + c0 * ld, 1, ld, mn, lo_end - c0, md, dr, dc);
      for (Index c = std::max(c0, lo_end); c < std::min(c_end, up_begin); ++c)
        for (Index r = m0; r < m0 + mn; ++r)
          md[(r - m0) * dr + (c - c0) * dc] = r >= c ? p[r + c * ld] : p[c + r * ld];
      if (up_begin < c_end)
        gemm_copy_block(p + up_begin + m0 * ld, ld, 1, mn, c_end - up_begin,
                        md + (up_begin - c0) * dc, dr, dc);
      return;
    }
  }
}

/// Packs W-wide panels of an operand for k-range [p0, p0 + kc): the left operand's rows
/// [x0, x0 + nx) into MR-tall panels (kLhs; panel q holds row x0 + q W + r at dst[q W kc + p W +
/// r]) or the right operand's columns into NR-wide panels (column x0 + q W + j at dst[q W kc + p W
/// + j]). Rows / columns past `extent` (m or n) are zero.
template <int W, bool kLhs, class S>
inline void gemm_pack_panels(const GemmOperand<S>& op, Index extent, Index x0, Index nx, Index p0,
                             Index kc, S* dst) {
  for (Index q = 0; q * W < nx; ++q) {
    const Index s0 = x0 + q * W;
    const Index width = std::min<Index>(W, extent - s0);
    S* d = dst + q * W * kc;
    if (kLhs)
      gemm_pack_block(op, s0, width, p0, kc, d, 1, W);
    else
      gemm_pack_block(op, p0, kc, s0, width, d, W, 1, extent - s0);
    if (width < W)
      for (Index p = 0; p < kc; ++p)
        for (Index j = width; j < W; ++j) d[p * W + j] = S(0);
  }
}

/// Scalar reference micro-kernel: acc[j][r] = sum_p a[p MR + r] b[p NR + j], one std::fma per
/// term in k order (the vector kernel's exact sequence per entry).
template <class S>
inline void gemm_micro_scalar(const S* a, const S* b, Index kc, S* acc) {
  constexpr int MR = GemmBlocking<S>::kMR, NR = GemmBlocking<S>::kNR;
  for (int i = 0; i < MR * NR; ++i) acc[i] = S(0);
  for (Index p = 0; p < kc; ++p)
    for (int j = 0; j < NR; ++j)
      for (int r = 0; r < MR; ++r)
        acc[j * MR + r] = std::fma(a[p * MR + r], b[p * NR + j], acc[j * MR + r]);
}

/// The register-blocked micro-kernel: an MR x NR tile of sums over kc, written to acc (column j at
/// acc + j MR). Two vector loads and NR broadcasts feed 2 NR register-operand FMAs per k.
template <class S>
SPARSENM_ALWAYS_INLINE void gemm_micro(const S* SPARSENM_RESTRICT a, const S* SPARSENM_RESTRICT b,
                                       Index kc, S* SPARSENM_RESTRICT acc) {
  using Ops = VecOps<S>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth, NR = GemmBlocking<S>::kNR, MR = GemmBlocking<S>::kMR;
  V c0[NR], c1[NR];
  for (int j = 0; j < NR; ++j) c0[j] = c1[j] = Ops::zero();
  for (Index p = 0; p < kc; ++p) {
    const V a0 = Ops::load(a + p * MR), a1 = Ops::load(a + p * MR + W);
    const S* bp = b + p * NR;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12
#endif
    for (int j = 0; j < NR; ++j) {
      const V bj = Ops::set1(bp[j]);
      c0[j] = Ops::fmadd(a0, bj, c0[j]);
      c1[j] = Ops::fmadd(a1, bj, c1[j]);
    }
  }
  for (int j = 0; j < NR; ++j) {
    Ops::store(acc + j * MR, c0[j]);
    Ops::store(acc + j * MR + W, c1[j]);
  }
}

/// Writes one MR x NR tile of sums into C: C <- alpha acc (first k-block) or fma(alpha, acc, C),
/// rows r0 + [0, rows), columns j0 + [0, cols); with lower_only, entries above the diagonal are
/// left alone.
template <class S>
SPARSENM_ALWAYS_INLINE void gemm_store_tile(const S* acc, S alpha, bool first, bool lower_only,
                                            Index r0, Index rows, Index j0, Index cols, S* c,
                                            Index ldc) {
  constexpr int MR = GemmBlocking<S>::kMR, NR = GemmBlocking<S>::kNR;
  if (rows == MR && cols == NR && (!lower_only || r0 >= j0 + NR - 1)) {
    using Ops = VecOps<S>;
    constexpr int W = Ops::kWidth;
    const auto va = Ops::set1(alpha);
    for (int j = 0; j < NR; ++j) {
      S* cj = c + r0 + (j0 + j) * ldc;
      for (int v = 0; v < MR; v += W) {
        const auto old = first ? Ops::zero() : Ops::load(cj + v);
        Ops::store(cj + v, Ops::fmadd(va, Ops::load(acc + j * MR + v), old));
      }
    }
    return;
  }
  for (Index j = 0; j < cols; ++j) {
    S* cj = c + (j0 + j) * ldc;
    for (Index r = lower_only ? std::max<Index>(0, j0 + j - r0) : 0; r < rows; ++r)
      cj[r0 + r] = std::fma(alpha, acc[j * MR + r], first ? S(0) : cj[r0 + r]);
  }
}

/// C (m x n, column-major, ldc) <- alpha op(A) op(B), or its lower triangle only (lower_only:
/// entries with row < column are neither read nor written). op(A) is m x k, op(B) k x n.
/// Deterministic and independent of the thread count (see the file comment); uses the scalar
/// reference micro-kernel when `reference` is set. Inside a parallel region it runs serially.
///
/// Threads own contiguous ranges of column panels with equal work (for the lower triangle the
/// work of a panel is the rows at or below it) and share nothing, so the region has no barrier
/// (measured: ~10 % faster on 2 threads than a shared packed A with dynamically scheduled column
/// chunks, which needs two barriers per k-block, and less hurt by another thread pool still
/// spinning on the cores). Per thread: for each chunk of kNC columns, for each k-block, pack that
/// chunk of B (L2), then for each kMC-row block of A: pack it (L2) and run the micro-kernel over
/// the chunk's NR panels (outer; each B panel stays in L1) and the block's MR panels (inner).
template <class S>
void packed_gemm(Index m, Index n, Index k, S alpha, const GemmOperand<S>& a,
                 const GemmOperand<S>& b, S* c, Index ldc, bool lower_only,
                 bool reference = false) {
  using B = GemmBlocking<S>;
  constexpr int MR = B::kMR, NR = B::kNR;
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (Index j = 0; j < n; ++j)
      for (Index i = lower_only ? j : 0; i < m; ++i) c[i + j * ldc] = S(0);
    return;
  }
  const Index panels = (n + NR - 1) / NR;
  const int threads = in_parallel() ? 1 : static_cast<int>(std::min<Index>(thread_count(), panels));
  std::vector<Index> split(static_cast<std::size_t>(threads) + 1, panels);
  split[0] = 0;
  {
    std::vector<double> cum(static_cast<std::size_t>(panels) + 1, 0.0);
    for (Index q = 0; q < panels; ++q)
      cum[std::size_t(q + 1)] =
          cum[std::size_t(q)] + double(lower_only ? std::max<Index>(m - q * NR, 0) : m);
    Index q = 0;
    for (int t = 1; t < threads; ++t) {
      const double target = cum[std::size_t(panels)] * t / threads;
      while (q < panels && cum[std::size_t(q + 1)] <= target) ++q;
      split[std::size_t(t)] = q;
    }
  }
  auto work = [&](int t) {
    const Index q_begin = split[std::size_t(t)], q_end = split[std::size_t(t) + 1];
    if (q_begin >= q_end) return;
    const Index kc_max = std::min(k, B::kKC);
    thread_local Eigen::Matrix<S, Eigen::Dynamic, 1> a_buf, b_buf;
    const Index nc_max = std::min(B::kNC, (q_end - q_begin) * NR);
    const Index mc_max = std::min(B::kMC, (m + MR - 1) / MR * MR);
    if (b_buf.size() < nc_max * kc_max) b_buf.resize(nc_max * kc_max);
    if (a_buf.size() < mc_max * kc_max) a_buf.resize(mc_max * kc_max);
    alignas(64) S acc[MR * NR];
    for (Index jc = q_begin * NR; jc < std::min(n, q_end * NR); jc += B::kNC) {
      const Index nc = std::min({B::kNC, n - jc, q_end * NR - jc});
      const Index i_begin = lower_only ? jc / MR * MR : 0;  // rows above the chunk are skipped
      for (Index p0 = 0; p0 < k; p0 += B::kKC) {
        const Index kc = std::min(B::kKC, k - p0);
        const bool first = p0 == 0;
        gemm_pack_panels<NR, false>(b, n, jc, nc, p0, kc, b_buf.data());
        for (Index i0 = i_begin; i0 < m; i0 += B::kMC) {
          const Index mc = std::min(B::kMC, m - i0);
          gemm_pack_panels<MR, true>(a, m, i0, mc, p0, kc, a_buf.data());
          for (Index jq = 0; jq * NR < nc; ++jq) {
            const Index j0 = jc + jq * NR;
            const Index cols = std::min<Index>(NR, jc + nc - j0);
            const S* bp = b_buf.data() + jq * NR * kc;
            for (Index iq = 0; iq * MR < mc; ++iq) {
              const Index r0 = i0 + iq * MR;
              const Index rows = std::min<Index>(MR, m - r0);
              if (lower_only && r0 + rows <= j0) continue;  // tile entirely above the diagonal
              const S* ap = a_buf.data() + iq * MR * kc;
              // C (often larger than the caches) is read and written once per k-block: request
              // the tile's lines now so the misses overlap the micro-kernel's FMAs.
              if (!first)
                for (Index j = 0; j < cols; ++j)
                  for (Index r = 0; r < rows; r += 64 / Index(sizeof(S)))
                    SPARSENM_PREFETCH_W(c + r0 + r + (j0 + j) * ldc);
              if (reference)
                gemm_micro_scalar(ap, bp, kc, acc);
              else
                gemm_micro(ap, bp, kc, acc);
              gemm_store_tile(acc, alpha, first, lower_only, r0, rows, j0, cols, c, ldc);
            }
          }
        }
      }
    }
  };
#if SPARSENM_HAS_OPENMP
  if (threads > 1) {
    SPARSENM_OMP(parallel num_threads(threads)) { work(omp_get_thread_num()); }
    return;
  }
#endif
  work(0);
}

}  // namespace SPARSENM_ISA_NAMESPACE
}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_DETAIL_DENSE_GEMM_HPP
