// SPDX-License-Identifier: Apache-2.0
// Deterministic block reductions for the fused elementwise passes: every block writes its partial
// sums (double) to a fixed slot and one finishing block adds the slots in a fixed order, so a
// result depends only on the grid size (fixed per device), never on scheduling. No atomics.
#ifndef SPARSENM_CUDA_DETAIL_REDUCE_CUH
#define SPARSENM_CUDA_DETAIL_REDUCE_CUH

#include <cstdint>

#include <cuda_runtime.h>

namespace sparsenm {
namespace cuda {
namespace detail {

constexpr int kReduceBlock = 256;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

/// Sums `K` values over the block (blockDim.x == kReduceBlock); thread 0 gets the totals.
template <int K>
__device__ __forceinline__ void block_sum(double (&v)[K]) {
  __shared__ double sh[K][kReduceBlock / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int k = 0; k < K; ++k) {
    v[k] = warp_sum(v[k]);
    if (lane == 0) sh[k][warp] = v[k];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      double x = lane < kReduceBlock / 32 ? sh[k][lane] : 0.0;
      v[k] = warp_sum(x);
    }
  }
  __syncthreads();
}

/// Adds `count` partial records of K doubles (record-major) in a fixed order into out[0..K).
/// Launch with one block of kReduceBlock threads.
template <int K>
__global__ void finish_partials_kernel(const double* __restrict__ partial, int count,
                                       double* __restrict__ out) {
  double v[K];
#pragma unroll
  for (int k = 0; k < K; ++k) v[k] = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x)
#pragma unroll
    for (int k = 0; k < K; ++k) v[k] += partial[std::size_t(i) * K + k];
  block_sum<K>(v);
  if (threadIdx.x == 0)
#pragma unroll
    for (int k = 0; k < K; ++k) out[k] = v[k];
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_REDUCE_CUH
