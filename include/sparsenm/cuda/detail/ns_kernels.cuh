// SPDX-License-Identifier: Apache-2.0
// Elementwise kernels of the device Newton-Schulz iteration (host API: cuda/newton_schulz.cuh).
#ifndef SPARSENM_CUDA_DETAIL_NS_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_NS_KERNELS_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "reduce.cuh"

namespace sparsenm {
namespace cuda {
namespace detail {

template <class T>
__device__ __forceinline__ float to_float(T x) {
  return float(x);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <class T>
__device__ __forceinline__ T from_float(float x) {
  return T(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16(x);
}

/// Per-block partial sum of x^2 over n entries (grid-stride), record of 1 double per block.
template <class S>
__global__ void sum_squares_kernel(const S* __restrict__ x, std::size_t n,
                                   double* __restrict__ partial) {
  double v[1] = {0.0};
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const double d = double(x[i]);
    v[0] += d * d;
  }
  block_sum<1>(v);
  if (threadIdx.x == 0) partial[blockIdx.x] = v[0];
}

/// out = T(in * scale), scale = 1 / (sqrt(sumsq[0]) + eps): Newton-Schulz's X0 (Muon's 1e-7).
template <class S, class T>
__global__ void ns_prepare_kernel(const S* __restrict__ in, std::size_t n,
                                  const double* __restrict__ sumsq, double eps,
                                  T* __restrict__ out) {
  const S scale = S(1.0 / (sqrt(sumsq[0]) + eps));
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    if constexpr (sizeof(T) == sizeof(S))
      out[i] = T(in[i] * scale);
    else
      out[i] = from_float<T>(float(in[i] * scale));
  }
}

/// B = a I + b A + c A2 on a g x g matrix (full, column-major; A and A2 are symmetric).
template <class T, class C>
__global__ void ns_combine_kernel(const T* __restrict__ A, const T* __restrict__ A2, int g, C a,
                                  C b, C c, T* __restrict__ B) {
  const std::size_t n = std::size_t(g) * std::size_t(g);
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    C v;
    if constexpr (sizeof(T) == sizeof(C))
      v = b * A[i] + c * A2[i];
    else
      v = b * to_float(A[i]) + c * to_float(A2[i]);
    if (i % (std::size_t(g) + 1) == 0) v += a;
    if constexpr (sizeof(T) == sizeof(C))
      B[i] = v;
    else
      B[i] = from_float<T>(v);
  }
}

/// out = S(in) (bf16 -> float copies when a run stops before any GEMM).
template <class T, class S>
__global__ void convert_kernel(const T* __restrict__ in, std::size_t n, S* __restrict__ out) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = S(to_float(in[i]));
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_NS_KERNELS_CUH
