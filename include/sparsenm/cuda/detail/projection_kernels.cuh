// SPDX-License-Identifier: Apache-2.0
// Device kernels of the mask projections (host API: cuda/projection.cuh).
//  - Row-wise: one thread per group, the CPU rank rule (mask/detail/rowwise_kernels.hpp):
//    keep i iff #{j : s_j > s_i or (s_j == s_i and j < i)} < n. m = 4 / 8 load 16-byte vectors.
//  - Transposable 4x4 (CHTs24 Sec. 3.1, eq. (2)): one thread per tile; the best tile of the
//    24 / 90 / 24-pattern library (n = 1 / 2 / 3) by the CPU's meet-in-the-middle search, unrolled
//    at compile time (below).
#ifndef SPARSENM_CUDA_DETAIL_PROJECTION_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_PROJECTION_KERNELS_CUH

#include <cstdint>

#include <cuda_runtime.h>

#include "../../mask/detail/transposable_table.hpp"

namespace sparsenm {
namespace cuda {
namespace detail {

template <class T>
__device__ __forceinline__ bool is_nan_dev(T x) {
  return x != x;
}

/// Rank rule on one group held in registers (compile-time M, N).
template <int M, int N, class T>
__device__ __forceinline__ void rank_group(const T (&s)[M], std::uint8_t (&out)[M], bool& nan) {
#pragma unroll
  for (int i = 0; i < M; ++i) {
    nan |= is_nan_dev(s[i]);
    int rank = 0;
#pragma unroll
    for (int j = 0; j < M; ++j) rank += (s[j] > s[i]) || (s[j] == s[i] && j < i);
    out[i] = std::uint8_t(rank < N);
  }
}

/// Generic row-wise kernel: runtime m <= 32, one thread per group (scores are contiguous, rows are
/// whole groups since cols % m == 0, so the matrix is one run of groups).
template <class T>
__global__ void rowwise_generic_kernel(const T* __restrict__ s, std::size_t groups, int m, int n,
                                       std::uint8_t* __restrict__ out, int* __restrict__ nan_flag) {
  bool nan = false;
  for (std::size_t g = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; g < groups;
       g += std::size_t(gridDim.x) * blockDim.x) {
    const T* p = s + g * m;
    for (int i = 0; i < m; ++i) {
      const T si = p[i];
      nan |= is_nan_dev(si);
      int rank = 0;
      for (int j = 0; j < m; ++j) rank += (p[j] > si) || (p[j] == si && j < i);
      out[g * m + i] = std::uint8_t(rank < n);
    }
  }
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

/// m = 4, float: one float4 load and one 4-byte store per group.
template <int N>
__global__ void rowwise4_float_kernel(const float4* __restrict__ s, std::size_t groups,
                                      std::uint32_t* __restrict__ out, int* __restrict__ nan_flag) {
  bool nan = false;
  for (std::size_t g = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; g < groups;
       g += std::size_t(gridDim.x) * blockDim.x) {
    const float4 v = s[g];
    const float x[4] = {v.x, v.y, v.z, v.w};
    std::uint8_t o[4];
    rank_group<4, N>(x, o, nan);
    out[g] = std::uint32_t(o[0]) | (std::uint32_t(o[1]) << 8) | (std::uint32_t(o[2]) << 16) |
             (std::uint32_t(o[3]) << 24);
  }
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

/// m = 8, float: two float4 loads and one 8-byte store per group.
template <int N>
__global__ void rowwise8_float_kernel(const float4* __restrict__ s, std::size_t groups,
                                      uint2* __restrict__ out, int* __restrict__ nan_flag) {
  bool nan = false;
  for (std::size_t g = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; g < groups;
       g += std::size_t(gridDim.x) * blockDim.x) {
    const float4 a = s[2 * g], b = s[2 * g + 1];
    const float x[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    std::uint8_t o[8];
    rank_group<8, N>(x, o, nan);
    uint2 w;
    w.x = std::uint32_t(o[0]) | (std::uint32_t(o[1]) << 8) | (std::uint32_t(o[2]) << 16) |
          (std::uint32_t(o[3]) << 24);
    w.y = std::uint32_t(o[4]) | (std::uint32_t(o[5]) << 8) | (std::uint32_t(o[6]) << 16) |
          (std::uint32_t(o[7]) << 24);
    out[g] = w;
  }
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

// ---------------------------------------------------------------------------------------------
// Transposable 4x4.

// The CPU's exact meet-in-the-middle search (mask/detail/transposable_table.hpp: row sums, best
// top half and best bottom half per column-count key, then the best key; strict > so the first
// maximum in plan order wins), replayed with compile-time indices: every index below is a template
// argument or a constexpr read of the CPU's own plan, so the 16 scores and 24 row sums stay in
// registers (no stack frame) and the summation order and tie rule are the CPU's, bit for bit.
using ::sparsenm::detail::make_tile4_plan;
using ::sparsenm::detail::Tile4Plan;

template <int N>
struct DevTile4Plan {
  static constexpr Tile4Plan value = make_tile4_plan(N);
};

template <class T, int N, int R, int CH>
__device__ __forceinline__ T tile4_row_sum(const T (&x)[16]) {
  constexpr int ch = DevTile4Plan<N>::value.choice[CH];
  T acc{};
  bool first = true;
#pragma unroll
  for (int c = 0; c < 4; ++c)
    if ((ch >> c) & 1) {
      acc = first ? x[R * 4 + c] : acc + x[R * 4 + c];
      first = false;
    }
  return acc;
}

template <class T, int N, bool Top, int I>
__device__ __forceinline__ T tile4_half_sum(const T (&x)[16]) {
  constexpr Tile4Plan P = make_tile4_plan(N);
  constexpr int a = Top ? P.top_a[I] : P.bot_a[I];
  constexpr int b = Top ? P.top_b[I] : P.bot_b[I];
  return tile4_row_sum < T, N, Top ? 0 : 2, a > (x) + tile4_row_sum < T, N, Top ? 1 : 3, b > (x);
}

template <int N, bool Top, int I>
__host__ __device__ constexpr unsigned tile4_half_bits() {
  constexpr Tile4Plan P = make_tile4_plan(N);
  constexpr int a = Top ? P.top_a[I] : P.bot_a[I];
  constexpr int b = Top ? P.top_b[I] : P.bot_b[I];
  return unsigned(P.choice[a] | (P.choice[b] << 4)) << (Top ? 0 : 8);
}

template <class T, int N, bool Top, int I, int E>
__device__ __forceinline__ void tile4_half_scan(const T (&x)[16], T& best, unsigned& bits) {
  if constexpr (I < E) {
    const T v = tile4_half_sum<T, N, Top, I>(x);
    const bool m = v > best;
    best = m ? v : best;
    bits = m ? tile4_half_bits<N, Top, I>() : bits;
    tile4_half_scan<T, N, Top, I + 1, E>(x, best, bits);
  }
}

template <class T, int N, int K>
__device__ __forceinline__ void tile4_key_scan(const T (&x)[16], T& best, unsigned& bits) {
  constexpr Tile4Plan P = make_tile4_plan(N);
  if constexpr (K < P.nkeys) {
    constexpr int tb = P.top_begin[K], te = P.top_end[K], bb = P.bot_begin[K], be = P.bot_end[K];
    T bt = tile4_half_sum<T, N, true, tb>(x);
    unsigned tp = tile4_half_bits<N, true, tb>();
    tile4_half_scan<T, N, true, tb + 1, te>(x, bt, tp);
    T bo = tile4_half_sum<T, N, false, bb>(x);
    unsigned bp = tile4_half_bits<N, false, bb>();
    tile4_half_scan<T, N, false, bb + 1, be>(x, bo, bp);
    const T tot = bt + bo;
    if constexpr (K == 0) {
      best = tot;
      bits = tp | bp;
    } else {
      const bool m = tot > best;
      best = m ? tot : best;
      bits = m ? (tp | bp) : bits;
    }
    tile4_key_scan<T, N, K + 1>(x, best, bits);
  }
}

/// The best legal 4x4 tile (16-bit pattern, bit 4r + c) for scores x (row-major in the tile).
template <int N, class T>
__device__ __forceinline__ unsigned best_tile4(const T (&x)[16]) {
  if constexpr (N == 4) {
    return 0xFFFFu;
  } else {
    T best{};
    unsigned bits = 0;
    tile4_key_scan<T, N, 0>(x, best, bits);
    return bits;
  }
}

template <class T>
__device__ __forceinline__ bool not_finite_dev(T x) {
  return !(x - x == T(0));  // NaN and +-Inf give NaN
}

/// One thread per 4x4 tile of a row-major (rows x cols) score matrix, float: four float4 loads and
/// four 4-byte stores per tile; adjacent threads take adjacent tiles of a tile-row (coalesced).
template <int N>
__global__ void transposable4_float_kernel(const float* __restrict__ s, std::size_t rows,
                                           std::size_t cols, std::uint8_t* __restrict__ out,
                                           int* __restrict__ nan_flag) {
  const std::size_t tiles_c = cols / 4, tiles = (rows / 4) * tiles_c;
  bool nan = false;
  for (std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; t < tiles;
       t += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t tr = t / tiles_c, tc = t % tiles_c;
    float x[16];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const float4 v = *reinterpret_cast<const float4*>(s + (tr * 4 + r) * cols + tc * 4);
      x[r * 4 + 0] = v.x;
      x[r * 4 + 1] = v.y;
      x[r * 4 + 2] = v.z;
      x[r * 4 + 3] = v.w;
    }
#pragma unroll
    for (int k = 0; k < 16; ++k) nan |= not_finite_dev(x[k]);
    const unsigned bits = best_tile4<N>(x);
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const unsigned row = (bits >> (4 * r)) & 0xFu;
      const std::uint32_t w = (row & 1u) | (((row >> 1) & 1u) << 8) | (((row >> 2) & 1u) << 16) |
                              (((row >> 3) & 1u) << 24);
      *reinterpret_cast<std::uint32_t*>(out + (tr * 4 + r) * cols + tc * 4) = w;
    }
  }
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

/// Generic-scalar (double) transposable 4x4 kernel: element loads.
template <int N, class T>
__global__ void transposable4_kernel(const T* __restrict__ s, std::size_t rows, std::size_t cols,
                                     std::uint8_t* __restrict__ out, int* __restrict__ nan_flag) {
  const std::size_t tiles_c = cols / 4, tiles = (rows / 4) * tiles_c;
  bool nan = false;
  for (std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; t < tiles;
       t += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t tr = t / tiles_c, tc = t % tiles_c;
    T x[16];
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        x[r * 4 + c] = s[(tr * 4 + r) * cols + tc * 4 + c];
        nan |= not_finite_dev(x[r * 4 + c]);
      }
    const unsigned bits = best_tile4<N>(x);
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        out[(tr * 4 + r) * cols + tc * 4 + c] = std::uint8_t((bits >> (4 * r + c)) & 1u);
  }
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_PROJECTION_KERNELS_CUH
