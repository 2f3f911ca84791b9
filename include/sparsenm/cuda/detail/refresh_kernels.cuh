// SPDX-License-Identifier: Apache-2.0
// Device kernels of the transposable 2:4 topology refresh (host API: cuda/refresh24.cuh). Each
// kernel is one step of TopologyRefresher::refresh (topology/refresh.hpp; CHTs24 Alg. 1) on the
// compressed layout of NMCompressed<float> with NM{2,4}: slot s = (row i, k) with k in [0, cols/2),
// group g = k / 2, in-group index idx[s], dense linear index i * cols + 4 g + idx[s]. Within a
// group the two slots hold ascending indices, so slot order is dense linear order (the removal's
// tie rule "lower linear index first" is "lower slot first").
#ifndef SPARSENM_CUDA_DETAIL_REFRESH_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_REFRESH_KERNELS_CUH

#include <cstdint>

#include <cuda_runtime.h>

#include "../../core/philox.hpp"
#include "../../sampling/detail/frechet_math.hpp"
#include "projection_kernels.cuh"
#include "sampling_kernels.cuh"

namespace sparsenm {
namespace cuda {
namespace detail {

/// Counters of one device refresh (downloaded once at its end). "Units" are the 4x4 tiles
/// (transposable) or the 1x4 row groups (row-wise).
struct Refresh24Counts {
  unsigned long long bad_index;      ///< slots whose indices are not ascending in [0, 4)
  unsigned long long bad_tile;       ///< 4x4 tiles whose columns do not hold exactly 2
  unsigned long long bad_value;      ///< non-finite values
  unsigned long long refreshed;      ///< units that lost a link (refreshed_groups)
  unsigned long long changed_tiles;  ///< units whose pattern changed (changed_groups)
  unsigned long long changed;        ///< entries whose mask bit changed (changed_count)
  unsigned long long regrown;        ///< activated entries that were inactive after removal
  unsigned long long revived;        ///< removed and regrown in the same refresh
  unsigned long long mpr_excluded;   ///< row-wise: refreshed groups whose old pattern MPR excluded
  unsigned int score_max_bits;       ///< bits of max(0, max score): non-negative floats order
                                     ///< as unsigned integers
};

/// The order-preserving key of sparsenm::detail::order_key<float> (select_removal.hpp): -0 and +0
/// get the same key.
__device__ __forceinline__ std::uint32_t refresh_order_key(float v) {
  if (v == 0.f) v = 0.f;
  const std::uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/// *dst += the sum of v over the warp (one atomic per warp; integer counts, so exact).
__device__ __forceinline__ void warp_add(unsigned long long* dst, unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0 && v) atomicAdd(dst, v);
}

/// Dense column of slot s (row-major slots, nnzr = cols / 2 per row).
__device__ __forceinline__ std::size_t slot_column(std::size_t k, std::uint8_t idx) {
  return (k >> 1) * 4 + idx;
}

/// Step 0 (checks) and 1 (removal scores): key[s] = order_key(Fréchet score or |w|) with the CPU's
/// noise (U = rng.uniform_float(dense index), frechet_math.hpp's float pipeline), slot[s] = s.
/// Flags non-finite values and malformed groups.
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void removal_keys_kernel(const float* __restrict__ values,
                                    const std::uint8_t* __restrict__ idx, std::size_t rows,
                                    std::size_t cols, bool soft, float inv_t,
                                    sparsenm::detail::FrechetConstants c, Philox rng,
                                    std::uint32_t* __restrict__ key,
                                    std::uint32_t* __restrict__ slot,
                                    Refresh24Counts* __restrict__ counts) {
  const std::size_t nnzr = cols / 2, n = rows * nnzr;
  bool bad = false, bad_idx = false;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < n;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t i = s / nnzr, k = s % nnzr;
    const std::uint8_t ix = idx[s];
    bad_idx |= ix > 3 || ((k & 1) ? idx[s - 1] >= ix : false);
    const std::size_t lin = i * cols + slot_column(k, ix & 3u);
    const float w = values[s];
    float score;
    if (soft) {
      score = frechet_one<float, true>(w, rng.bits(std::uint64_t(lin)), inv_t, c, bad);
    } else {
      bad |= !(w - w == 0.f);
      score = fabsf(w);
    }
    key[s] = refresh_order_key(score);
    slot[s] = std::uint32_t(s);
  }
  if (bad) atomicAdd(&counts->bad_value, 1ull);
  if (bad_idx) atomicAdd(&counts->bad_index, 1ull);
}

/// lost[sorted_slot[q]] = 1 for the `count` smallest (key, slot) pairs (a stable radix sort of
/// the keys with the slots as values lists them first).
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void mark_removed_kernel(const std::uint32_t* __restrict__ sorted_slot,
                                    std::size_t count, std::uint8_t* __restrict__ lost) {
  for (std::size_t q = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; q < count;
       q += std::size_t(gridDim.x) * blockDim.x)
    lost[sorted_slot[q]] = 1;
}

/// Index of the refresh unit holding dense entry (i, j): the 4x4 tile (transposable) or the 1x4
/// row group (row-wise), row-major.
__device__ __forceinline__ std::size_t unit_of(std::size_t i, std::size_t j, std::size_t cols,
                                               bool rowwise) {
  return (rowwise ? i : i / 4) * (cols / 4) + j / 4;
}

/// The dense mask after removal (`after`, zeroed before) and the per-unit flags: refreshed[u] = 1
/// when tile / group u lost a link (step 2's "groups/tiles that lost a link").
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void after_mask_kernel(const std::uint8_t* __restrict__ idx,
                                  const std::uint8_t* __restrict__ lost, std::size_t rows,
                                  std::size_t cols, bool rowwise, std::uint8_t* __restrict__ after,
                                  std::uint8_t* __restrict__ refreshed) {
  const std::size_t nnzr = cols / 2, n = rows * nnzr;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < n;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t i = s / nnzr, k = s % nnzr;
    if (lost[s])
      refreshed[unit_of(i, (k >> 1) * 4, cols, rowwise)] = 1;
    else
      after[i * cols + slot_column(k, idx[s] & 3u)] = 1;
  }
}

/// The before-mask of tile t as 16 bits (bit 4r + c) from the compressed indices.
__device__ __forceinline__ unsigned tile_bits(const std::uint8_t* __restrict__ idx,
                                              std::size_t nnzr, std::size_t tr, std::size_t tc) {
  unsigned bits = 0;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const std::size_t s = (tr * 4 + r) * nnzr + tc * 2;
    bits |= ((1u << (idx[s] & 3u)) | (1u << (idx[s + 1] & 3u))) << (4 * r);
  }
  return bits;
}

/// Each 4x4 tile of the mask has exactly 2 per column (the rows are 2:4 by construction of the
/// slots): the transposable 2:4 legality TopologyRefresher checks (is_legal) before a refresh.
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void tile_check_kernel(const std::uint8_t* __restrict__ idx, std::size_t rows,
                                  std::size_t cols, Refresh24Counts* __restrict__ counts) {
  const std::size_t tpr = cols / 4, tiles = (rows / 4) * tpr, nnzr = cols / 2;
  bool bad = false;
  for (std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; t < tiles;
       t += std::size_t(gridDim.x) * blockDim.x) {
    const unsigned b = tile_bits(idx, nnzr, t / tpr, t % tpr);
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const unsigned col = (b >> c) & 0x1111u;
      bad |= __popc(col) != 2;
    }
#pragma unroll
    for (int r = 0; r < 4; ++r) bad |= __popc((b >> (4 * r)) & 0xFu) != 2;
  }
  if (bad) atomicAdd(&counts->bad_tile, 1ull);
}

/// Step 2, soft regrowth: in refreshed tiles, every entry inactive after removal gets
/// S(double(s) * U), U = rng.uniform(dense index) (refresh.hpp's arithmetic: one product in
/// double, one rounding to float); then the maximum score (for Γ, step 3) over the whole matrix.
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void perturb_and_max_kernel(float* __restrict__ scores,
                                       const std::uint8_t* __restrict__ after,
                                       const std::uint8_t* __restrict__ refreshed, std::size_t rows,
                                       std::size_t cols, bool rowwise, bool soft, Philox rng,
                                       Refresh24Counts* __restrict__ counts) {
  const std::size_t n = rows * cols;
  float mx = 0.f;
  for (std::size_t k = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; k < n;
       k += std::size_t(gridDim.x) * blockDim.x) {
    float v = scores[k];
    const std::size_t i = k / cols, j = k % cols;
    if (soft && !after[k] && refreshed[unit_of(i, j, cols, rowwise)]) {
      v = float(double(v) * Philox::to_uniform(rng.bits(std::uint64_t(k))));
      scores[k] = v;
    }
    mx = v > mx ? v : mx;  // NaN-free: CH scores and U are finite and >= 0
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_down_sync(0xffffffffu, mx, o);
    mx = other > mx ? other : mx;
  }
  if ((threadIdx.x & 31) == 0 && mx > 0.f) atomicMax(&counts->score_max_bits, __float_as_uint(mx));
}

/// Steps 3-5 per 4x4 tile: refreshed tiles take the best legal pattern of the boosted scores
/// Ŝ = S̃ + Γ [survivor] in double (best_tile4: the CPU's project_transposable search, same sums,
/// same tie rule), the others keep theirs; then each of the tile's four row groups moves to its
/// new pattern: survivors keep their value and state (source = old slot), removed, regrown and
/// revived entries start at 0 (source = -1). Writes the new values / indices / sources of the
/// tile's eight slots into new_* (separate buffers from values / idx) and counts.
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void project_move_kernel(
    const float* __restrict__ scores, const std::uint8_t* __restrict__ after,
    const std::uint8_t* __restrict__ refreshed, double gamma, const float* __restrict__ values,
    const std::uint8_t* __restrict__ idx, std::size_t rows, std::size_t cols,
    float* __restrict__ new_values, std::uint8_t* __restrict__ new_idx,
    std::int8_t* __restrict__ source, Refresh24Counts* __restrict__ counts) {
  const std::size_t tpr = cols / 4, tiles = (rows / 4) * tpr, nnzr = cols / 2;
  unsigned long long n_ref = 0, n_ct = 0, n_ch = 0, n_rg = 0, n_rv = 0;
  for (std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; t < tiles;
       t += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t tr = t / tpr, tc = t % tpr;
    const unsigned before = tile_bits(idx, nnzr, tr, tc);
    unsigned surv = 0;
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        surv |= unsigned(after[(tr * 4 + r) * cols + tc * 4 + c] != 0) << (4 * r + c);
    unsigned next = before;
    if (refreshed[t]) {
      ++n_ref;
      double x[16];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          x[r * 4 + c] = ((surv >> (4 * r + c)) & 1u)
                             ? gamma
                             : double(scores[(tr * 4 + r) * cols + tc * 4 + c]);
      next = best_tile4<2>(x);
      n_ct += next != before;
    }
    const unsigned lost = ~surv & 0xFFFFu;
    n_ch += __popc(before ^ next);
    n_rg += __popc(lost & next);
    n_rv += __popc(lost & next & before);
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const std::size_t s0 = (tr * 4 + r) * nnzr + tc * 2;
      const std::uint8_t o0 = idx[s0] & 3u;  // the other old slot holds the other survivor
      const float v0 = values[s0], v1 = values[s0 + 1];
      const unsigned row = (next >> (4 * r)) & 0xFu, sv = (surv >> (4 * r)) & 0xFu;
      int q = 0;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        if (!((row >> c) & 1u) || q > 1) continue;
        const bool keep = (sv >> c) & 1u;  // a survivor was active before: o0 or o1 is c
        const int from = keep ? (o0 == c ? 0 : 1) : -1;
        new_idx[s0 + q] = std::uint8_t(c);
        new_values[s0 + q] = from == 0 ? v0 : (from == 1 ? v1 : 0.f);
        source[s0 + q] = std::int8_t(from);
        ++q;
      }
    }
  }
  warp_add(&counts->refreshed, n_ref);
  warp_add(&counts->changed_tiles, n_ct);
  warp_add(&counts->changed, n_ch);
  warp_add(&counts->regrown, n_rg);
  warp_add(&counts->revived, n_rv);
}

/// Steps 3-5 per row group (row-wise layout; refresh.hpp project_rowwise_groups): a group that
/// lost a link keeps its survivors (Γ → ∞) and fills the free slots with the best non-survivors
/// by score, ties to the lower index (the CPU's stable sort); with rho > 0, MPR (CHTsNM App.
/// E.3): when that gives back the old pattern and another choice exists, with probability rho
/// (U = mpr.uniform(row-major group index)) the weakest chosen slot swaps for the strongest
/// unchosen one. Then the move to the new pattern as in project_move_kernel.
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void rowwise_move_kernel(
    const float* __restrict__ scores, const std::uint8_t* __restrict__ lost, double rho, Philox mpr,
    const float* __restrict__ values, const std::uint8_t* __restrict__ idx, std::size_t rows,
    std::size_t cols, float* __restrict__ new_values, std::uint8_t* __restrict__ new_idx,
    std::int8_t* __restrict__ source, Refresh24Counts* __restrict__ counts) {
  const std::size_t gpr = cols / 4, groups = rows * gpr;
  unsigned long long n_ref = 0, n_cg = 0, n_ex = 0, n_ch = 0, n_rg = 0, n_rv = 0;
  for (std::size_t g = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; g < groups;
       g += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t s0 = 2 * g, i = g / gpr, j0 = (g % gpr) * 4;
    const unsigned o0 = idx[s0] & 3u, o1 = idx[s0 + 1] & 3u;
    const unsigned old = (1u << o0) | (1u << o1);
    const unsigned surv = (lost[s0] ? 0u : 1u << o0) | (lost[s0 + 1] ? 0u : 1u << o1);
    unsigned pat = old;
    if (surv != old) {
      ++n_ref;
      // Non-survivors in descending score order, ties to the lower index (insertion sort).
      int cand[4] = {0, 0, 0, 0}, nc = 0;
      float sc[4] = {0.f, 0.f, 0.f, 0.f};
      for (int q = 0; q < 4; ++q) {
        if ((surv >> q) & 1u) continue;
        const float v = scores[i * cols + j0 + q];
        int p = nc++;
        while (p > 0 && v > sc[p - 1]) {
          sc[p] = sc[p - 1];
          cand[p] = cand[p - 1];
          --p;
        }
        sc[p] = v;
        cand[p] = q;
      }
      const int need = 2 - __popc(surv);
      pat = surv;
      for (int t = 0; t < need; ++t) pat |= 1u << cand[t];
      if (rho > 0 && pat == old && need < nc && mpr.uniform(std::uint64_t(g)) < rho) {
        ++n_ex;
        pat = (pat & ~(1u << cand[need - 1])) | (1u << cand[need]);
      }
      n_cg += pat != old;
    }
    const unsigned gone = ~surv & 0xFu;
    n_ch += __popc(old ^ pat);
    n_rg += __popc(gone & pat);
    n_rv += __popc(gone & pat & old);
    const float v0 = values[s0], v1 = values[s0 + 1];
    int q = 0;
    for (unsigned c = 0; c < 4; ++c) {
      if (!((pat >> c) & 1u) || q > 1) continue;
      const bool keep = (surv >> c) & 1u;
      const int from = keep ? (o0 == c ? 0 : 1) : -1;
      new_idx[s0 + q] = std::uint8_t(c);
      new_values[s0 + q] = from == 0 ? v0 : (from == 1 ? v1 : 0.f);
      source[s0 + q] = std::int8_t(from);
      ++q;
    }
  }
  warp_add(&counts->refreshed, n_ref);
  warp_add(&counts->changed_tiles, n_cg);
  warp_add(&counts->mpr_excluded, n_ex);
  warp_add(&counts->changed, n_ch);
  warp_add(&counts->regrown, n_rg);
  warp_add(&counts->revived, n_rv);
}

/// No removal: the same topology, every slot its own source.
template <int kTu = 0>  // a template, so that every TU including this header may define it
__global__ void identity_source_kernel(std::size_t n, std::int8_t* __restrict__ source) {
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < n;
       s += std::size_t(gridDim.x) * blockDim.x)
    source[s] = std::int8_t(s & 1);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_REFRESH_KERNELS_CUH
