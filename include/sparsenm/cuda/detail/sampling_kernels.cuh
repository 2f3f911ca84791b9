// SPDX-License-Identifier: Apache-2.0
// Device kernels of the soft-sampling noise (host API: cuda/sampling.cuh). Each thread takes four
// consecutive entries, i.e. exactly one Philox4x32-10 block (counter = linear index, block =
// index / 4, word = index % 4; core/philox.hpp), so one block computation serves four outputs.
#ifndef SPARSENM_CUDA_DETAIL_SAMPLING_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_SAMPLING_KERNELS_CUH

#include <cstdint>

#include <cuda_runtime.h>

#include "../../core/philox.hpp"
#include "../../sampling/detail/frechet_math.hpp"
#include "optim_kernels.cuh"

namespace sparsenm {
namespace cuda {
namespace detail {

/// U in the result type, as the CPU's fill (core/random_fill.hpp): uniform_float for float,
/// uniform for double.
/// The float case equals Philox::to_uniform_float bit for bit without fp64 arithmetic: the
/// correctly rounded float of the integer 2 bits + 1, times 2^-33 (exact), is the correctly rounded
/// float of (bits + 0.5) 2^-32, which is what the double route computes.
template <class S>
__device__ __forceinline__ S uniform_as(std::uint32_t bits) {
  if constexpr (sizeof(S) == 4) {
    const float u = __ull2float_rn(2ull * bits + 1ull) * 0x1p-33f;
    return u < 0.99999994f ? u : 0.99999994f;
  } else {
    return S(Philox::to_uniform(bits));
  }
}

/// The CPU's Fréchet transform (sampling/frechet.hpp): in float the shared base-2 pipeline of
/// sampling/detail/frechet_math.hpp (the CPU's scalar reference and AVX-512 kernel perform the
/// same operations), in double a * exp(-(1/T) log(-log U)) with CUDA's log/exp. Exactly 0 where w
/// is 0. kChecked = false drops exp2's clamp and range test where the host proved them no-ops.
template <class S, bool kChecked, class T>
__device__ __forceinline__ S frechet_one(T w, std::uint32_t bits, S inv_t,
                                         sparsenm::detail::FrechetConstants c, bool& bad) {
  bad |= !(w - w == T(0));  // NaN or +-Inf
  const S a = fabs(S(w));
  const S u = uniform_as<S>(bits);
  if constexpr (sizeof(S) == 4) {
    return sparsenm::detail::frechet_score<kChecked>(a, u, c);
  } else {
    const S r = a * exp(-inv_t * log(-log(u)));
    return a == S(0) ? S(0) : r;  // a select, not a branch (0 * inf would be NaN)
  }
}

/// out[i] = op(in[i], bits(i)) for i in [0, n): a grid-stride loop over Philox blocks, one block
/// (four words) per thread step; full blocks use 16-byte vector loads and stores.
template <class T, class R, class Op>
__device__ __forceinline__ void philox_map(const T* __restrict__ in, std::size_t n,
                                           const Philox& rng, R* __restrict__ out, Op op) {
  const std::size_t n4 = (n + 3) / 4;
  for (std::size_t b = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; b < n4;
       b += std::size_t(gridDim.x) * blockDim.x) {
    const Philox::Block r = rng.block(std::uint64_t(b));
    const std::size_t i = 4 * b;
    if (i + 4 <= n) {
      const Vec4<T> x = load4(in + i);
      Vec4<R> o;
#pragma unroll
      for (int l = 0; l < 4; ++l) o.v[l] = op(x.v[l], r[l]);
      store4(out + i, o);
    } else {  // the last partial block; l stays a compile-time index (r in registers)
#pragma unroll
      for (int l = 0; l < 3; ++l)
        if (i + l < n) out[i + l] = op(in[i + l], r[l]);
    }
  }
}

template <class S, class T, bool kChecked>
__global__ void frechet_kernel(const T* __restrict__ w, std::size_t n, S inv_t,
                               sparsenm::detail::FrechetConstants c, Philox rng,
                               S* __restrict__ out, int* __restrict__ bad_flag) {
  bool bad = false;
  philox_map(w, n, rng, out, [&](T x, std::uint32_t bits) {
    return frechet_one<S, kChecked>(x, bits, inv_t, c, bad);
  });
  if (bad && bad_flag) atomicOr(bad_flag, 1);
}

/// The CPU's formula: R(s) * U with U in R (one rounding in the result type).
template <class R, class T>
__global__ void uniform_perturb_kernel(const T* __restrict__ s, std::size_t n, Philox rng,
                                       R* __restrict__ out, int* __restrict__ nan_flag) {
  bool nan = false;
  philox_map(s, n, rng, out, [&](T x, std::uint32_t bits) {
    nan |= x != x;
    return R(R(x) * uniform_as<R>(bits));
  });
  if (nan && nan_flag) atomicOr(nan_flag, 1);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_SAMPLING_KERNELS_CUH
