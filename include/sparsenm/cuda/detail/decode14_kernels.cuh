// SPDX-License-Identifier: Apache-2.0
// Native 1:4 sparse x dense kernel for memory-bound decode shapes (1-16 tokens). Host API:
// cuda/decode14.cuh. Storage of a row-major weight W (out x in) keeping 1 of every 4 entries; the
// G = in/4 groups of a row are padded to Gp = a multiple of 256 (zero value, index 0) and laid out
// in super-chunks of 256 groups, each 32 16-byte words (one per lane):
//   values  bf16: word (j, l) of row r holds groups j*256 + 32*g + l, g = 0..7
//   idx     u16 : the eight 2-bit in-group indices of that word, group g at bits 2g
// so a row costs in/2 + in/16 bytes instead of 2 in (3.56x fewer bytes than dense bf16).
// Why this interleave: at inner step g the 32 lanes of a warp handle 32 CONSECUTIVE groups, so
// their activation gathers xs[t][4 * group + idx] fall on distinct shared-memory banks (at most
// 2-way); with 8 consecutive groups per lane (the first version) lanes hit the same bank 16- to
// 32-way. One warp per output row (a persistent grid walks the rows); the T activation rows are
// staged in shared memory (token-major, zero-padded to 4 Gp columns) with 16-byte loads. fp32
// accumulation, warp-shuffle reduction, bf16 output.
#ifndef SPARSENM_CUDA_DETAIL_DECODE14_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_DECODE14_KERNELS_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace sparsenm {
namespace cuda {
namespace detail {

constexpr int kDecodeWarps = 8;          // warps per block
constexpr int kDecodeSuperGroups = 256;  // groups per super-chunk (32 lanes x 8)

/// y (T x out, row-major bf16) = x (T x in, row-major bf16) W^T with W in the format above.
/// `gp` = padded groups per row (multiple of 256). Dynamic shared memory: T * 4 gp * 2 bytes.
template <int T>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    decode14_kernel(const uint4* __restrict__ values, const std::uint16_t* __restrict__ idx,
                    const __nv_bfloat16* __restrict__ x, int out, int in, int gp,
                    __nv_bfloat16* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  const int cols_p = 4 * gp;  // padded row length of xs
  const int lane = threadIdx.x & 31;
  const int warp = blockIdx.x * kDecodeWarps + (threadIdx.x >> 5);
  const int nwarps = gridDim.x * kDecodeWarps;
  const int words = gp / 8;  // 16-byte words per row
  if (warp < out) {
    // Ask L2 for this warp's first row before staging x: its DRAM latency then overlaps the
    // staging and the barrier instead of following them (no registers held, unlike a prefetch
    // into registers, which lowered occupancy).
    const char* vr = reinterpret_cast<const char*>(values + std::size_t(warp) * words);
    for (int l = lane; l < words / 8; l += 32)
      asm volatile("prefetch.global.L2 [%0];" ::"l"(vr + 128 * l));
    const std::uint16_t* ir = idx + std::size_t(warp) * words;
    for (int l = lane; l < words / 64; l += 32)  // 64 indices = one 128-byte line
      asm volatile("prefetch.global.L2 [%0];" ::"l"(ir + 64 * l));
  }
  {
    // Stage x: 16-byte loads, four in flight per thread before the stores.
    const int vec_in = in / 8, vec_p = cols_p / 8, nvec = T * vec_p;
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    uint4* sv = reinterpret_cast<uint4*>(xs);
    constexpr int kBatch = 4;
    for (int v0 = threadIdx.x; v0 < nvec; v0 += kBatch * blockDim.x) {
      uint4 u[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int v = v0 + b * blockDim.x;
        const int t = v / vec_p, k = v - t * vec_p;
        u[b] = (v < nvec && k < vec_in) ? __ldg(xv + t * vec_in + k) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int v = v0 + b * blockDim.x;
        if (v < nvec) sv[v] = u[b];
      }
    }
  }
  __syncthreads();
  const int supers = gp / kDecodeSuperGroups;
  constexpr int kUnroll = 4;  // super-chunks loaded before use (in = 4096: the whole row)
  for (int row = warp; row < out; row += nwarps) {
    const uint4* vr = values + std::size_t(row) * words;
    const std::uint16_t* ir = idx + std::size_t(row) * words;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; ++t) acc[t] = 0.f;
    for (int j0 = 0; j0 < supers; j0 += kUnroll) {
      uint4 vv[kUnroll];
      unsigned ii[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = j0 + u;
        if (j < supers) {
          vv[u] = __ldg(vr + j * 32 + lane);
          ii[u] = __ldg(ir + j * 32 + lane);
        } else {
          vv[u] = make_uint4(0, 0, 0, 0);
          ii[u] = 0;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = j0 + u;
        if (j >= supers) break;
        const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(&vv[u]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 w = __bfloat1622float2(w2[e]);
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int g = 2 * e + h;
            const int col =
                4 * (j * kDecodeSuperGroups + 32 * g + lane) + int((ii[u] >> (2 * g)) & 3u);
            const float wv = h ? w.y : w.x;
#pragma unroll
            for (int t = 0; t < T; ++t)
              acc[t] = fmaf(wv, __bfloat162float(xs[t * cols_p + col]), acc[t]);
          }
        }
      }
    }
#pragma unroll
    for (int t = 0; t < T; ++t) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
    }
    if (lane < T) {
      float v = acc[0];
#pragma unroll
      for (int t = 1; t < T; ++t)
        if (lane == t) v = acc[t];
      y[std::size_t(lane) * out + row] = __float2bfloat16(v);
    }
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_DECODE14_KERNELS_CUH
