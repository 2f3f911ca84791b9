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

/// Cephes logf for positive normal floats, operation for operation the CPU's AVX-512 log_ps
/// (sampling/detail/frechet_kernels.hpp): explicit fmaf where it uses FMA, and _rn intrinsics for
/// every other product and sum so that nvcc cannot contract them differently.
__device__ __forceinline__ float cephes_logf(float x) {
  // getexp / getmant of a positive normal float, straight from the bits.
  const unsigned b = __float_as_uint(x);
  // floor(log2 x) = (b >> 23) - 127 as a float without an I2F (a quarter-rate conversion): the
  // float with bits 0x4B000000 | k is exactly 2^23 + k, and the subtraction is exact.
  float e = __fsub_rn(__uint_as_float(0x4B000000u | (b >> 23)), 8388735.0f);
  float m = __uint_as_float((b & 0x007fffffu) | 0x3f800000u);  // [1, 2)
  if (m > 1.41421356f) {
    m = __fmul_rn(m, 0.5f);
    e = __fadd_rn(e, 1.0f);
  }
  const float f = __fsub_rn(m, 1.0f);
  const float z = __fmul_rn(f, f);
  float y = 7.0376836292E-2f;
  y = fmaf(y, f, -1.1514610310E-1f);
  y = fmaf(y, f, 1.1676998740E-1f);
  y = fmaf(y, f, -1.2420140846E-1f);
  y = fmaf(y, f, 1.4249322787E-1f);
  y = fmaf(y, f, -1.6668057665E-1f);
  y = fmaf(y, f, 2.0000714765E-1f);
  y = fmaf(y, f, -2.4999993993E-1f);
  y = fmaf(y, f, 3.3333331174E-1f);
  y = __fmul_rn(__fmul_rn(y, f), z);
  y = fmaf(e, -2.12194440e-4f, y);
  y = fmaf(-z, 0.5f, y);
  const float r = __fadd_rn(f, y);
  return fmaf(e, 0.693359375f, r);
}

/// Cephes expf, x clamped to [-110, 100], as the CPU's AVX-512 exp_ps.
__device__ __forceinline__ float cephes_expf(float x) {
  x = fminf(fmaxf(x, -110.0f), 100.0f);
  // rintf(x log2 e) and its integer without FRND/F2I conversions: adding 1.5 * 2^23 rounds the
  // (rounded) product to the nearest integer, ties to even, exactly as rintf (|product| < 2^22),
  // and that integer sits in the low mantissa bits of the sum.
  const float shifted = __fadd_rn(__fmul_rn(x, 1.44269504088896341f), 12582912.0f);
  const float n = __fsub_rn(shifted, 12582912.0f);
  x = fmaf(-n, 0.693359375f, x);
  x = fmaf(-n, -2.12194440e-4f, x);
  const float z = __fmul_rn(x, x);
  float y = 1.9875691500E-4f;
  y = fmaf(y, x, 1.3981999507E-3f);
  y = fmaf(y, x, 8.3334519073E-3f);
  y = fmaf(y, x, 4.1665795894E-2f);
  y = fmaf(y, x, 1.6666665459E-1f);
  y = fmaf(y, x, 5.0000001201E-1f);
  y = fmaf(y, z, __fadd_rn(x, 1.0f));
  // scalef(y, n) = y 2^n with one rounding, n in [-159, 145]. For n in [-125, 127] (nearly every
  // call) y 2^n is a normal float (y is in [0.7, 1.42]), so one product by the exact power is
  // exact; otherwise split into two powers that are normal floats, the first product being exact,
  // so only the second one rounds.
  const int ni = int(__float_as_uint(shifted) - 0x4B400000u);
  if (ni >= -125 && ni <= 127) return __fmul_rn(y, __uint_as_float(unsigned(ni + 127) << 23));
  const int n1 = ni / 2, n2 = ni - n1;
  return __fmul_rn(__fmul_rn(y, __uint_as_float(unsigned(n1 + 127) << 23)),
                   __uint_as_float(unsigned(n2 + 127) << 23));
}

/// The CPU's Fréchet transform (sampling/frechet.hpp): a * exp(-(1/T) * log(-log U)) in the
/// output precision; float uses the Cephes polynomials of the CPU's AVX-512 kernel, double the
/// library log/exp. Exactly 0 where w is 0.
template <class S, class T>
__device__ __forceinline__ S frechet_one(T w, std::uint32_t bits, S inv_t, bool& bad) {
  bad |= !(w - w == T(0));  // NaN or +-Inf
  const S a = fabs(S(w));
  const S u = uniform_as<S>(bits);
  S r;
  if constexpr (sizeof(S) == 4) {
    const float e = __fsub_rn(0.0f, cephes_logf(u));
    r = __fmul_rn(a, cephes_expf(__fmul_rn(-inv_t, cephes_logf(e))));
  } else {
    r = a * exp(-inv_t * log(-log(u)));
  }
  return a == S(0) ? S(0) : r;  // a select, not a branch (0 * inf would be NaN)
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

template <class S, class T>
__global__ void frechet_kernel(const T* __restrict__ w, std::size_t n, S inv_t, Philox rng,
                               S* __restrict__ out, int* __restrict__ bad_flag) {
  bool bad = false;
  philox_map(w, n, rng, out,
             [&](T x, std::uint32_t bits) { return frechet_one<S>(x, bits, inv_t, bad); });
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
