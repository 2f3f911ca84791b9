// SPDX-License-Identifier: Apache-2.0
// Device kernels of the soft-sampling noise (host API: cuda/sampling.cuh). Each thread takes four
// consecutive entries, i.e. exactly one Philox4x32-10 block (counter = linear index, block =
// index / 4, word = index % 4; core/philox.hpp), so one block computation serves four outputs.
#ifndef SPARSENM_CUDA_DETAIL_SAMPLING_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_SAMPLING_KERNELS_CUH

#include <cstdint>

#include <cuda_runtime.h>

#include "../../core/philox.hpp"
#include "optim_kernels.cuh"

namespace sparsenm {
namespace cuda {
namespace detail {

/// The CPU's formula (sampling/frechet.hpp): |w| * exp(-(1/T) * log(-log U)) in double.
template <class S, class T>
__device__ __forceinline__ S frechet_one(T w, std::uint32_t bits, double inv_t, bool& bad) {
  const double x = double(w);
  bad |= !(x - x == 0.0);
  const double a = fabs(x);
  if (a == 0) return S(0);
  const double e = -log(Philox::to_uniform(bits));
  return S(a * exp(-inv_t * log(e)));
}

template <class S, class T>
__global__ void frechet_kernel(const T* __restrict__ w, std::size_t n, double inv_t, Philox rng,
                               S* __restrict__ out, int* __restrict__ bad_flag) {
  bool bad = false;
  const std::size_t n4 = (n + 3) / 4;
  for (std::size_t b = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; b < n4;
       b += std::size_t(gridDim.x) * blockDim.x) {
    const Philox::Block r = rng.block(std::uint64_t(b));
    const std::size_t i = 4 * b;
    if (i + 4 <= n) {
      const Vec4<T> x = load4(w + i);
      Vec4<S> o;
#pragma unroll
      for (int l = 0; l < 4; ++l) o.v[l] = frechet_one<S>(x.v[l], r[l], inv_t, bad);
      store4(out + i, o);
    } else {
      for (std::size_t l = 0; i + l < n; ++l)
        out[i + l] = frechet_one<S>(w[i + l], r[l], inv_t, bad);
    }
  }
  if (bad && bad_flag) atomicOr(bad_flag, 1);
}

/// The CPU's formula: R(double(s) * U) (exact product in double, then one rounding).
template <class R, class T>
__global__ void uniform_perturb_kernel(const T* __restrict__ s, std::size_t n, Philox rng,
                                       R* __restrict__ out, int* __restrict__ nan_flag) {
  bool nan = false;
  const std::size_t n4 = (n + 3) / 4;
  for (std::size_t b = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; b < n4;
       b += std::size_t(gridDim.x) * blockDim.x) {
    const Philox::Block r = rng.block(std::uint64_t(b));
    const std::size_t i = 4 * b;
    if (i + 4 <= n) {
      const Vec4<T> x = load4(s + i);
      Vec4<R> o;
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        nan |= x.v[l] != x.v[l];
        o.v[l] = R(double(x.v[l]) * Philox::to_uniform(r[l]));
      }
      store4(out + i, o);
    } else {
      for (std::size_t l = 0; i + l < n; ++l) {
        nan |= s[i + l] != s[i + l];
        out[i + l] = R(double(s[i + l]) * Philox::to_uniform(r[l]));
      }
    }
  }
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_SAMPLING_KERNELS_CUH
