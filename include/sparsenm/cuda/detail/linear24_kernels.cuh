// SPDX-License-Identifier: Apache-2.0
// Kernels of the device 2:4 layer (host API: cuda/sparse_linear24.cuh). Slots are the entries of
// NMCompressed::values (row o, slot j of in/2; group j/2, in-group column indices[o, j]).
#ifndef SPARSENM_CUDA_DETAIL_LINEAR24_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_LINEAR24_KERNELS_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace sparsenm {
namespace cuda {
namespace detail {

constexpr std::uint32_t kNoSlot = 0xffffffffu;

/// What expand_slots_kernel writes at each kept position.
enum class Expand : int { Values = 0, One = 1, Two = 2, Digit = 3, Check = 4 };

/// The check pattern: nonzero, exact in bf16, varying with the slot (1 + (37 s mod 97) / 128).
__device__ __forceinline__ float check_value(std::size_t s) {
  return 1.f + float((s * 37u) % 97u) * (1.f / 128.f);
}

/// Writes the kept entries of a 2:4 compressed weight (out x in) into a dense bf16 matrix that
/// the caller zeroed once for this mask: W (out x in) or, with `transpose`, Wᵀ (in x out). The
/// value is the slot's fp32 master value, a constant 1 or 2, or byte `digit` of the slot index
/// plus 1 (1..256, exact in bf16): the probes that locate each slot in cuSPARSELt's packed layout.
template <class S>
__global__ void expand_slots_kernel(const S* __restrict__ values,
                                    const std::uint8_t* __restrict__ idx, std::size_t out,
                                    std::size_t in, bool transpose, Expand what, int digit,
                                    __nv_bfloat16* __restrict__ dst) {
  const std::size_t nnzr = in / 2, nnz = out * nnzr;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < nnz;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t o = s / nnzr, j = s - o * nnzr;
    const std::size_t col = (j >> 1) * 4 + idx[s];
    float v;
    switch (what) {
      case Expand::Values:
        v = float(values[s]);
        break;
      case Expand::One:
        v = 1.f;
        break;
      case Expand::Two:
        v = 2.f;
        break;
      case Expand::Check:
        v = check_value(s);
        break;
      default:
        v = float(((s >> (8 * digit)) & 0xffu) + 1u);
        break;
    }
    dst[transpose ? col * out + o : o * in + col] = __float2bfloat16(v);
  }
}

/// Packed-buffer positions (16-bit words) that hold a value: 1.0 under the all-ones probe and 2.0
/// under the all-twos probe (metadata depends on the mask only, so it is equal in both).
template <class T>
__global__ void mark_value_words_kernel(const T* __restrict__ ones, const T* __restrict__ twos,
                                        std::size_t n, std::uint32_t* __restrict__ slot) {
  for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < n;
       p += std::size_t(gridDim.x) * blockDim.x)
    slot[p] = (ones[p] == T(0x3f80u) && twos[p] == T(0x4000u)) ? 0u : kNoSlot;
}

/// Adds byte `digit` of the slot index at every value position from a digit probe.
template <class T>
__global__ void add_digit_kernel(const T* __restrict__ probe, std::size_t n, int digit,
                                 std::uint32_t* __restrict__ slot, unsigned long long* bad) {
  for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < n;
       p += std::size_t(gridDim.x) * blockDim.x) {
    if (slot[p] == kNoSlot) continue;
    __nv_bfloat16_raw r;
    r.x = probe[p];
    const float v = __bfloat162float(__nv_bfloat16(r));
    const int d = int(v) - 1;
    if (!(v >= 1.f && v <= 256.f) || float(d + 1) != v) {
      atomicAdd(bad, 1ull);
      continue;
    }
    slot[p] |= std::uint32_t(d) << (8 * digit);
  }
}

/// Inverts position -> slot into slot -> position; counts hits and collisions / out-of-range.
template <class T>
__global__ void invert_slots_kernel(const std::uint32_t* __restrict__ slot, std::size_t n,
                                    std::size_t nnz, T* __restrict__ map,
                                    unsigned long long* __restrict__ counters) {
  for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < n;
       p += std::size_t(gridDim.x) * blockDim.x) {
    const std::uint32_t s = slot[p];
    if (s == kNoSlot) continue;
    if (s >= nnz) {
      atomicAdd(counters + 1, 1ull);
      continue;
    }
    atomicAdd(counters, 1ull);
    if (atomicExch(map + s, T(p)) != kNoSlot) atomicAdd(counters + 1, 1ull);
  }
}

/// The per-step re-pack: every slot's fp32 master value, rounded to bf16, into its position of
/// the forward packed buffer and (transposable masks) of the transposed one. One pass. With
/// `values` null the check pattern is written instead.
template <class S>
__global__ void scatter_values_kernel(const S* __restrict__ values, std::size_t nnz,
                                      const std::uint32_t* __restrict__ map_a,
                                      __nv_bfloat16* __restrict__ packed_a,
                                      const std::uint32_t* __restrict__ map_b,
                                      __nv_bfloat16* __restrict__ packed_b) {
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < nnz;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const __nv_bfloat16 v = __float2bfloat16(values ? float(values[s]) : check_value(s));
    packed_a[map_a[s]] = v;
    if (map_b) packed_b[map_b[s]] = v;
  }
}

/// The per-step re-pack, gather form (what pack() runs): every 16-bit word of the packed buffer
/// that holds a value takes its slot's fp32 master value rounded to bf16 (`slot_of` from the probe
/// packs; kNoSlot marks metadata and padding, left as they are). The writes are coalesced; the
/// reads gather within cuSPARSELt's small tiles, which the caches absorb.
template <class S>
__global__ void gather_values_kernel(const S* __restrict__ values,
                                     const std::uint32_t* __restrict__ slot_of, std::size_t words,
                                     __nv_bfloat16* __restrict__ packed) {
  for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < words;
       p += std::size_t(gridDim.x) * blockDim.x) {
    const std::uint32_t s = slot_of[p];
    if (s != kNoSlot) packed[p] = __float2bfloat16(float(values[s]));
  }
}

/// Counts differing bytes of two buffers (the check of the slot map against a fresh compress).
template <class T>
__global__ void count_diff_kernel(const T* __restrict__ a, const T* __restrict__ b, std::size_t n,
                                  unsigned long long* __restrict__ diff) {
  unsigned long long local = 0;
  for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < n;
       p += std::size_t(gridDim.x) * blockDim.x)
    local += a[p] != b[p];
  if (local) atomicAdd(diff, local);
}

/// dW on the active entries from a dense fp32 tile of rows [row0, row0 + rows) (row-major,
/// rows x in): grad[o, j] = tile[o - row0, column of slot j].
template <class S>
__global__ void sample_tile_kernel(const float* __restrict__ tile,
                                   const std::uint8_t* __restrict__ idx, std::size_t row0,
                                   std::size_t rows, std::size_t in, S* __restrict__ grad) {
  const std::size_t nnzr = in / 2, n = rows * nnzr, base = row0 * nnzr;
  for (std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; t < n;
       t += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t o = t / nnzr, j = t - o * nnzr;
    grad[base + t] = S(tile[o * in + (j >> 1) * 4 + idx[base + t]]);
  }
}

/// y (tokens x out, bf16) += bias (fp32), one rounding.
template <class S>
__global__ void bias_add_kernel(__nv_bfloat16* __restrict__ y, const S* __restrict__ bias,
                                std::size_t tokens, std::size_t out) {
  const std::size_t n = tokens * out;
  for (std::size_t p = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; p < n;
       p += std::size_t(gridDim.x) * blockDim.x)
    y[p] = __float2bfloat16(__bfloat162float(y[p]) + float(bias[p % out]));
}

/// db[o] = sum over tokens of dY[t, o] in fp32, deterministic: block (32 columns x 16 token
/// lanes), each lane sums a strided set of tokens, then a fixed-order shared-memory sum.
template <class S>
__global__ void __launch_bounds__(512)
    bias_grad_kernel(const __nv_bfloat16* __restrict__ dy, std::size_t tokens, std::size_t out,
                     S* __restrict__ db) {
  __shared__ float part[16][33];
  const std::size_t o = blockIdx.x * 32 + threadIdx.x;
  float acc = 0.f;
  if (o < out)
    for (std::size_t t = threadIdx.y; t < tokens; t += 16) acc += __bfloat162float(dy[t * out + o]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && o < out) {
    float s = 0.f;
    for (int k = 0; k < 16; ++k) s += part[k][threadIdx.x];
    db[o] = S(s);
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_LINEAR24_KERNELS_CUH
