// SPDX-License-Identifier: Apache-2.0
// Native 1:4 sparse x dense kernel for memory-bound decode shapes (1-16 tokens). Host API:
// cuda/decode14.cuh. Storage (row-major weight W, out x in, 1 of every 4 kept):
//   values  bf16 [out][in/4]          the kept value of each group of 4
//   idx     u16  [out][in/32]         eight 2-bit in-group indices, group g at bits 2 (g % 8)
// so a row costs in/2 + in/16 bytes instead of 2 in (3.56x fewer bytes than dense bf16).
// One warp per output row (a persistent grid walks the rows); each lane reads 16 bytes of values
// (8 groups) and their 2-byte index word per chunk, with all chunks of a row loaded before use.
// The T activation rows sit in shared memory transposed (xs[k][t], bf16), so one column gathers
// all T tokens with one or two vector loads. Accumulation in fp32, warp-shuffle reduction.
#ifndef SPARSENM_CUDA_DETAIL_DECODE14_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_DECODE14_KERNELS_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace sparsenm {
namespace cuda {
namespace detail {

constexpr int kDecodeWarps = 8;  // warps per block

/// Loads the T tokens of column k from the transposed shared copy into fp32 registers.
template <int T>
__device__ __forceinline__ void load_tokens(const __nv_bfloat16* xs, int k, float (&v)[T]) {
  const __nv_bfloat16* p = xs + std::size_t(k) * T;
  if constexpr (T % 8 == 0) {
#pragma unroll
    for (int q = 0; q < T / 8; ++q) {
      const uint4 u = reinterpret_cast<const uint4*>(p)[q];
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __bfloat1622float2(h[e]);
        v[q * 8 + 2 * e] = f.x;
        v[q * 8 + 2 * e + 1] = f.y;
      }
    }
  } else if constexpr (T % 2 == 0) {
#pragma unroll
    for (int q = 0; q < T / 2; ++q) {
      const float2 f = __bfloat1622float2(reinterpret_cast<const __nv_bfloat162*>(p)[q]);
      v[2 * q] = f.x;
      v[2 * q + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int t = 0; t < T; ++t) v[t] = __bfloat162float(p[t]);
  }
}

/// y (T x out, row-major bf16) = x (T x in, row-major bf16) W^T with W in the 1:4 format above.
/// Requires in % 32 == 0. Dynamic shared memory: in * T * 2 bytes.
template <int T>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    decode14_kernel(const uint4* __restrict__ values, const std::uint16_t* __restrict__ idx,
                    const __nv_bfloat16* __restrict__ x, int out, int in,
                    __nv_bfloat16* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  // Stage x in shared memory, transposed: xs[k * T + t] = x[t * in + k]. 16-byte loads, four in
  // flight per thread before the first store (a one-load-at-a-time loop costs one L2 round trip
  // per iteration, which dominated the first version: 13 us at 1 token, 68 us at 16).
  {
    const uint4* xv = reinterpret_cast<const uint4*>(x);
    const int nvec = in * T / 8;
    constexpr int kBatch = 4;
    for (int v0 = threadIdx.x; v0 < nvec; v0 += kBatch * blockDim.x) {
      uint4 u[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int v = v0 + b * blockDim.x;
        u[b] = v < nvec ? __ldg(xv + v) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int v = v0 + b * blockDim.x;
        if (v >= nvec) break;
        if constexpr (T == 1) {
          reinterpret_cast<uint4*>(xs)[v] = u[b];
        } else {
          const __nv_bfloat16* h = reinterpret_cast<const __nv_bfloat16*>(&u[b]);
          const int e0 = v * 8, t = e0 / in, k0 = e0 - t * in;  // 8 | in: one token per vector
#pragma unroll
          for (int j = 0; j < 8; ++j) xs[(k0 + j) * T + t] = h[j];
        }
      }
    }
  }
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int warp = blockIdx.x * kDecodeWarps + (threadIdx.x >> 5);
  const int nwarps = gridDim.x * kDecodeWarps;
  const int chunks = in / 32;  // 8 groups (32 columns) per chunk
  constexpr int kUnroll = 4;
  for (int row = warp; row < out; row += nwarps) {
    const uint4* vr = values + std::size_t(row) * chunks;
    const std::uint16_t* ir = idx + std::size_t(row) * chunks;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; ++t) acc[t] = 0.f;
    for (int c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
      uint4 vv[kUnroll];
      std::uint16_t ii[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + 32 * u;
        if (c < chunks) {
          vv[u] = __ldg(vr + c);
          ii[u] = __ldg(ir + c);
        } else {
          vv[u] = make_uint4(0, 0, 0, 0);
          ii[u] = 0;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int c = c0 + 32 * u;
        if (c >= chunks) break;
        const __nv_bfloat162* w2 = reinterpret_cast<const __nv_bfloat162*>(&vv[u]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 w = __bfloat1622float2(w2[e]);
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int g = 2 * e + h;
            const int col = (c * 8 + g) * 4 + int((ii[u] >> (2 * g)) & 3u);
            float xv[T];
            load_tokens<T>(xs, col, xv);
            const float wv = h ? w.y : w.x;
#pragma unroll
            for (int t = 0; t < T; ++t) acc[t] = fmaf(wv, xv[t], acc[t]);
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
