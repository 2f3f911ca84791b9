// SPDX-License-Identifier: Apache-2.0
// Register-blocked, cache-tiled CPU micro-kernels for compressed N:M weights (ISA chosen at compile
// time through VecOps). Design (the "X^T tile" scheme; CHTs24 App. J counts these products):
//
//  * Activations are packed as X^T in tiles of T = C * W tokens (PackedTokens), W = SIMD width.
//  * SpMM, Y^T(o, tile) = sum_e w_e X^T(col_e, tile): one nonzero costs one broadcast, C vector
//    loads (micro-fused into the FMAs) and C FMAs into C accumulators that stay in registers. For
//    skinny batches (C < 8) R = 8 / C rows run in lockstep so 8 independent FMA chains hide
//    latency.
//  * Cache tiling: the input dimension is cut in blocks of Kc features with Kc * T * sizeof(S) =
//    32 KiB, so the X^T block a row block sweeps stays in L1 (48 KiB here); row blocks of up to
//    row_block() rows accumulate in a small per-thread Y^T buffer (L2) across input blocks, and the
//    buffer is transposed into Y once at the end.
//  * Work items are (row block, token tile) pairs split statically over threads; each output value
//    is produced by exactly one item with a fixed summation order, so results are bit-identical
//    for any thread count.
//  * SDDMM, dW(e) = sum_t dY(t, o_e) X(t, col_e): dY^T(o, tile) sits in C registers, every active
//    entry of the row costs C FMAs with X^T(col_e, tile) as the memory operand (one load per FMA),
//    and W entries at a time are reduced to W lane sums with one shuffle tree
//    (VecOps::reduce_batch).
#ifndef SPARSENM_KERNELS_DETAIL_SPMM_TILED_HPP
#define SPARSENM_KERNELS_DETAIL_SPMM_TILED_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <Eigen/Core>

#include "../../core/simd.hpp"
#include "../../core/parallel.hpp"
#include "../../core/types.hpp"
#include "../../mask.hpp"
#include "../packed_tokens.hpp"
#include "../transposed_weight.hpp"
#include "simd_vec.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {
inline namespace SPARSENM_ISA_NAMESPACE {

/// Rows of W per work item (the Y^T buffer is row_block x T values): large, so the X^T tile of a
/// token tile (K x T values, up to the size of L2) is streamed from L3 once per many rows, but
/// small enough that every thread gets a few items. The grouping of rows never changes the order
/// in which an output is summed, so it may depend on the thread count without breaking
/// bit-identical results.
inline Index row_block(Index rows, Index tiles, Index lo = 256, Index hi = 1024) {
  const Index want = Index(thread_count()) * 4;  // items wanted in total
  const Index per_tile = std::max<Index>(1, (want + tiles - 1) / tiles);
  const Index rb = (rows + per_tile - 1) / per_tile;
  return std::min(hi, std::max(lo, (rb + 15) / 16 * 16));
}
/// Target size of the X^T block that one row block sweeps (fits L1 with room for the rest).
constexpr Index kL1Block = 32768;
/// Rows ahead whose values and indices for the current input block are prefetched. Each row
/// reads only n/m * Kc entries (one or two cache lines) per block, rows apart by the row stride,
/// a pattern the hardware prefetchers miss: without it every row waited on L3 (measured 56 -> 84
/// GF/s useful, 4096x4096 1:4, one thread; 2, 4 and 8 rows ahead within 10 %).
constexpr int kPrefetchRows = 4;

/// Prefetches the entries [j0, j1) of a row's values and indices (see kPrefetchRows).
template <class S>
SPARSENM_ALWAYS_INLINE void prefetch_entries(const S* val, const std::uint8_t* idx, Index j0,
                                             Index j1) {
  for (Index j = j0; j < j1; j += 64 / Index(sizeof(S))) SPARSENM_PREFETCH(val + j);
  for (Index j = j0; j < j1; j += 64) SPARSENM_PREFETCH(idx + j);
}
/// Rows run in lockstep by the long-batch kernel (C = 8 vectors): 2 x 8 accumulators give the
/// FMA pipes slack beyond the 4-cycle latency. Measured against 1 (and C = 4 with 4 rows): within
/// noise on this CPU, where the kernel is bound by L1 loads (one vector load per FMA).
constexpr int kLongBatchRows = 2;

/// Features per input block for a tile of `tile` tokens, a multiple of `m` (at least m).
template <class S>
inline Index feature_block(Index tile, int m) {
  const Index kc = kL1Block / (tile * Index(sizeof(S)));
  return std::max<Index>(m, kc / m * m);
}

/// Forces `p` into a register as computed, so the compiler addresses the C vectors of a tile row
/// as [p + c * 64] instead of hoisting C separate base pointers (which exhausts the general
/// registers and spills them: measured 2x slower on g++ 12).
template <class T>
SPARSENM_ALWAYS_INLINE const T* opaque(const T* p) {
#if defined(__GNUC__) || defined(__clang__)
  asm("" : "+r"(p));
#endif
  return p;
}

/// Per-thread scratch that survives between calls (no allocation in the steady state).
template <class T>
inline std::vector<T, Eigen::aligned_allocator<T>>& scratch(std::size_t size, int slot = 0) {
  static thread_local std::vector<T, Eigen::aligned_allocator<T>> buffers[2];
  auto& b = buffers[slot];
  if (b.size() < size) b.resize(size);
  return b;
}

// ---------------------------------------------------------------------------------------------
// SpMM on NMCompressed: Y = X W^T.

/// Rows [ra, rb) (a multiple of R of them) for input groups [g0, g1) of one token tile.
template <class S, int C, int R, int NN>
SPARSENM_ALWAYS_INLINE void spmm_nm_rows(const S* SPARSENM_RESTRICT val,
                                         const std::uint8_t* SPARSENM_RESTRICT idx, Index nnzr,
                                         int n_rt, int m, const S* SPARSENM_RESTRICT xt, Index ra,
                                         Index rb, Index r0, Index g0, Index g1, bool first,
                                         S* SPARSENM_RESTRICT buf) {
  using Ops = VecOps<S>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  constexpr Index T = Index(C) * W;
  const int n = NN > 0 ? NN : n_rt;
  for (Index r = ra; r < rb; r += R) {
    V acc[R][C];
    for (int rr = 0; rr < R; ++rr)
      for (int c = 0; c < C; ++c)
        acc[rr][c] = first ? Ops::zero() : Ops::load(buf + (r + rr - r0) * T + c * W);
    const S* vr = val + r * nnzr;
    const std::uint8_t* ir = idx + r * nnzr;
    // The rows of the lockstep iteration after next (at least kPrefetchRows ahead).
    constexpr Index kAhead = std::max<Index>(kPrefetchRows, 2 * R);
    if (r + kAhead + R <= rb)
      for (int rr = 0; rr < R; ++rr)
        prefetch_entries(vr + (kAhead + rr) * nnzr, ir + (kAhead + rr) * nnzr, g0 * n, g1 * n);
    Index g = g0;
    if (NN > 0 && 8 % (NN > 0 ? NN : 1) == 0) {
      // Eight entries per step with their indices decoded from one 64-bit load (saves a load
      // port slot per entry; the kernel is load-bound).
      constexpr int kN = NN > 0 ? NN : 1;
      const Index mt = Index(m) * T;
      Index j = g0 * kN;
      for (; j + 8 <= g1 * kN; j += 8) {
        std::uint64_t word[R];
        for (int rr = 0; rr < R; ++rr) std::memcpy(&word[rr], ir + rr * nnzr + j, 8);
        const S* xj = xt + (j / kN) * mt;
        for (int e = 0; e < 8; ++e)
          for (int rr = 0; rr < R; ++rr) {
            const V v = Ops::set1(vr[rr * nnzr + j + e]);
            const Index id = Index((word[rr] >> (8 * e)) & 0xFFu);
            const S* xr = opaque(xj + (e / kN) * mt + id * T);
            for (int c = 0; c < C; ++c)
              acc[rr][c] = Ops::fmadd(v, Ops::load(xr + c * W), acc[rr][c]);
          }
      }
      g = j / kN;
    }
    for (; g < g1; ++g) {
      const S* xg = xt + g * m * T;
      for (int s = 0; s < n; ++s) {
        const Index j = g * n + s;
        for (int rr = 0; rr < R; ++rr) {
          const V v = Ops::set1(vr[rr * nnzr + j]);
          const S* xr = opaque(xg + Index(ir[rr * nnzr + j]) * T);
          for (int c = 0; c < C; ++c) acc[rr][c] = Ops::fmadd(v, Ops::load(xr + c * W), acc[rr][c]);
        }
      }
    }
    for (int rr = 0; rr < R; ++rr)
      for (int c = 0; c < C; ++c) Ops::store(buf + (r + rr - r0) * T + c * W, acc[rr][c]);
  }
}

/// Copies the Y^T buffer of rows [r0, r1) and tile q into Y (tokens x rows, leading dim ldo);
/// full W x W blocks go through the in-register transpose where the ISA has one.
template <class S>
inline void store_transposed(const S* buf, Index tile, Index q, Index tokens, Index r0, Index r1,
                             S* out, Index ldo) {
  using Ops = VecOps<S>;
  constexpr Index W = Ops::kWidth;
  const Index t0 = q * tile, t_end = std::min(tokens, (q + 1) * tile);
  Index r_done = r0, t_done = t0;
  if (Ops::kHasTranspose) {
    r_done = r0 + (r1 - r0) / W * W;
    t_done = t0 + (t_end - t0) / W * W;
    for (Index t = t0; t < t_done; t += W)
      for (Index r = r0; r < r_done; r += W)
        Ops::transpose_block(buf + (r - r0) * tile + (t - t0), tile, out + t * ldo + r, ldo);
  }
  for (Index t = t0; t < t_end; ++t) {
    const Index i = t - t0;
    S* o = out + t * ldo;
    for (Index r = (t < t_done ? r_done : r0); r < r1; ++r) o[r] = buf[(r - r0) * tile + i];
  }
}

template <class S, int C, int NN>
void spmm_nm_impl(const NMCompressed<S>& w, const PackedTokens<S>& xp, S* out, Index ldo) {
  constexpr int W = VecOps<S>::kWidth;
  constexpr int R = C >= 8 ? kLongBatchRows : 16 / C;
  constexpr Index T = Index(C) * W;
  const int n = w.nm.n, m = w.nm.m;
  const Index rows = w.rows, groups = w.cols / m, nnzr = w.values.cols();
  const Index gc = feature_block<S>(T, m) / m;
  const Index nb = (groups + gc - 1) / gc;
  const Index tiles = xp.tile_count();
  const Index kRowBlock = row_block(rows, tiles);
  const Index nrb = (rows + kRowBlock - 1) / kRowBlock;
  const S* val = w.values.data();
  const std::uint8_t* idx = w.indices.data();
  parallel_for(Index(0), nrb * tiles, [&](Index item) {
    const Index q = item / nrb, rbk = item % nrb;
    const Index r0 = rbk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
    const Index rmain = r0 + (r1 - r0) / R * R;
    S* buf = scratch<S>(static_cast<std::size_t>(kRowBlock * T)).data();
    const S* xt = xp.tile_data(q);
    if (groups == 0) std::fill(buf, buf + (r1 - r0) * T, S(0));
    for (Index b = 0; b < nb; ++b) {
      const Index g0 = b * gc, g1 = std::min(groups, g0 + gc);
      spmm_nm_rows<S, C, R, NN>(val, idx, nnzr, n, m, xt, r0, rmain, r0, g0, g1, b == 0, buf);
      if (R > 1)
        spmm_nm_rows<S, C, 1, NN>(val, idx, nnzr, n, m, xt, rmain, r1, r0, g0, g1, b == 0, buf);
    }
    store_transposed(buf, T, q, xp.tokens(), r0, r1, out, ldo);
  });
}

template <class S, int NN>
void spmm_nm_dispatch_c(const NMCompressed<S>& w, const PackedTokens<S>& xp, S* out, Index ldo) {
  switch (xp.tile() / VecOps<S>::kWidth) {
    case 1:
      return spmm_nm_impl<S, 1, NN>(w, xp, out, ldo);
    case 2:
      return spmm_nm_impl<S, 2, NN>(w, xp, out, ldo);
    case 4:
      return spmm_nm_impl<S, 4, NN>(w, xp, out, ldo);
    default:
      return spmm_nm_impl<S, 8, NN>(w, xp, out, ldo);
  }
}

#if SPARSENM_HAS_AVX512
/// One token (a matrix-vector product): vectorised over the nonzeros of a row instead of over
/// tokens. 16 (float) or 8 (double) values and in-group indices at a time, their columns
/// (j / n) * m + idx, a gather of x (L1-resident) and one FMA; one reduction per row. The tile
/// kernel would spend one broadcast and one FMA per nonzero for a single useful lane.
template <class S>
void spmv_nm(const NMCompressed<S>& w, const S* x, Index stride, S* y) {
  using Ops = VecOps<S>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  const int n = w.nm.n, m = w.nm.m;
  const Index rows = w.rows, nnzr = w.values.cols();
  auto& base_store = scratch<std::int32_t>(static_cast<std::size_t>(nnzr + W));
  std::int32_t* base = base_store.data();
  for (Index j = 0; j < nnzr; ++j) base[j] = std::int32_t((j / n) * m * stride);
  const Index jmain = nnzr / W * W;
  parallel_for_chunks(rows, 64, [&](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      const S* vr = w.values.data() + r * nnzr;
      const std::uint8_t* ir = w.indices.data() + r * nnzr;
      V acc0 = Ops::zero(), acc1 = Ops::zero();
      Index j = 0;
      for (; j < jmain; j += W) {
        V xv;
        if constexpr (W == 16) {
          const __m512i col = _mm512_add_epi32(
              _mm512_loadu_si512(base + j),
              _mm512_mullo_epi32(
                  _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(ir + j))),
                  _mm512_set1_epi32(std::int32_t(stride))));
          xv = _mm512_i32gather_ps(col, x, sizeof(S));
        } else {
          std::uint64_t bytes;
          std::memcpy(&bytes, ir + j, 8);
          const __m256i col = _mm256_add_epi32(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + j)),
              _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(std::int64_t(bytes))),
                                 _mm256_set1_epi32(std::int32_t(stride))));
          xv = _mm512_i32gather_pd(col, x, sizeof(S));
        }
        if ((j / W) % 2 == 0)
          acc0 = Ops::fmadd(Ops::load(vr + j), xv, acc0);
        else
          acc1 = Ops::fmadd(Ops::load(vr + j), xv, acc1);
      }
      S sum = Ops::hsum(Ops::add(acc0, acc1));
      for (; j < nnzr; ++j) sum += vr[j] * x[Index(base[j]) + Index(ir[j]) * stride];
      y[r] = sum;
    }
  });
}
#endif

/// Y (tokens x rows, leading dimension ldo) = X W^T; X given packed.
template <class S>
void spmm_nm(const NMCompressed<S>& w, const PackedTokens<S>& xp, S* out, Index ldo) {
#if SPARSENM_HAS_AVX512
  if (xp.tokens() == 1) return spmv_nm(w, xp.tile_data(0), xp.tile(), out);
#endif
  switch (w.nm.n) {
    case 1:
      return spmm_nm_dispatch_c<S, 1>(w, xp, out, ldo);
    case 2:
      return spmm_nm_dispatch_c<S, 2>(w, xp, out, ldo);
    case 4:
      return spmm_nm_dispatch_c<S, 4>(w, xp, out, ldo);
    default:
      return spmm_nm_dispatch_c<S, 0>(w, xp, out, ldo);
  }
}

// ---------------------------------------------------------------------------------------------
// SpMM on a CSR matrix (W^T for dX = dY W): rows of varying length, one row at a time.

template <class S, int C>
void spmm_csr_impl(const TransposedWeight<S>& wt, const PackedTokens<S>& xp, S* out, Index ldo) {
  using Ops = VecOps<S>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  constexpr Index T = Index(C) * W;
  const Index rows = wt.rows(), inner = wt.inner();
  const Index kc = feature_block<S>(T, 1);
  const Index nb = std::max<Index>(1, (inner + kc - 1) / kc);
  const Index tiles = xp.tile_count();
  // Rows of varying length: 256-row blocks measured faster here than the larger NM blocks.
  const Index kRowBlock = row_block(rows, tiles, 256, 256);
  const Index nrb = (rows + kRowBlock - 1) / kRowBlock;
  const Index* ptr = wt.row_ptr().data();
  const std::int32_t* col = wt.cols().data();
  const S* val = wt.values().data();
  const Index nnz = ptr[rows];
  parallel_for(Index(0), nrb * tiles, [&](Index item) {
    const Index q = item / nrb, rbk = item % nrb;
    const Index r0 = rbk * kRowBlock, r1 = std::min(rows, r0 + kRowBlock);
    S* buf = scratch<S>(static_cast<std::size_t>(kRowBlock * T)).data();
    auto& cursor_store = scratch<Index>(static_cast<std::size_t>(kRowBlock));
    Index* cursor = cursor_store.data();
    for (Index r = r0; r < r1; ++r) cursor[r - r0] = ptr[r];
    const S* xt = xp.tile_data(q);
    for (Index b = 0; b < nb; ++b) {
      const std::int32_t c_end = std::int32_t(std::min(inner, (b + 1) * kc));
      for (Index r = r0; r < r1; ++r) {
        V acc[C];
        for (int c = 0; c < C; ++c)
          acc[c] = b == 0 ? Ops::zero() : Ops::load(buf + (r - r0) * T + c * W);
        Index e = cursor[r - r0];
        const Index e_row_end = ptr[r + 1];
        if (r + kPrefetchRows < r1) {
          // Entries of the row kPrefetchRows ahead in this block: about kc * nnz / (rows * inner)
          // of them, one or two cache lines of values and of columns (see kPrefetchRows).
          // (Pointers are formed only within the arrays, ep <= nnz.)
          const Index ep = cursor[r + kPrefetchRows - r0];
          const Index ev = std::min(nnz, ep + 64 / Index(sizeof(S))), ec = std::min(nnz, ep + 16);
          SPARSENM_PREFETCH(val + ep);
          SPARSENM_PREFETCH(col + ep);
          SPARSENM_PREFETCH(val + ev);
          SPARSENM_PREFETCH(col + ec);
        }
        for (; e < e_row_end && col[e] < c_end; ++e) {
          const V v = Ops::set1(val[e]);
          const S* xr = opaque(xt + Index(col[e]) * T);
          for (int c = 0; c < C; ++c) acc[c] = Ops::fmadd(v, Ops::load(xr + c * W), acc[c]);
        }
        cursor[r - r0] = e;
        for (int c = 0; c < C; ++c) Ops::store(buf + (r - r0) * T + c * W, acc[c]);
      }
    }
    store_transposed(buf, T, q, xp.tokens(), r0, r1, out, ldo);
  });
}

/// Y (tokens x wt.rows()) = X wt^T with wt in CSR, i.e. dX = dY W for W given by its transpose.
template <class S>
void spmm_csr(const TransposedWeight<S>& wt, const PackedTokens<S>& xp, S* out, Index ldo) {
  switch (xp.tile() / VecOps<S>::kWidth) {
    case 1:
      return spmm_csr_impl<S, 1>(wt, xp, out, ldo);
    case 2:
      return spmm_csr_impl<S, 2>(wt, xp, out, ldo);
    case 4:
      return spmm_csr_impl<S, 4>(wt, xp, out, ldo);
    default:
      return spmm_csr_impl<S, 8>(wt, xp, out, ldo);
  }
}

// ---------------------------------------------------------------------------------------------
// SDDMM: dW_active(o, j) = sum_t dY(t, o) X(t, col(o, j)).

template <class S, int C, int NN>
void sddmm_nm_impl(const NMCompressed<S>& w, const PackedTokens<S>& dyp, const PackedTokens<S>& xp,
                   S* dv) {
  using Ops = VecOps<S>;
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  constexpr Index T = Index(C) * W;
  const int n = NN > 0 ? NN : w.nm.n, m = w.nm.m;
  const Index rows = w.rows, groups = w.cols / m, nnzr = w.values.cols();
  const Index gc = feature_block<S>(T, m) / m;
  const Index nb = (groups + gc - 1) / gc;
  const Index tiles = xp.tile_count();
  const std::uint8_t* idx_all = w.indices.data();
  // Row blocks small enough that both threads get work on narrow layers.
  // Each item sweeps all of X^T once: few, large row blocks keep that traffic low.
  const Index kSddmmRows = row_block(rows, 1, 16, 512);
  const Index nrb = (rows + kSddmmRows - 1) / kSddmmRows;
  parallel_for(Index(0), nrb, [&](Index rbk) {
    const Index r0 = rbk * kSddmmRows, r1 = std::min(rows, r0 + kSddmmRows);
    std::fill(dv + r0 * nnzr, dv + r1 * nnzr, S(0));
    for (Index q = 0; q < tiles; ++q) {
      const S* xt = xp.tile_data(q);
      const S* dyt = dyp.tile_data(q);
      for (Index b = 0; b < nb; ++b) {
        const Index g0 = b * gc, g1 = std::min(groups, g0 + gc);
        const Index j0 = g0 * n, j1 = g1 * n;
        for (Index r = r0; r < r1; ++r) {
          V dy[C];
          for (int c = 0; c < C; ++c) dy[c] = Ops::load(dyt + r * T + c * W);
          const std::uint8_t* ir = idx_all + r * nnzr;
          S* dr = dv + r * nnzr;
          if (r + kPrefetchRows < r1)
            prefetch_entries<S>(dr + kPrefetchRows * nnzr, ir + kPrefetchRows * nnzr, j0, j1);
          Index j = j0;
          Index g = g0;
          int s = 0;
          for (; j + W <= j1; j += W) {
            V acc[W];
            for (int e = 0; e < W; ++e) {
              const S* xr = opaque(xt + (g * m + ir[j + e]) * T);
              V a = Ops::zero();
              for (int c = 0; c < C; ++c) a = Ops::fmadd(dy[c], Ops::load(xr + c * W), a);
              acc[e] = a;
              if (++s == n) {
                s = 0;
                ++g;
              }
            }
            Ops::store(dr + j, Ops::add(Ops::load(dr + j), Ops::reduce_batch(acc)));
          }
          for (; j < j1; ++j) {
            const S* xr = opaque(xt + (g * m + ir[j]) * T);
            V a = Ops::zero();
            for (int c = 0; c < C; ++c) a = Ops::fmadd(dy[c], Ops::load(xr + c * W), a);
            dr[j] += Ops::hsum(a);
            if (++s == n) {
              s = 0;
              ++g;
            }
          }
        }
      }
    }
  });
}

template <class S, int NN>
void sddmm_nm_dispatch_c(const NMCompressed<S>& w, const PackedTokens<S>& dyp,
                         const PackedTokens<S>& xp, S* dv) {
  switch (xp.tile() / VecOps<S>::kWidth) {
    case 1:
      return sddmm_nm_impl<S, 1, NN>(w, dyp, xp, dv);
    case 2:
      return sddmm_nm_impl<S, 2, NN>(w, dyp, xp, dv);
    case 4:
      return sddmm_nm_impl<S, 4, NN>(w, dyp, xp, dv);
    default:
      return sddmm_nm_impl<S, 8, NN>(w, dyp, xp, dv);
  }
}

/// dv (rows x nnz per row, contiguous) = active entries of dY^T X; dY and X packed with equal
/// token counts (hence equal tiles).
template <class S>
void sddmm_nm(const NMCompressed<S>& w, const PackedTokens<S>& dyp, const PackedTokens<S>& xp,
              S* dv) {
  switch (w.nm.n) {
    case 1:
      return sddmm_nm_dispatch_c<S, 1>(w, dyp, xp, dv);
    case 2:
      return sddmm_nm_dispatch_c<S, 2>(w, dyp, xp, dv);
    case 4:
      return sddmm_nm_dispatch_c<S, 4>(w, dyp, xp, dv);
    default:
      return sddmm_nm_dispatch_c<S, 0>(w, dyp, xp, dv);
  }
}

}  // namespace SPARSENM_ISA_NAMESPACE
}  // namespace detail
}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_DETAIL_SPMM_TILED_HPP
