// SPDX-License-Identifier: Apache-2.0
// Kernels of the device 2:4 layer (host API: cuda/sparse_linear24.cuh). Slots are the entries of
// NMCompressed::values (row o, slot j of in/2; group j/2, in-group column indices[o, j]).
#ifndef SPARSENM_CUDA_DETAIL_LINEAR24_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_LINEAR24_KERNELS_CUH

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "optim_kernels.cuh"

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

/// The tiled re-pack (PackRoute::Fused). Block b owns a rectangle of slots: rows
/// [bi R, bi R + R) x slots [bj J, bj J + J) of the out x in/2 slot matrix (b = bi nbj + bj).
/// Every slot's word in packed buffer a (and b) lies in a window of at most `win_a` (`win_b`)
/// words starting at base_a[b] (base_b[b]); off_a[s] = word - base (16 bits). The windows are
/// measured at rebuild time (window_bounds_kernel) and the rectangle shape is the one whose
/// windows are smallest, so whatever order cuSPARSELt packs in, a block reads its slots in
/// coalesced runs of J (16-byte vectors), stages the bf16 words in shared memory, and writes its
/// windows back coalesced, touching only its own words (a bit per staged word; metadata and other
/// blocks' words are left as they are).
///
/// With ADAM the block first applies the Adam step to its slots (adam_one, the coefficients of
/// the device clock: the same arithmetic as adam_kernel) and writes m, v and the master value;
/// without, it re-packs the master values only (pack()). One pass: read g, m, v, w (16 bytes a
/// slot), write m, v, w (12), read 2 + 2 offset bytes and write 2 + 2 packed bytes, where Adam then
/// the gather re-pack moved 28 + 20 bytes a slot in three launches, half of them gathers.
template <bool ADAM>
__global__ void __launch_bounds__(256) adam_pack_tiles_kernel(
    const float* __restrict__ g, float* __restrict__ M, float* __restrict__ V,
    float* __restrict__ W, std::size_t out, std::size_t nnzr, unsigned R, unsigned J, unsigned nbj,
    const std::uint16_t* __restrict__ off_a, const std::uint32_t* __restrict__ base_a,
    unsigned win_a, __nv_bfloat16* __restrict__ packed_a, const std::uint16_t* __restrict__ off_b,
    const std::uint32_t* __restrict__ base_b, unsigned win_b, __nv_bfloat16* __restrict__ packed_b,
    float b1, float b2, float ob1, float ob2, const AdamCoef<float>* __restrict__ coef, float eps,
    float l2) {
  extern __shared__ std::uint32_t smem[];
  const bool two = packed_b != nullptr;
  const unsigned nfa = (win_a + 31) / 32, nfb = two ? (win_b + 31) / 32 : 0;
  std::uint32_t* flags_a = smem;
  std::uint32_t* flags_b = smem + nfa;
  std::uint16_t* stage_a = reinterpret_cast<std::uint16_t*>(smem + nfa + nfb);
  std::uint16_t* stage_b = stage_a + win_a;
  for (unsigned i = threadIdx.x; i < nfa + nfb; i += blockDim.x) smem[i] = 0u;
  __syncthreads();
  const unsigned bi = blockIdx.x / nbj, bj = blockIdx.x - bi * nbj;
  const std::size_t o0 = std::size_t(bi) * R, j0 = std::size_t(bj) * J;
  const unsigned rows = unsigned(out - o0 < R ? out - o0 : R);
  const unsigned cols = unsigned(nnzr - j0 < J ? nnzr - j0 : J);  // a multiple of 4
  const unsigned q4 = cols / 4, n4 = rows * q4;
  AdamCoef<float> c{0.f, 1.f, 1.f};
  if (ADAM) c = *coef;
  for (unsigned t = threadIdx.x; t < n4; t += blockDim.x) {
    const unsigned r = t / q4, c4 = t - r * q4;
    const std::size_t s = (o0 + r) * nnzr + j0 + 4 * std::size_t(c4);
    Vec4<float> wv = load4(W + s);
    if (ADAM) {
      const Vec4<float> gv = load4(g + s);
      Vec4<float> mv = load4(M + s), vv = load4(V + s);
#pragma unroll
      for (int l = 0; l < 4; ++l)
        adam_one<false>(gv.v[l], true, mv.v[l], vv.v[l], wv.v[l], b1, b2, ob1, ob2, c.step,
                        c.inv_sqrt_bc2, eps, l2, c.decay);
      store4(M + s, mv);
      store4(V + s, vv);
      store4(W + s, wv);
    }
    std::uint16_t h[4];
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      h[l] = __bfloat16_as_ushort(__float2bfloat16(wv.v[l]));
    }
    const uint2 oa = *reinterpret_cast<const uint2*>(off_a + s);  // 4 offsets, 8-byte aligned
    const unsigned qa[4] = {oa.x & 0xffffu, oa.x >> 16, oa.y & 0xffffu, oa.y >> 16};
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      stage_a[qa[l]] = h[l];
      atomicOr(flags_a + (qa[l] >> 5), 1u << (qa[l] & 31u));
    }
    if (two) {
      const uint2 ob = *reinterpret_cast<const uint2*>(off_b + s);
      const unsigned qb[4] = {ob.x & 0xffffu, ob.x >> 16, ob.y & 0xffffu, ob.y >> 16};
#pragma unroll
      for (int l = 0; l < 4; ++l) {
        stage_b[qb[l]] = h[l];
        atomicOr(flags_b + (qb[l] >> 5), 1u << (qb[l] & 31u));
      }
    }
  }
  __syncthreads();
  auto* pa = reinterpret_cast<std::uint16_t*>(packed_a) + base_a[blockIdx.x];
  for (unsigned q = threadIdx.x; q < win_a; q += blockDim.x)
    if ((flags_a[q >> 5] >> (q & 31u)) & 1u) pa[q] = stage_a[q];
  if (two) {
    auto* pb = reinterpret_cast<std::uint16_t*>(packed_b) + base_b[blockIdx.x];
    for (unsigned q = threadIdx.x; q < win_b; q += blockDim.x)
      if ((flags_b[q >> 5] >> (q & 31u)) & 1u) pb[q] = stage_b[q];
  }
}

/// Run geometry of one packed weight for the run route of PackRoute::Fused. A rectangle of
/// `rows` slot rows x `cols` slots (2 cols columns of W) lands in a set of runs of consecutive
/// packed words: by row (`col_runs` false) one run of `cols` words per row (a packing in slot
/// order, cuSPARSELt 0.8.0's forward W); by column (`col_runs` true) one run of rows/2 words per
/// column of W (a packing in Wᵀ's compressed row order, cuSPARSELt 0.8.0's transposed W: a
/// transposable mask keeps 2 of every 4 rows of a column, so a block's rows of that column are
/// rows/2 consecutive words). The staging area holds the runs one after the other, each padded
/// by 2 words (shared-memory banks; 4-byte aligned pairs).
struct RunShape {
  unsigned runs, len;
  __host__ __device__ static RunShape of(bool col_runs, unsigned rows, unsigned cols) {
    return col_runs ? RunShape{2 * cols, rows / 2} : RunShape{rows, cols};
  }
  __host__ __device__ unsigned stride() const { return len + 2; }
  __host__ __device__ unsigned staged() const { return runs * stride(); }
};

/// Run of slot s (row r, slot c of its rectangle; j0 the rectangle's first slot, even).
__device__ __forceinline__ unsigned run_of(bool col_runs, unsigned r, std::size_t j, std::size_t j0,
                                           std::uint8_t in_group) {
  return col_runs ? unsigned((j >> 1) * 4 + in_group - 2 * j0) : r;
}

/// Rebuild time, run route: for each rectangle (R x J slots, block b = bi nbj + bj) and run, the
/// smallest packed word of its slots (atomicMin into base, which the caller fills with 0xff)
/// and the number of its slots (count, zeroed). inv: slot -> word.
template <class W>
__global__ void run_bounds_kernel(const W* __restrict__ inv, const std::uint8_t* __restrict__ idx,
                                  std::size_t out, std::size_t nnzr, unsigned R, unsigned J,
                                  unsigned nbj, bool col_runs, unsigned max_runs,
                                  std::uint32_t* __restrict__ base,
                                  std::uint32_t* __restrict__ count) {
  const std::size_t nnz = out * nnzr;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < nnz;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t o = s / nnzr, j = s - o * nnzr;
    const std::size_t bi = o / R, bj = j / J;
    const std::size_t k =
        (bi * nbj + bj) * max_runs + run_of(col_runs, unsigned(o - bi * R), j, bj * J, idx[s]);
    atomicMin(base + k, std::uint32_t(inv[s]));
    atomicAdd(count + k, 1u);
  }
}

/// Counts slots s whose packed word is not s (inv: slot -> word): zero when a packing is the
/// slot order itself (cuSPARSELt 0.8.0's forward W), which the run pass then writes directly.
template <class W>
__global__ void count_not_identity_kernel(const W* __restrict__ inv, std::size_t nnz,
                                          unsigned long long* __restrict__ bad) {
  unsigned long long local = 0;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < nnz;
       s += std::size_t(gridDim.x) * blockDim.x)
    local += std::size_t(inv[s]) != s;
  if (local) atomicAdd(bad, local);
}

/// Rebuild time, run route: off[s] = the slot's place in its rectangle's staging area (run x
/// stride + word - run base). Counts into `bad` every slot whose run does not hold exactly `len`
/// slots or whose word lies outside [base, base + len): then the layout is not the assumed one
/// and the route is not taken. (With the slot map a bijection, the check makes every run's
/// words exactly its slots: the staged write-back then touches value words only.)
template <class W>
__global__ void run_offsets_kernel(const W* __restrict__ inv, const std::uint8_t* __restrict__ idx,
                                   std::size_t out, std::size_t nnzr, unsigned R, unsigned J,
                                   unsigned nbj, bool col_runs, unsigned max_runs,
                                   const std::uint32_t* __restrict__ base,
                                   const std::uint32_t* __restrict__ count,
                                   std::uint16_t* __restrict__ off,
                                   unsigned long long* __restrict__ bad) {
  const std::size_t nnz = out * nnzr;
  unsigned long long local = 0;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < nnz;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t o = s / nnzr, j = s - o * nnzr;
    const std::size_t bi = o / R, bj = j / J, o0 = bi * R, j0 = bj * J;
    const unsigned rows = unsigned(out - o0 < R ? out - o0 : R);
    const unsigned cols = unsigned(nnzr - j0 < J ? nnzr - j0 : J);
    const RunShape sh = RunShape::of(col_runs, rows, cols);
    const unsigned run = run_of(col_runs, unsigned(o - o0), j, j0, idx[s]);
    const std::size_t k = (bi * nbj + bj) * max_runs + run;
    const std::uint32_t w = std::uint32_t(inv[s]);
    if (run >= sh.runs || count[k] != sh.len || w < base[k] || w - base[k] >= sh.len) {
      ++local;
      continue;
    }
    off[s] = std::uint16_t(run * sh.stride() + (w - base[k]));
  }
  if (local) atomicAdd(bad, local);
}

/// Writes a rectangle's staged runs back: run k's `len` words go to packed[base[k] + 0..len),
/// two words a thread (a 4-byte store where the destination is aligned).
__device__ __forceinline__ void write_runs(const std::uint16_t* __restrict__ stage, RunShape sh,
                                           const std::uint32_t* __restrict__ base,
                                           std::uint16_t* __restrict__ packed) {
  const unsigned half = sh.len / 2, pairs = sh.runs * half;  // len is even (rows % 16, cols % 8)
  for (unsigned q = threadIdx.x; q < pairs; q += blockDim.x) {
    const unsigned run = q / half, pos = 2 * (q - run * half);
    const std::uint32_t v =
        *reinterpret_cast<const std::uint32_t*>(stage + run * sh.stride() + pos);
    std::uint16_t* d = packed + base[run] + pos;
    if ((reinterpret_cast<std::uintptr_t>(d) & 3u) == 0) {
      *reinterpret_cast<std::uint32_t*>(d) = v;
    } else {
      d[0] = std::uint16_t(v & 0xffffu);
      d[1] = std::uint16_t(v >> 16);
    }
  }
}

/// PackRoute::Fused, run route: adam_pack_tiles_kernel with the packed words of a rectangle
/// in runs (RunShape) instead of one window, so a packing that scatters a rectangle's slots far
/// apart (Wᵀ's at 4096 x 4096: a rectangle spans 2J rows of Wᵀ) is still written coalesced.
/// Block b: rectangle rows [bi R, +R) x slots [bj J, +J); off_a / off_b: staging place of each
/// slot (run_offsets_kernel); base_a / base_b: run bases, max_runs_a / max_runs_b a rectangle.
/// The staging is dense (every staged word is a slot of this block), so no flags are needed.
/// Bytes a slot: read g, m, v, w (16) and 2 + 2 offset bytes, write m, v, w (12) and 2 + 2
/// packed bytes, in one launch.
/// With SAMPLE the gradient is not read from g but sampled here from the dense fp32 dW tile of
/// the last backward (`tile`, out x in row-major, the whole dW; idx: in-group index of each
/// slot): four slots are two groups, one 32-byte load and 4 index bytes (sample_tile4_kernel's
/// selection), which saves the sampling pass's write and this pass's read of the compressed
/// gradient, and a launch.
__device__ __forceinline__ float pick4(const float4& v, unsigned i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

template <bool ADAM, bool SAMPLE>
__global__ void __launch_bounds__(256)
    adam_pack_runs_kernel(const float* __restrict__ g, float* __restrict__ M, float* __restrict__ V,
                          float* __restrict__ W, std::size_t out, std::size_t nnzr, unsigned R,
                          unsigned J, unsigned nbj, const std::uint16_t* __restrict__ off_a,
                          const std::uint32_t* __restrict__ base_a, bool col_a, unsigned max_runs_a,
                          unsigned staged_a, __nv_bfloat16* __restrict__ packed_a,
                          const std::uint16_t* __restrict__ off_b,
                          const std::uint32_t* __restrict__ base_b, bool col_b, unsigned max_runs_b,
                          __nv_bfloat16* __restrict__ packed_b, float b1, float b2, float ob1,
                          float ob2, const AdamCoef<float>* __restrict__ coef, float eps, float l2,
                          const float* __restrict__ tile, const std::uint8_t* __restrict__ idx) {
  extern __shared__ std::uint32_t smem[];
  const bool two = packed_b != nullptr;
  std::uint16_t* stage_a = reinterpret_cast<std::uint16_t*>(smem);
  std::uint16_t* stage_b = stage_a + staged_a;  // staged_a is even: 4-byte aligned
  const unsigned bi = blockIdx.x / nbj, bj = blockIdx.x - bi * nbj;
  const std::size_t o0 = std::size_t(bi) * R, j0 = std::size_t(bj) * J;
  const unsigned rows = unsigned(out - o0 < R ? out - o0 : R);
  const unsigned cols = unsigned(nnzr - j0 < J ? nnzr - j0 : J);  // a multiple of 4
  const unsigned q4 = cols / 4, n4 = rows * q4;
  AdamCoef<float> c{0.f, 1.f, 1.f};
  if (ADAM) c = *coef;
  for (unsigned t = threadIdx.x; t < n4; t += blockDim.x) {
    const unsigned r = t / q4, c4 = t - r * q4;
    const std::size_t s = (o0 + r) * nnzr + j0 + 4 * std::size_t(c4);
    Vec4<float> wv = load4(W + s);
    if (ADAM) {
      Vec4<float> gv;
      if (SAMPLE) {  // slots j..j+3 (j % 4 == 0): columns 2j..2j+7 of tile row o0 + r
        const float4* tr = reinterpret_cast<const float4*>(tile + (o0 + r) * (2 * nnzr) +
                                                           2 * (j0 + 4 * std::size_t(c4)));
        const float4 lo = tr[0], hi = tr[1];
        const std::uint32_t ix = *reinterpret_cast<const std::uint32_t*>(idx + s);
        gv.v[0] = pick4(lo, ix & 3u), gv.v[1] = pick4(lo, (ix >> 8) & 3u);
        gv.v[2] = pick4(hi, (ix >> 16) & 3u), gv.v[3] = pick4(hi, (ix >> 24) & 3u);
      } else {
        gv = load4(g + s);
      }
      Vec4<float> mv = load4(M + s), vv = load4(V + s);
#pragma unroll
      for (int l = 0; l < 4; ++l)
        adam_one<false>(gv.v[l], true, mv.v[l], vv.v[l], wv.v[l], b1, b2, ob1, ob2, c.step,
                        c.inv_sqrt_bc2, eps, l2, c.decay);
      store4(M + s, mv);
      store4(V + s, vv);
      store4(W + s, wv);
    }
    std::uint16_t h[4];
#pragma unroll
    for (int l = 0; l < 4; ++l) h[l] = __bfloat16_as_ushort(__float2bfloat16(wv.v[l]));
    if (!off_a) {  // packing a is the slot order itself: word s holds slot s (8-byte store)
      *reinterpret_cast<uint2*>(reinterpret_cast<std::uint16_t*>(packed_a) + s) =
          make_uint2(h[0] | (std::uint32_t(h[1]) << 16), h[2] | (std::uint32_t(h[3]) << 16));
    } else {
      const uint2 oa = *reinterpret_cast<const uint2*>(off_a + s);  // 4 offsets, 8-byte aligned
      stage_a[oa.x & 0xffffu] = h[0];
      stage_a[oa.x >> 16] = h[1];
      stage_a[oa.y & 0xffffu] = h[2];
      stage_a[oa.y >> 16] = h[3];
    }
    if (two) {
      const uint2 ob = *reinterpret_cast<const uint2*>(off_b + s);
      stage_b[ob.x & 0xffffu] = h[0];
      stage_b[ob.x >> 16] = h[1];
      stage_b[ob.y & 0xffffu] = h[2];
      stage_b[ob.y >> 16] = h[3];
    }
  }
  __syncthreads();
  if (off_a)
    write_runs(stage_a, RunShape::of(col_a, rows, cols),
               base_a + std::size_t(blockIdx.x) * max_runs_a,
               reinterpret_cast<std::uint16_t*>(packed_a));
  if (two)
    write_runs(stage_b, RunShape::of(col_b, rows, cols),
               base_b + std::size_t(blockIdx.x) * max_runs_b,
               reinterpret_cast<std::uint16_t*>(packed_b));
}

/// The windows of a rectangle shape (adam_pack_tiles_kernel): block b reduces the smallest and
/// largest packed word of its slots (inv: slot -> word) into lo[b], hi[b]. One block a rectangle.
template <class W>
__global__ void __launch_bounds__(256)
    window_bounds_kernel(const W* __restrict__ inv, std::size_t out, std::size_t nnzr, unsigned R,
                         unsigned J, unsigned nbj, std::uint32_t* __restrict__ lo,
                         std::uint32_t* __restrict__ hi) {
  __shared__ std::uint32_t s_lo[8], s_hi[8];
  const unsigned bi = blockIdx.x / nbj, bj = blockIdx.x - bi * nbj;
  const std::size_t o0 = std::size_t(bi) * R, j0 = std::size_t(bj) * J;
  const unsigned rows = unsigned(out - o0 < R ? out - o0 : R);
  const unsigned cols = unsigned(nnzr - j0 < J ? nnzr - j0 : J);
  std::uint32_t a = 0xffffffffu, b = 0u;
  for (unsigned t = threadIdx.x; t < rows * cols; t += blockDim.x) {
    const unsigned r = t / cols, c = t - r * cols;
    const std::uint32_t w = inv[(o0 + r) * nnzr + j0 + c];
    a = w < a ? w : a;
    b = w > b ? w : b;
  }
  for (int d = 16; d > 0; d >>= 1) {
    const std::uint32_t x = __shfl_xor_sync(0xffffffffu, a, d),
                        y = __shfl_xor_sync(0xffffffffu, b, d);
    a = x < a ? x : a;
    b = y > b ? y : b;
  }
  if ((threadIdx.x & 31u) == 0) s_lo[threadIdx.x >> 5] = a, s_hi[threadIdx.x >> 5] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (unsigned k = 1; k < blockDim.x / 32; ++k) {
      a = s_lo[k] < a ? s_lo[k] : a;
      b = s_hi[k] > b ? s_hi[k] : b;
    }
    lo[blockIdx.x] = a;
    hi[blockIdx.x] = b;
  }
}

/// off[s] = inv[s] - base[block of s] (16 bits: the chosen shape's windows are <= 65536 words).
template <class W>
__global__ void window_offsets_kernel(const W* __restrict__ inv, std::size_t out, std::size_t nnzr,
                                      unsigned R, unsigned J, unsigned nbj,
                                      const std::uint32_t* __restrict__ base,
                                      std::uint16_t* __restrict__ off) {
  const std::size_t nnz = out * nnzr;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < nnz;
       s += std::size_t(gridDim.x) * blockDim.x) {
    const std::size_t o = s / nnzr, j = s - o * nnzr;
    const std::size_t b = (o / R) * nbj + j / J;
    off[s] = std::uint16_t(inv[s] - base[b]);
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

/// sample_tile_kernel, a group of 4 columns a thread: one 16-byte load of the tile row's group,
/// the group's two in-group indices (2 bytes), its two slots' gradients (8 bytes). `in` is a
/// multiple of 16 (the layer checks it), so every group is 16-byte aligned.
/// (Templates, as every kernel here: a header kernel must not be defined once per translation
/// unit.)
template <class S>
__global__ void sample_tile4_kernel(const S* __restrict__ tile,
                                    const std::uint8_t* __restrict__ idx, std::size_t row0,
                                    std::size_t rows, std::size_t in, S* __restrict__ grad) {
  const std::size_t groups = in / 4, n = rows * groups, base = row0 * (in / 2);
  for (std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; t < n;
       t += std::size_t(gridDim.x) * blockDim.x) {
    const float4 v = reinterpret_cast<const float4*>(tile)[t];
    const std::size_t s = base + 2 * t;  // slot of the group's first kept entry
    const std::uint16_t ij = *reinterpret_cast<const std::uint16_t*>(idx + s);
    const float f[4] = {v.x, v.y, v.z, v.w};
    *reinterpret_cast<float2*>(grad + s) = make_float2(f[ij & 3u], f[(ij >> 8) & 3u]);
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
