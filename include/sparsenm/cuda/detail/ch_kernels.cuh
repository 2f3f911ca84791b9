// SPDX-License-Identifier: Apache-2.0
// Elementwise kernels of the device CH-L3n scores (host API: cuda/ch_scores.cuh).
#ifndef SPARSENM_CUDA_DETAIL_CH_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_CH_KERNELS_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace sparsenm {
namespace cuda {
namespace detail {

/// mask (0/1 bytes) -> S and bf16 copies (both exact); flags entries other than 0/1.
template <class S>
__global__ void mask_to_float_kernel(const std::uint8_t* __restrict__ m, std::size_t n,
                                     S* __restrict__ ms, __nv_bfloat16* __restrict__ mb,
                                     int* __restrict__ bad_flag) {
  bool bad = false;
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const std::uint8_t v = m[i];
    bad |= v > 1;
    ms[i] = S(v);
    mb[i] = __float2bfloat16(float(v));
  }
  if (bad && bad_flag) atomicOr(bad_flag, 1);
}

/// F = (P + B) / (E + 1) (Ch2L3n) or B / (E + 1) (Ch3L3n) on a symmetric count matrix P (g x g,
/// column-major, exact float counts), with B = [P != 0], E = max((deg[j] - P[i,j]) B, 1) - 1 and
/// deg[j] = P[j,j] (the diagonal of M M^T is the row degree of a 0/1 matrix). Written in S, in the
/// CPU's operation order.
template <class S>
__global__ void ch_weights_kernel(const float* __restrict__ P, int g, bool ch2, S* __restrict__ F) {
  const std::size_t n = std::size_t(g) * std::size_t(g);
  for (std::size_t k = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; k < n;
       k += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t i = k % std::size_t(g), j = k / std::size_t(g);
    const S p = S(P[k]);
    const S deg = S(P[j * std::size_t(g) + j]);
    const S b = p != S(0) ? S(1) : S(0);
    const S d = (deg - p) * b;
    const S e = (d > S(1) ? d : S(1)) - S(1);
    F[k] = (ch2 ? p + b : b) / (e + S(1));
    (void)i;
  }
}

/// out = S_c ⊙ (1 - M) in place on the (column-major C x R = row-major R x C) result.
template <class S>
__global__ void ch_mask_out_kernel(const std::uint8_t* __restrict__ m, std::size_t n,
                                   S* __restrict__ s) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    if (m[i]) s[i] = S(0);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_CH_KERNELS_CUH
